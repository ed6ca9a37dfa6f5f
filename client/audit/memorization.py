"""Memorization audit: is any synthetic image a (near-)copy of a training image?

For every synthetic image we find its nearest training image under three views, because each
misses copies the others catch: normalised L2 (root-mean-square pixel difference in [0,1], the
measure of Carlini et al. 2023), SSIM (structure, robust to gain changes) and cosine similarity
of CNN embeddings (robust to small shifts). The reference set holds every training image and its
mirror image, so a flipped copy is still a copy.

A distance alone means nothing without a scale, so the audit computes two references:
- held-out real images of the same site (patients the model never saw) -> their nearest training
  image: how close an unrelated, genuinely new image typically lands (the baseline);
- lightly augmented training images (shift, flip, noise, intensity jitter) -> their nearest
  training image: what a copy looks like. Each metric's copy threshold is the value that catches
  95 % of these.

A metric whose threshold also flags more than 10 % of the held-out images cannot tell a copy
from a new image on this data (on speckle phantoms the embedding cosine is such a metric), so
it is reported but not used to remove images. Normalised L2 is always used. A synthetic image
crossing the threshold of any metric in use is flagged and removed from the release.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from common.quality.features import blur_cnn_extractor

CATCH_RATE = 0.95
MAX_HOLDOUT_FALSE_FLAGS = 0.10
METRICS = ("l2", "ssim", "cosine")
# For l2 smaller means closer; for ssim and cosine larger means closer.
CLOSER_IS_SMALLER = {"l2": True, "ssim": False, "cosine": False}


@dataclass
class Nearest:
    """Per query image: the best value of each metric and the index of that training image."""

    l2: np.ndarray
    l2_index: np.ndarray
    ssim: np.ndarray
    ssim_index: np.ndarray
    cosine: np.ndarray
    cosine_index: np.ndarray

    def value(self, metric: str) -> np.ndarray:
        return getattr(self, metric)

    def index(self, metric: str) -> np.ndarray:
        return getattr(self, f"{metric}_index")


class ReferenceSet:
    """Training images (and their mirrors) prepared once for repeated nearest-neighbour queries.

    Speckle decorrelates when an image moves by a pixel or two, so a plain pixel distance cannot
    tell a shifted copy from a new image. L2 is therefore taken over the central crop at the best
    of all shifts up to `max_shift` pixels, and SSIM is measured at that alignment against the
    closest candidates (by L2 and by cosine), which keeps it affordable on a CPU.
    """

    def __init__(
        self, train: np.ndarray, max_shift: int | None = None, candidates: int = 4
    ) -> None:
        if train.ndim != 3 or len(train) == 0:
            raise ValueError(f"expected a non-empty [N,H,W] training array, got {train.shape}")
        self.n = len(train)
        self.images = torch.from_numpy(
            np.concatenate([train, train[:, :, ::-1]]).astype(np.float32)
        )
        h, w = train.shape[1:]
        self.max_shift = default_shift(h, w) if max_shift is None else max_shift
        self.candidates = candidates
        self.embed = blur_cnn_extractor(grid=4)
        feats = self._features(self.images.numpy())
        # Centre on the training mean: raw ReLU features all point the same way.
        self.feat_mean = feats.mean(0, keepdim=True)
        self.feats = F.normalize(feats - self.feat_mean, dim=1)

    def _features(self, images: np.ndarray) -> torch.Tensor:
        """CNN embeddings, in float32 like the images they are compared with."""
        return torch.from_numpy(self.embed.extract(images)).float()

    def nearest(self, queries: np.ndarray) -> Nearest:
        """Nearest training image of each query ([N,H,W] in [0,1]) under each metric."""
        q = torch.from_numpy(np.ascontiguousarray(queries, np.float32))
        if q.shape[1:] != self.images.shape[1:]:
            raise ValueError(
                f"query images {tuple(q.shape[1:])} do not match training images "
                f"{tuple(self.images.shape[1:])}"
            )
        if len(q) == 0:
            return _empty()
        l2, shift = _aligned_l2(q, self.images, self.max_shift)
        l2_val, l2_idx = l2.min(1)

        qf = F.normalize(self._features(q.numpy()) - self.feat_mean, dim=1)
        cos = qf @ self.feats.T
        cos_val, cos_idx = cos.max(1)

        k = min(self.candidates, len(self.images))
        cand = torch.cat([l2.topk(k, largest=False).indices, cos.topk(k).indices], dim=1)
        s = self.max_shift
        refs = torch.stack(
            [
                _shift_crop(self.images[j], int(shift[i, j]), s)
                for i in range(len(q))
                for j in cand[i].tolist()
            ]
        )
        queries = _shift_crop(q, None, s).repeat_interleave(cand.shape[1], dim=0)
        vals = _ssim_pairs(queries, refs).view(len(q), -1)
        ssim_val, best = vals.max(1)
        ssim_idx = cand.gather(1, best[:, None])[:, 0]
        fold = lambda idx: (idx % self.n).numpy()  # noqa: E731  mirror k+n is image k
        return Nearest(
            l2_val.numpy(),
            fold(l2_idx),
            ssim_val.numpy(),
            fold(ssim_idx),
            cos_val.numpy(),
            fold(cos_idx),
        )


def default_shift(h: int, w: int) -> int:
    """Largest shift searched (and used by `augment`): about 3 % of the image side."""
    return max(1, round(0.03 * min(h, w)))


def _shifts(s: int) -> list[tuple[int, int]]:
    return [(dy, dx) for dy in range(-s, s + 1) for dx in range(-s, s + 1)]


def _shift_crop(img: torch.Tensor, shift: int | None, s: int) -> torch.Tensor:
    """The central crop of `img` ([..,H,W]), moved by shift number `shift` (None: unmoved)."""
    dy, dx = (0, 0) if shift is None else _shifts(s)[shift]
    h, w = img.shape[-2:]
    return img[..., s + dy : h - s + dy, s + dx : w - s + dx]


def _aligned_l2(q: torch.Tensor, r: torch.Tensor, s: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised L2 of every query against every reference at the best shift: ([Q,M], shift idx)."""
    qc = _shift_crop(q, None, s).reshape(len(q), -1)
    d = qc.shape[1]
    q_sq = (qc**2).sum(1, keepdim=True)
    best = torch.full((len(q), len(r)), float("inf"))
    best_shift = torch.zeros((len(q), len(r)), dtype=torch.long)
    for k in range(len(_shifts(s))):
        rc = _shift_crop(r, k, s).reshape(len(r), -1)
        d2 = (q_sq + (rc**2).sum(1)[None] - 2.0 * qc @ rc.T).clamp_min(0) / d
        better = d2 < best
        best = torch.where(better, d2, best)
        best_shift = torch.where(better, torch.full_like(best_shift, k), best_shift)
    return best.sqrt(), best_shift


