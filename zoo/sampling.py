"""Drawing images from a trained model: seeded, batched, and written as a grid, PNGs or an array."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from zoo.errors import UsageError
from zoo.model import GenerativeModel, to_uint8


@torch.no_grad()
def generate(
    model: GenerativeModel, n: int, *, seed: int = 0, batch_size: int = 256, options: dict[str, Any] | None = None,
    progress: Any = None,
) -> torch.Tensor:
    """``n`` samples as ``uint8 n x C x H x W`` on the CPU; the same seed gives the same images.

    Batches use consecutive seeds derived from ``seed``, so the result does not depend on which
    device generated it only through the generator, and is reproducible batch by batch.
    """
    if n < 1:
        raise UsageError(f"number of samples must be >= 1, got {n}")
    parsed = model.parse_sample_options(options)
    was_training = model.training
    model.eval()
    out = []
    try:
        generator = torch.Generator(device=model.device).manual_seed(seed)
        done = 0
        while done < n:
            k = min(batch_size, n - done)
            images = model.sample(k, generator=generator, **parsed)
            expected = (k, *model.image_shape)
            if tuple(images.shape) != expected:
                raise RuntimeError(f"{model.name}.sample returned shape {tuple(images.shape)}, expected {expected}")
            out.append(to_uint8(images).cpu())
            done += k
            if progress is not None:
                progress(k)
    finally:
        model.train(was_training)
    return torch.cat(out)


def save_grid(
    model: GenerativeModel, path: str | Path, n: int = 64, *, seed: int = 0, options: dict[str, Any] | None = None,
    nrow: int | None = None,
) -> Path:
    images = generate(model, n, seed=seed, options=options)
    return write_grid(images, path, nrow=nrow)


def write_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """Write ``uint8`` images as one PNG grid, atomically."""
    import math

    from PIL import Image
    from torchvision.utils import make_grid

    from zoo.fileio import atomic_write

    nrow = nrow or max(1, int(math.ceil(math.sqrt(len(images)))))
    grid = make_grid(images, nrow=nrow, padding=2, pad_value=255)
    array = grid.permute(1, 2, 0).numpy()
    img = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    path = Path(path)
    atomic_write(path, lambda f: img.save(f, format="PNG"))
    return path


def write_folder(images: torch.Tensor, folder: str | Path) -> Path:
    """One PNG per image, ``000000.png`` onwards."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        array = img.permute(1, 2, 0).numpy()
        Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(folder / f"{i:06d}.png")
    return folder
