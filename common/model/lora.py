"""LoRA adapters on the frozen base UNet (peft).

diffusers' `UNet2DModel` is not a `PeftAdapterMixin` (it has no `add_adapter`), so adapters are
injected with `peft.inject_adapter_in_model`, which also freezes every base weight: autograd then
never computes a gradient for them, and only the small LoRA matrices are trained, clipped,
noised and shared.
"""

from __future__ import annotations

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict

from common.config import LoraConfig
from common.errors import ConfigError

ATTENTION = ["to_q", "to_k", "to_v", "to_out.0"]
#: Which UNet layers carry adapters for each `lora.targets` choice.
TARGETS = {"attention": ATTENTION, "attention+conv": ATTENTION + ["conv1", "conv2"]}


def inject_lora(unet: torch.nn.Module, lora_cfg: LoraConfig) -> torch.nn.Module:
    """Add LoRA adapters in place (base frozen, adapters start as the identity update)."""
    if lora_cfg.targets not in TARGETS:
        raise ConfigError(
            f"lora.targets must be one of {sorted(TARGETS)}, got {lora_cfg.targets!r}"
        )
    config = PeftLoraConfig(
        r=lora_cfg.rank,
        lora_alpha=lora_cfg.alpha,
        target_modules=TARGETS[lora_cfg.targets],
        lora_dropout=0.0,
    )
    return inject_adapter_in_model(config, unet)


def lora_parameters(unet: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The trainable (adapter) parameters, in a stable order."""
    return [p for _, p in sorted(unet.named_parameters()) if p.requires_grad]


def adapter_state(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Only the LoRA tensors (what leaves a site), detached copies on CPU."""
    return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(unet).items()}


def load_adapter(unet: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load LoRA tensors into an injected UNet; a key or shape mismatch is an error."""
    expected = get_peft_model_state_dict(unet)
    missing, extra = set(expected) - set(state), set(state) - set(expected)
    if missing or extra:
        raise ConfigError(
            f"adapter does not fit this model: {len(missing)} missing tensors "
            f"(e.g. {sorted(missing)[:2]}), {len(extra)} unexpected "
            f"(e.g. {sorted(extra)[:2]}); check lora.targets and lora.rank"
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise ConfigError(
                f"adapter tensor {k} has shape {tuple(v.shape)}, model expects "
                f"{tuple(expected[k].shape)}; check lora.rank"
            )
    set_peft_model_state_dict(unet, {k: torch.as_tensor(v) for k, v in state.items()})
