"""genzoo plugin: the original GAN (Goodfellow et al. 2014), registered as model ``gan``."""

from collections.abc import Callable
from typing import Any

from zoo import hookimpl


@hookimpl
def zoo_register_models(register: Callable[[Any], None]) -> None:
    from zoo_gan.model import GAN  # torch loads only when models are needed

    register(GAN)
