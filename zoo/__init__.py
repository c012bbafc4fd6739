"""genzoo: train, sample and benchmark image generators that plug in through entry points."""

from zoo.hookspecs import hookimpl
from zoo.model import GenerativeModel, ModelConfig, SampleOption, TrainStep

__version__ = "0.1.0"

__all__ = [
    "GenerativeModel",
    "ModelConfig",
    "SampleOption",
    "TrainStep",
    "__version__",
    "hookimpl",
]
