"""What ``zoo eval`` can score: a folder of images, an image array, a run directory or a checkpoint.

Image files are read as they are (no resizing: generated images are scored at the size the model
made them, and a size that differs from the dataset's is an error rather than a silent resample).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.data import IMAGE_EXTENSIONS, images_from_array
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
    """Every image under ``folder`` (sorted by path) as ``uint8 N x C x H x W``; all must share one size.

    Gray images stay single-channel; if any image is in colour, all are read as RGB.
    """
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) found")
    images: list[Any] = []
    for path in files:
        try:
            with Image.open(path) as im:
                im.load()
                images.append(im.copy())
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DataError(f"{folder}: cannot read image {path.name} ({type(exc).__name__})") from None
    gray = all(im.mode in ("L", "1", "I", "I;16") for im in images)
    size = images[0].size
    arrays = []
    for path, im in zip(files, images, strict=True):
        if im.size != size:
            raise DataError(f"{folder}: image {path.name} is {im.size[0]}x{im.size[1]}, the first image is {size[0]}x{size[1]}")
        if gray and im.mode in ("I", "I;16"):
            arr = np.asarray(im)
            if arr.max() > 255:
                raise DataError(f"{folder}: image {path.name} is 16-bit; save generated images as 8-bit")
            arrays.append(arr.astype(np.uint8))
        else:
            arrays.append(np.asarray(im.convert("L" if gray else "RGB"), dtype=np.uint8))
    return images_from_array(np.stack(arrays), str(folder))


def load_image_array(path: Path) -> torch.Tensor:
    """Images from an ``.npz`` (key ``images``, else the first array) or ``.npy``, never unpickled."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                keys = list(loaded.keys())
                if not keys:
                    raise DataError(f"{path}: the archive holds no arrays")
                array = loaded["images"] if "images" in keys else loaded[keys[0]]
        else:
            array = loaded
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: cannot read the image array ({type(exc).__name__})") from None
    return images_from_array(array, str(path))


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Gray images saved as RGB (three equal channels) become single-channel when the data is gray."""
    if channels == 1 and images.shape[1] == 3 and bool((images == images[:, :1]).all()):
        return images[:, :1].contiguous()
    return images
