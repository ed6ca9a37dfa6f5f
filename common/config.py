"""Typed configuration profiles (`configs/*.yaml`).

A profile is YAML validated into frozen pydantic models. Validation is strict because a typo in a
privacy setting must never be silently ignored: an unknown key, a wrong type, a value out of its
meaningful range (a negative step count, a NaN epsilon) or a missing file raises `ConfigError`
naming the file, the dotted key and what was expected, on one line.

Command-line overrides use the same dotted keys: `--set model.image_size=64`; the value is parsed
as YAML, so numbers, booleans and lists work.
"""

from __future__ import annotations

import json
import typing
import warnings
from collections.abc import Iterable
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common.errors import ConfigError

# Range-checked scalar types. Every float is also finite (`allow_inf_nan=False` on `_Section`).
Positive = Annotated[int, Field(gt=0)]
NonNegative = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]  # strictly between 0 and 1
Probability = Annotated[float, Field(ge=0, le=1)]


class _Section(BaseModel):
    """Common validation rules: immutable, no unknown keys, no type coercion, finite floats.

    Strict mode would refuse a YAML list for a tuple field; validating through JSON (see
    `_validate`) accepts JSON arrays for tuples and integers for floats, and nothing looser.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


class SimulatedSite(_Section):
    """One simulated hospital: its scanner, size and case mix (non-IID by design)."""

    site_id: str
    device: str
    patients: Positive
    malignant_rate: Probability = 0.35
    normal_rate: Probability = 0.1
    seed: NonNegative = 0


class SimulationConfig(_Section):
    """The simulated consortium that the demo and the benchmarks build: its hospitals and the
    public-like data the base is pretrained on. A real site or coordinator ignores this section;
    its data comes from its own store."""

    sites: tuple[SimulatedSite, ...] = ()
    pretrain_patients: Positive = 200
    pretrain_devices: tuple[str, ...] = ("device-a", "device-b", "device-c")


class DataConfig(_Section):
    """How a site's store is split into training and held-out patients."""

    holdout_fraction: Fraction = 0.2


class ModelConfig(_Section):
    """The conditional UNet (diffusers `UNet2DModel`) and its noise schedule."""

    image_size: Positive = 64
    block_out_channels: tuple[Positive, ...] = (32, 64, 64, 128)
    attention_levels: tuple[bool, ...] = (False, False, True, True)
    layers_per_block: Positive = 1
    attention_head_dim: Positive = 32
    norm_num_groups: Positive = 16
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    devices: tuple[str, ...] = ("device-a", "device-b", "device-c")
    num_train_timesteps: Positive = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "epsilon"


class PretrainConfig(_Section):
    """Centralised pretraining of the base model (the coordinator's job)."""

    steps: Positive = 1500
    batch_size: Positive = 16
    lr: PositiveFloat = 5.0e-4
    weight_decay: NonNegativeFloat = 1.0e-4
    warmup_steps: NonNegative = 100
    ema_decay: Annotated[float, Field(ge=0, lt=1)] = 0.999
    grad_clip: PositiveFloat = 1.0
    cond_dropout: Probability = 0.1
    checkpoint_every: Positive = 250
    mixed_precision: bool = False
    balance_classes: bool = True  # batches sample pathologies equally often (as BUSGen does)
    hflip: bool = True  # horizontal flip augmentation (image and box mask together)


class SamplingConfig(_Section):
    """DPM-Solver++ sampling with classifier-free guidance."""

    steps: Positive = 25
    guidance_scale: NonNegativeFloat = 2.5
    batch_size: Positive = 16
    box_prior_epsilon: PositiveFloat = 1.0  # epsilon (delta 0, unit patient) of the box prior
    box_prior_grid: Positive = 6  # centre histogram is grid x grid cells
    box_prior_boxes_per_patient: Positive = 2  # contribution bound per patient (the sensitivity)
    mixed_precision: bool = False  # bf16 autocast on a GPU (ignored on the CPU)


class LoraConfig(_Section):
    """Which layers carry LoRA adapters, and their size."""

    rank: Positive = 8
    alpha: PositiveFloat = 8.0
    targets: str = "attention"  # "attention" or "attention+conv"


