"""The BUSGen-style conditional diffusion generator (diffusers `UNet2DModel`).

Agreed interface for the other packages:

- `build_unet(model_cfg)`: the UNet from the profile (2 input channels: image + box mask; 1 out).
- `class_labels(pathology, device, model_cfg)`: joint condition indices (None = null, for CFG).
- `training_scheduler(model_cfg)`, `diffusion_loss(...)` (reduction "none" gives per-sample
  losses for DP-SGD) and `drop_conditions(...)` (joint CFG dropout of labels and masks).
- `save_base(out_dir, unet, model_cfg, extra_meta) -> content_hash`, `load_base(dir)` which
  verifies that hash (VerificationError otherwise); `compute_device()` picks the GPU if any.
- `generate(unet, model_cfg, sampling_cfg, n, pathology, device, boxes=None, seed=0)`.
- `BoxPrior`: the differentially private lesion-box prior.
- `pretrain(...)`: centralised, resumable pretraining of the base model.
"""

from common.model.box_prior import BoxPrior
from common.model.checkpoint import compute_device, load_base, save_base, verify_base
from common.model.pretrain import EMA, PretrainResult, pretrain
from common.model.sampling import GeneratedBatch, generate, sampling_scheduler
from common.model.unet import (
    NULL_LABEL,
    PATHOLOGY_AXIS,
    build_unet,
    class_labels,
    decode_label,
    diffusion_loss,
    draw_noise,
    drop_conditions,
    num_labels,
    training_scheduler,
)

__all__ = [
    "BoxPrior",
    "EMA",
    "compute_device",
    "GeneratedBatch",
    "PretrainResult",
    "pretrain",
    "NULL_LABEL",
    "PATHOLOGY_AXIS",
    "build_unet",
    "class_labels",
    "decode_label",
    "diffusion_loss",
    "draw_noise",
    "drop_conditions",
    "generate",
    "load_base",
    "num_labels",
    "sampling_scheduler",
    "save_base",
    "training_scheduler",
    "verify_base",
]
