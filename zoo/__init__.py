"""genzoo: train, sample and benchmark image generators that plug in through entry points.

The names below are imported on first use (PEP 562), so ``import zoo`` and ``zoo --help`` stay
free of torch; plugin modules import ``zoo.hookimpl`` at their top for the same reason.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from zoo.hookspecs import hookimpl

__version__ = "0.3.0"

if TYPE_CHECKING:
    from zoo.config import ModelConfig
    from zoo.factory import create_model, list_models
    from zoo.model import GenerativeModel, TrainStep
    from zoo.modelspec import ModelSpec, Recipe, SampleOption
    from zoo.registry import Variant

_LAZY = {
    "GenerativeModel": "zoo.model",
    "ModelConfig": "zoo.config",  # this and the two spec names below are free of torch
    "ModelSpec": "zoo.modelspec",
    "Recipe": "zoo.modelspec",
    "SampleOption": "zoo.modelspec",
    "TrainStep": "zoo.model",
    "Variant": "zoo.registry",
    "create_model": "zoo.factory",
    "list_models": "zoo.factory",
}

__all__ = [
    "GenerativeModel",
    "ModelConfig",
    "ModelSpec",
    "Recipe",
    "SampleOption",
    "TrainStep",
    "Variant",
    "__version__",
    "create_model",
    "hookimpl",
    "list_models",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
