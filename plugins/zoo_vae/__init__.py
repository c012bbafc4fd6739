"""genzoo plugin: the variational autoencoder (Kingma & Welling 2014), registered as model ``vae``."""

from collections.abc import Callable
from typing import Any

from zoo import hookimpl


@hookimpl
def zoo_register_models(register: Callable[[Any], None]) -> None:
    from zoo_vae.spec import SPEC  # torch-free: zoo_vae.model loads when a model is built

    register(SPEC)
