"""genzoo plugin: the variational autoencoder (Kingma & Welling 2014), registered as model ``vae``."""

from collections.abc import Callable

from zoo import GenerativeModel, hookimpl
from zoo_vae.model import VAE


@hookimpl
def zoo_register_models(register: Callable[[type[GenerativeModel]], None]) -> None:
    register(VAE)
