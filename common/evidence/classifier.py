"""The benign-vs-malignant classifier used to measure what synthetic images are worth.

The evidence protocol trains this one recipe on real images, on synthetic images and on both,
and compares the AUCs on held-out real patients. The recipe is deliberately small (a few
residual blocks with GroupNorm and global average pooling, ~100k parameters) so that a whole
grid of trainings fits the demo's two CPU cores; what matters is that every arm of the
comparison gets exactly the same network, optimiser, schedule and augmentation.

Training is deterministic for a seed: weights, batch order and augmentation all draw from
generators seeded from it, so re-running the evidence stage reproduces its numbers (bit for bit
on CPU; a GPU, used when present, may differ in the last digits).

Two augmentation levels:
- `augment=True`: horizontal flip and small gain/offset jitter (always on in the protocol).
- `device_augment=True`: also random gain, gamma, blur and speckle grain size, imitating the way
  scanners differ; the cross-device comparison uses it to ask whether augmentation alone buys
  what device-conditioned synthesis buys.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from common.errors import DataError


class _ResBlock(nn.Module):
    """Two 3x3 convolutions with a skip; `stride=2` halves the resolution."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(min(8, c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(min(8, c_out), c_out)
        self.skip = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return F.relu(h + self.skip(x))


class LesionClassifier(nn.Module):
    """A small ResNet: strided stem, stride-2 residual stages, global pooling, one logit."""

    def __init__(self, image_size: int, widths: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        self.image_size = int(image_size)
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 3, stride=2, padding=1, bias=False),
            nn.GroupNorm(min(8, widths[0]), widths[0]),
            nn.ReLU(),
        )
        stages, c_in = [], widths[0]
        for c_out in widths:
            stages.append(_ResBlock(c_in, c_out, stride=2))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(c_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B,1,H,W] in [-1,1] -> [B] logits for "malignant"."""
        h = self.stages(self.stem(x))
        return self.head(h.mean(dim=(2, 3))).squeeze(1)


def build_classifier(image_size: int) -> LesionClassifier:
    """The network every arm of the evidence protocol trains (weights from torch's global RNG)."""
    if image_size < 16:
        raise DataError(f"classifier image size must be at least 16 px, got {image_size}")
    return LesionClassifier(image_size)


def _as_batch(images: np.ndarray, image_size: int) -> torch.Tensor:
    """[N,H,W] float in [-1,1] -> [N,1,S,S] tensor at the classifier's size."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3:
        raise DataError(f"classifier expects images shaped [N,H,W], got {images.shape}")
    x = torch.from_numpy(images).unsqueeze(1)
    if x.shape[-1] != image_size or x.shape[-2] != image_size:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return x


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image with its own sigma (per-sample 5x5 kernels, applied as a grouped conv)."""
    r = torch.arange(-2, 3, dtype=x.dtype)
    k1 = torch.exp(-(r[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    k1 = k1 / k1.sum(dim=1, keepdim=True)
    k2 = (k1[:, :, None] * k1[:, None, :]).unsqueeze(1)  # [B,1,5,5]
    b = x.shape[0]
    out = F.conv2d(F.pad(x.transpose(0, 1), (2, 2, 2, 2), mode="replicate"), k2, groups=b)
    return out.transpose(0, 1)


def augment_batch(x: torch.Tensor, gen: torch.Generator, device_style: bool) -> torch.Tensor:
    """Random flips and intensity jitter; with `device_style`, scanner-like appearance changes."""
    b = x.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, 1, 1, 1, generator=gen)

    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if device_style:
        # Work in [0,1]: gamma and gain change contrast the way a scanner's presets do.
        z = ((x + 1) / 2).clamp(0, 1)
        z = z ** torch.exp(u(-0.4, 0.4))
        z = _gaussian_blur(z, u(0.3, 1.3).flatten())
        # Speckle: multiplicative noise whose grain size varies (coarse noise upsampled).
        grain = int(torch.randint(1, 4, (1,), generator=gen))
        size = max(1, x.shape[-1] // grain)
        noise = torch.randn(b, 1, size, size, generator=gen)
        noise = F.interpolate(noise, size=x.shape[-2:], mode="bilinear", align_corners=False)
        z = z * (1 + u(0.0, 0.25) * noise)
        z = z * u(0.75, 1.3)
        x = z.clamp(0, 1) * 2 - 1
    return (x * u(0.9, 1.1) + u(-0.1, 0.1)).clamp(-1, 1)


def train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    epochs: int,
    seed: int,
    batch_size: int = 32,
    augment: bool = True,
    device_augment: bool = False,
    image_size: int = 64,
    lr: float = 3e-3,
) -> LesionClassifier:
    """Train the classifier on [N,H,W] images in [-1,1] with 0/1 labels (1 = malignant).

    Adam with a cosine schedule and a class-balanced loss (the two classes are rarely equal in
    size, and an unbalanced loss would make AUCs depend on the mix rather than the images).
    """
    labels = np.asarray(labels)
    if len(images) != len(labels):
        raise DataError(f"classifier: {len(images)} images but {len(labels)} labels")
    if len(np.unique(labels)) < 2:
        raise DataError(
            "classifier: training set needs both benign (0) and malignant (1) images, "
            f"got only {np.unique(labels).tolist()}"
        )
    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_classifier(image_size).to(device)
    x_all = _as_batch(images, image_size)
    y_all = torch.as_tensor(labels, dtype=torch.float32)
    pos_weight = torch.tensor((y_all == 0).sum().item() / max(1.0, (y_all == 1).sum().item()))
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(x_all) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=max(1, epochs * steps_per_epoch), pct_start=0.2
    )
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x_all), generator=gen)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            x = x_all[idx]
            if augment or device_augment:
                x = augment_batch(x, gen, device_style=device_augment)
            loss = F.binary_cross_entropy_with_logits(
                model(x.to(device)), y_all[idx].to(device), pos_weight=pos_weight.to(device)
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return model


@torch.no_grad()
def predict_scores(
    model: LesionClassifier, images: np.ndarray, batch_size: int = 128
) -> np.ndarray:
    """Probability of malignancy for each image ([N,H,W] in [-1,1]) as a float64 array."""
    model.eval()
    device = next(model.parameters()).device
    x = _as_batch(images, model.image_size)
    out = [
        torch.sigmoid(model(x[i : i + batch_size].to(device))).cpu()
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(out).double().numpy() if out else np.zeros(0)
