"""genzoo plugin: DCGAN (Radford et al. 2015), registered as model ``dcgan``."""

from collections.abc import Callable

from zoo import GenerativeModel, hookimpl
from zoo_dcgan.model import DCGAN


@hookimpl
def zoo_register_models(register: Callable[[type[GenerativeModel]], None]) -> None:
    register(DCGAN)
