"""Patients as the unit of sampling: a dataset of patients and a collate that flattens them.

DP-SGD's guarantee is about the unit that is sampled and clipped. To make that unit the patient,
the dataset's items are PATIENTS (all of a patient's images, masks and labels), Poisson sampling
draws patients, and `collate_patients` concatenates the drawn patients' images into one batch
while returning, for every row, the index of its patient in the batch. The trainer then averages
per-image gradients per patient before clipping (see `client.train.dp.regroup_grad_samples`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch

from common.config import ModelConfig
from common.store import ImageRecord, Store


@dataclass
class Patient:
    """All images of one patient at model resolution."""

    images: torch.Tensor  # [n, H, W] in [-1, 1]
    masks: torch.Tensor  # [n, H, W] lesion-box masks
    labels: torch.Tensor  # [n] joint class indices


class PatientDataset(torch.utils.data.Dataset):
    """A list of patients (indexable, so Poisson sampling picks patients, not images)."""

    def __init__(self, patients: list[Patient]) -> None:
        self.patients = patients

    def __len__(self) -> int:
        return len(self.patients)

    def __getitem__(self, i: int) -> Patient:
        return self.patients[i]

    @property
    def num_images(self) -> int:
        return sum(len(p.labels) for p in self.patients)

    @classmethod
    def from_tensors(
        cls, images: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor, patient_ids: list
    ) -> PatientDataset:
        """Group rows by patient id (order of first appearance)."""
        rows: dict = defaultdict(list)
        for i, pid in enumerate(patient_ids):
            rows[pid].append(i)
        return cls(
            [
                Patient(images[idx], masks[idx], labels[idx])
                for idx in (torch.tensor(r) for r in rows.values())
            ]
        )

    @classmethod
    def from_store(
        cls, store: Store, records: list[ImageRecord], model_cfg: ModelConfig
    ) -> PatientDataset:
        """Load a store's records at the model's resolution, grouped by patient pseudonym.

        A device the model does not know is given the null device condition.
        """
        from common.model import class_labels

        images, masks = store.load_arrays(records, model_cfg.image_size)
        devices = [r.device if r.device in model_cfg.devices else None for r in records]
        labels = class_labels([r.pathology for r in records], devices, model_cfg, n=len(records))
        return cls.from_tensors(
            torch.from_numpy(images), torch.from_numpy(masks), labels, [r.patient for r in records]
        )


def collate_patients(
    patients: list[Patient], max_images_per_patient: int, generator: torch.Generator | None = None
):
    """Concatenate sampled patients -> (images, masks, labels, patient index per row).

    At most `max_images_per_patient` images of a patient are used per step (a random subset),
    which bounds memory; the privacy unit is unchanged because the patient is clipped as one.
    An empty sample gives zero-row tensors (the trainer then takes a noise-only step).
    """
    imgs, masks, labels, group = [], [], [], []
    for k, p in enumerate(patients):
        n = len(p.labels)
        idx = torch.arange(n)
        if max_images_per_patient and n > max_images_per_patient:
            idx = torch.randperm(n, generator=generator)[:max_images_per_patient]
        imgs.append(p.images[idx])
        masks.append(p.masks[idx])
        labels.append(p.labels[idx])
        group.append(torch.full((len(idx),), k, dtype=torch.long))
    if not patients:
        return None
    return torch.cat(imgs), torch.cat(masks), torch.cat(labels), torch.cat(group)


def poisson_sample(n: int, sample_rate: float, generator: torch.Generator) -> list[int]:
    """Each patient independently with probability `sample_rate` (may be empty).

    Done here rather than through opacus' data loader, whose rate is 1/len(loader) rather
    than the rate asked for; the rate we account for is exactly the rate we sample at.
    """
    return torch.nonzero(torch.rand(n, generator=generator) < sample_rate).flatten().tolist()
