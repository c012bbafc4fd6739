"""genzoo plugin: the original GAN (Goodfellow et al. 2014), registered as model ``gan``."""

from collections.abc import Callable

from zoo import GenerativeModel, hookimpl
from zoo_gan.model import GAN


@hookimpl
def zoo_register_models(register: Callable[[type[GenerativeModel]], None]) -> None:
    register(GAN)