# --- SSIM (Wang et al. 2004), Gaussian window, data range 1 -------------------------------------

_C1, _C2 = 0.01**2, 0.03**2


def _window(size: int = 7, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter over [B,H,W] ('valid' border)."""
    g = _window()
    x = x[:, None]
    x = F.conv2d(x, g.view(1, 1, 1, -1))
    return F.conv2d(x, g.view(1, 1, -1, 1))[:, 0]


def _ssim_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of each pair a[i], b[i] ([B,H,W] in [0,1]): [B]."""
    mu_a, mu_b = _blur(a), _blur(b)
    var_a = _blur(a * a) - mu_a**2
    var_b = _blur(b * b) - mu_b**2
    cov = _blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + _C1) * (2 * cov + _C2)
    den = (mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2)
    return (num / den).mean(dim=(1, 2))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two [H,W] images in [0,1]."""
    ta, tb = (torch.from_numpy(np.asarray(x, np.float32))[None] for x in (a, b))
    return float(_ssim_pairs(ta, tb)[0])


# --- light augmentation: what a copy that was slightly disguised looks like ---------------------


def augment(images: np.ndarray, seed: int = 0) -> np.ndarray:
    """Shift by up to ~3 % of the size, flip half, add noise (sigma 0.02), jitter gain and offset."""
    rng = np.random.default_rng(seed)
    n, h, w = images.shape
    max_shift = default_shift(h, w)
    out = np.empty_like(images, dtype=np.float32)
    for k, img in enumerate(images.astype(np.float32)):
        dy, dx = rng.integers(-max_shift, max_shift + 1, size=2)
        img = np.pad(img, max_shift, mode="edge")
        img = img[max_shift + dy : max_shift + dy + h, max_shift + dx : max_shift + dx + w]
        if rng.random() < 0.5:
            img = img[:, ::-1]
        img = img * rng.uniform(0.95, 1.05) + rng.uniform(-0.03, 0.03)
        img = img + rng.normal(0.0, 0.02, size=img.shape)
        out[k] = np.clip(img, 0.0, 1.0)
    return out


# --- thresholds and flags ------------------------------------------------------------------------


def calibrate(copies: Nearest, catch_rate: float = CATCH_RATE) -> dict[str, float]:
    """Per-metric threshold that catches `catch_rate` of the augmented training copies."""
    thresholds = {}
    for metric in METRICS:
        values = copies.value(metric)
        q = catch_rate if CLOSER_IS_SMALLER[metric] else 1.0 - catch_rate
        thresholds[metric] = float(np.quantile(values, q))
    return thresholds


def flags(
    nearest: Nearest, thresholds: dict[str, float], rule: tuple[str, ...] = METRICS
) -> dict[str, np.ndarray]:
    """Boolean flags per metric, and `any`: flagged by a metric in `rule` (the release rule)."""
    out = {}
    for metric in METRICS:
        v = nearest.value(metric)
        out[metric] = (
            v <= thresholds[metric] if CLOSER_IS_SMALLER[metric] else v >= thresholds[metric]
        )
    out["any"] = np.logical_or.reduce([out[m] for m in rule])
    return out


def select_rule(holdout: Nearest, thresholds: dict[str, float]) -> tuple[str, ...]:
    """The metrics that separate copies from new images here (see the module docstring)."""
    if len(holdout.l2) == 0:
        return METRICS
    per_metric = flags(holdout, thresholds)
    return tuple(m for m in METRICS if m == "l2" or per_metric[m].mean() <= MAX_HOLDOUT_FALSE_FLAGS)


def _summary(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"n": 0}
    q = np.quantile(values, [0.0, 0.05, 0.5, 0.95, 1.0])
    return {
        "n": int(len(values)),
        "min": float(q[0]),
        "p05": float(q[1]),
        "median": float(q[2]),
        "p95": float(q[3]),
        "max": float(q[4]),
        "mean": float(values.mean()),
    }


@dataclass
class MemorizationResult:
    """Everything the report needs. `public()` holds aggregates only; the rest stays at the site."""

    thresholds: dict[str, float]
    rule: tuple[str, ...]
    synthetic: Nearest
    holdout: Nearest
    copies: Nearest
    synthetic_flags: dict[str, np.ndarray]
    holdout_flags: dict[str, np.ndarray]
    copy_flags: dict[str, np.ndarray]
    dcr_share: float | None

    @property
    def flagged(self) -> np.ndarray:
        return self.synthetic_flags["any"]

    def public(self) -> dict:
        """Aggregates only: thresholds, rates, distribution summaries (no image, no index)."""
        rate = lambda f: float(f.mean()) if len(f) else None  # noqa: E731
        return {
            "method": "nearest training image (train + mirrored): normalised L2 at the best shift "
            "up to a few pixels, SSIM at that alignment, cosine of BlurCNN features (a "
            "fixed-seed random CNN on blurred, standardised images)",
            "catch_rate_target": CATCH_RATE,
            "thresholds": self.thresholds,
            "rule": f"flag if any of {', '.join(self.rule)} crosses its threshold",
            "metrics_used": list(self.rule),
            "max_holdout_false_flag_rate_for_use": MAX_HOLDOUT_FALSE_FLAGS,
            "n_synthetic": int(len(self.flagged)),
            "n_flagged": int(self.flagged.sum()),
            "flagged_by_metric": {m: int(self.synthetic_flags[m].sum()) for m in METRICS},
            "augmented_copies": {
                "n": int(len(self.copy_flags["any"])),
                "caught_rate": {m: rate(self.copy_flags[m]) for m in (*METRICS, "any")},
            },
            "holdout_false_flag_rate": {m: rate(self.holdout_flags[m]) for m in (*METRICS, "any")},
            "distributions": {
                group: {m: _summary(nn.value(m)) for m in METRICS}
                for group, nn in (
                    ("synthetic_to_train", self.synthetic),
                    ("holdout_to_train", self.holdout),
                    ("augmented_copy_to_train", self.copies),
                )
            },
            "dcr_share_closer_to_train": self.dcr_share,
        }


def dcr_share(
    synthetic: np.ndarray, train: np.ndarray, holdout: np.ndarray, seed: int = 0
) -> float | None:
    """Share of synthetic images whose nearest real image (L2) is a training one, with the
    training set subsampled to the holdout's size: about 0.5 when the model does not favour
    its training data (SDMetrics' DCR overfitting protection)."""
    if len(holdout) == 0 or len(synthetic) == 0:
        return None
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(train), size=min(len(train), len(holdout)), replace=False)
    d_train = _min_l2(synthetic, train[pick])
    d_hold = _min_l2(synthetic, holdout)
    return float(np.mean(d_train < d_hold))


