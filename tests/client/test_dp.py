"""Patient-level DP-SGD mechanics on a tiny UNet (32 px, [16, 32] channels)."""

import pytest
import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer

from client.train import (
    DPSettings,
    PatientDataset,
    collate_patients,
    patch_opacus_conv_contiguous,
    regroup_grad_samples,
    train_on_tensors,
)
from common.config import LoraConfig, ModelConfig
from common.errors import ConfigError
from common.model import build_unet, diffusion_loss, training_scheduler
from common.model.lora import TARGETS, adapter_state, inject_lora, load_adapter, lora_parameters

torch.set_num_threads(2)
MODEL = ModelConfig(
    image_size=32,
    block_out_channels=(16, 32),
    attention_levels=(False, True),
    attention_head_dim=8,
    norm_num_groups=8,
)


def tiny_unet(targets: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    unet = build_unet(MODEL)
    inject_lora(unet, LoraConfig(rank=4, alpha=4.0, targets=targets))
    with torch.no_grad():  # lora_B starts at 0, which would make every lora_A gradient 0
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return unet


def dataset(images_per_patient: list[int], seed: int = 0) -> PatientDataset:
    g = torch.Generator().manual_seed(seed)
    n = sum(images_per_patient)
    ids = [k for k, m in enumerate(images_per_patient) for _ in range(m)]
    masks = (torch.rand(n, 32, 32, generator=g) > 0.7).float()
    return PatientDataset.from_tensors(
        torch.rand(n, 32, 32, generator=g) * 2 - 1,
        masks,
        torch.randint(0, 16, (n,), generator=g),
        ids,
    )


@pytest.mark.parametrize("targets", sorted(TARGETS))
def test_per_patient_grad_samples_match_naive_per_example_loop(targets):
    """opacus hooks + regrouping (K=2 copies, patients of 1-2 images) == autograd row by row."""
    patch_opacus_conv_contiguous()
    unet, scheduler, k = tiny_unet(targets), training_scheduler(MODEL), 2
    data = dataset([1, 2, 1])
    images, masks, labels, group = (
        t.repeat_interleave(k, 0) for t in collate_patients(data.patients, 6)
    )
    params = lora_parameters(unet)

    gsm = GradSampleModule(unet, batch_first=True, loss_reduction="sum")
    losses = diffusion_loss(
        gsm,
        images,
        masks,
        labels,
        scheduler,
        generator=torch.Generator().manual_seed(1),
        reduction="none",
    )
    losses.sum().backward()
    regroup_grad_samples(params, group, len(data))
    hooked = [p.grad_sample.clone() for p in params]
    gsm.cleanup()

    losses = diffusion_loss(
        unet,
        images,
        masks,
        labels,
        scheduler,
        generator=torch.Generator().manual_seed(1),
        reduction="none",
    )
    naive = [torch.zeros_like(h) for h in hooked]
    for row in range(len(losses)):
        grads = torch.autograd.grad(losses[row], params, retain_graph=True)
        for acc, g in zip(naive, grads):
            acc[group[row]] += g / (group == group[row]).sum()
    flat_h = torch.cat([h.flatten(1) for h in hooked], 1)
    flat_n = torch.cat([n.flatten(1) for n in naive], 1)
    assert flat_n.norm() > 0
    rel = ((flat_h - flat_n).norm(dim=1) / flat_n.norm(dim=1)).max().item()
    assert rel < 1e-4, f"{targets}: max relative error {rel:.2e}"


def clipped_update_norm(data: PatientDataset, max_grad_norm: float, regroup: bool) -> float:
    """Norm of one noiseless DP-SGD update (SGD, lr 1, expected batch 1) from `data`."""
    unet = tiny_unet("attention+conv")
    params = lora_parameters(unet)
    before = [p.detach().clone() for p in params]
    gsm = GradSampleModule(unet, batch_first=True, loss_reduction="sum")
    opt = DPOptimizer(
        torch.optim.SGD(params, lr=1.0),
        noise_multiplier=0.0,
        max_grad_norm=max_grad_norm,
        expected_batch_size=1,
        loss_reduction="mean",
    )
    images, masks, labels, group = collate_patients(data.patients, 6)
    losses = diffusion_loss(
        gsm,
        images,
        masks,
        labels,
        training_scheduler(MODEL),
        generator=torch.Generator().manual_seed(3),
        reduction="none",
    )
    losses.sum().backward()
    if regroup:
        regroup_grad_samples(params, group, len(data))
    opt.step()
    gsm.cleanup()
    return torch.cat([(p.detach() - b).flatten() for p, b in zip(params, before)]).norm().item()


def test_patient_with_six_images_moves_update_no_more_than_patient_with_one():
    c = 1e-3  # far below the raw gradient norms, so clipping is active
    six, one = dataset([6], seed=1), dataset([1], seed=2)
    assert clipped_update_norm(six, c, regroup=True) <= c * (1 + 1e-4)
    assert clipped_update_norm(one, c, regroup=True) == pytest.approx(c, rel=1e-3)
    # Without per-patient regrouping each image would be its own unit: up to 6 C for one patient.
    assert clipped_update_norm(six, c, regroup=False) > 1.5 * c


def test_base_weights_never_get_gradients_and_only_adapters_change():
    unet = tiny_unet("attention+conv")
    base = {n: p.detach().clone() for n, p in unet.named_parameters() if not p.requires_grad}
    lora = {n: p.detach().clone() for n, p in unet.named_parameters() if p.requires_grad}
    assert lora and all("lora_" in n for n in lora)
    # The backward graph of a loss reaches only adapter weights: autograd has no node that
    # could ever compute a base weight's gradient.
    data = dataset([1, 2, 1])
    loss = diffusion_loss(
        unet,
        *collate_patients(data.patients, 6)[:3],
        training_scheduler(MODEL),
        generator=torch.Generator().manual_seed(0),
    )
    leaves, stack, visited = set(), [loss.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in visited:
            continue
        visited.add(node)
        if hasattr(node, "variable"):
            leaves.add(id(node.variable))
        stack.extend(nxt for nxt, _ in node.next_functions)
    assert leaves == {id(p) for p in lora_parameters(unet)}
    stats = train_on_tensors(
        unet,
        data,
        training_scheduler(MODEL),
        DPSettings(steps=2, sample_rate=0.9, noise_multiplier=1.0),
        sample_seed=0,
        noise_seed=0,
    )
    assert stats.steps == 2
    for n, p in unet.named_parameters():
        if n in base:
            assert p.grad is None and not hasattr(p, "grad_sample") and torch.equal(p, base[n])
    assert any(not torch.equal(p, lora[n]) for n, p in unet.named_parameters() if n in lora)
    assert not any(type(m).__name__ == "GradSampleModule" for m in unet.modules())


def test_empty_poisson_sample_takes_a_noise_only_step():
    unet = tiny_unet("attention")
    before = [p.detach().clone() for p in lora_parameters(unet)]
    stats = train_on_tensors(
        unet,
        dataset([1, 2]),
        training_scheduler(MODEL),
        DPSettings(steps=2, sample_rate=1e-9, noise_multiplier=1.0),
        sample_seed=0,
        noise_seed=0,
    )
    assert stats.empty_steps == 2 and stats.patients_sampled == [0, 0]
    assert any(not torch.equal(p, b) for p, b in zip(lora_parameters(unet), before))


def test_adapter_state_round_trip_and_mismatch():
    a, b = tiny_unet("attention", seed=0), tiny_unet("attention", seed=0)
    with torch.no_grad():
        for p in lora_parameters(a):
            p.add_(0.1)
    state = adapter_state(a)
    assert state and all("lora_" in k for k in state)
    load_adapter(b, state)
    x, t = torch.randn(2, 2, 32, 32), torch.tensor([10, 500])
    labels = torch.tensor([1, 2])
    with torch.no_grad():
        assert torch.allclose(
            a(x, t, class_labels=labels).sample, b(x, t, class_labels=labels).sample
        )
    with pytest.raises(ConfigError, match="lora"):
        load_adapter(tiny_unet("attention+conv"), state)


@pytest.mark.parametrize("noise_multiplier", [1.0, None])
def test_micro_batched_rows_give_the_same_update(noise_multiplier):
    """GPU memory is bounded by `microbatch_rows`; the adapters must not depend on it."""
    data = dataset([3, 1, 2, 2], seed=4)
    states = []
    for rows in (1000, 3, 1):
        unet = tiny_unet("attention+conv")
        settings = DPSettings(
            steps=2,
            sample_rate=0.99,
            noise_multiplier=noise_multiplier,
            max_grad_norm=0.05,
            noise_multiplicity=2,
            microbatch_rows=rows,
        )
        stats = train_on_tensors(
            unet, data, training_scheduler(MODEL), settings, sample_seed=7, noise_seed=8
        )
        assert stats.empty_steps == 0
        states.append(torch.cat([p.detach().flatten() for p in lora_parameters(unet)]))
    start = torch.cat([p.detach().flatten() for p in lora_parameters(tiny_unet("attention+conv"))])
    assert (states[0] - start).norm() > 0
    for other in states[1:]:
        assert torch.allclose(other, states[0], rtol=1e-4, atol=1e-6)
