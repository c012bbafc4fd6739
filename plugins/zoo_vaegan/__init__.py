"""genzoo plugin: VAE-GAN (Larsen et al. 2016), registered as model ``vaegan``."""

from collections.abc import Callable
from typing import Any

from zoo import hookimpl


@hookimpl
def zoo_register_models(register: Callable[[Any], None]) -> None:
    from zoo_vaegan.model import VAEGAN  # torch loads only when models are needed

    register(VAEGAN)
