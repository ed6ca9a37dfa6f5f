"""Site-side adapter training: LoRA on the frozen base, patient-level DP-SGD (opacus hooks)."""

from client.train.data import Patient, PatientDataset, collate_patients, poisson_sample
from client.train.dp import (
    BlockStats,
    DPSettings,
    denoising_loss,
    patch_opacus_conv_contiguous,
    regroup_grad_samples,
    train_on_tensors,
)
from client.train.job import TrainResult, coarse_count, plan_job, save_adapter, train_adapters

__all__ = [
    "BlockStats",
    "DPSettings",
    "Patient",
    "PatientDataset",
    "TrainResult",
    "coarse_count",
    "collate_patients",
    "denoising_loss",
    "patch_opacus_conv_contiguous",
    "plan_job",
    "poisson_sample",
    "regroup_grad_samples",
    "save_adapter",
    "train_adapters",
    "train_on_tensors",
]
