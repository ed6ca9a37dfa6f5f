import json
from importlib.resources import files

import pytest

from common.config import (
    Config,
    DPConfig,
    SimulatedSite,
    config_from_dict,
    load_config,
    parse_override,
    resolve_profile,
)
from common.errors import ConfigError


def write(tmp_path, text: str):
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    return path


def error_of(path_or_name, overrides=()) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(path_or_name, overrides)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_profiles_load():
    cpu = load_config("cpu-demo")
    gpu = load_config("configs/gpu-128.yaml")
    assert isinstance(cpu, Config)
    assert cpu.model.image_size == 64 and gpu.model.image_size == 128
    assert len(cpu.simulation.sites) == 3
    assert all(isinstance(s, SimulatedSite) for s in cpu.simulation.sites)
    assert {s.device for s in cpu.simulation.sites} <= set(cpu.model.devices)
    assert cpu.simulation.pretrain_patients == 240 and cpu.data.holdout_fraction == 0.2


def test_profile_is_found_by_name_in_the_configs_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here: only the package can supply it
    shipped = files("configs") / "gpu-128.yaml"
    assert resolve_profile("gpu-128") == shipped
    assert load_config("gpu-128").profile == "gpu-128"


def test_a_path_to_another_yaml_file_still_works(tmp_path):
    cfg = load_config(write(tmp_path, "profile: mine\ndp:\n  target_epsilon: 3\n"))
    assert cfg.profile == "mine" and cfg.dp.target_epsilon == 3.0
    assert isinstance(cfg.dp.target_epsilon, float)  # an int is accepted for a float
    assert cfg.model.image_size == 64  # unset sections keep their defaults


def test_override_sets_nested_value_with_yaml_types():
    cfg = load_config(
        "cpu-demo", ["model.image_size=32", "dp.enabled=false", "model.block_out_channels=[16, 32]"]
    )
    assert cfg.model.image_size == 32
    assert cfg.dp.enabled is False
    assert cfg.model.block_out_channels == (16, 32)


def test_parse_override_splits_key_path_and_parses_value():
    assert parse_override("simulation.sites=[]") == (["simulation", "sites"], [])
    assert parse_override("dp.delta=null") == (["dp", "delta"], None)
    assert parse_override("profile=") == (["profile"], "")


def test_lists_are_accepted_for_tuples_including_nested_models(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            "release:\n  pathology_mix: [0.5, 0.25, 0.25]\n"
            "simulation:\n  sites:\n    - {site_id: a, device: device-a, patients: 3}\n",
        )
    )
    assert cfg.release.pathology_mix == (0.5, 0.25, 0.25)
    assert cfg.simulation.sites == (SimulatedSite(site_id="a", device="device-a", patients=3),)


def test_wrong_type_names_file_key_and_expectation(tmp_path):
    bad = write(tmp_path, "model:\n  image_size: big\n")
    msg = error_of(bad)
    assert msg == f"{bad}: key 'model.image_size' expects int, got str 'big'"


@pytest.mark.parametrize(
    ("yaml_value", "got"), [("true", "got bool True"), ("64.0", "got float 64.0")]
)
def test_bool_or_float_for_an_int_is_refused(tmp_path, yaml_value, got):
    bad = write(tmp_path, f"model:\n  image_size: {yaml_value}\n")
    assert error_of(bad) == f"{bad}: key 'model.image_size' expects int, {got}"


def test_wrong_type_inside_a_list_names_the_index(tmp_path):
    bad = write(tmp_path, "simulation:\n  sites:\n    - {site_id: a, device: b, patients: many}\n")
    assert "key 'simulation.sites[0].patients' expects int, got str 'many'" in error_of(bad)


def test_unknown_key_is_an_error(tmp_path):
    bad = write(tmp_path, "dp:\n  target_epsilom: 8\n")
    msg = error_of(bad)
    assert msg.startswith(f"{bad}: unknown key 'dp.target_epsilom' (allowed here: accountant, ")
    assert "target_epsilon" in msg


def test_unknown_top_level_key_is_an_error(tmp_path):
    bad = write(tmp_path, "sites: []\n")
    msg = error_of(bad)
    assert msg.startswith(f"{bad}: unknown key 'sites' (allowed here: data, dp, evidence, ")
    assert "simulation" in msg


def test_simulation_keys_are_no_longer_accepted_under_data(tmp_path):
    bad = write(tmp_path, "data:\n  pretrain_patients: 10\n")
    msg = error_of(bad)
    assert "unknown key 'data.pretrain_patients' (allowed here: holdout_fraction)" in msg


