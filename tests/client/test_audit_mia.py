"""Membership inference: the loss attack sees leakage in an overfit non-DP adapter, and not
(clearly less) in a DP-SGD adapter trained the same way on the same patients."""

import pytest
import torch

from client.audit import membership_attack
from common.config import LoraConfig, ModelConfig
from tests.client.test_audit import make_store

TINY = ModelConfig(image_size=32, block_out_channels=(16, 32), attention_levels=(False, True),
                   layers_per_block=1, attention_head_dim=8, norm_num_groups=8,
                   devices=("device-a", "device-b"))


def _train(store, members, noise_multiplier, steps):
    from client.train.data import PatientDataset
    from client.train.dp import DPSettings, train_on_tensors
    from client.train.lora import inject_lora
    from common.model import build_unet, training_scheduler

    torch.manual_seed(0)
    unet = build_unet(TINY)
    inject_lora(unet, LoraConfig(rank=8, alpha=16.0, targets="attention+conv"))
    dataset = PatientDataset.from_store(store, members, TINY)
    settings = DPSettings(steps=steps, sample_rate=1.0 if noise_multiplier is None else 0.5,
                          noise_multiplier=noise_multiplier, max_grad_norm=0.5, lr=5e-3,
                          cond_dropout=0.0)
    train_on_tensors(unet, dataset, training_scheduler(TINY), settings, sample_seed=1, noise_seed=2)
    return unet


@pytest.mark.e2e
def test_attack_auc_is_higher_on_an_overfit_adapter_than_on_a_dp_one(tmp_path):
    torch.set_num_threads(2)
    store = make_store(tmp_path / "store", patients=16, per_patient=1, seed=3)
    records = store.records()
    patients = sorted({r.patient for r in records})
    # Every 4th pair: members and non-members get the same mix of classes and devices.
    member_ids = {p for i, p in enumerate(patients) if i % 4 < 2}
    members = [r for r in records if r.patient in member_ids]
    nonmembers = [r for r in records if r.patient not in member_ids]

    overfit = membership_attack(_train(store, members, None, 150), TINY, store, members, nonmembers)
    private = membership_attack(_train(store, members, 4.0, 150), TINY, store, members, nonmembers)
    auc_overfit = overfit["image_level"]["auc"]
    auc_dp = private["image_level"]["auc"]
    print(f"MIA image-level AUC: overfit {auc_overfit:.3f}, DP {auc_dp:.3f}; patient-level "
          f"{overfit['patient_level']['auc']:.3f} vs {private['patient_level']['auc']:.3f}")
    assert auc_overfit >= 0.75
    assert auc_overfit - auc_dp >= 0.15
    assert overfit["patient_level"]["n_members"] == 8
    assert overfit["patient_level"]["n_nonmembers"] == 8
