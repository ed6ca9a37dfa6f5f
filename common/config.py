"""Typed configuration profiles (`configs/*.yaml`).

A profile is YAML validated into frozen dataclasses. Validation is strict because a typo in a
privacy setting must never be silently ignored: an unknown key, a wrong type or a missing file
raises `ConfigError` naming the file, the dotted key and what was expected.

Command-line overrides use the same dotted keys: `--set model.image_size=64`; the value is parsed
as YAML, so numbers, booleans and lists work.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"  # the `configs` package


@dataclass(frozen=True)
class SiteSpec:
    """One simulated hospital: its scanner, size and case mix (non-IID by design)."""

    site_id: str
    device: str
    patients: int
    malignant_rate: float = 0.35
    normal_rate: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class DataConfig:
    """Simulated consortium and how stores are split."""

    sites: tuple[SiteSpec, ...] = ()
    holdout_fraction: float = 0.2
    pretrain_patients: int = 200
    pretrain_devices: tuple[str, ...] = ("device-a", "device-b", "device-c")


@dataclass(frozen=True)
class ModelConfig:
    """The conditional UNet (diffusers `UNet2DModel`) and its noise schedule."""

    image_size: int = 64
    block_out_channels: tuple[int, ...] = (32, 64, 64, 128)
    attention_levels: tuple[bool, ...] = (False, False, True, True)
    layers_per_block: int = 1
    attention_head_dim: int = 32
    norm_num_groups: int = 16
    dropout: float = 0.0
    devices: tuple[str, ...] = ("device-a", "device-b", "device-c")
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "epsilon"


@dataclass(frozen=True)
class PretrainConfig:
    """Centralised pretraining of the base model (the coordinator's job)."""

    steps: int = 1500
    batch_size: int = 16
    lr: float = 5.0e-4
    weight_decay: float = 1.0e-4
    warmup_steps: int = 100
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    cond_dropout: float = 0.1
    checkpoint_every: int = 250
    mixed_precision: bool = False
    balance_classes: bool = True  # batches sample pathologies equally often (as BUSGen does)
    hflip: bool = True  # horizontal flip augmentation (image and box mask together)


@dataclass(frozen=True)
class SamplingConfig:
    """DPM-Solver++ sampling with classifier-free guidance."""

    steps: int = 25
    guidance_scale: float = 2.5
    batch_size: int = 16
    box_prior_epsilon: float = 1.0  # epsilon (delta 0, unit patient) of the noisy lesion-box prior
    box_prior_grid: int = 6  # centre histogram is grid x grid cells
    box_prior_boxes_per_patient: int = 2  # contribution bound per patient (sets the sensitivity)
    mixed_precision: bool = False  # bf16 autocast on a GPU (ignored on the CPU)


@dataclass(frozen=True)
class LoraConfig:
    """Which layers carry LoRA adapters, and their size."""

    rank: int = 8
    alpha: float = 8.0
    targets: str = "attention"  # "attention" or "attention+conv"


@dataclass(frozen=True)
class DPConfig:
    """Patient-level DP-SGD for a site's adapter training."""

    enabled: bool = True
    target_epsilon: float = 8.0
    delta: float | None = None  # None: 1 / (10 * patients), always below 1 / patients
    max_grad_norm: float = 1.0
    expected_batch_patients: int = 16
    noise_multiplicity: int = 1
    max_images_per_patient: int = 6
    accountant: str = "prv"
    local_steps: int = 20
    lr: float = 1.0e-3
    microbatch_rows: int = 64  # rows per forward/backward pass: bounds GPU memory, not privacy


@dataclass(frozen=True)
class FederationConfig:
    """Federated rounds run by the coordinator."""

    rounds: int = 3
    min_train_sites: int = 2  # quorum: a round with fewer valid adapter updates fails
    reply_timeout_s: float = 900.0  # per phase; covers a site's ClientApp cold start
    secagg: bool = False
    round_retries: int = (
        1  # a round that misses the quorum is retried this often, then the run stops
    )
    validate: bool = (
        True  # validation loss at every site after each round (one more ClientApp start)
    )
    node_wait_s: float = 300.0  # how long a round waits for `min_train_sites` sites to be online


@dataclass(frozen=True)
class ReleaseConfig:
    """Synthetic release generated and audited at each site."""

    n_images: int = 200
    # Share of normal, benign, malignant images (a public choice: the site's own case mix
    # would leak label counts that are neither DP nor coarse).
    pathology_mix: tuple[float, ...] = (0.2, 0.45, 0.35)


@dataclass(frozen=True)
class EvidenceConfig:
    """Train-on-synthetic vs train-on-real evaluation."""

    seeds: int = 3
    classifier_epochs: int = 8
    bootstrap: int = 500
    image_size: int = 64  # classifier input size (images are resized to it)
    batch_size: int = 32
    min_steps: int = 120  # small training sets get more epochs so every arm gets enough updates
    specificity: float = 0.9  # operating point for the reported sensitivity
    scaling_sizes: tuple[int, ...] = (250, 500, 1000, 2000, 4000, 8000)
    cross_device_test: str = "device-c"  # the device held out in the cross-device comparison
    full_grid: bool = False  # False: scaling and cross-device use one seed (the demo's budget)
    threads: int = 1  # torch CPU threads while training classifiers (small nets scale poorly)


@dataclass(frozen=True)
class Config:
    """A whole profile: everything a run needs, nothing site-secret."""

    profile: str = "custom"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    dp: DPConfig = field(default_factory=DPConfig)
    federation: FederationConfig = field(default_factory=FederationConfig)
    release: ReleaseConfig = field(default_factory=ReleaseConfig)
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for JSON run records and hashing."""
        return _to_plain(dataclasses.asdict(self))


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if dataclasses.is_dataclass(tp):
        return f"mapping ({tp.__name__})"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check `value` against the annotation `tp`; return it converted (lists to tuples)."""

    def fail() -> ConfigError:
        return ConfigError(
            f"{source}: key '{key}' expects {_type_name(tp)}, got {type(value).__name__} {value!r}"
        )

    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, key, source)
            except ConfigError:
                continue
        raise fail()
    if tp is type(None):
        if value is None:
            return None
        raise fail()
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise fail()
        return _build(tp, value, key, source)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise fail()
        item_tp = typing.get_args(tp)[0]
        return tuple(_coerce(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value))
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail()
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail()
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise fail()
        return value
    raise ConfigError(f"{source}: key '{key}' has an unsupported schema type {tp!r}")


