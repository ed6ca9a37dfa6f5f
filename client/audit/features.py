"""Image embeddings for the memorization audit's cosine metric.

Pixel distances miss copies that moved a few pixels; a convolutional embedding with pooling does
not. No pretrained weights may be downloaded, so the default extractor is a small CNN with
weights drawn from a fixed seed: random-init embeddings are a recognised choice for
non-ImageNet domains (Naeem et al. 2020), and a fixed seed makes every site's audit use the
same feature space. (EfficientNet-Lite0 features cost ~0.2 s an image on a CPU; the audit keeps
them for the utility metric FD_EffLite0, where they matter, and uses this cheap one here.)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

FEATURE_SEED = 20240517


class RandomCNN(nn.Module):
    """Three strided conv layers with fixed random weights, pooled to a 4x4 grid (1024-d)."""

    def __init__(self, seed: int = FEATURE_SEED) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.layers = nn.Sequential(
            nn.Conv2d(1, 16, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
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

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).flatten(1)


def _prepare(x: torch.Tensor) -> torch.Tensor:
    """Blur away speckle (sigma 2 px) and standardise each image, so that noise, gain and
    offset changes do not move the embedding: we want what the image shows, not its grain."""
    g = torch.exp(-((torch.arange(9, dtype=torch.float32) - 4) ** 2) / 8.0)
    g = g / g.sum()
    x = F.pad(x[:, None], (4, 4, 4, 4), mode="replicate")
    x = F.conv2d(F.conv2d(x, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))
    mean, std = x.mean(dim=(2, 3), keepdim=True), x.std(dim=(2, 3), keepdim=True)
    return (x - mean) / (std + 1e-6)


def random_cnn_features(images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """[N,H,W] images in [0,1] -> [N,1024] float32 features from the fixed-seed CNN."""
    net = RandomCNN()
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size], np.float32))
        out.append(net(_prepare(x)).numpy())
    return np.concatenate(out) if out else np.zeros((0, 1024), np.float32)
