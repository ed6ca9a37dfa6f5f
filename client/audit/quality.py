"""The audit's quality section: what is in a release, and how far it is from the site's images.

Counts are of synthetic images, so they describe the release, not the site's patients. The
distance is the Fréchet distance (FD) between Gaussian fits of BlurCNN features
(`common.quality`: a fixed-seed CNN on blurred, standardised images, pooled to 64 features so
that a few hundred images estimate their covariance). Values are not comparable to published
FIDs, and FD is biased at small n, so the section also gives a real-vs-real split-half baseline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from common.quality.features import blur_cnn_extractor
from common.quality.metrics import frechet_distance


def quality_summary(
    synthetic: np.ndarray, rows: Sequence[dict], real: np.ndarray, seed: int = 0
) -> dict:
    """Class and device counts, FD to the site's real images, and a split-half real baseline.

    `synthetic`, `real`: uint8 [N,H,W] at one size.
    """
    out: dict = {
        "n_images": int(len(synthetic)),
        "pathology_counts": dict(sorted(Counter(r["pathology"] for r in rows).items())),
        "device_counts": dict(sorted(Counter(str(r["device"]) for r in rows).items())),
    }
    if len(synthetic) < 2 or len(real) < 4:
        out["fd"] = None
        out["fd_note"] = "too few images for a Fréchet distance"
        return out
    extractor = blur_cnn_extractor()
    f_syn, f_real = extractor.extract(synthetic), extractor.extract(real)
    perm = np.random.default_rng(seed).permutation(len(real))
    half = len(real) // 2
    out.update(
        {
            "fd_metric": f"FD_{extractor.name}",
            "fd": frechet_distance(f_real, f_syn),
            "fd_real_split_half": frechet_distance(f_real[perm[:half]], f_real[perm[half:]]),
            "fd_n": {"synthetic": int(len(synthetic)), "real": int(len(real))},
        }
    )
    return out
