"""The conditional UNet, its conditioning labels and the training loss.

One place builds the network from the profile (`build_unet`), so the coordinator, every site and
the DP trainer agree on the architecture. Conditioning follows BUSGen: a lesion-box mask is a
second input channel, and pathology and device are one joint class index into the UNet's class
embedding. Keeping the joint label inside diffusers' own `num_class_embeds` means
`save_pretrained` / `from_pretrained` round-trip the whole model with no custom modules.

Label layout: index = pathology_index * (len(devices) + 1) + device_index, where index 0 of each
axis is the null condition used for classifier-free guidance. Label 0 is therefore "no
condition at all", the one joint dropout trains.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel

from common.config import ModelConfig
from common.errors import ConfigError

PATHOLOGY_AXIS: tuple[str | None, ...] = (None, "normal", "benign", "malignant")
NULL_LABEL = 0


def num_labels(model_cfg: ModelConfig) -> int:
    """Rows of the joint class embedding: (3 pathologies + null) x (devices + null)."""
    return len(PATHOLOGY_AXIS) * (len(model_cfg.devices) + 1)


def build_unet(model_cfg: ModelConfig) -> UNet2DModel:
    """A fresh `UNet2DModel`: image + box mask in, one noise channel out.

    Self-attention only at the levels flagged in `attention_levels` (plus the middle block):
    BUSGen's full-resolution attention is what forced its batch size of 1.
    """
    levels = model_cfg.attention_levels
    if len(levels) != len(model_cfg.block_out_channels):
        raise ConfigError(
            f"model.attention_levels has {len(levels)} entries but "
            f"model.block_out_channels has {len(model_cfg.block_out_channels)}"
        )
    if any(c % model_cfg.norm_num_groups for c in model_cfg.block_out_channels):
        raise ConfigError(
            f"model.block_out_channels {list(model_cfg.block_out_channels)} must all "
            f"be divisible by model.norm_num_groups={model_cfg.norm_num_groups}"
        )
    if model_cfg.image_size % 2 ** (len(levels) - 1):
        raise ConfigError(
            f"model.image_size={model_cfg.image_size} must be divisible by "
            f"{2 ** (len(levels) - 1)} for {len(levels)} UNet levels"
        )
    if len(set(model_cfg.devices)) != len(model_cfg.devices):
        raise ConfigError(f"model.devices has duplicates: {list(model_cfg.devices)}")
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in levels)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(levels))
    return UNet2DModel(
        sample_size=model_cfg.image_size,
        in_channels=2,
        out_channels=1,
        block_out_channels=tuple(model_cfg.block_out_channels),
        down_block_types=down,
        up_block_types=up,
        layers_per_block=model_cfg.layers_per_block,
        attention_head_dim=model_cfg.attention_head_dim,
        norm_num_groups=model_cfg.norm_num_groups,
        dropout=model_cfg.dropout,
        num_class_embeds=num_labels(model_cfg),
    )


def class_labels(
    pathology: Sequence[str | None] | str | None,
    device: Sequence[str | None] | str | None,
    model_cfg: ModelConfig,
    n: int | None = None,
) -> torch.LongTensor:
    """Joint class indices for (pathology, device) pairs; None is the null condition.

    A single string (or None) for either argument is broadcast to the length of the other, or to
    `n` when both are single values.
    """
    paths = [pathology] if pathology is None or isinstance(pathology, str) else list(pathology)
    devs = [device] if device is None or isinstance(device, str) else list(device)
    length = n or max(len(paths), len(devs))
    paths = paths * length if len(paths) == 1 else paths
    devs = devs * length if len(devs) == 1 else devs
    if len(paths) != length or len(devs) != length:
        raise ConfigError(
            f"class_labels: {len(paths)} pathologies and {len(devs)} devices "
            f"cannot be paired (n={length})"
        )
    device_axis = (None, *model_cfg.devices)
    out = []
    for p, d in zip(paths, devs):
        if p not in PATHOLOGY_AXIS:
            raise ConfigError(
                f"unknown pathology {p!r}; expected one of normal, benign, malignant or None"
            )
        if d not in device_axis:
            raise ConfigError(
                f"unknown device {d!r}; this model knows "
                f"{list(model_cfg.devices)} (model.devices) or None"
            )
        out.append(PATHOLOGY_AXIS.index(p) * len(device_axis) + device_axis.index(d))
    return torch.tensor(out, dtype=torch.long)


def decode_label(label: int, model_cfg: ModelConfig) -> tuple[str | None, str | None]:
    """Inverse of `class_labels` for one index: (pathology, device)."""
    device_axis = (None, *model_cfg.devices)
    p, d = divmod(int(label), len(device_axis))
    return PATHOLOGY_AXIS[p], device_axis[d]


def training_scheduler(model_cfg: ModelConfig) -> DDPMScheduler:
    """The forward-noising schedule the model is trained with (and sampling derives from)."""
    if model_cfg.prediction_type not in ("epsilon", "v_prediction"):
        raise ConfigError(
            f"model.prediction_type must be epsilon or v_prediction, "
            f"got {model_cfg.prediction_type!r}"
        )
    return DDPMScheduler(
        num_train_timesteps=model_cfg.num_train_timesteps,
        beta_schedule=model_cfg.beta_schedule,
        prediction_type=model_cfg.prediction_type,
        clip_sample=True,
    )


def drop_conditions(
    labels: torch.Tensor, masks: torch.Tensor, p: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Joint condition dropout for classifier-free guidance.

    With probability `p` per sample, the pathology, the device AND the box mask are all replaced
    by null together, so the model learns one clean unconditional mode (as BUSGen does).
    """
    gen_device = generator.device if generator is not None else labels.device
    drop = torch.rand(labels.shape[0], generator=generator, device=gen_device).to(labels.device) < p
    labels = torch.where(drop, torch.full_like(labels, NULL_LABEL), labels)
    masks = masks * (~drop).to(masks.dtype).view(-1, *([1] * (masks.ndim - 1)))
    return labels, masks


