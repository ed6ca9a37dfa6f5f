"""Membership inference: the loss attack sees leakage in a deliberately overfit non-DP model,
and clearly less in a DP-SGD model trained the same way on the same patients.

The experiment is sized so that the AUC is not noise (24 member and 24 non-member patients, one
distinct phantom image each) and still runs in well under a minute on one CPU thread: a tiny
16 px UNet whose every parameter is trained (a LoRA on so small a model has too little capacity
to memorise 24 images in a few hundred steps; the attack only sees the model's losses, so what
carries the leakage does not matter). Both runs train the same parameters for the same steps
with the same seeds; only clipping and noise differ.
"""

import pytest
import torch

from client.audit import membership_attack
from common.config import ModelConfig
from tests.client.test_audit import make_store

TINY = ModelConfig(
    image_size=32,
    block_out_channels=(16, 32),
    attention_levels=(False, True),
    layers_per_block=1,
    attention_head_dim=8,
    norm_num_groups=8,
    devices=("device-a", "device-b"),
)
MIA_MODEL = ModelConfig(
    image_size=16,
    block_out_channels=(16, 32),
    attention_levels=(False, True),
    layers_per_block=1,
    attention_head_dim=8,
    norm_num_groups=8,
    devices=("device-a", "device-b"),
)
STEPS = 200


def _train(store, members, noise_multiplier):
    from client.train.data import PatientDataset
    from client.train.dp import DPSettings, train_on_tensors
    from common.model import build_unet, training_scheduler

    torch.manual_seed(0)
    unet = build_unet(MIA_MODEL)  # no adapter: every parameter trains (see the module doc)
    dataset = PatientDataset.from_store(store, members, MIA_MODEL)
    settings = DPSettings(
        steps=STEPS,
        sample_rate=1.0 if noise_multiplier is None else 0.5,
        noise_multiplier=noise_multiplier,
        max_grad_norm=0.5,
        lr=2e-3,
        cond_dropout=0.0,
    )
    train_on_tensors(
        unet, dataset, training_scheduler(MIA_MODEL), settings, sample_seed=1, noise_seed=2
    )
    return unet


@pytest.mark.e2e
def test_attack_auc_is_higher_on_an_overfit_model_than_on_a_dp_one(tmp_path):
    torch.set_num_threads(1)  # the test machine is shared: one thread is faster under load
    # Phantoms render at >= 32 px; the store resizes them to the model's 16 px.
    store = make_store(tmp_path / "store", patients=48, per_patient=1, seed=3)
    records = store.records()
    patients = sorted({r.patient for r in records})
    # Alternate pairs of patients: members and non-members get the same class and device mix.
    member_ids = {p for i, p in enumerate(patients) if i % 4 < 2}
    members = [r for r in records if r.patient in member_ids]
    nonmembers = [r for r in records if r.patient not in member_ids]
    assert len(members) == len(nonmembers) == 24

    overfit = membership_attack(_train(store, members, None), MIA_MODEL, store, members, nonmembers)
    private = membership_attack(_train(store, members, 2.0), MIA_MODEL, store, members, nonmembers)
    auc_overfit = overfit["patient_level"]["auc"]
    auc_dp = private["patient_level"]["auc"]
    print(
        f"MIA patient-level AUC: overfit {auc_overfit:.3f}, DP {auc_dp:.3f}; by timestep "
        f"{overfit['auc_by_timestep']} vs {private['auc_by_timestep']}"
    )
    assert overfit["patient_level"]["n_members"] == private["patient_level"]["n_members"] == 24
    assert overfit["patient_level"]["n_nonmembers"] == 24
    assert auc_overfit >= 0.8
    assert auc_overfit - auc_dp >= 0.15
    # With one image per patient the image-level attack is the same attack.
    assert overfit["image_level"]["auc"] == pytest.approx(auc_overfit)
