"""The phantom is a fair task: trivial cues fail, lesion morphology is learnable.

Uses the evidence engineer's classifier (common.evidence.classifier), the same network the
train-on-synthetic evaluation trains, on simulated patients split at patient level.
"""

from __future__ import annotations

import numpy as np
import pytest

from common.store import is_holdout
from simulation.phantom import iter_site_images


def _dataset(patients: int, size: int):
    images, labels, holdout = [], [], []
    for device, share in (("device-a", 0.4), ("device-b", 0.3), ("device-c", 0.3)):
        site = f"learn-{device}"
        for _, patient, views in iter_site_images(
            site, device, int(patients * share), 0.45, 0.0, seed=21, image_size=size
        ):
            for img in views[:3]:
                images.append(img.image.astype(np.float32) / 127.5 - 1.0)
                labels.append(int(img.pathology == "malignant"))
                holdout.append(is_holdout(patient, 0.25))
    return np.stack(images), np.array(labels), np.array(holdout)


@pytest.mark.e2e
def test_small_cnn_learns_morphology_but_mean_intensity_does_not():
    import torch
    from sklearn.metrics import roc_auc_score

    from common.evidence.classifier import predict_scores, train_classifier

    torch.set_num_threads(2)
    x, y, hold = _dataset(patients=220, size=48)
    assert 400 <= len(x) <= 650 and 0.3 < y.mean() < 0.6
    mean_auc = roc_auc_score(y, x.mean(axis=(1, 2)))
    assert max(mean_auc, 1 - mean_auc) < 0.75

    model = train_classifier(x[~hold], y[~hold], epochs=5, seed=0, image_size=48)
    auc = roc_auc_score(y[hold], predict_scores(model, x[hold]))
    assert auc > 0.8, f"held-out patient AUC {auc:.3f}"
