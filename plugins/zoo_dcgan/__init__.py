"""genzoo plugin: DCGAN (Radford et al. 2015), registered as model ``dcgan``."""

from collections.abc import Callable
from typing import Any

from zoo import hookimpl


@hookimpl
def zoo_register_models(register: Callable[[Any], None]) -> None:
    from zoo_dcgan.model import DCGAN  # torch loads only when models are needed

    register(DCGAN)