class DPConfig(_Section):
    """Patient-level DP-SGD for a site's adapter training."""

    enabled: bool = True
    target_epsilon: PositiveFloat = 8.0
    delta: Fraction | None = None  # None: 1 / (10 * patients), always below 1 / patients
    max_grad_norm: PositiveFloat = 1.0
    expected_batch_patients: Positive = 16
    noise_multiplicity: Positive = 1
    max_images_per_patient: Positive = 6
    accountant: str = "prv"
    local_steps: Positive = 20
    lr: PositiveFloat = 1.0e-3
    microbatch_rows: Positive = 64  # rows per forward/backward pass: bounds GPU memory, not privacy


# `federation.validate` is a profile key; as a field it shadows pydantic's deprecated
# `BaseModel.validate` classmethod, which nothing here calls.
warnings.filterwarnings("ignore", 'Field name "validate" in "FederationConfig"', UserWarning)


class FederationConfig(_Section):
    """Federated rounds run by the coordinator."""

    rounds: Positive = 3
    min_train_sites: Positive = 2  # quorum: a round with fewer valid adapter updates fails
    reply_timeout_s: PositiveFloat = 900.0  # per phase; covers a site's ClientApp cold start
    secagg: bool = False
    round_retries: NonNegative = 1  # a round missing the quorum is retried this often, then stops
    validate: bool = True  # validation loss at every site after each round (one more ClientApp)
    node_wait_s: NonNegativeFloat = 300.0  # how long a round waits for `min_train_sites` sites


class ReleaseConfig(_Section):
    """Synthetic release generated and audited at each site."""

    n_images: Positive = 200
    # Share of normal, benign, malignant images (a public choice: the site's own case mix
    # would leak label counts that are neither DP nor coarse).
    pathology_mix: tuple[NonNegativeFloat, ...] = (0.2, 0.45, 0.35)


class EvidenceConfig(_Section):
    """Train-on-synthetic vs train-on-real evaluation."""

    seeds: Positive = 3
    classifier_epochs: Positive = 8
    bootstrap: Positive = 500
    image_size: Positive = 64  # classifier input size (images are resized to it)
    batch_size: Positive = 32
    min_steps: NonNegative = 120  # small training sets get more epochs so every arm trains enough
    specificity: Fraction = 0.9  # operating point for the reported sensitivity
    scaling_sizes: tuple[Positive, ...] = (250, 500, 1000, 2000, 4000, 8000)
    cross_device_test: str = "device-c"  # the device held out in the cross-device comparison
    full_grid: bool = False  # False: scaling and cross-device use one seed (the demo's budget)
    threads: Positive = 1  # torch CPU threads while training classifiers (small nets scale poorly)


