"""Job approval, default deny: unapproved app hashes are refused, approved ones run."""

import json
import sys
import time

import pytest
from click.testing import CliRunner
from flwr.app import ConfigRecord, Context, Message, MessageType, Metadata, RecordDict
from flwr.app.message import make_message

from client import site_log
from client.approval import (
    app_hash,
    app_manifest,
    approve,
    installed_app_hash,
    is_approved,
    require_approved,
    revoke,
)
from client.cli import main as site_cli
from client.site_init import init_site
from client.workdir import SiteDir
from common.chainlog import ChainLog
from common.errors import DataError, PolicyError


@pytest.fixture
def site(tmp_path):
    init_site("hospital-a", tmp_path / "site")
    return SiteDir(tmp_path / "site")


def test_unapproved_app_is_refused_with_hash_and_command(site):
    value = installed_app_hash()
    with pytest.raises(PolicyError) as err:
        require_approved(site, value, run_id=7)
    message = str(err.value)
    assert value in message
    assert f"busgen-site approve --workdir {site.root} {value}" in message
    refused = site_log.events(site, "job-refused")
    assert len(refused) == 1 and refused[0]["app_hash"] == value and refused[0]["run_id"] == 7


def test_approved_app_runs_and_revoked_is_refused_again(site):
    value = installed_app_hash()
    approve(site, value, note="reviewed release 0.1")
    require_approved(site, value)  # no exception: the job may run
    other = "ab" * 32
    with pytest.raises(PolicyError, match=other):
        require_approved(site, other)  # approval is bound to the exact hash
    revoke(site, value, note="superseded")
    with pytest.raises(PolicyError, match="revoked"):
        require_approved(site, value)
    events = [e["event"] for e in ChainLog(site.log).verify()]
    assert events == ["app-approved", "job-refused", "app-revoked", "job-refused"]
    assert all(e["site_id"] == "hospital-a" for e in site_log.events(site))


def test_hand_edited_approvals_file_approves_nothing(site):
    value = installed_app_hash()
    site.approvals.write_text(
        json.dumps({"apps": {value: {"status": "approved", "approved_at": "x"}}})
    )
    assert not is_approved(site, value)
    with pytest.raises(PolicyError, match="disagree"):
        require_approved(site, value)


def test_app_hash_changes_with_any_source_file(tmp_path, monkeypatch):
    pkg = tmp_path / "fakeapp"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "train.py").write_text("EPOCHS = 1\n")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "x.pyc").write_bytes(b"ignored")
    monkeypatch.syspath_prepend(str(tmp_path))
    manifest = app_manifest(("fakeapp",))
    assert [p for p, _ in manifest] == ["fakeapp/__init__.py", "fakeapp/sub/train.py"]
    before = app_hash(manifest)
    (pkg / "sub" / "train.py").write_text("EPOCHS = 2\n")
    assert app_hash(app_manifest(("fakeapp",))) != before
    sys.modules.pop("fakeapp", None)


def test_bad_hash_is_a_clear_error(site):
    with pytest.raises(DataError, match="64 hex digits"):
        approve(site, "deadbeef")


def test_cli_approve_list_revoke(site):
    runner = CliRunner()
    wd = ["--workdir", str(site.root)]
    shown = runner.invoke(site_cli, ["approve", *wd, "--show-installed", "--json"])
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.output)
    assert info == {"app_hash": installed_app_hash(), "approved": False}

    out = runner.invoke(site_cli, ["approve", *wd, info["app_hash"], "--note", "ok by IT"])
    assert out.exit_code == 0 and "approved" in out.output
    listed = runner.invoke(site_cli, ["approve", *wd, "--list"])
    assert (
        "approved" in listed.output
        and "(installed)" in listed.output
        and "ok by IT" in listed.output
    )

    out = runner.invoke(site_cli, ["approve", *wd, "--revoke", info["app_hash"]])
    assert out.exit_code == 0
    assert (
        json.loads(runner.invoke(site_cli, ["approve", *wd, "--list", "--json"]).output)[
            info["app_hash"]
        ]["status"]
        == "revoked"
    )

    both = runner.invoke(site_cli, ["approve", *wd, "--list", "--show-installed"])
    assert both.exit_code == 2 and "exactly one" in both.output
    assert runner.invoke(site_cli, ["log", "verify", *wd]).exit_code == 0


def delivered(message_type: str, content: RecordDict) -> Message:
    """A message as the SuperNode hands it to the ClientApp: built from its metadata (run 11,
    from the SuperLink to node 5), the way Flower deserialises what it pulled."""
    meta = Metadata(
        run_id=11,
        message_id="instruction-1",
        src_node_id=1,
        dst_node_id=5,
        reply_to_message_id="",
        group_id="1",
        created_at=time.time(),
        ttl=600.0,
        message_type=message_type,
    )
    return make_message(meta, content)


@pytest.mark.parametrize("message_type", [MessageType.TRAIN, MessageType.EVALUATE])
def test_client_app_refuses_unapproved_app_before_touching_data(site, message_type):
    from client.client_app import app

    def call():
        msg = delivered(message_type, RecordDict({"config": ConfigRecord({})}))
        ctx = Context(
            run_id=11,
            node_id=5,
            node_config={"workdir": str(site.root)},
            state=RecordDict(),
            run_config={},
        )
        return app(msg, ctx)

    with pytest.raises(PolicyError, match=installed_app_hash()):
        call()
    assert [e["run_id"] for e in site_log.events(site, "job-refused")] == [11]

    approve(site, installed_app_hash())
    with pytest.raises(KeyError, match="'config'"):  # past the gate: the (empty) job config
        call()
    assert len(site_log.events(site, "job-refused")) == 1
