"""Generated images as ``zoo eval`` scores them: a folder of images or an image array, read and
brought to the reference's channels (which kind a path is, the CLI decides: ``zoo.cli.eval``).

Image files are read as they are (no resizing: generated images are scored at the size the model
made them, and a size that differs from the dataset's is an error rather than a silent resample),
through the same readers training data uses (`zoo.data`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from zoo.data import ReadReport, read_image_array, read_image_folder

ARRAY_SUFFIXES = (".npz", ".npy")


def load_image_folder(folder: Path, report: ReadReport | None = None) -> torch.Tensor:
    """Every image under ``folder`` at its own size (one size for all), by `zoo.data.read_image_folder`."""
    return read_image_folder(folder, report=report)


def load_image_array(path: Path) -> torch.Tensor:
    """Images from an ``.npz``/``.npy`` file, by `zoo.data.read_image_array`."""
    return read_image_array(path)[0]


def match_channels(images: torch.Tensor, channels: int) -> tuple[torch.Tensor, str | None]:
    """Bring generated images to the reference's channel count, the way the metrics reduce both sides.

    Returns the images and a note saying what changed (``None`` when nothing did):

    * 4 -> 3: the alpha channel is dropped, as the metrics drop a 4-channel reference's alpha;
    * 3 -> 4 (or 1 -> 4): an opaque alpha channel is added (the metrics drop it again);
    * 3 or 4 -> 1: only when the colour channels are equal (gray saved as RGB/RGBA), else unchanged
      (and refused by the metrics as a channel mismatch);
    * 1 -> 3: gray repeated.
    """
    have = images.shape[1]
    if have == channels:
        return images, None
    if channels == 1:
        colour = images[:, :3]
        if have in (3, 4) and bool((colour == colour[:, :1]).all()):
            return images[:, :1].contiguous(), "gray images saved as RGB/RGBA read as gray"
        return images, None
    colour = images[:, :3] if have >= 3 else images.expand(-1, 3, -1, -1)
    if channels == 3:
        note = "alpha channel dropped (the reference has 3 channels)" if have == 4 else "gray repeated to RGB"
        return colour.contiguous(), note
    alpha = torch.full_like(colour[:, :1], 255)
    return torch.cat([colour, alpha], dim=1), "opaque alpha channel added (the reference has 4 channels)"
