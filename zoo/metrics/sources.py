"""What ``zoo eval`` can score: a folder of images, an image array, a run directory or a checkpoint.

Image files are read as they are (no resizing: generated images are scored at the size the model
made them, and a size that differs from the dataset's is an error rather than a silent resample),
through the same readers training data uses (:mod:`zoo.data`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from zoo.data import IMAGE_EXTENSIONS, read_image_array, read_image_folder
from zoo.errors import DataError

ARRAY_SUFFIXES = (".npz", ".npy")


def source_kind(path: Path) -> str:
    """``"run"``, ``"checkpoint"``, ``"folder"`` or ``"array"`` for an existing path."""
    from zoo.checkpoint import CHECKPOINT_DIR

    if path.is_dir():
        return "run" if (path / CHECKPOINT_DIR).is_dir() else "folder"
    if path.suffix.lower() in ARRAY_SUFFIXES:
        return "array"
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise DataError(f"{path} is a single image; pass the folder that holds the generated images")
    return "checkpoint"


def load_image_folder(folder: Path) -> torch.Tensor:
    """Every image under ``folder`` at its own size (one size for all), by :func:`zoo.data.read_image_folder`."""
    return read_image_folder(folder)


def load_image_array(path: Path) -> torch.Tensor:
    """Images from an ``.npz``/``.npy`` file, by :func:`zoo.data.read_image_array`."""
    return read_image_array(path)[0]


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Gray images saved as RGB (three equal channels) become single-channel when the data is gray."""
    if channels == 1 and images.shape[1] == 3 and bool((images == images[:, :1]).all()):
        return images[:, :1].contiguous()
    return images
