"""Writing files that other processes read: atomic replacement, content hashes and file locks.

A reader (another process, or this one after a crash) must see the old file or the new one,
never half of each. Writing a temporary file in the same directory and renaming it over the
target gives that on POSIX. Syncing the file before the rename and the directory after it also
makes the new content survive a power loss, not only a crash of the writing process; callers
that write thousands of files and sync a final record instead can turn that off (`durable`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _hidden_sibling(path: Path, kind: str) -> Path:
    """A hidden, unique name next to `path`: same file system, so a rename is atomic."""
    return path.with_name(f".{path.name}.{kind}-{secrets.token_hex(6)}")


@contextmanager
def atomic_writer(
    path: Path, mode: int | None = None, *, durable: bool = True, replace: bool = True
) -> Iterator[BinaryIO]:
    """Open a temporary file for writing; on a clean exit it becomes `path`, else it is removed.

    `mode` (permission bits) is set on the temporary file before any byte is written, so a
    secret is never readable by others, not even briefly; without it the file gets the usual
    permissions (0666 less the umask). `replace=False` refuses to replace an existing file
    (FileExistsError) and never clobbers one that appears meanwhile: the file is linked into
    place, which fails when the name is taken.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _hidden_sibling(path, "tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            if mode is not None:
                os.fchmod(fd, mode)  # os.open's mode is filtered by the umask; this one is exact
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            tmp.unlink()
        if durable:
            _sync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(
    path: Path, data: bytes, mode: int | None = None, *, durable: bool = True, replace: bool = True
) -> None:
    """Write `data` to `path` atomically (see `atomic_writer` for `mode`, `durable`, `replace`)."""
    with atomic_writer(path, mode, durable=durable, replace=replace) as fh:
        fh.write(data)


def atomic_write_json(path: Path, obj: object, mode: int | None = None) -> None:
    """Write `obj` as indented, key-sorted JSON (stable bytes: diffs and hashes stay readable)."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), mode)


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks (model weights and archives can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (created if missing) for a read-modify-write.

    The lock is advisory (flock): it orders the processes that take it, which is every writer
    of the file it guards. It is released when the block ends, also by an exception, and by the
    kernel if the process dies, so a crash never leaves a stale lock behind.
    """
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


@contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """Build a directory under a hidden name beside `target`; on a clean exit it replaces
    `target` (an existing one is swapped out and removed), on an error it is deleted.

    Readers therefore never see a half-built directory under the target's name.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _hidden_sibling(target, "partial")
    staging.mkdir()
    try:
        yield staging
        if target.exists():
            old = _hidden_sibling(target, "old")
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
