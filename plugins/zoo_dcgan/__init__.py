"""genzoo plugin: DCGAN (Radford et al. 2015), registered as model ``dcgan``."""

from collections.abc import Callable
from typing import Any

from zoo import hookimpl


@hookimpl
def zoo_register_models(register: Callable[[Any], None]) -> None:
    from zoo_dcgan.spec import SPEC  # torch-free: zoo_dcgan.model loads when a model is built

    register(SPEC)
