"""genzoo plugin: EDM (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
Generative Models", arXiv:2206.00364), registered as ``edm``: the preconditioned denoiser, the
log-normal noise-level distribution and loss weighting, and the deterministic Heun sampler on the
rho-spaced schedule, on genzoo's shared U-Net (`zoo.nets.unet`)."""

from collections.abc import Callable
from typing import Any

from zoo import hookimpl


@hookimpl
def zoo_register_models(register: Callable[[Any], None]) -> None:
    from zoo_edm.spec import SPEC  # torch-free: zoo_edm.model loads when a model is built

    register(SPEC)