def _min_l2(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    qt = torch.from_numpy(np.ascontiguousarray(q, np.float32).reshape(len(q), -1))
    rt = torch.from_numpy(np.ascontiguousarray(r, np.float32).reshape(len(r), -1))
    return torch.cdist(qt, rt).min(1).values.numpy()


def audit_memorization(
    synthetic: np.ndarray,
    train: np.ndarray,
    holdout: np.ndarray,
    seed: int = 0,
    max_copies: int = 256,
) -> MemorizationResult:
    """Run the whole memorization audit. All images [N,H,W] float in [0,1] at one size."""
    ref = ReferenceSet(train)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(train), size=min(len(train), max_copies), replace=False)
    copies = ref.nearest(augment(train[np.sort(pick)], seed=seed))
    thresholds = calibrate(copies)
    syn = ref.nearest(synthetic)
    hold = ref.nearest(holdout)
    rule = select_rule(hold, thresholds)
    return MemorizationResult(
        thresholds=thresholds,
        rule=rule,
        synthetic=syn,
        holdout=hold,
        copies=copies,
        synthetic_flags=flags(syn, thresholds, rule),
        holdout_flags=flags(hold, thresholds, rule),
        copy_flags=flags(copies, thresholds, rule),
        dcr_share=dcr_share(synthetic, train, holdout, seed),
    )


def _empty() -> Nearest:
    z, i = np.zeros(0, np.float32), np.zeros(0, np.int64)
    return Nearest(z, i, z, i, z, i)
