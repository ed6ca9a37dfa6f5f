"""Simulated hospitals written straight into a training store (no DICOM round trip).

Pretraining, tests and the demo need labelled images fast; going through DICOM and
de-identification for them would only cost time. Patients are the unit everything else counts in
(DP sampling, splits), so a simulated patient behaves like a real one: one pathology, one set of
lesions, 1 to 6 images showing them from slightly different probe positions, a pseudonymous id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from common.errors import DataError
from common.store import ImageRecord, Store
from simulation.phantom.devices import get_device
from simulation.phantom.lesions import view_of
from simulation.phantom.render import PhantomImage, render_case, sample_lesions

# How many images a patient has (1..6): most have one to three, as in public breast-US sets.
IMAGES_PER_PATIENT_P = (0.30, 0.25, 0.18, 0.12, 0.09, 0.06)


def pseudonym(site_id: str, seed: int, index: int, kind: str = "patient") -> str:
    """Stable pseudonymous id: reveals nothing but is the same for the same simulated person."""
    return hashlib.sha256(f"phantom:{kind}:{site_id}:{seed}:{index}".encode()).hexdigest()[:16]


def check_rates(malignant_rate: float, normal_rate: float) -> None:
    if not (
        0 <= malignant_rate <= 1 and 0 <= normal_rate <= 1 and malignant_rate + normal_rate <= 1
    ):
        raise DataError(
            f"malignant_rate ({malignant_rate}) and normal_rate ({normal_rate}) must be "
            "in [0, 1] and sum to at most 1"
        )


def patient_rngs(site_id: str, seed: int, patients: int) -> list[np.random.Generator]:
    """One independent generator per patient, so patient i is the same whatever N is."""
    digest = int.from_bytes(hashlib.sha256(site_id.encode()).digest()[:8], "big")
    root = np.random.SeedSequence([int(seed), digest])
    return [np.random.default_rng(s) for s in root.spawn(patients)]


def plan_patient(
    rng: np.random.Generator, malignant_rate: float, normal_rate: float
) -> tuple[str, int]:
    """Draw a patient's pathology and number of images (before anything is rendered)."""
    u = rng.uniform()
    pathology = (
        "malignant"
        if u < malignant_rate
        else "normal"
        if u < malignant_rate + normal_rate
        else "benign"
    )
    return pathology, int(rng.choice(len(IMAGES_PER_PATIENT_P), p=IMAGES_PER_PATIENT_P)) + 1


def render_patient(
    rng: np.random.Generator,
    pathology: str,
    n_images: int,
    device: str,
    image_size: int | tuple[int, int] | None,
) -> list[PhantomImage]:
    """A patient's lesions seen in `n_images` views (the probe moved and turned a little)."""
    lesions = sample_lesions(rng, pathology)
    return [
        render_case(
            rng,
            pathology,
            device,
            image_size,
            lesions=tuple(view_of(spec, rng) for spec in lesions),
        )
        for _ in range(n_images)
    ]


def iter_site_images(
    site_id: str,
    device: str,
    patients: int,
    malignant_rate: float,
    normal_rate: float,
    seed: int,
    image_size: int | tuple[int, int] | None = None,
) -> Iterator[tuple[int, str, list[PhantomImage]]]:
    """Yield (patient index, pseudonym, images) for a simulated site, deterministically."""
    get_device(device)
    check_rates(malignant_rate, normal_rate)
    for i, rng in enumerate(patient_rngs(site_id, seed, patients)):
        pathology, n_images = plan_patient(rng, malignant_rate, normal_rate)
        yield (
            i,
            pseudonym(site_id, seed, i),
            render_patient(rng, pathology, n_images, device, image_size),
        )


def simulate_store(
    store_dir: str | Path,
    site_id: str,
    device: str,
    patients: int,
    malignant_rate: float = 0.35,
    normal_rate: float = 0.1,
    seed: int = 0,
    image_size: int | tuple[int, int] | None = None,
    progress: bool = False,
) -> Store:
    """Fill (or resume filling) a store with a simulated site's patients; return the store.

    Boxes are in the stored image's pixels. Rerunning with the same arguments adds nothing: the
    ids are deterministic and images already present are skipped, so an interrupted run resumes.
    """
    get_device(device)
    check_rates(malignant_rate, normal_rate)
    store = Store.create(Path(store_dir))
    rngs = patient_rngs(site_id, seed, patients)
    indices = range(patients)
    if progress:
        from rich.progress import track

        indices = track(indices, description=f"simulating {site_id}")
    for i in indices:
        pathology, n_images = plan_patient(rngs[i], malignant_rate, normal_rate)
        image_ids = [pseudonym(site_id, seed, i * 16 + k, "image") for k in range(n_images)]
        if all(image_id in store for image_id in image_ids):
            continue  # resuming: this patient is complete
        patient, study = pseudonym(site_id, seed, i), pseudonym(site_id, seed, i, "study")
        images = render_patient(rngs[i], pathology, n_images, device, image_size)
        for image_id, img in zip(image_ids, images):
            if image_id in store:
                continue
            rows, cols = img.image.shape
            store.add(
                ImageRecord(
                    image_id=image_id,
                    patient=patient,
                    pathology=img.pathology,
                    device=img.device,
                    width=cols,
                    height=rows,
                    boxes=img.boxes,
                    birads=img.birads,
                    study=study,
                    source=f"phantom:{site_id}",
                    extra={"lesion_kinds": [spec.kind for spec in img.lesions]},
                ),
                img.image,
            )
    return store


def simulate_multi_device_store(
    store_dir: str | Path,
    devices: Sequence[str],
    patients: int,
    seed: int = 0,
    malignant_rate: float = 0.35,
    normal_rate: float = 0.1,
    image_size: int | tuple[int, int] | None = None,
    progress: bool = False,
) -> Store:
    """A store mixing devices (the coordinator's pretraining data): patients split evenly,
    each device simulated as its own source named `pretrain-<device>`."""
    if not devices:
        raise DataError("simulate_multi_device_store: need at least one device")
    store = None
    for j, device in enumerate(devices):
        share = patients // len(devices) + (1 if j < patients % len(devices) else 0)
        store = simulate_store(
            store_dir,
            f"pretrain-{device}",
            device,
            share,
            malignant_rate,
            normal_rate,
            seed,
            image_size,
            progress,
        )
    return store
