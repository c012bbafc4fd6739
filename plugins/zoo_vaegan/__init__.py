"""genzoo plugin: VAE-GAN (Larsen et al. 2016), registered as model ``vaegan``."""

from collections.abc import Callable
from typing import Any

from zoo import hookimpl


@hookimpl
def zoo_register_models(register: Callable[[Any], None]) -> None:
    from zoo_vaegan.spec import SPEC  # torch-free: zoo_vaegan.model loads when a model is built

    register(SPEC)
