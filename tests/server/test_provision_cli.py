"""The provisioning and status commands, through click (no Flower processes)."""

import json

from click.testing import CliRunner

from client.cli import main as site_cli
from server.cli import main as server_cli
from server.run_state import RunState


def test_init_ca_and_site_init_commands(tmp_path):
    runner = CliRunner()
    res = runner.invoke(
        server_cli,
        ["init-ca", "--out", str(tmp_path / "pki"), "--host", "fl.example.org", "--json"],
    )
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert "fl.example.org" in info["server_hosts"] and "127.0.0.1" in info["server_hosts"]
    first = runner.invoke(
        site_cli, ["init", "--site-id", "hospital-a", "--workdir", str(tmp_path / "a")]
    )
    second = runner.invoke(
        site_cli, ["init", "--site-id", "hospital-a", "--workdir", str(tmp_path / "a"), "--json"]
    )
    assert first.exit_code == 0 and "created" in first.output
    assert set(json.loads(second.output).values()) == {"kept"}


def test_start_refuses_to_expose_control_api(tmp_path):
    res = CliRunner().invoke(server_cli, ["start", "--state", str(tmp_path), "--host", "0.0.0.0"])
    assert res.exit_code == 2
    assert "must bind to loopback" in res.output and "/v1/fleet/" in res.output


def test_status_shows_site_table(tmp_path):
    state = RunState(job_id="job-1", rounds=3, min_train_sites=2, completed_rounds=1)
    state.record_success("hospital-a", 5, 1, {"epsilon": 1.5, "site_epsilon": 2.0}, 40)
    state.record_failure("hospital-b", 6, 1, "no reply within 900s")
    state.save(tmp_path)
    res = CliRunner().invoke(server_cli, ["status", "--state", str(tmp_path), "--json"])
    out = json.loads(res.output)
    assert out["max_epsilon"] == 1.5 and out["sites"]["hospital-b"]["failures"] == 1
    text = CliRunner().invoke(server_cli, ["status", "--state", str(tmp_path)]).output
    assert "round 1/3" in text and "1.50" in text


def test_status_without_state_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(server_cli, ["status", "--state", str(tmp_path)])
    assert res.exit_code == 2 and "no run state" in res.output
