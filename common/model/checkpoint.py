"""Base-model directories: diffusers layout, our conditioning metadata, and a content hash.

    BASE_DIR/
      config.json                          UNet2DModel config (diffusers `save_pretrained`)
      diffusion_pytorch_model.safetensors  EMA weights
      busgen_model.json                    model profile, devices, label mapping, schedule, extras
      busgen_hash.json                     SHA-256 of each file above and one content hash over all

`UNet2DModel.from_pretrained(BASE_DIR)` works on its own; `load_base` additionally rebuilds the
model profile and refuses a directory whose files do not match the recorded hash, or whose hash
differs from the one a site was told to expect. The hash file is written last, so a directory
interrupted mid-write never verifies.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DModel

from common.config import ModelConfig, config_from_dict
from common.errors import VerificationError
from common.files import atomic_write_json, sha256_file
from common.model.unet import PATHOLOGY_AXIS, num_labels

META_FILE = "busgen_model.json"
HASH_FILE = "busgen_hash.json"
HASHED_FILES = ("config.json", "diffusion_pytorch_model.safetensors", META_FILE)
META_FORMAT = "busgen-base/1"


def content_hash(file_hashes: dict[str, str]) -> str:
    """One hash over the per-file hashes, in a fixed order (what sites pin and compare)."""
    text = "".join(f"{name}\0{file_hashes[name]}\n" for name in HASHED_FILES)
    return hashlib.sha256(text.encode()).hexdigest()


def save_base(
    out_dir: str | Path,
    unet: UNet2DModel,
    model_cfg: ModelConfig,
    extra_meta: dict[str, Any] | None = None,
) -> str:
    """Write a base model directory and return its content hash.

    Files are written into a temporary directory first and moved into place, the hash file
    last, so readers never see a half-written base as valid.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": META_FORMAT,
        "model": model_cfg.model_dump(),
        "devices": list(model_cfg.devices),
        "labels": {
            "pathology_axis": list(PATHOLOGY_AXIS),
            "device_axis": [None, *model_cfg.devices],
            "rule": "label = pathology_index * len(device_axis) + device_index",
            "num_class_embeds": num_labels(model_cfg),
        },
        "inputs": {"channels": ["image in [-1,1]", "lesion-box mask in {0,1}"]},
        **(extra_meta or {}),
    }
    (out / HASH_FILE).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".save-") as tmp:
        tmp_dir = Path(tmp)
        unet.save_pretrained(tmp_dir, safe_serialization=True)
        (tmp_dir / META_FILE).write_text(
            json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n"
        )
        hashes = {name: sha256_file(tmp_dir / name) for name in HASHED_FILES}
        for name in HASHED_FILES:
            shutil.move(str(tmp_dir / name), out / name)
    digest = content_hash(hashes)
    atomic_write_json(
        out / HASH_FILE, {"algorithm": "sha256", "files": hashes, "content_hash": digest}
    )
    return digest


def verify_base(base_dir: str | Path, expected_hash: str | None = None) -> str:
    """Recompute the content hash of a base directory; raise VerificationError on any mismatch."""
    base = Path(base_dir)
    hash_path = base / HASH_FILE
    if not hash_path.exists():
        raise VerificationError(
            f"{base}: not a complete base model (no {HASH_FILE}); "
            "it may be half-written or not a busgen base"
        )
    try:
        recorded = json.loads(hash_path.read_text())
        recorded_files, recorded_hash = recorded["files"], recorded["content_hash"]
    except (ValueError, KeyError, TypeError) as exc:
        raise VerificationError(f"{hash_path}: unreadable hash record: {exc}") from exc
    for name in HASHED_FILES:
        path = base / name
        if not path.exists():
            raise VerificationError(f"{path}: missing from the base model")
        actual = sha256_file(path)
        if actual != recorded_files.get(name):
            raise VerificationError(
                f"{path}: SHA-256 {actual[:16]}... does not match the recorded "
                f"{str(recorded_files.get(name))[:16]}...; the base was modified"
            )
    digest = content_hash(recorded_files)
    if digest != recorded_hash:
        raise VerificationError(f"{hash_path}: content hash does not match its file hashes")
    if expected_hash is not None and digest != expected_hash:
        raise VerificationError(
            f"{base}: content hash {digest[:16]}... is not the expected "
            f"{expected_hash[:16]}...; refusing to use this base model"
        )
    return digest


def compute_device() -> torch.device:
    """The device a site or the coordinator computes on: its GPU when torch sees one."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_base(
    base_dir: str | Path, expected_hash: str | None = None, device: str | torch.device = "cpu"
) -> tuple[UNet2DModel, dict[str, Any]]:
    """Verify, then load a base model. Returns (unet in eval mode, metadata).

    `meta["model_config"]` is the ModelConfig the base was built from and `meta["content_hash"]`
    the verified hash.
    """
    digest = verify_base(base_dir, expected_hash)
    base = Path(base_dir)
    meta = json.loads((base / META_FILE).read_text())
    if meta.get("format") != META_FORMAT:
        raise VerificationError(f"{base / META_FILE}: unsupported format {meta.get('format')!r}")
    meta["model_config"] = config_from_dict({"model": meta["model"]}, str(base / META_FILE)).model
    meta["content_hash"] = digest
    unet = UNet2DModel.from_pretrained(base, use_safetensors=True).to(device)
    unet.eval()
    return unet, meta
