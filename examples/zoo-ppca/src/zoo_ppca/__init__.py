"""The zoo-ppca plugin: registers the ``ppca`` model with genzoo."""

from zoo import hookimpl
from zoo_ppca.model import PPCA

__all__ = ["PPCA"]


@hookimpl
def zoo_register_models(register):
    register(PPCA)