def _as_nchw(x: torch.Tensor) -> torch.Tensor:
    return x.unsqueeze(1) if x.ndim == 3 else x


def draw_noise(
    images: torch.Tensor, scheduler: DDPMScheduler, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise (shaped like the images, as NCHW) and one timestep per image, from `generator` (on
    its device), returned on the images' device."""
    images = _as_nchw(images)
    gen_device = generator.device if generator is not None else images.device
    noise = torch.randn(
        images.shape, generator=generator, device=gen_device, dtype=images.dtype
    ).to(images.device)
    t = torch.randint(
        0,
        scheduler.config.num_train_timesteps,
        (images.shape[0],),
        generator=generator,
        device=gen_device,
    ).to(images.device)
    return noise, t


def diffusion_loss(
    unet: torch.nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor,
    labels: torch.Tensor,
    scheduler: DDPMScheduler,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
    noise: torch.Tensor | None = None,
    timesteps: torch.Tensor | None = None,
) -> torch.Tensor:
    """Denoising loss for a batch: images in [-1,1] and box masks, [B,H,W] or [B,1,H,W].

    Noise and timesteps are drawn from `generator` (on its device) so a seeded run is
    reproducible, unless given (`draw_noise` for a whole batch that is then run in pieces).
    `reduction="none"` returns one loss per sample, shape [B], which is what per-sample
    (DP-SGD) clipping needs; "mean" averages them.
    """
    images, masks = _as_nchw(images), _as_nchw(masks).to(images.dtype)
    if noise is None or timesteps is None:
        noise, timesteps = draw_noise(images, scheduler, generator)
    noisy = scheduler.add_noise(images, noise, timesteps)
    pred = unet(
        torch.cat([noisy, masks], dim=1), timesteps, class_labels=labels.to(images.device)
    ).sample
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(images, noise, timesteps)
    else:
        target = noise
    per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    if reduction == "none":
        return per_sample
    if reduction == "mean":
        return per_sample.mean()
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