class Config(_Section):
    """A whole profile: everything a run needs, nothing site-secret."""

    profile: str = "custom"
    seed: NonNegative = 0
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    pretrain: PretrainConfig = PretrainConfig()
    sampling: SamplingConfig = SamplingConfig()
    lora: LoraConfig = LoraConfig()
    dp: DPConfig = DPConfig()
    federation: FederationConfig = FederationConfig()
    release: ReleaseConfig = ReleaseConfig()
    evidence: EvidenceConfig = EvidenceConfig()
    simulation: SimulationConfig = SimulationConfig()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (tuples as lists), for run records and hashing."""
        return self.model_dump(mode="json")


_Location = tuple[str | int, ...]


def _unwrap(tp: Any) -> Any:
    """Strip `Annotated[...]` constraints, leaving the type they constrain."""
    return typing.get_args(tp)[0] if typing.get_origin(tp) is Annotated else tp


def _schema_at(loc: _Location) -> Any:
    """The schema type at a location of the config (field names and tuple indices)."""
    tp: Any = Config
    for part in loc:
        tp = _unwrap(tp)
        tp = typing.get_args(tp)[0] if isinstance(part, int) else tp.model_fields[part].annotation
    return _unwrap(tp)


def _type_name(tp: Any) -> str:
    tp = _unwrap(tp)
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple:
        return f"list of {_type_name(args[0])}"
    if args:  # a union such as `float | None`
        return " or ".join(_type_name(a) for a in args)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return f"mapping ({tp.__name__})"
    return "null" if tp is type(None) else tp.__name__


def _dotted(loc: _Location) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def _describe(error: Any) -> str:
    """One pydantic error as 'key ... problem', in the terms of the YAML file."""
    loc, kind, value = tuple(error["loc"]), error["type"], error["input"]
    key = _dotted(loc)
    if kind == "extra_forbidden":
        allowed = ", ".join(sorted(_schema_at(loc[:-1]).model_fields))
        return f"unknown key '{key}' (allowed here: {allowed})"
    where = f"key '{key}'" if loc else "top level"
    if kind == "missing":
        return f"{where} is required"
    got = "null" if value is None else type(value).__name__
    if kind.endswith(("_type", "_parsing")):
        return f"{where} expects {_type_name(_schema_at(loc))}, got {got} {value!r}"
    problem = error["msg"].replace("Input should", "must", 1)  # a range: "must be greater than 0"
    return f"{where} {problem}, got {value!r}"


def _first_non_json(value: Any, loc: _Location, path: frozenset[int] = frozenset()) -> str | None:
    """Where a YAML value has no JSON form (a date, a set, binary, a self-reference)."""
    if isinstance(value, dict | list):
        if id(value) in path:
            return f"key '{_dotted(loc)}' refers to itself"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in items:
            found = _first_non_json(v, (*loc, k), path | {id(value)})
            if found:
                return found
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return None
    return f"key '{_dotted(loc)}' has a {type(value).__name__} value {value!r}; use a plain value"


def _validate(data: Any, source: str, blame: dict[tuple[str, ...], str] | None = None) -> Config:
    """Validate plain data as a Config; any problem is one ConfigError line.

    `blame` maps override key paths to their `--set` text, so an error in an overridden value
    names the override rather than the file it replaced a value of.
    """
    try:
        text = json.dumps(data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {_first_non_json(data, ()) or exc}") from exc
    try:
        return Config.model_validate_json(text)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        loc = tuple(first["loc"])
        for keys, override in (blame or {}).items():
            if loc[: len(keys)] == keys:
                source = f"--set {override!r}"
        others = len(errors) - 1
        more = f" (and {others} more problem{'s' * (others > 1)})" if others else ""
        raise ConfigError(f"{source}: {_describe(first)}{more}") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML parser message (several lines, with context excerpts) as 'line L, column C: ...'."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return " ".join(f"{where}{getattr(exc, 'problem', None) or exc}".split())


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `a.b.c=value` into its key path and YAML-parsed value."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. model.image_size=64")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: value is not valid YAML: {_yaml_problem(exc)}") from exc
    return key.strip().split("."), value


def resolve_profile(path_or_name: str | Path) -> Traversable:
    """Accept a file path or the name of a shipped profile such as `cpu-demo`.

    Shipped profiles are files of the `configs` package, found through importlib so that an
    installed (not editable) distribution finds them too.
    """
    path = Path(path_or_name)
    if path.exists():
        return path
    shipped_dir = files("configs")
    candidate = shipped_dir / f"{path_or_name}.yaml"
    if candidate.is_file():
        return candidate
    names = sorted(p.name for p in shipped_dir.iterdir() if p.name.endswith(".yaml"))
    shipped = ", ".join(n.removesuffix(".yaml") for n in names)
    raise ConfigError(f"{path}: config file not found (shipped profiles: {shipped})")


def load_config(path_or_name: str | Path, overrides: Iterable[str] = ()) -> Config:
    """Load and validate a profile, then apply `--set` overrides (validated the same way)."""
    path = resolve_profile(path_or_name)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    blame = {}
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: '{k}' is not a section")
        node[keys[-1]] = value
        blame[tuple(keys)] = text
    return _validate(data, str(path), blame)


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> Config:
    """Validate a plain mapping (e.g. a config stored in a run record)."""
    return _validate(data, source)
