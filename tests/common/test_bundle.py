"""Release bundles: write, verify, tamper detection, loading as torch and Hugging Face datasets."""

import json
import os

import numpy as np
import pytest

from common.chainlog import canonical_json
from common.errors import DataError, VerificationError
from common.release.bundle import verify_bundle, write_bundle
from common.release.signing import (
    add_trusted_key,
    generate_signing_key,
    key_id,
    revoke_key,
    sign_manifest,
)

PATHOLOGIES = ("benign", "malignant", "normal")
DEVICES = ("vendor-a", "vendor-b")


def make_images(n: int, size: int = 32, seed: int = 0) -> tuple[list[np.ndarray], list[dict]]:
    """Small speckled images with a dark elliptic 'lesion' and matching label rows."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, rows = [], []
    for i in range(n):
        pathology = PATHOLOGIES[i % 3]
        image = rng.gamma(2.0, 40.0, (size, size))
        box = None
        if pathology != "normal":
            cx, cy, r = rng.integers(8, size - 8), rng.integers(8, size - 8), rng.integers(3, 7)
            image[((xx - cx) / r) ** 2 + ((yy - cy) / (r * 0.7)) ** 2 < 1] *= 0.2
            box = [int(cx - r), int(cy - r), int(cx + r), int(cy + r)]
        images.append(np.clip(image, 0, 255).astype(np.uint8))
        rows.append(
            {"pathology": pathology, "birads": 2 + i % 4, "device": DEVICES[i % 2], "box": box}
        )
    return images, rows


def make_signing(tmp_path, site_id="site-a", trust=True):
    """A real site signing key and (optionally) a trust file that registers it."""
    keys = tmp_path / f"keys-{site_id}"
    key = generate_signing_key(
        keys / "signing_key.pem", keys / "signing_key.pub", keys / "signing_key.pass"
    )
    trust_path = tmp_path / "trust.json"
    if trust:
        add_trusted_key(trust_path, site_id, keys / "signing_key.pub")
    return key, trust_path


def make_bundle(out, key, n=6, site_id="site-a", seed=0, **extra):
    images, rows = make_images(n, seed=seed)
    audit = {"summary": {"epsilon": 8.0, "delta": 1e-5, "flagged_removed": 1, "mia_auc": 0.51}}
    return write_bundle(
        out,
        images,
        rows,
        "# Synthetic BUS set\n\nNot for diagnosis.\n",
        audit,
        "<html><body>audit</body></html>",
        {
            "site_id": site_id,
            "dataset_id": f"{site_id}-bus",
            "generator_sha256": "0" * 64,
            "adapter_sha256": "1" * 64,
            **extra,
        },
        key,
    )


@pytest.fixture
def signed(tmp_path):
    key, trust = make_signing(tmp_path)
    return make_bundle(tmp_path / "bundle", key), trust, key


def test_bundle_layout_and_verifies(signed):
    bundle, trust, _ = signed
    manifest = verify_bundle(bundle, trust)
    names = {f["path"] for f in manifest["files"]}
    assert {
        "README.md",
        "audit.json",
        "audit.html",
        "train/metadata.jsonl",
        "train/00000.png",
    } <= names
    assert manifest["num_images"] == 6 and manifest["site_id"] == "site-a"
    rows = [json.loads(line) for line in (bundle / "train/metadata.jsonl").read_text().splitlines()]
    assert rows[0]["file_name"] == "00000.png" and set(rows[0]) >= {
        "pathology",
        "birads",
        "device",
        "box",
    }
    assert not [p for p in bundle.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_one_changed_byte_in_an_image(signed):
    bundle, trust, _ = signed
    path = bundle / "train/00003.png"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match=r"train/00003.png SHA-256 does not match"):
        verify_bundle(bundle, trust)


def test_added_file(signed):
    bundle, trust, _ = signed
    (bundle / "train" / "extra.png").write_bytes(b"\x89PNG")
    with pytest.raises(VerificationError, match=r"unexpected file train/extra.png"):
        verify_bundle(bundle, trust)


def test_deleted_file(signed):
    bundle, trust, _ = signed
    (bundle / "audit.html").unlink()
    with pytest.raises(
        VerificationError, match=r"audit.html is listed in the manifest but missing"
    ):
        verify_bundle(bundle, trust)


def test_symlink_is_refused(signed):
    bundle, trust, _ = signed
    target = bundle / "train/00001.png"
    moved = bundle.parent / "outside.png"
    os.replace(target, moved)
    os.symlink(moved, target)
    with pytest.raises(VerificationError, match=r"train/00001.png is a symbolic link"):
        verify_bundle(bundle, trust)


def test_edited_manifest(signed):
    bundle, trust, _ = signed
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    manifest["epsilon"] = 0.1
    (bundle / "manifest.json").write_bytes(canonical_json(manifest))
    with pytest.raises(VerificationError, match=r"manifest.sig: signature does not verify"):
        verify_bundle(bundle, trust)


def test_unknown_and_revoked_keys(tmp_path):
    _, trust = make_signing(tmp_path)
    rogue, _ = make_signing(tmp_path, site_id="rogue", trust=False)
    bundle = make_bundle(tmp_path / "rogue-bundle", rogue, site_id="rogue")
    with pytest.raises(VerificationError, match=r"not in .*trust.json \(unknown signer\)"):
        verify_bundle(bundle, trust)
    # A trusted key of one site cannot sign as another site.
    add_trusted_key(trust, "rogue", rogue.public_key())
    verify_bundle(bundle, trust)
    impostor = make_bundle(tmp_path / "impostor", rogue, site_id="site-a")
    with pytest.raises(
        VerificationError, match=r"claims site 'site-a' but key .* belongs to site 'rogue'"
    ):
        verify_bundle(impostor, trust)
    revoke_key(trust, key_id(rogue))
    with pytest.raises(VerificationError, match=r"marks revoked"):
        verify_bundle(bundle, trust)


def test_dotdot_path_in_a_signed_manifest_is_refused(tmp_path):
    """Even a validly signed manifest may not point outside the bundle."""
    key, trust = make_signing(tmp_path)
    bundle = make_bundle(tmp_path / "b", key)
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    manifest["files"].append({"path": "../trust.json", "size": 1, "sha256": "0" * 64})
    (bundle / "manifest.json").write_bytes(canonical_json(manifest))
    (bundle / "manifest.sig").write_bytes(sign_manifest(key, manifest))
    with pytest.raises(VerificationError, match=r"'\.\./trust.json' leaves the bundle"):
        verify_bundle(bundle, trust)


def test_writer_refuses_bad_input_and_existing_dir(tmp_path, signed):
    bundle, _, key = signed
    images, rows = make_images(2)
    with pytest.raises(DataError, match="already exists"):
        write_bundle(bundle, images, rows, "", {}, "", {"site_id": "site-a"}, key)
    with pytest.raises(DataError, match="2 images but 1 metadata rows"):
        write_bundle(tmp_path / "x", images, rows[:1], "", {}, "", {"site_id": "site-a"}, key)
    with pytest.raises(DataError, match="missing field"):
        write_bundle(
            tmp_path / "x",
            images,
            [{"pathology": "benign"}] * 2,
            "",
            {},
            "",
            {"site_id": "site-a"},
            key,
        )
    with pytest.raises(DataError, match="expected a uint8"):
        write_bundle(
            tmp_path / "x",
            [i.astype(np.float32) for i in images],
            rows,
            "",
            {},
            "",
            {"site_id": "site-a"},
            key,
        )
    assert not (tmp_path / "x").exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    # replace=True swaps in a new bundle atomically
    write_bundle(bundle, images, rows, "", {}, "", {"site_id": "site-a"}, key, replace=True)
    assert len(list((bundle / "train").glob("*.png"))) == 2


def test_load_release_as_torch_dataset(signed):
    import torch

    from common.release.loader import load_release

    bundle, trust, _ = signed
    dataset = load_release(bundle, trust_file=trust)
    assert len(dataset) == 6
    image, labels = dataset[0]
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    images, rows = make_images(6)
    assert torch.allclose(image[0], torch.from_numpy(images[0]).float() / 255)
    assert labels["pathology"] == rows[0]["pathology"] and labels["birads"] == rows[0]["birads"]
    batch_images, batch_labels = next(iter(torch.utils.data.DataLoader(dataset, batch_size=3)))
    assert batch_images.shape == (3, 1, 32, 32) and batch_labels["box"].shape == (3, 4)
    assert torch.isnan(batch_labels["box"][2]).all()  # the "normal" image has no box


def test_loads_as_huggingface_imagefolder(signed, monkeypatch):
    bundle, _, _ = signed
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(bundle.parent / "hf-home"))
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset(
        "imagefolder",
        data_dir=str(bundle),
        split="train",
        cache_dir=str(bundle.parent / "hf-cache"),
    )
    assert len(ds) == 6
    assert {"image", "pathology", "birads", "device", "box"} <= set(ds.column_names)
    first = sorted(ds, key=lambda r: r["image"].filename)[0]
    assert np.array_equal(np.asarray(first["image"]), make_images(6)[0][0])
