import json

import pytest

from common.chainlog import ChainLog
from common.errors import VerificationError


def _log(tmp_path, n=4):
    log = ChainLog(tmp_path / "log.jsonl")
    for i in range(n):
        log.append("event", index=i)
    return log


def test_append_and_verify(tmp_path):
    log = _log(tmp_path)
    entries = log.verify()
    assert [e["index"] for e in entries] == [0, 1, 2, 3]
    assert [e["seq"] for e in entries] == [1, 2, 3, 4]
    assert entries[1]["prev"] == entries[0]["hash"]


def test_edited_line_fails_at_that_line(tmp_path):
    log = _log(tmp_path)
    lines = log.path.read_text().splitlines()
    entry = json.loads(lines[2])
    entry["index"] = 99
    lines[2] = json.dumps(entry, sort_keys=True)
    log.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(VerificationError, match="line 3 was modified"):
        log.verify()


def test_deleted_line_breaks_the_chain(tmp_path):
    log = _log(tmp_path)
    lines = log.path.read_text().splitlines()
    del lines[1]
    log.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(VerificationError, match="line 2 does not follow"):
        log.verify()


def test_torn_final_line_is_reported_and_not_built_on(tmp_path):
    log = _log(tmp_path, 2)
    with open(log.path, "ab") as fh:
        fh.write(b'{"seq": 3, "ev')
    with pytest.raises(VerificationError, match="last line is not valid JSON"):
        log.append("more")
