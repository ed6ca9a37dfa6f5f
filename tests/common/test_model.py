"""Generator: UNet and labels, loss, sampling, save/load with hash, resumable pretraining."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from common.config import load_config
from common.errors import ConfigError, VerificationError
from common.model import (
    NULL_LABEL,
    build_unet,
    class_labels,
    decode_label,
    diffusion_loss,
    drop_conditions,
    generate,
    load_base,
    pretrain,
    save_base,
    training_scheduler,
)
from common.store import ImageRecord, Store

torch.set_num_threads(2)

TINY = [
    "model.image_size=32",
    "model.block_out_channels=[16,32]",
    "model.attention_levels=[false,true]",
    "model.norm_num_groups=8",
    "model.attention_head_dim=8",
    "model.devices=[device-a,device-b]",
    "pretrain.steps=6",
    "pretrain.batch_size=4",
    "pretrain.checkpoint_every=3",
    "pretrain.warmup_steps=2",
    "sampling.steps=6",
    "sampling.batch_size=4",
]


def tiny_cfg(*extra: str):
    return load_config("cpu-demo", [*TINY, *extra])


def synthetic_store(root: Path, n_patients: int = 12, size: int = 32, seed: int = 0) -> Store:
    """Speckle-like background with a dark ellipse filling each lesion box."""
    rng = np.random.default_rng(seed)
    store = Store.create(root)
    yy, xx = np.mgrid[0:size, 0:size]
    for p in range(n_patients):
        device = ("device-a", "device-b")[p % 2]
        pathology = ("normal", "benign", "malignant")[p % 3]
        for j in range(2):
            img = rng.normal(150 if device == "device-a" else 110, 20, (size, size))
            boxes = ()
            if pathology != "normal":
                w, h = (int(v) for v in rng.integers(size // 5, size // 3, 2))
                x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
                inside = ((xx - x0 - w / 2) / (w / 2)) ** 2 + (
                    (yy - y0 - h / 2) / (h / 2)
                ) ** 2 <= 1
                img[inside] = 30
                boxes = ((x0, y0, x0 + w, y0 + h),)
            store.add(
                ImageRecord(
                    image_id=f"img{p:03d}-{j}",
                    patient=f"pt{p:03d}",
                    pathology=pathology,
                    device=device,
                    width=size,
                    height=size,
                    boxes=boxes,
                ),
                np.clip(img, 0, 255).astype(np.uint8),
            )
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    return synthetic_store(tmp_path_factory.mktemp("store") / "store")


@pytest.fixture(scope="module")
def base(tmp_path_factory, store):
    """A tiny base trained for 6 steps: (directory, result, config)."""
    cfg = tiny_cfg()
    out = tmp_path_factory.mktemp("base") / "base"
    result = pretrain(store, cfg, out, progress=False)
    return out, result, cfg


def test_unet_shapes_and_attention_levels():
    cfg = tiny_cfg()
    unet = build_unet(cfg.model)
    assert unet.config.in_channels == 2 and unet.config.out_channels == 1
    assert unet.config.down_block_types == ("DownBlock2D", "AttnDownBlock2D")
    assert unet.config.up_block_types == ("AttnUpBlock2D", "UpBlock2D")
    out = unet(torch.zeros(3, 2, 32, 32), 10, class_labels=torch.tensor([0, 5, 11])).sample
    assert out.shape == (3, 1, 32, 32)


def test_profiles_build_with_expected_sizes():
    demo = sum(p.numel() for p in build_unet(load_config("cpu-demo").model).parameters())
    assert 2e6 < demo < 5e6
    gpu = sum(p.numel() for p in build_unet(load_config("gpu-128").model).parameters())
    assert 40e6 < gpu < 55e6  # BUSGen-sized (47.8M)


def test_class_labels_round_trip_and_null():
    m = tiny_cfg().model
    labels = class_labels(
        ["normal", "benign", "malignant", None], ["device-a", "device-b", None, None], m
    )
    assert labels.tolist()[-1] == NULL_LABEL
    assert len(set(labels.tolist())) == 4
    assert [decode_label(v, m) for v in labels] == [
        ("normal", "device-a"),
        ("benign", "device-b"),
        ("malignant", None),
        (None, None),
    ]
    assert (
        class_labels("benign", "device-a", m, n=3).tolist()
        == [class_labels("benign", "device-a", m).item()] * 3
    )
    with pytest.raises(ConfigError, match="unknown device"):
        class_labels(["benign"], ["scanner-x"], m)
    with pytest.raises(ConfigError, match="unknown pathology"):
        class_labels(["cyst"], ["device-a"], m)


def test_bad_profile_is_rejected():
    with pytest.raises(ConfigError, match="attention_levels"):
        build_unet(tiny_cfg("model.attention_levels=[true]").model)


def test_loss_per_sample_and_seeded():
    cfg = tiny_cfg()
    torch.manual_seed(0)
    unet, sched = build_unet(cfg.model), training_scheduler(cfg.model)
    x, m = torch.rand(5, 32, 32) * 2 - 1, torch.zeros(5, 32, 32)
    y = class_labels("benign", "device-a", cfg.model, n=5)
    a = diffusion_loss(unet, x, m, y, sched, torch.Generator().manual_seed(1), reduction="none")
    b = diffusion_loss(unet, x, m, y, sched, torch.Generator().manual_seed(1), reduction="none")
    mean = diffusion_loss(unet, x, m, y, sched, torch.Generator().manual_seed(1))
    assert a.shape == (5,) and torch.equal(a, b)
    assert torch.allclose(mean, a.mean())
    a.sum().backward()  # per-sample losses stay differentiable down to the first layer
    assert unet.conv_in.weight.grad.abs().sum() > 0


def test_v_prediction_changes_the_loss_target():
    """Same weights, images, timesteps and noise: only the regression target differs."""
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    losses = {}
    for kind in ("epsilon", "v_prediction"):
        cfg = tiny_cfg(f"model.prediction_type={kind}")
        torch.manual_seed(0)
        unet, sched = build_unet(cfg.model), training_scheduler(cfg.model)
        assert sched.config.prediction_type == kind
        losses[kind] = diffusion_loss(
            unet,
            x,
            torch.zeros(2, 1, 32, 32),
            torch.tensor([1, 2]),
            sched,
            torch.Generator().manual_seed(0),
            reduction="none",
        )
    assert torch.isfinite(losses["v_prediction"]).all()
    assert not torch.allclose(losses["epsilon"], losses["v_prediction"], rtol=1e-3)


def test_condition_dropout_is_joint():
    labels, masks = torch.arange(1, 1001), torch.ones(1000, 8, 8)
    y, m = drop_conditions(labels, masks, 0.1, torch.Generator().manual_seed(0))
    dropped = y == NULL_LABEL
    assert 50 < int(dropped.sum()) < 150
    assert torch.all(m[dropped] == 0) and torch.all(m[~dropped] == 1)


def test_generate_shapes_determinism_and_batch_independence(base):
    out, _, cfg = base
    unet, meta = load_base(out)
    a = generate(unet, meta["model_config"], cfg.sampling, 5, "malignant", "device-b", seed=3)
    assert a.images.shape == (5, 32, 32) and a.images.dtype == np.uint8
    assert all(len(b) == 1 for b in a.boxes) and a.pathology == ["malignant"] * 5
    b = generate(unet, meta["model_config"], cfg.sampling, 5, "malignant", "device-b", seed=3)
    assert np.array_equal(a.images, b.images) and a.boxes == b.boxes
    c = generate(unet, meta["model_config"], cfg.sampling, 5, "malignant", "device-b", seed=4)
    assert not np.array_equal(a.images, c.images)
    one_by_one = generate(
        unet,
        meta["model_config"],
        load_config("cpu-demo", [*TINY, "sampling.batch_size=1"]).sampling,
        5,
        "malignant",
        "device-b",
        seed=3,
    )
    assert np.abs(one_by_one.images.astype(int) - a.images.astype(int)).max() <= 1
    normal = generate(unet, meta["model_config"], cfg.sampling, 2, "normal", None, seed=0)
    assert normal.boxes == [[], []]


def test_guidance_changes_output_and_batched_cfg_matches_two_passes(base):
    out, _, cfg = base
    unet, meta = load_base(out)
    boxes = [[(4, 4, 16, 16)]] * 3
    g1 = generate(
        unet,
        meta["model_config"],
        load_config("cpu-demo", [*TINY, "sampling.guidance_scale=1.0"]).sampling,
        3,
        "benign",
        "device-a",
        boxes=boxes,
        seed=0,
    )
    g4 = generate(
        unet,
        meta["model_config"],
        load_config("cpu-demo", [*TINY, "sampling.guidance_scale=4.0"]).sampling,
        3,
        "benign",
        "device-a",
        boxes=boxes,
        seed=0,
    )
    assert np.abs(g1.images.astype(int) - g4.images.astype(int)).mean() > 1.0
    cfg4 = load_config("cpu-demo", [*TINY, "sampling.guidance_scale=4.0"]).sampling
    two = generate(
        unet,
        meta["model_config"],
        cfg4,
        3,
        "benign",
        "device-a",
        boxes=boxes,
        seed=0,
        batched_cfg=False,
    )
    assert np.abs(two.images.astype(int) - g4.images.astype(int)).max() <= 1


def test_save_load_round_trip_identical_outputs(base, tmp_path):
    out, result, cfg = base
    unet, meta = load_base(out, expected_hash=result.content_hash)
    assert meta["content_hash"] == result.content_hash
    digest = save_base(
        tmp_path / "copy", unet, meta["model_config"], {"box_prior": meta["box_prior"]}
    )
    again, _ = load_base(tmp_path / "copy", expected_hash=digest)
    kw = dict(n=3, pathology="benign", device="device-a", seed=7)
    a = generate(unet, meta["model_config"], cfg.sampling, **kw)
    b = generate(again, meta["model_config"], cfg.sampling, **kw)
    assert np.array_equal(a.images, b.images)
    for key, value in unet.state_dict().items():
        assert torch.equal(value, again.state_dict()[key])


def test_load_base_refuses_tampered_or_unexpected(base, tmp_path):
    out, result, _ = base
    unet, meta = load_base(out)
    copy = tmp_path / "copy"
    save_base(copy, unet, meta["model_config"], {})
    with pytest.raises(VerificationError, match="expected"):
        load_base(copy, expected_hash=result.content_hash)
    weights = copy / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="does not match"):
        load_base(copy)
    cfg_path = copy / "busgen_model.json"
    (copy / "busgen_hash.json").unlink()
    with pytest.raises(VerificationError, match="no busgen_hash.json"):
        load_base(copy)
    assert json.loads(cfg_path.read_text())["format"] == "busgen-base/1"


def test_resume_gives_the_uninterrupted_loss_curve(base, store, tmp_path):
    _, full, cfg = base
    interrupted = pretrain(store, cfg, tmp_path / "run", progress=False, stop_at_step=3)
    assert not interrupted.finished and interrupted.content_hash is None
    assert not (tmp_path / "run" / "busgen_hash.json").exists()
    resumed = pretrain(store, cfg, tmp_path / "run", progress=False)
    assert resumed.finished and len(resumed.losses) == 6
    assert resumed.losses == full.losses
    a, _ = load_base(full.out_dir)
    b, _ = load_base(tmp_path / "run")
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert full.losses[0] != full.losses[-1]


def test_resume_refuses_a_changed_config(store, tmp_path):
    pretrain(store, tiny_cfg(), tmp_path / "run", progress=False, stop_at_step=1)
    with pytest.raises(ConfigError, match="different config"):
        pretrain(store, tiny_cfg("pretrain.lr=0.01"), tmp_path / "run", progress=False)


def test_base_metadata_has_dp_box_prior(base):
    out, _, _ = base
    _, meta = load_base(out)
    prior = meta["box_prior"]
    assert (
        prior["mechanism"] == "laplace" and prior["unit"] == "patient" and prior["epsilon"] == 1.0
    )
    assert meta["labels"]["device_axis"] == [None, "device-a", "device-b"]


def dark_fraction(images: np.ndarray, box) -> tuple[float, float]:
    """Segment the lesion as the dark pixels; fraction of the box that is dark, and of the rest."""
    dark = images < 80
    inside = np.zeros(images.shape[1:], bool)
    x0, y0, x1, y1 = box
    inside[y0:y1, x0:x1] = True
    return float(dark[:, inside].mean()), float(dark[:, ~inside].mean())


@pytest.mark.e2e
def test_box_channel_moves_the_lesion(tmp_path):
    """Train briefly on images whose lesion fills its box; the generated lesion follows the box."""
    store = synthetic_store(tmp_path / "store", n_patients=60)
    cfg = tiny_cfg(
        "pretrain.steps=100",
        "pretrain.batch_size=8",
        "pretrain.lr=0.003",
        "pretrain.warmup_steps=20",
        "pretrain.checkpoint_every=1000",
        "pretrain.ema_decay=0.99",
        "sampling.steps=10",
        "sampling.batch_size=8",
    )
    pretrain(store, cfg, tmp_path / "base", progress=False)
    unet, meta = load_base(tmp_path / "base")
    left, right = (2, 8, 14, 20), (18, 8, 30, 20)
    for box, other in ((left, right), (right, left)):
        images = generate(
            unet,
            meta["model_config"],
            cfg.sampling,
            8,
            "benign",
            "device-a",
            boxes=[[box]] * 8,
            seed=0,
        ).images
        inside, outside = dark_fraction(images, box)
        in_other, _ = dark_fraction(images, other)
        assert inside > 0.5 and inside > 3 * outside, (box, inside, outside)
        assert inside > 3 * in_other
