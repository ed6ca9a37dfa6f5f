"""Patient-level DP-SGD on LoRA adapters, with opacus per-sample gradient hooks.

One step:
1. Poisson-sample patients (rate q), collate their images (capped per patient), repeat every
   row K times (noise multiplicity: each copy gets its own timestep and noise).
2. Forward and backward the summed per-row losses; opacus' hooks store one gradient per row
   in `p.grad_sample` (only for the LoRA parameters: the base is frozen).
3. The rows' gradients are averaged per PATIENT (`add_group_grad_sums`, `set_group_means`), so
   one patient is one row: its K copies and all its images are averaged, then clipped together
   to norm C. A patient with 6 images therefore moves the update no more than a patient with 1.
   Rows go through the UNet in micro-batches of `microbatch_rows` (noise and timesteps drawn
   for the whole batch first), so GPU memory is bounded and the update is the same.
4. opacus' DPOptimizer clips each patient row to C, sums, adds N(0, (sigma C)^2) noise and
   divides by the expected number of patients; an empty sample still takes that noise step.

Traps handled: opacus' conv per-sample gradients are wrong for non-contiguous (channels-last)
activations (`patch_opacus_conv_contiguous`); the UNet cannot run a batch of 0 (a noise-only
step instead); opacus' loader sample rate is 1/len(loader) (we sample ourselves);
`make_private` cannot wrap a model twice (each call builds a fresh
GradSampleModule and removes its hooks afterwards; the ledger is the accountant's state).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer

from client.train.data import PatientDataset, collate_patients, poisson_sample
from common.model.lora import lora_parameters

_PATCHED = False


def patch_opacus_conv_contiguous() -> None:
    """Make opacus' conv per-sample gradients correct for channels-last activations.

    `opacus.utils.tensor_utils.unfold2d` builds patches with `as_strided`, assuming an NCHW-
    contiguous input. On CPU, oneDNN returns channels-last tensors for some shapes, and the
    per-sample gradients of conv LoRA layers then come out silently wrong (relative error ~1).
    Making the input contiguous first fixes it; idempotent.
    """
    global _PATCHED
    if _PATCHED:
        return
    import opacus.grad_sample.conv as conv

    original = conv.unfold2d

    def unfold2d_contiguous(input, **kwargs):
        return original(input.contiguous(), **kwargs)

    conv.unfold2d = unfold2d_contiguous
    _PATCHED = True


def add_group_grad_sums(
    params: list[torch.nn.Parameter],
    group: torch.Tensor,
    n_groups: int,
    sums: list[torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """Add the per-row `p.grad_sample` of one micro-batch into per-group sums, then drop the
    rows, so the next micro-batch's backward starts clean (memory: one micro-batch of rows)."""
    if sums is None:
        sums = [torch.zeros((n_groups, *p.shape), dtype=p.dtype, device=p.device) for p in params]
    for p, acc in zip(params, sums):
        acc.index_add_(0, group.to(acc.device), p.grad_sample)
        p.grad_sample = None
    return sums


def set_group_means(
    params: list[torch.nn.Parameter], sums: list[torch.Tensor], group: torch.Tensor, n_groups: int
) -> None:
    """Set `p.grad_sample` to the per-group means of all rows: what DPOptimizer clips."""
    counts = torch.bincount(group, minlength=n_groups).clamp(min=1)
    for p, acc in zip(params, sums):
        p.grad_sample = acc / counts.to(acc.device).view(-1, *([1] * (acc.ndim - 1)))


def regroup_grad_samples(
    params: list[torch.nn.Parameter], group: torch.Tensor, n_groups: int
) -> None:
    """Replace per-row `p.grad_sample` [R, ...] by per-group means [n_groups, ...] in place."""
    set_group_means(params, add_group_grad_sums(params, group, n_groups), group, n_groups)


@dataclass
class DPSettings:
    """DP-SGD parameters for one block of steps. `noise_multiplier=None` trains without DP
    (benchmarks' epsilon = infinity baseline only; a site never does that)."""

    steps: int
    sample_rate: float
    noise_multiplier: float | None
    max_grad_norm: float = 1.0
    lr: float = 1e-3
    noise_multiplicity: int = 1
    max_images_per_patient: int = 6
    cond_dropout: float = 0.1
    microbatch_rows: int = 64  # rows per forward/backward: bounds memory, changes no result


