"""Atomic writes, hashes, locks and staged directories (common.files)."""

import fcntl
import hashlib
import os
import stat

import pytest

from common.files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_writer,
    locked,
    sha256_file,
    staged_directory,
)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_replaces_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "sub" / "data.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new", durable=False)
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["data.bin"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_writer(target) as fh:
        fh.write(b"half of the new")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_mode_is_exact_and_default_follows_the_umask(tmp_path):
    old_umask = os.umask(0o077)
    try:
        atomic_write_bytes(tmp_path / "secret", b"s", 0o600)
        atomic_write_bytes(tmp_path / "public", b"p", 0o644)  # wider than the umask allows
        atomic_write_bytes(tmp_path / "plain", b"x")
    finally:
        os.umask(old_umask)
    assert _mode(tmp_path / "secret") == 0o600
    assert _mode(tmp_path / "public") == 0o644
    assert _mode(tmp_path / "plain") == 0o600  # 0666 less the umask 077


def test_no_replace_refuses_an_existing_file(tmp_path):
    target = tmp_path / "key"
    atomic_write_bytes(target, b"first", 0o600, replace=False)
    with pytest.raises(FileExistsError):
        atomic_write_bytes(target, b"second", 0o600, replace=False)
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["key"]


def test_json_is_stable_and_hash_matches_hashlib(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "a.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    blob = os.urandom((1 << 20) + 12345)  # more than one read block
    (tmp_path / "blob").write_bytes(blob)
    assert sha256_file(tmp_path / "blob") == hashlib.sha256(blob).hexdigest()


def test_lock_excludes_other_holders_until_released(tmp_path):
    lock_path = tmp_path / "dir" / "file.lock"

    def try_lock() -> bool:
        # A separate open file description contends like another process would.
        with open(lock_path, "a") as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

    with locked(lock_path):
        assert not try_lock()
    assert try_lock()
    with pytest.raises(ValueError), locked(lock_path):
        raise ValueError("released on errors too")
    assert try_lock()


def test_staged_directory_swaps_in_whole_or_not_at_all(tmp_path):
    target = tmp_path / "out"
    with staged_directory(target) as work:
        (work / "a.txt").write_text("first")
        assert not target.exists()
    assert (target / "a.txt").read_text() == "first"

    with pytest.raises(RuntimeError), staged_directory(target) as work:
        (work / "a.txt").write_text("broken")
        raise RuntimeError("interrupted")
    assert (target / "a.txt").read_text() == "first"

    with staged_directory(target) as work:
        (work / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
