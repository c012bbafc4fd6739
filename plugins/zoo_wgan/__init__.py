"""genzoo plugin: WGAN-GP (Gulrajani et al. 2017), registered as model ``wgan-gp``."""

from collections.abc import Callable
from typing import Any

from zoo import hookimpl


@hookimpl
def zoo_register_models(register: Callable[[Any], None]) -> None:
    from zoo_wgan.spec import SPEC  # torch-free: zoo_wgan.model loads when a model is built

    register(SPEC)
