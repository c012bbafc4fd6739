"""genzoo plugin: the variational autoencoder (Kingma & Welling 2014), registered as model ``vae``."""

from collections.abc import Callable
from typing import Any

from zoo import hookimpl


@hookimpl
def zoo_register_models(register: Callable[[Any], None]) -> None:
    from zoo_vae.model import VAE  # torch loads only when models are needed

    register(VAE)
