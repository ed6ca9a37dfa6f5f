"""The release catalog on disk: immutable, verified, versioned release bundles.

    CATALOG/
      releases/<release-id>/bundle/        the verified bundle, exactly as signed
      releases/<release-id>/bundle.tar     the same files as one archive (served with Range)
      releases/<release-id>/release.json   catalog entry: version, hashes, audit summary
      trust.json                           the trust file the latest publish verified against
      terms.md                             data use terms researchers accept per token
      tokens.json                          researcher tokens (hashes only; see tokens.py)
      releases.jsonl                       hash-chained log of publications and refusals
      access-log.jsonl                     hash-chained access log (written by the server only)

A release is built in a hidden staging directory and renamed into `releases/` only when it is
complete, so the server never lists a half-copied release. Nothing ever rewrites a published
release: a new bundle of the same data set becomes the next version.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from common.chainlog import ChainLog
from common.errors import DataError, VerificationError
from common.files import atomic_write_bytes, locked, sha256_file
from common.release.bundle import audit_summary, valid_release_id, verify_bundle
from server.catalog.terms import DEFAULT_TERMS


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower())
    slug = re.sub(r"\.{2,}", ".", slug).strip("-._")
    return slug[:80] or "release"


class Catalog:
    """One catalog directory; several readers, one publisher at a time (file lock)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    # --- paths ---------------------------------------------------------------------------
    @property
    def releases_dir(self) -> Path:
        return self.root / "releases"

    @property
    def trust_file(self) -> Path:
        return self.root / "trust.json"

    @property
    def terms_file(self) -> Path:
        return self.root / "terms.md"

    @property
    def tokens_file(self) -> Path:
        return self.root / "tokens.json"

    @property
    def publish_log(self) -> ChainLog:
        return ChainLog(self.root / "releases.jsonl")

    @property
    def access_log(self) -> ChainLog:
        return ChainLog(self.root / "access-log.jsonl")

    def ensure(self) -> Catalog:
        """Create the directory skeleton and default terms if missing (idempotent)."""
        self.releases_dir.mkdir(parents=True, exist_ok=True)
        if not self.terms_file.exists():
            self.terms_file.write_text(DEFAULT_TERMS, encoding="utf-8")
        return self

    def require(self) -> Catalog:
        if not self.releases_dir.is_dir():
            raise DataError(f"{self.root}: not a catalog (no releases/); publish a bundle first")
        return self

    # --- terms ---------------------------------------------------------------------------
    def terms(self) -> tuple[str, str]:
        """(terms text, version); the version is a hash, so editing the terms asks everyone again."""
        text = self.terms_file.read_text(encoding="utf-8")
        return text, hashlib.sha256(text.encode()).hexdigest()[:16]

    # --- releases ------------------------------------------------------------------------
    def releases(self) -> list[dict]:
        """All published entries, oldest first. Staging directories (dot names) are invisible."""
        entries = []
        if self.releases_dir.is_dir():
            for path in self.releases_dir.iterdir():
                entry_file = path / "release.json"
                if valid_release_id(path.name) and entry_file.is_file():
                    entries.append(json.loads(entry_file.read_text()))
        return sorted(entries, key=lambda e: (e["published"], e["release_id"]))

    def release(self, release_id: str) -> dict | None:
        """The entry for `release_id`, looked up among listed releases (never a path join)."""
        if not valid_release_id(release_id):
            return None
        return next((e for e in self.releases() if e["release_id"] == release_id), None)

    def release_dir(self, entry: dict) -> Path:
        return self.releases_dir / entry["release_id"]

    def archive(self, entry: dict) -> Path:
        return self.release_dir(entry) / "bundle.tar"

    def card(self, entry: dict) -> str:
        return (self.release_dir(entry) / "bundle" / "README.md").read_text(encoding="utf-8")

    def publish(self, bundle_dir: Path, trust_file: Path) -> dict:
        """Verify a site's bundle and add it as the next version of its data set.

        The bundle is verified where it is, copied, and verified again in the copy, so what the
        catalog serves is exactly what was checked. Refusals are logged with their reason and
        re-raised as VerificationError.
        """
        bundle_dir = Path(bundle_dir)
        self.ensure()
        with locked(self.root / ".publish.lock"):
            try:
                verify_bundle(bundle_dir, trust_file)
                entry = self._add(bundle_dir, Path(trust_file))
            except VerificationError as exc:
                self.publish_log.append(
                    "refused", bundle=str(bundle_dir.resolve()), reason=str(exc)
                )
                raise
            self.publish_log.append(
                "published",
                release_id=entry["release_id"],
                manifest_sha256=entry["manifest_sha256"],
                site_id=entry["site_id"],
                key_id=entry["key_id"],
                archive_sha256=entry["archive"]["sha256"],
            )
        return entry

    def _add(self, bundle_dir: Path, trust_file: Path) -> dict:
        staging = Path(tempfile.mkdtemp(dir=self.releases_dir, prefix=".staging-"))
        try:
            copy = staging / "bundle"
            shutil.copytree(bundle_dir, copy, symlinks=True)
            manifest = verify_bundle(copy, trust_file)  # the copy is what we serve: check it too
            manifest_sha = sha256_file(copy / "manifest.json")
            duplicate = next(
                (e for e in self.releases() if e["manifest_sha256"] == manifest_sha), None
            )
            if duplicate:
                raise VerificationError(
                    f"{bundle_dir}: this bundle is already published as "
                    f"{duplicate['release_id']} (releases are immutable)"
                )
            try:
                audit = json.loads((copy / "audit.json").read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise VerificationError(
                    f"{bundle_dir}/audit.json: missing or not valid JSON"
                ) from exc
            if not isinstance(audit, dict):
                raise VerificationError(f"{bundle_dir}/audit.json: not a JSON object")
            dataset = _slug(str(manifest.get("dataset_id") or manifest["site_id"]))
            version = 1 + sum(1 for e in self.releases() if e["dataset"] == dataset)
            release_id = f"{dataset}-v{version}"
            archive = staging / "bundle.tar"
            _write_archive(copy, archive)
            entry = {
                "release_id": release_id,
                "dataset": dataset,
                "version": version,
                "site_id": manifest["site_id"],
                "key_id": manifest["key_id"],
                "created": manifest.get("created"),
                "published": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "num_images": manifest.get("num_images"),
                "manifest_sha256": manifest_sha,
                "manifest": {k: v for k, v in manifest.items() if k != "files"},
                "files": len(manifest["files"]),
                "archive": {"size": archive.stat().st_size, "sha256": sha256_file(archive)},
                "audit_summary": audit_summary(audit),
            }
            (staging / "release.json").write_text(
                json.dumps(entry, indent=2, sort_keys=True) + "\n"
            )
            staging.rename(self.releases_dir / release_id)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        # Researchers may fetch the trust file the catalog checks against (or pin their own).
        atomic_write_bytes(self.trust_file, trust_file.read_bytes())
        return entry


def _write_archive(bundle: Path, archive: Path) -> None:
    """A deterministic tar of the bundle (sorted names, zero times and owners), paths relative."""
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(bundle.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(bundle).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            info.mode = 0o755 if info.isdir() else 0o644
            if info.isfile():
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
