"""Signed release bundles: the only thing a site publishes to the outside world.

Layout (a Hugging Face `imagefolder`, with the metadata inside the split directory where
`datasets` looks for it):

    BUNDLE/
      train/00000.png ...        synthetic images (8-bit grayscale PNG)
      train/metadata.jsonl       file_name, pathology, birads, device, box per image
      README.md                  dataset card
      audit.json, audit.html     the privacy audit (public part)
      manifest.json              canonical JSON: every file's path, size and SHA-256, plus the
                                 generator/adapter hashes, site id, version (manifest_extra),
                                 signer key id and creation time
      manifest.sig               base64 Ed25519 signature over DOMAIN + manifest.json

The signature covers the manifest and the manifest covers every file, so one signature check
plus re-hashing proves the whole directory. Verification also demands the exact file set: an
extra file (say a PNG with a patient's name) is as much a failure as a changed one.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from io import BytesIO
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from common.chainlog import canonical_json
from common.errors import DataError, VerificationError
from common.files import sha256_file, staged_directory
from common.release.signing import (
    key_id,
    load_trust,
    sign_manifest,
    trusted_public_key,
    verify_signature,
)

BUNDLE_FORMAT = "busgen-release-v1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
METADATA = "train/metadata.jsonl"
LABEL_FIELDS = ("pathology", "birads", "device", "box")
RESERVED = ("format", "files", "key_id", "created", "num_images")
RELEASE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,95}$")


def valid_release_id(release_id: str) -> bool:
    """A catalog release id is a plain lowercase name: never a path, never `..`."""
    return bool(RELEASE_ID.match(release_id)) and ".." not in release_id


def _png_bytes(image: np.ndarray, index: int) -> bytes:
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise DataError(
            f"image {index}: expected a uint8 array [H,W] or [H,W,C], "
            f"got {image.dtype} with shape {image.shape}"
        )
    buf = BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _metadata_line(row: dict, file_name: str, index: int) -> bytes:
    missing = [f for f in LABEL_FIELDS if f not in row]
    if missing:
        raise DataError(f"metadata row {index}: missing field(s) {', '.join(missing)}")
    if "file_name" in row and row["file_name"] != file_name:
        raise DataError(f"metadata row {index}: file_name is assigned by the bundle writer")
    return (
        json.dumps(
            {"file_name": file_name, **{k: v for k, v in row.items() if k != "file_name"}},
            sort_keys=True,
            default=_json_default,
        ).encode()
        + b"\n"
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_bundle(
    out_dir: Path,
    images: list[np.ndarray],
    metadata_rows: list[dict],
    card_md: str,
    audit_json: dict,
    audit_html: str,
    manifest_extra: dict,
    signing_key: Ed25519PrivateKey,
    *,
    replace: bool = False,
) -> Path:
    """Write and sign a release bundle at `out_dir`; returns its path.

    Everything is written into a hidden sibling directory and renamed into place at the end,
    so a crash never leaves a directory that looks like a finished bundle. `manifest_extra`
    must name the `site_id`; it carries the generator and adapter hashes and version fields.
    An existing `out_dir` is refused unless `replace=True` (a site's "latest release" slot).
    """
    out_dir = Path(out_dir)
    if len(images) != len(metadata_rows):
        raise DataError(f"{out_dir}: {len(images)} images but {len(metadata_rows)} metadata rows")
    if not images:
        raise DataError(f"{out_dir}: a release needs at least one image")
    clash = [k for k in RESERVED if k in manifest_extra]
    if clash:
        raise DataError(f"manifest_extra: {', '.join(clash)} are set by the bundle writer")
    if not manifest_extra.get("site_id"):
        raise DataError(
            "manifest_extra: site_id is required (verification checks it against the trust file)"
        )
    if out_dir.exists() and not replace:
        raise DataError(f"{out_dir}: already exists; releases are immutable (choose a new --out)")

    with staged_directory(out_dir) as tmp:
        (tmp / "train").mkdir()
        width = max(5, len(str(len(images) - 1)))
        lines = []
        for i, (image, row) in enumerate(zip(images, metadata_rows)):
            name = f"{i:0{width}d}.png"
            (tmp / "train" / name).write_bytes(_png_bytes(np.asarray(image), i))
            lines.append(_metadata_line(row, name, i))
        (tmp / METADATA).write_bytes(b"".join(lines))
        (tmp / "README.md").write_text(card_md, encoding="utf-8")
        (tmp / "audit.json").write_text(
            json.dumps(audit_json, indent=2, sort_keys=True, default=_json_default) + "\n",
            encoding="utf-8",
        )
        (tmp / "audit.html").write_text(audit_html, encoding="utf-8")

        files = []
        for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
            rel = path.relative_to(tmp).as_posix()
            files.append({"path": rel, "size": path.stat().st_size, "sha256": sha256_file(path)})
        manifest = {
            **manifest_extra,
            "format": BUNDLE_FORMAT,
            "files": files,
            "key_id": key_id(signing_key),
            "num_images": len(images),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / MANIFEST).write_bytes(canonical_json(manifest))
        (tmp / SIGNATURE).write_bytes(sign_manifest(signing_key, manifest))
        os.chmod(tmp, 0o755)
    return out_dir


def _safe_rel(path: Any, bundle: Path) -> str:
    """A manifest path must be a plain relative POSIX path inside the bundle."""
    if not isinstance(path, str) or not path or "\\" in path or "\x00" in path:
        raise VerificationError(f"{bundle}/{MANIFEST}: invalid file path {path!r}")
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(part in ("", ".", "..") for part in path.split("/")):
        raise VerificationError(
            f"{bundle}/{MANIFEST}: path {path!r} leaves the bundle "
            "(absolute or '..' paths are not allowed)"
        )
    if path in (MANIFEST, SIGNATURE):
        raise VerificationError(f"{bundle}/{MANIFEST}: lists {path}, which cannot hash itself")
    return path


def _walk(bundle: Path) -> set[str]:
    """Every regular file under the bundle (relative POSIX paths); links are failures."""
    found: set[str] = set()
    for root, dirs, names in os.walk(bundle, followlinks=False):
        for name in dirs + names:
            path = Path(root) / name
            rel = path.relative_to(bundle).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise VerificationError(
                    f"{bundle}: {rel} is a symbolic link (not allowed in a bundle)"
                )
            if stat.S_ISREG(mode):
                found.add(rel)
            elif not stat.S_ISDIR(mode):
                raise VerificationError(f"{bundle}: {rel} is not a regular file")
    return found


def read_manifest(bundle: Path) -> dict:
    """The bundle's manifest without checking anything (for display; use verify_bundle to trust it)."""
    path = Path(bundle) / MANIFEST
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise VerificationError(f"{path}: missing (not a release bundle)") from exc
    except ValueError as exc:
        raise VerificationError(f"{path}: not valid JSON ({exc})") from exc


def verify_bundle(bundle_dir: Path, trust_file: Path) -> dict:
    """Check a bundle completely; returns its manifest, or raises VerificationError saying what failed.

    Order matters: the signer must be trusted and the signature valid before any manifest
    content (paths, hashes) is believed.
    """
    bundle = Path(bundle_dir)
    if bundle.is_symlink() or not bundle.is_dir():
        raise VerificationError(f"{bundle}: not a bundle directory")
    for name in (MANIFEST, SIGNATURE):
        path = bundle / name
        if path.is_symlink() or not path.is_file():
            raise VerificationError(f"{path}: missing (not a release bundle)")
    manifest_bytes = (bundle / MANIFEST).read_bytes()
    manifest = read_manifest(bundle)
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise VerificationError(f"{bundle}/{MANIFEST}: not a {BUNDLE_FORMAT} manifest")

    trust = load_trust(trust_file)
    public_key, entry = trusted_public_key(trust, manifest.get("key_id"), trust_file)
    verify_signature(
        public_key, manifest_bytes, (bundle / SIGNATURE).read_bytes(), what=f"{bundle}/{SIGNATURE}"
    )
    if manifest_bytes != canonical_json(manifest):
        raise VerificationError(f"{bundle}/{MANIFEST}: not in canonical form")
    if manifest.get("site_id") != entry["site_id"]:
        raise VerificationError(
            f"{bundle}/{MANIFEST}: claims site {manifest.get('site_id')!r} but "
            f"key {manifest['key_id'][:16]} belongs to site {entry['site_id']!r}"
        )

    listed: dict[str, dict] = {}
    for item in manifest.get("files", []):
        rel = _safe_rel(item.get("path") if isinstance(item, dict) else None, bundle)
        if rel in listed:
            raise VerificationError(f"{bundle}/{MANIFEST}: lists {rel} twice")
        listed[rel] = item
    present = _walk(bundle) - {MANIFEST, SIGNATURE}
    extra = sorted(present - set(listed))
    if extra:
        raise VerificationError(
            f"{bundle}: unexpected file {extra[0]} (not in the signed manifest"
            + (f"; {len(extra) - 1} more" if len(extra) > 1 else "")
            + ")"
        )
    missing = sorted(set(listed) - present)
    if missing:
        raise VerificationError(
            f"{bundle}: {missing[0]} is listed in the manifest but missing"
            + (f" ({len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    for rel, item in sorted(listed.items()):
        path = bundle / rel
        size = path.stat().st_size
        if size != item.get("size"):
            raise VerificationError(
                f"{bundle}: {rel} has {size} bytes, the manifest says "
                f"{item.get('size')} (file changed after signing)"
            )
        if sha256_file(path) != item.get("sha256"):
            raise VerificationError(
                f"{bundle}: {rel} SHA-256 does not match the manifest (file changed after signing)"
            )
    return manifest


def audit_summary(audit: dict) -> dict:
    """The short audit summary shown in listings: the audit's own `summary` if it has one,
    otherwise its top-level scalar fields."""
    if isinstance(audit.get("summary"), dict):
        return audit["summary"]
    return {k: v for k, v in audit.items() if isinstance(v, (str, int, float, bool)) or v is None}
