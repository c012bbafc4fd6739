"""genzoo's built-in diffusion plugin: DDPM (Ho et al. 2020) with DDPM and DDIM samplers."""

from collections.abc import Callable

from zoo import hookimpl
from zoo_ddpm.model import DDPM

__all__ = ["DDPM"]


@hookimpl
def zoo_register_models(register: Callable[[type], None]) -> None:
    register(DDPM)
