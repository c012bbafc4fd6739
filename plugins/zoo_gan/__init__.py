"""genzoo plugin: the original GAN (Goodfellow et al. 2014), registered as model ``gan``."""

from collections.abc import Callable
from typing import Any

from zoo import hookimpl


@hookimpl
def zoo_register_models(register: Callable[[Any], None]) -> None:
    from zoo_gan.spec import SPEC  # torch-free: zoo_gan.model loads when a model is built

    register(SPEC)
