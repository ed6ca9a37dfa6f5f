"""Sampling: DPM-Solver++ with classifier-free guidance, both passes in one forward call.

Reads top to bottom as the algorithm: build conditions (labels, box masks), draw the initial
noise from the seed, then for each solver step run the UNet once on [conditional;
unconditional] inputs, mix the two predictions with the guidance scale and take a solver step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler, UNet2DModel

from common.config import ModelConfig, SamplingConfig
from common.errors import ConfigError
from common.model.box_prior import BoxPrior
from common.model.unet import NULL_LABEL, class_labels, training_scheduler
from common.store import box_mask

PixelBox = tuple[int, int, int, int]


@dataclass
class GeneratedBatch:
    """Generated images with the conditions that produced them.

    images: uint8 [n, H, W]; boxes: per image, lesion boxes (x0, y0, x1, y1) in pixels of the
    generated image (empty for normal tissue); labels: the joint class indices used.
    """

    images: np.ndarray
    boxes: list[list[PixelBox]]
    pathology: list[str]
    device: list[str | None]
    labels: torch.Tensor
    seed: int
    meta: dict = field(default_factory=dict)

    def rows(self) -> list[dict]:
        """One metadata row per image (for metadata.jsonl)."""
        return [
            {
                "index": i,
                "pathology": p,
                "device": d,
                "boxes": [list(b) for b in bx],
                "seed": self.seed,
            }
            for i, (p, d, bx) in enumerate(zip(self.pathology, self.device, self.boxes))
        ]


def sampling_scheduler(
    model_cfg: ModelConfig, sampling_cfg: SamplingConfig
) -> DPMSolverMultistepScheduler:
    """DPM-Solver++ (multistep, order 2) derived from the training schedule.

    With the cosine (squaredcos_cap_v2) schedule the solver's last steps see log-SNR values so
    low that samples saturate; clipping lambda and thresholding the x0 prediction fixes it.
    """
    if not 5 <= sampling_cfg.steps <= 200:
        raise ConfigError(f"sampling.steps must be between 5 and 200, got {sampling_cfg.steps}")
    extra = {"lambda_min_clipped": -5.1} if model_cfg.beta_schedule == "squaredcos_cap_v2" else {}
    return DPMSolverMultistepScheduler.from_config(
        training_scheduler(model_cfg).config,
        algorithm_type="dpmsolver++",
        solver_order=2,
        thresholding=True,
        sample_max_value=1.0,
        **extra,
    )


def _broadcast(value, n: int, name: str) -> list:
    values = [value] if value is None or isinstance(value, str) else list(value)
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ConfigError(f"generate: {name} has {len(values)} entries for n={n}")
    return values


def _draw_boxes(
    pathology: list[str],
    device: list[str | None],
    size: int,
    prior: BoxPrior,
    rng: np.random.Generator,
) -> list[list[PixelBox]]:
    out = []
    for p, d in zip(pathology, device):
        if p == "normal":
            out.append([])
            continue
        x0, y0, x1, y1 = prior.sample(p, d, 1, rng)[0]
        out.append(
            [
                (
                    int(round(x0 * size)),
                    int(round(y0 * size)),
                    max(int(round(x1 * size)), int(round(x0 * size)) + 1),
                    max(int(round(y1 * size)), int(round(y0 * size)) + 1),
                )
            ]
        )
    return out


@torch.inference_mode()
def _denoise(
    unet: torch.nn.Module,
    noise: torch.Tensor,
    masks: torch.Tensor,
    labels: torch.Tensor,
    scheduler: DPMSolverMultistepScheduler,
    steps: int,
    guidance: float,
    batched_cfg: bool,
) -> torch.Tensor:
    scheduler.set_timesteps(steps, device=noise.device)
    x = noise * scheduler.init_noise_sigma
    null_labels = torch.full_like(labels, NULL_LABEL)
    null_masks = torch.zeros_like(masks)
    for t in scheduler.timesteps:
        cond_in = torch.cat([x, masks], dim=1)
        if guidance == 1.0:
            pred = unet(cond_in, t, class_labels=labels).sample
        else:
            uncond_in = torch.cat([x, null_masks], dim=1)
            if batched_cfg:
                both = unet(
                    torch.cat([cond_in, uncond_in]),
                    t,
                    class_labels=torch.cat([labels, null_labels]),
                ).sample
                pred_c, pred_u = both.chunk(2)
            else:
                pred_c = unet(cond_in, t, class_labels=labels).sample
                pred_u = unet(uncond_in, t, class_labels=null_labels).sample
            pred = pred_u + guidance * (pred_c - pred_u)
        x = scheduler.step(pred.float(), t, x).prev_sample
    return x


def generate(
    unet: UNet2DModel,
    model_cfg: ModelConfig,
    sampling_cfg: SamplingConfig,
    n: int,
    pathology: str | Sequence[str],
    device: str | None | Sequence[str | None],
    boxes: Sequence[Sequence[PixelBox]] | None = None,
    seed: int = 0,
    box_prior: BoxPrior | None = None,
    batched_cfg: bool = True,
    progress=None,
) -> GeneratedBatch:
    """Generate `n` images for the given pathology/device (one value each, or one per image).

    `boxes`: per image, a list of lesion boxes in pixels at `model_cfg.image_size`. When None,
    lesion classes draw one box each from `box_prior` (a DP prior; a flat prior if none is
    given), and normal images get no box. The same seed gives the same images, whatever the
    batch size. `progress` is an optional callable(done_images) for progress bars.
    """
    if n < 1:
        raise ConfigError(f"generate: n must be >= 1, got {n}")
    size = model_cfg.image_size
    paths = _broadcast(pathology, n, "pathology")
    devs = _broadcast(device, n, "device")
    if boxes is None:
        prior = box_prior or BoxPrior.uniform(model_cfg.devices)
        box_lists = _draw_boxes(paths, devs, size, prior, np.random.default_rng(seed))
    else:
        if len(boxes) != n:
            raise ConfigError(f"generate: boxes has {len(boxes)} entries for n={n}")
        box_lists = [[tuple(int(v) for v in b) for b in bx] for bx in boxes]
    labels = class_labels(paths, devs, model_cfg)
    masks = torch.from_numpy(np.stack([box_mask(bx, size, size, size) for bx in box_lists]))
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn((n, 1, size, size), generator=gen)

    dev = next(unet.parameters()).device
    amp = sampling_cfg.mixed_precision and dev.type == "cuda"
    was_training = unet.training
    unet.eval()
    chunks = []
    for start in range(0, n, sampling_cfg.batch_size):
        sl = slice(start, start + sampling_cfg.batch_size)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            x = _denoise(
                unet,
                noise[sl].to(dev),
                masks[sl].unsqueeze(1).to(dev),
                labels[sl].to(dev),
                sampling_scheduler(model_cfg, sampling_cfg),
                sampling_cfg.steps,
                float(sampling_cfg.guidance_scale),
                batched_cfg,
            )
        chunks.append(x.float().cpu())
        if progress is not None:
            progress(min(n, start + sampling_cfg.batch_size))
    unet.train(was_training)
    images = ((torch.cat(chunks)[:, 0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    return GeneratedBatch(
        images=images,
        boxes=box_lists,
        pathology=paths,
        device=devs,
        labels=labels,
        seed=seed,
        meta={
            "sampler": "DPM-Solver++ (multistep, order 2)",
            "steps": sampling_cfg.steps,
            "guidance_scale": sampling_cfg.guidance_scale,
            "box_prior_epsilon": None
            if boxes is not None
            else (box_prior.epsilon if box_prior else 0.0),
        },
    )
