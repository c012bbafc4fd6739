"""genzoo's built-in diffusion plugin: DDPM (Ho et al. 2020) with DDPM and DDIM samplers.

Besides ``ddpm`` it registers two named variants, resolved by [`zoo.create_model`][zoo.create_model]:

* ``ddpm-small``: half the U-Net width (8 channels at the first level), for quick CPU trials;
* ``ddpm-cifar10``: the paper's 35.7M-parameter CIFAR-10 network and optimiser settings
  (128 channels, multipliers 1/2/2/2, two residual blocks, dropout 0.1, lr 2e-4 with 5,000
  warm-up steps, EMA 0.9999), for 32x32 RGB data on a GPU.
"""

from collections.abc import Callable
from typing import Any

from zoo import hookimpl


@hookimpl
def zoo_register_models(register: Callable[[Any], None]) -> None:
    from zoo.registry import Variant
    from zoo_ddpm.spec import SPEC  # torch-free: zoo_ddpm.model loads when a model is built

    register(SPEC)
    register(Variant("ddpm-small", "ddpm", {"base_channels": 8, "norm_groups": 4},
                     "DDPM with half the U-Net width, for quick CPU trials"))
    register(Variant("ddpm-cifar10", "ddpm", {
        "base_channels": 128, "channel_mults": (1, 2, 2, 2), "num_res_blocks": 2, "dropout": 0.1,
        "norm_groups": 32, "lr": 2e-4, "warmup_steps": 5000, "ema_decay": 0.9999,
    }, "Ho et al.'s 35.7M-parameter CIFAR-10 U-Net and schedule (for a GPU)"))