def test_a_missing_required_key_is_named(tmp_path):
    bad = write(tmp_path, "simulation:\n  sites:\n    - {site_id: a, patients: 3}\n")
    assert error_of(bad) == f"{bad}: key 'simulation.sites[0].device' is required"


def test_several_problems_report_the_first_and_a_count(tmp_path):
    bad = write(tmp_path, "model:\n  image_size: x\n  layers_per_block: y\n  dropout: z\n")
    assert error_of(bad).endswith("got str 'x' (and 2 more problems)")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (".nan", "must be a finite number, got nan"),
        (".inf", "must be a finite number, got inf"),
        ("-.inf", "must be a finite number, got -inf"),
        ("-1", "must be greater than 0, got -1"),
        ("0", "must be greater than 0, got 0"),
    ],
)
def test_epsilon_must_be_finite_and_positive(tmp_path, value, problem):
    bad = write(tmp_path, f"dp:\n  target_epsilon: {value}\n")
    assert error_of(bad) == f"{bad}: key 'dp.target_epsilon' {problem}"


@pytest.mark.parametrize(
    "override",
    [
        "pretrain.steps=0",
        "pretrain.batch_size=-4",
        "data.holdout_fraction=1",
        "data.holdout_fraction=0",
        "dp.delta=1.5",
        "model.block_out_channels=[16, 0]",
    ],
)
def test_out_of_range_values_are_refused(override):
    key = override.split("=")[0]
    assert f"key '{key}" in error_of("cpu-demo", [override])


def test_bad_override_is_an_error():
    assert error_of("cpu-demo", ["dp.target_epsilon=lots"]) == (
        "--set 'dp.target_epsilon=lots': key 'dp.target_epsilon' expects float, got str 'lots'"
    )
    assert error_of("cpu-demo", ["dp.target_epsilon"]).startswith("--set 'dp.target_epsilon': ")
    assert "KEY=VALUE" in error_of("cpu-demo", ["dp.target_epsilon"])
    assert "value is not valid YAML" in error_of("cpu-demo", ["dp.target_epsilon=[1"])
    assert (
        error_of("cpu-demo", ["dp.enabled.x=1"])
        == "--set 'dp.enabled.x=1': 'enabled' is not a section"
    )
    assert "unknown key 'dp.nope'" in error_of("cpu-demo", ["dp.nope=1"])


def test_missing_file_is_an_error(tmp_path):
    msg = error_of(tmp_path / "nope.yaml")
    assert "config file not found" in msg and "cpu-demo, gpu-128" in msg


def test_bad_yaml_is_one_line_with_its_position(tmp_path):
    bad = write(tmp_path, "dp: [1, 2\n")
    msg = error_of(bad)
    assert msg.startswith(f"{bad}: not valid YAML: line 2, column 1: ")


def test_top_level_must_be_a_mapping(tmp_path):
    bad = write(tmp_path, "- 1\n")
    assert error_of(bad) == f"{bad}: top level must be a mapping, got list"


def test_yaml_values_without_a_json_form_are_refused(tmp_path):
    bad = write(tmp_path, "profile: 2024-01-01\n")
    msg = error_of(bad)
    assert msg.startswith(f"{bad}: key 'profile' has a date value")


def test_config_is_frozen():
    cfg = load_config("cpu-demo")
    with pytest.raises(ValueError, match="frozen"):
        cfg.dp.target_epsilon = 100.0  # type: ignore[misc]


def test_to_dict_round_trips_through_config_from_dict():
    cfg = load_config("gpu-128", ["dp.delta=1.0e-6", "release.pathology_mix=[0.1, 0.6, 0.3]"])
    data = cfg.to_dict()
    assert json.loads(json.dumps(data)) == data  # plain JSON data: lists, not tuples
    assert data["simulation"]["sites"][0]["site_id"] == "hospital-a"
    assert config_from_dict(data) == cfg
    assert config_from_dict(json.loads(json.dumps(data)), "run.json") == cfg


def test_config_from_dict_errors_name_the_source():
    with pytest.raises(ConfigError, match=r"^run\.json: key 'dp' expects mapping \(DPConfig\)"):
        config_from_dict({"dp": 3}, "run.json")


def test_defaults_match_the_documented_ones():
    dp = DPConfig()
    assert (dp.target_epsilon, dp.delta, dp.accountant, dp.microbatch_rows) == (
        8.0,
        None,
        "prv",
        64,
    )
    assert Config().simulation.sites == ()
