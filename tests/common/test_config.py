import pytest

from common.config import Config, load_config
from common.errors import ConfigError


def test_profiles_load():
    cpu = load_config("cpu-demo")
    gpu = load_config("configs/gpu-128.yaml")
    assert isinstance(cpu, Config)
    assert cpu.model.image_size == 64 and gpu.model.image_size == 128
    assert len(cpu.data.sites) == 3
    assert {s.device for s in cpu.data.sites} <= set(cpu.model.devices)


def test_override_sets_nested_value_with_yaml_types():
    cfg = load_config(
        "cpu-demo", ["model.image_size=32", "dp.enabled=false", "model.block_out_channels=[16, 32]"]
    )
    assert cfg.model.image_size == 32
    assert cfg.dp.enabled is False
    assert cfg.model.block_out_channels == (16, 32)


def test_wrong_type_names_file_key_and_expectation(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  image_size: big\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    msg = str(err.value)
    assert str(bad) in msg and "model.image_size" in msg and "expects int" in msg


def test_unknown_key_is_an_error(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("dp:\n  target_epsilom: 8\n")
    with pytest.raises(ConfigError, match=r"unknown key 'dp.target_epsilom'"):
        load_config(bad)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_bad_override_is_an_error():
    with pytest.raises(ConfigError, match="dp.target_epsilon"):
        load_config("cpu-demo", ["dp.target_epsilon=lots"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config("cpu-demo", ["dp.target_epsilon"])
