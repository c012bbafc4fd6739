"""The words genzoo's layers share, at the ground floor: torch-free, importing nothing of genzoo.

Model families, precisions, budget kinds, feature backbones and metric directions are named here
once, so the CLI can list and validate them without importing torch, and the modules that use
them (the model contract, the registry, devices, budgets, metrics, the store) import them from
below instead of from each other.
"""

from __future__ import annotations

__all__ = [
    "BACKBONES",
    "BUDGET_KINDS",
    "CLIP_BACKBONES",
    "DINOV2_BACKBONES",
    "FAMILIES",
    "HIGHER_IS_BETTER",
    "PRECISIONS",
    "higher_is_better",
]

#: Model families (``GenerativeModel.family``; ``zoo list --family``).
FAMILIES = ("gan", "vae", "diffusion", "other")

#: Training and inference precisions (``--precision``; ``auto`` resolves to one of these).
PRECISIONS = ("fp32", "bf16", "fp16")

#: Budget units of the field: wall-clock seconds, optimizer steps, thousands of real images
#: shown, training FLOPs (``--budget steps=2000``).
BUDGET_KINDS = ("time", "steps", "kimg", "flops")

#: torch-fidelity 0.4's DINOv2 and CLIP extractors, selectable as ``--backbone NAME``.
DINOV2_BACKBONES = ("dinov2-vit-s-14", "dinov2-vit-b-14", "dinov2-vit-l-14", "dinov2-vit-g-14")
CLIP_BACKBONES = (
    "clip-rn50", "clip-rn101", "clip-rn50x4", "clip-rn50x16", "clip-rn50x64",
    "clip-vit-b-32", "clip-vit-b-16", "clip-vit-l-14", "clip-vit-l-14-336px",
)
#: Feature backbones genzoo knows; ``auto`` picks one per dataset
#: (see `zoo.metrics.default_backbone`).
BACKBONES = ("lenet", "inception", "simclr", *DINOV2_BACKBONES, *CLIP_BACKBONES)

#: Metric prefixes where a larger value is better; every other metric (FID, FD, KID, ...) is a
#: distance, smaller being better.
HIGHER_IS_BETTER = ("is", "isc", "precision", "recall", "density", "coverage", "accuracy",
                    "classes", "psnr", "ssim", "vendi", "gap")


def higher_is_better(key: str) -> bool:
    """Whether a larger value of result key ``key`` (``is_lenet``, ``fid_inception``...) is better."""
    return key.lower().split("_", 1)[0] in HIGHER_IS_BETTER
