"""Quality metrics for generated images that need no download (see features.py, metrics.py).

`quality_report(real, fake)` is the front door: it splits the real images into halves A and B,
compares B with A (the real-vs-real baseline: what "as good as real data" scores at this sample
size) and the generated images with A (same reference, same number of images), in each
feature space. Numbers only mean something next to their baseline.
"""

from __future__ import annotations

import numpy as np

from common.quality.features import (
    FeatureExtractor,
    blur_cnn_extractor,
    efflite0_extractor,
    random_cnn_extractor,
)
from common.quality.metrics import (
    bootstrap_interval,
    compare_features,
    density_coverage,
    frechet_distance,
    kernel_inception_distance,
    precision_recall,
)


def default_extractors(efflite_input_size: int = 224) -> list[FeatureExtractor]:
    return [efflite0_extractor(input_size=efflite_input_size), random_cnn_extractor(seed=0)]


def quality_report(
    real: np.ndarray,
    fake: np.ndarray,
    extractors: list[FeatureExtractor] | None = None,
    n_boot: int = 200,
    seed: int = 0,
) -> dict:
    """Metrics of `fake` against half of `real`, next to the other half's (the baseline).

    real, fake: uint8 [N, H, W]. Returns {space: {"generated": {...}, "real_vs_real": {...}}}.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(real))
    half = len(real) // 2
    ref_idx, other_idx = order[:half], order[half : 2 * half]
    fake = fake[:half] if len(fake) > half else fake
    report = {
        "protocol": {
            "reference": "real half A",
            "baseline": "real half B vs A",
            "generated": f"{len(fake)} generated vs A",
            "n_boot": n_boot,
            "seed": seed,
            "ci": "percentile bootstrap 95%",
        }
    }
    for ex in extractors or default_extractors():
        f_real, f_fake = ex.extract(real), ex.extract(fake)
        report[ex.name] = {
            "generated": compare_features(f_real[ref_idx], f_fake, ex.name, n_boot, seed),
            "real_vs_real": compare_features(
                f_real[ref_idx], f_real[other_idx], ex.name, n_boot, seed
            ),
        }
    return report


__all__ = [
    "FeatureExtractor",
    "blur_cnn_extractor",
    "bootstrap_interval",
    "compare_features",
    "default_extractors",
    "density_coverage",
    "efflite0_extractor",
    "frechet_distance",
    "kernel_inception_distance",
    "precision_recall",
    "quality_report",
    "random_cnn_extractor",
]