@dataclass
class BlockStats:
    """What happened in a block (site-local: the losses are NOT differentially private)."""

    steps: int = 0
    empty_steps: int = 0
    patients_sampled: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train_on_tensors(
    unet: torch.nn.Module,
    dataset: PatientDataset,
    scheduler,
    settings: DPSettings,
    *,
    sample_seed: int,
    noise_seed: int,
    on_step: Callable[[int, float], None] | None = None,
) -> BlockStats:
    """Train the injected LoRA adapters of `unet` for `settings.steps` DP-SGD steps, in place.

    The seeds drive Poisson sampling / timesteps / dropout (`sample_seed`) and the DP noise
    (`noise_seed`). They must be secret in production: whoever knows the noise seed can
    subtract the noise. `train_adapters` draws both from the OS's CSPRNG.
    """
    from common.model import diffusion_loss, draw_noise, drop_conditions

    patch_opacus_conv_contiguous()
    params = lora_parameters(unet)
    if not params:
        raise ValueError("no trainable parameters: call inject_lora(unet, cfg.lora) first")
    gen = torch.Generator().manual_seed(sample_seed)
    dev = params[0].device  # the site's GPU when the base was loaded there
    dp = settings.noise_multiplier is not None
    k = settings.noise_multiplicity
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    model: torch.nn.Module = unet
    if dp:
        model = GradSampleModule(unet, batch_first=True, loss_reduction="sum")
        expected = max(1, round(settings.sample_rate * len(dataset)))
        optimizer = DPOptimizer(
            optimizer,
            noise_multiplier=settings.noise_multiplier,
            max_grad_norm=settings.max_grad_norm,
            expected_batch_size=expected,
            loss_reduction="mean",
            generator=torch.Generator(dev).manual_seed(noise_seed),
        )
    stats = BlockStats()
    start = time.perf_counter()
    unet.train()
    try:
        for step in range(settings.steps):
            chosen = poisson_sample(len(dataset), settings.sample_rate, gen)
            stats.patients_sampled.append(len(chosen))
            batch = collate_patients(
                [dataset[i] for i in chosen], settings.max_images_per_patient, gen
            )
            optimizer.zero_grad(set_to_none=True)
            if batch is None:
                stats.empty_steps += 1
                if dp:  # noise-only step: the UNet cannot run on 0 rows
                    for p in params:
                        p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=dev)
                    optimizer.step()
                stats.losses.append(float("nan"))
            else:
                images, masks, labels, group = (t.repeat_interleave(k, 0).to(dev) for t in batch)
                labels, masks = drop_conditions(labels, masks, settings.cond_dropout, gen)
                noise, timesteps = draw_noise(images, scheduler, gen)
                # non-DP only: the same per-patient weighting, without clipping or noise
                weight = 1.0 / (torch.bincount(group)[group] * len(chosen))
                sums, losses = None, []
                for sl in _row_chunks(len(group), settings.microbatch_rows):
                    loss = diffusion_loss(
                        model,
                        images[sl],
                        masks[sl],
                        labels[sl],
                        scheduler,
                        reduction="none",
                        noise=noise[sl],
                        timesteps=timesteps[sl],
                    )
                    if dp:
                        loss.sum().backward()
                        sums = add_group_grad_sums(params, group[sl], len(chosen), sums)
                    else:
                        (loss * weight[sl]).sum().backward()
                    losses.append(loss.detach())
                if dp:
                    set_group_means(params, sums, group, len(chosen))
                optimizer.step()
                stats.losses.append(float(torch.cat(losses).mean()))
            stats.steps += 1
            if on_step is not None:
                on_step(step + 1, stats.losses[-1])
    finally:
        if dp:
            model.cleanup()  # remove hooks and grad_sample attributes; the UNet is plain again
        unet.eval()
    stats.seconds = time.perf_counter() - start
    return stats


def _row_chunks(rows: int, size: int) -> list[slice]:
    size = max(1, size)
    return [slice(i, i + size) for i in range(0, rows, size)]


@torch.no_grad()
def denoising_loss(
    unet: torch.nn.Module,
    dataset: PatientDataset,
    scheduler,
    *,
    seed: int = 0,
    repeats: int = 4,
    batch_size: int = 32,
) -> float:
    """Mean denoising loss over every image (each `repeats` times, fixed seed): the utility
    measure of benchmarks. Site-local: computed on private images, not DP."""
    from common.model import diffusion_loss

    gen = torch.Generator().manual_seed(seed)
    dev = next(unet.parameters()).device
    images = torch.cat([p.images for p in dataset.patients])
    masks = torch.cat([p.masks for p in dataset.patients])
    labels = torch.cat([p.labels for p in dataset.patients])
    total, n = 0.0, 0
    unet.eval()
    for _ in range(repeats):
        for i in range(0, len(labels), batch_size):
            sl = slice(i, i + batch_size)
            loss = diffusion_loss(
                unet,
                images[sl].to(dev),
                masks[sl].to(dev),
                labels[sl],
                scheduler,
                generator=gen,
                reduction="none",
            )
            total += float(loss.sum())
            n += len(loss)
    return total / n
