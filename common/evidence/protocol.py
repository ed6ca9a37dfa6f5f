"""The evidence protocol: what is a synthetic release worth to a diagnostic model?

One classifier recipe (`common.evidence.classifier`) is trained on different training sets and always
tested on the same held-out real patients:

- headline: real only (TRTR), synthetic only (TSTR) at the same image count, and real plus
  synthetic, over several seeds, with patient-level bootstrap intervals;
- scaling: AUC against the number of synthetic images, over AUC against the number of real
  images, and the real-image count each synthetic count is worth;
- cross-device: trained without the held-out device, tested on it (real, real with device
  augmentation, synthetic with device conditioning, synthetic with device augmentation);
- privacy-utility: TSTR and real-plus-synthetic for each release, against its epsilon.

The work is planned as a list of training jobs first (deduplicated, so an arm shared by two
analyses trains once), then run with a progress bar; every job is seeded, so the numbers are
reproducible.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.config import Config
from common.errors import DataError
from common.evidence.data import (
    LabelledSet,
    check_patient_disjoint,
    concat,
    load_store_side,
    load_synthetic,
    stratified_subset,
)
from common.evidence.metrics import (
    auc,
    bootstrap_ci,
    curve_auc,
    roc_points,
    sensitivity_at_specificity,
    tpr_at_fpr,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyntheticSource:
    """One synthetic set: folders or release bundles (pooled, e.g. one per site) and the
    epsilon they were released at."""

    label: str
    folders: tuple[Path, ...]
    epsilon: float | None  # None: no DP (epsilon = infinity)


@dataclass(frozen=True)
class Job:
    """One classifier training: which data, how much of it, which augmentation, which seed."""

    data: str  # "real", a synthetic label, or "real+<label>"
    n: int | None  # stratified subset size; None = everything
    seed: int
    device_aug: bool = False
    without_device: str | None = None  # drop this device's images before training


def _eps_json(epsilon: float | None) -> float | str:
    return "inf" if epsilon is None or math.isinf(epsilon) else float(epsilon)


def _summary(scores: np.ndarray, test: LabelledSet, n_boot: int, seed: int, spec: float) -> dict:
    """Seed-averaged AUC and sensitivity@spec with patient-bootstrap intervals."""
    aucs = [auc(test.labels, row) for row in scores]
    senss = [sensitivity_at_specificity(test.labels, row, spec) for row in scores]
    ci = bootstrap_ci(
        test.labels,
        scores,
        test.patients,
        {"auc": curve_auc, "sens": lambda fpr, tpr: tpr_at_fpr(fpr, tpr, 1.0 - spec)},
        n_boot,
        seed,
    )
    return {
        "auc": float(np.mean(aucs)),
        "auc_ci": list(ci["auc"]),
        "auc_per_seed": [float(a) for a in aucs],
        "sens_at_spec": float(np.mean(senss)),
        "sens_at_spec_ci": list(ci["sens"]),
        "test": test.counts(),
    }


def _roc(labels: np.ndarray, scores: np.ndarray) -> dict:
    fpr, tpr = roc_points(labels, scores.mean(axis=0))
    return {"fpr": np.round(fpr, 4).tolist(), "tpr": np.round(tpr, 4).tolist()}


def equivalent_real_count(real_curve: list[tuple[int, float]], target_auc: float) -> float | None:
    """Real-image count whose AUC equals `target_auc`, interpolated on a log count axis.

    None when the target lies outside the real curve (then it is "below the smallest" or "above
    the largest" real count measured, which the report says in words).
    """
    pts = sorted(real_curve)
    for (n0, a0), (n1, a1) in zip(pts, pts[1:]):
        lo, hi = min(a0, a1), max(a0, a1)
        if lo <= target_auc <= hi and a1 != a0:
            t = (target_auc - a0) / (a1 - a0)
            return float(math.exp(math.log(n0) + t * (math.log(n1) - math.log(n0))))
    return None


class EvidenceRun:
    """Holds the loaded data and trained-job cache for one evaluation."""

    def __init__(
        self,
        real_train: LabelledSet,
        test: LabelledSet,
        synthetic: dict[str, tuple[SyntheticSource, LabelledSet]],
        cfg: Config,
    ) -> None:
        self.real_train, self.test, self.synthetic, self.cfg = real_train, test, synthetic, cfg
        self.ev = cfg.evidence
        self.scores: dict[Job, np.ndarray] = {}

    def train_set(self, job: Job) -> LabelledSet:
        if job.data == "real":
            data = self.real_train
        elif job.data.startswith("real+"):
            data = concat([self.real_train, self.synthetic[job.data[5:]][1]], job.data)
        else:
            data = self.synthetic[job.data][1]
        if job.without_device is not None:
            data = data.take(np.flatnonzero(data.devices != job.without_device))
        if job.n is not None:
            data = stratified_subset(data, job.n, seed=1000 + job.seed)
        return data

    def run_jobs(self, jobs: list[Job], progress=None) -> None:
        """Train and score every job not yet done (on the whole test set)."""
        from common.evidence.classifier import predict_scores, train_classifier

        todo = [j for j in dict.fromkeys(jobs) if j not in self.scores]
        task = (
            progress.add_task("evidence: training classifiers", total=len(todo))
            if progress
            else None
        )
        for job in todo:
            data = self.train_set(job)
            epochs = max(
                self.ev.classifier_epochs,
                math.ceil(self.ev.min_steps * self.ev.batch_size / max(1, len(data))),
            )
            t0 = time.perf_counter()
            model = train_classifier(
                data.images,
                data.labels,
                epochs=epochs,
                seed=job.seed,
                batch_size=self.ev.batch_size,
                augment=True,
                device_augment=job.device_aug,
                image_size=self.ev.image_size,
            )
            self.scores[job] = predict_scores(model, self.test.images)
            log.debug(
                "trained %s on %d images (%d epochs) in %.1fs",
                job,
                len(data),
                epochs,
                time.perf_counter() - t0,
            )
            if progress:
                progress.advance(task)

    def stack(self, jobs: list[Job], mask: np.ndarray | None = None) -> np.ndarray:
        rows = np.stack([self.scores[j] for j in jobs])
        return rows if mask is None else rows[:, mask]


def _load_inputs(real_train_stores, test_stores, synthetic_sets, cfg):
    size, frac = cfg.evidence.image_size, cfg.data.holdout_fraction
    real = concat(
        [load_store_side(Path(s), "train", frac, size) for s in real_train_stores],
        "real training patients",
    )
    test = concat(
        [load_store_side(Path(s), "holdout", frac, size) for s in test_stores],
        "held-out real patients",
    )
    check_patient_disjoint(real, test)
    for name, count in (("training", real.counts()), ("test", test.counts())):
        if min(count["benign"], count["malignant"]) == 0:
            raise DataError(f"evidence: the real {name} set has no images of one class ({count})")
    synthetic = {}
    for label, (folders, eps) in synthetic_sets.items():
        folders = (folders,) if isinstance(folders, (str, Path)) else tuple(folders)
        src = SyntheticSource(
            label,
            tuple(Path(f) for f in folders),
            None if eps is None or math.isinf(eps) else float(eps),
        )
        synthetic[label] = (src, concat([load_synthetic(f, size) for f in src.folders], label))
    return real, test, synthetic


def primary_label(synthetic: dict[str, tuple[SyntheticSource, LabelledSet]], cfg: Config) -> str:
    """The release the headline numbers are about: the one at the profile's target epsilon,
    otherwise the first given."""
    for label, (src, _) in synthetic.items():
        if src.epsilon is not None and abs(src.epsilon - cfg.dp.target_epsilon) < 1e-9:
            return label
    return next(iter(synthetic))


def run_evidence_protocol(
    real_train_stores: list[Path],
    test_stores: list[Path],
    synthetic_sets: dict[str, tuple[Path | list[Path], float | None]],
    cfg: Config,
    seeds: list[int] | None = None,
    full_grid: bool | None = None,
    progress=None,
) -> dict:
    """Run every analysis and return the results as plain data (see module docstring)."""
    if not synthetic_sets:
        raise DataError("evidence: give at least one synthetic set")
    ev = cfg.evidence
    seeds = list(seeds) if seeds is not None else [cfg.seed + k for k in range(ev.seeds)]
    full = ev.full_grid if full_grid is None else full_grid
    grid_seeds = seeds if full else seeds[:1]
    t_start = time.perf_counter()
    real, test, synthetic = _load_inputs(real_train_stores, test_stores, synthetic_sets, cfg)
    run = EvidenceRun(real, test, synthetic, cfg)
    main = primary_label(synthetic, cfg)
    n_real = len(real)

    def headline_jobs(label: str) -> dict[str, list[Job]]:
        n_match = min(n_real, len(synthetic[label][1]))
        return {
            "trtr": [Job("real", n_match if n_match < n_real else None, s) for s in seeds],
            "tstr": [Job(label, n_match, s) for s in seeds],
            "real_plus_synth": [Job(f"real+{label}", None, s) for s in seeds],
            "real_all": [Job("real", None, s) for s in seeds],
        }

    # Plan every job first so the progress bar knows the total.
    plan: list[Job] = []
    per_set = {label: headline_jobs(label) for label in synthetic}
    for jobs in per_set.values():
        for group in jobs.values():
            plan += group
    n_synth = len(synthetic[main][1])
    synth_sizes = sorted({s for s in ev.scaling_sizes if s < n_synth} | {n_synth})
    real_sizes = sorted({s for s in ev.scaling_sizes if s < n_real} | {n_real})
    scaling_jobs = {("synthetic", n): [Job(main, n, s) for s in grid_seeds] for n in synth_sizes}
    scaling_jobs.update({("real", n): [Job("real", n, s) for s in grid_seeds] for n in real_sizes})
    for group in scaling_jobs.values():
        plan += group
    cross = _plan_cross_device(
        real, test, synthetic[main][1], main, ev.cross_device_test, grid_seeds
    )
    for group in cross.get("jobs", {}).values():
        plan += group
    run.run_jobs(plan, progress)

    boot, spec = ev.bootstrap, ev.specificity
    results: dict = {
        "protocol": "busgen-evidence/1",
        "primary_release": main,
        "epsilon": _eps_json(synthetic[main][0].epsilon),
        "seeds": seeds,
        "full_grid": full,
        "classifier": {
            "image_size": ev.image_size,
            "epochs": ev.classifier_epochs,
            "min_steps": ev.min_steps,
            "batch_size": ev.batch_size,
        },
        "data": {
            "real_train": real.counts(),
            "test": test.counts(),
            "real_train_stores": [str(s) for s in real_train_stores],
            "test_stores": [str(s) for s in test_stores],
            "synthetic": {
                lab: {
                    "folders": [str(f) for f in src.folders],
                    "epsilon": _eps_json(src.epsilon),
                    **data.counts(),
                }
                for lab, (src, data) in synthetic.items()
            },
        },
        "specificity": spec,
    }
    roc = {}
    for name, jobs in per_set[main].items():
        summary = _summary(run.stack(jobs), test, boot, cfg.seed, spec)
        summary["n_images"] = len(run.train_set(jobs[0]))
        summary["epsilon"] = None if name in ("trtr", "real_all") else results["epsilon"]
        results[f"auc_{name}"] = summary
        roc[name] = _roc(test.labels, run.stack(jobs))
    results["tstr_over_trtr"] = results["auc_tstr"]["auc"] / results["auc_trtr"]["auc"]
    results["roc"] = roc

    real_curve = [
        (n, float(np.mean([auc(test.labels, run.scores[j]) for j in scaling_jobs[("real", n)]])))
        for n in real_sizes
    ]
    synth_curve = [
        (
            n,
            float(
                np.mean([auc(test.labels, run.scores[j]) for j in scaling_jobs[("synthetic", n)]])
            ),
        )
        for n in synth_sizes
    ]
    results["scaling"] = {
        "release": main,
        "real": [{"n": n, "auc": a} for n, a in real_curve],
        "synthetic": [
            {"n": n, "auc": a, "equivalent_real": equivalent_real_count(real_curve, a)}
            for n, a in synth_curve
        ],
        "seeds": grid_seeds,
    }
    results["cross_device"] = _cross_device_results(run, cross, boot, cfg.seed, spec)
    results["privacy_utility"] = [
        {
            "release": label,
            "epsilon": _eps_json(src.epsilon),
            "n_synthetic": len(data),
            "tstr": _summary(run.stack(per_set[label]["tstr"]), test, boot, cfg.seed, spec),
            "real_plus_synth": _summary(
                run.stack(per_set[label]["real_plus_synth"]), test, boot, cfg.seed, spec
            ),
        }
        for label, (src, data) in synthetic.items()
    ]
    results["targets"] = _targets(results)
    results["trainings"] = len(run.scores)
    results["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    return results


def _plan_cross_device(
    real: LabelledSet,
    test: LabelledSet,
    synth: LabelledSet,
    label: str,
    held_out: str,
    seeds: list[int],
) -> dict:
    """Jobs for the cross-device comparison, or the reason it cannot run on these data."""
    train_devices = sorted(set(real.devices.tolist()) - {held_out})
    if held_out not in set(test.devices.tolist()):
        return {"skipped": f"no held-out test images from {held_out}"}
    if not train_devices:
        return {"skipped": f"no real training images from devices other than {held_out}"}
    if held_out not in set(synth.devices.tolist()):
        return {"skipped": f"release {label} has no images conditioned on {held_out}"}
    c_test = test.devices == held_out
    for name, sel in (("real", real.devices != held_out), ("synthetic", synth.devices != held_out)):
        y = (real if name == "real" else synth).labels[sel]
        if len(np.unique(y)) < 2:
            return {"skipped": f"{name} images without {held_out} lack one class"}
    if len(np.unique(test.labels[c_test])) < 2:
        return {"skipped": f"held-out {held_out} test images lack one class"}
    return {
        "held_out_device": held_out,
        "train_devices": train_devices,
        "jobs": {
            "real": [Job("real", None, s, without_device=held_out) for s in seeds],
            "real_device_aug": [Job("real", None, s, True, held_out) for s in seeds],
            "synthetic_device_conditioned": [Job(label, None, s) for s in seeds],
            "synthetic_device_aug": [Job(label, None, s, True, held_out) for s in seeds],
        },
    }


def _cross_device_results(run: EvidenceRun, cross: dict, boot: int, seed: int, spec: float) -> dict:
    if "skipped" in cross:
        return {"skipped": cross["skipped"]}
    test = run.test
    held = cross["held_out_device"]
    on_c = test.devices == held
    in_domain = np.isin(test.devices, cross["train_devices"])
    out = {"held_out_device": held, "train_devices": cross["train_devices"], "arms": {}}
    for name, jobs in cross["jobs"].items():
        arm = {
            "held_out": _summary(
                run.stack(jobs, on_c), test.take(np.flatnonzero(on_c)), boot, seed, spec
            ),
            "n_images": len(run.train_set(jobs[0])),
        }
        if len(np.unique(test.labels[in_domain])) == 2:
            arm["in_domain_auc"] = float(
                np.mean([auc(test.labels[in_domain], r) for r in run.stack(jobs, in_domain)])
            )
            arm["auc_drop"] = arm["in_domain_auc"] - arm["held_out"]["auc"]
        out["arms"][name] = arm
    return out


def _targets(results: dict) -> dict:
    """The issue's targets, recorded (not asserted): a report says which were met."""
    out = {
        "tstr_at_least_95pct_of_trtr": results["tstr_over_trtr"] >= 0.95,
        "real_plus_synth_beats_real": results["auc_real_plus_synth"]["auc"]
        > results["auc_real_all"]["auc"],
    }
    arms = results["cross_device"].get("arms", {})
    if "auc_drop" in arms.get("real", {}) and "auc_drop" in arms.get(
        "synthetic_device_conditioned", {}
    ):
        out["device_conditioning_narrows_drop"] = (
            arms["synthetic_device_conditioned"]["auc_drop"] < arms["real"]["auc_drop"]
        )
    return out