def _build(cls: type, data: dict[str, Any], prefix: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for raw_key, value in data.items():
        key = f"{prefix}.{raw_key}" if prefix else str(raw_key)
        if raw_key not in names:
            allowed = ", ".join(sorted(names))
            raise ConfigError(f"{source}: unknown key '{key}' (allowed here: {allowed})")
        kwargs[raw_key] = _coerce(value, hints[raw_key], key, source)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{source}: '{prefix or cls.__name__}' is incomplete: {exc}") from exc


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `a.b.c=value` into its key path and YAML-parsed value."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. model.image_size=64")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: value is not valid YAML: {exc}") from exc
    return key.strip().split("."), value


def resolve_profile(path_or_name: str | Path) -> Path:
    """Accept a file path or a profile name such as `cpu-demo`."""
    path = Path(path_or_name)
    if path.exists():
        return path
    candidate = CONFIG_DIR / f"{path_or_name}.yaml"
    if candidate.exists():
        return candidate
    raise ConfigError(
        f"{path}: config file not found (profiles in {CONFIG_DIR}: "
        f"{', '.join(sorted(p.stem for p in CONFIG_DIR.glob('*.yaml')))})"
    )


def load_config(path_or_name: str | Path, overrides: Iterable[str] = ()) -> Config:
    """Load and validate a profile, then apply `--set` overrides (validated the same way)."""
    path = resolve_profile(path_or_name)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: '{k}' is not a section")
        node[keys[-1]] = value
    return _build(Config, data, "", str(path))


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> Config:
    """Validate a plain mapping (e.g. a config stored in a run record)."""
    return _build(Config, data, "", source)
