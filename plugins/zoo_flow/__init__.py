"""genzoo plugin: flow matching with the straight-line path (rectified flow), registered as ``flow``."""

from collections.abc import Callable
from typing import Any

from zoo import hookimpl


@hookimpl
def zoo_register_models(register: Callable[[Any], None]) -> None:
    from zoo_flow.spec import SPEC  # torch-free: zoo_flow.model loads when a model is built

    register(SPEC)
