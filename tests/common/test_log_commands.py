import json

from click.testing import CliRunner

from client.cli import main as site_cli
from client.workdir import SiteDir
from common.chainlog import ChainLog
from server.cli import main as server_cli


def _tamper(path, line_no):
    lines = path.read_text().splitlines()
    entry = json.loads(lines[line_no - 1])
    entry["epsilon"] = 0.1
    lines[line_no - 1] = json.dumps(entry, sort_keys=True)
    path.write_text("\n".join(lines) + "\n")


def test_site_log_verify_passes_then_names_the_edited_line(tmp_path):
    site = SiteDir(tmp_path)
    for i in range(3):
        ChainLog(site.log).append("ingest", images=i)
        ChainLog(site.ledger).append("dp-steps", epsilon=1.0 + i)
    runner = CliRunner()
    ok = runner.invoke(site_cli, ["log", "verify", "--workdir", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    assert "site-log.jsonl: ok (3 entries)" in ok.output
    _tamper(site.ledger, 2)
    bad = runner.invoke(site_cli, ["log", "verify", "--workdir", str(tmp_path)])
    assert bad.exit_code == 4
    assert "ledger.jsonl: BROKEN" in bad.output and "line 2 was modified" in bad.output


def test_server_log_verify_finds_chain_logs_only(tmp_path):
    ChainLog(tmp_path / "catalog" / "access.jsonl").append("download", release="r1")
    (tmp_path / "plain.jsonl").write_text('{"a": 1}\n')
    result = CliRunner().invoke(server_cli, ["log", "verify", "--state", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["log"].endswith("access.jsonl") for r in rows] == [True]
