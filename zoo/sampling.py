"""Drawing images from a trained model: seeded, batched, and written as a grid, PNGs or an array.

Sampling noise depends on ``(seed, image index)`` only, so the batch size never changes an image.
`generate` hands each batch an `ImageGenerators`: one `torch.Generator` per
image, seeded by `image_seed` from the run's seed and the image's index in the whole run.
A model draws its noise through `randn` / `rand` (or the
`zoo.GenerativeModel.randn` / `rand` helpers, which call them on
the model's device); row ``j`` of every draw comes from image ``j``'s own generator, so image ``i``
sees the same numbers whether it is drawn alone, third in a batch of 3 or last in a batch of 256.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from zoo.errors import SampleError, UsageError
from zoo.model import GenerativeModel, to_uint8

# The noise primitives live at the ground floor; they stay importable from here.
from zoo.randomness import (
    BatchDependentSamplingWarning,
    ImageGenerators,
    image_seed,
    rand,
    randn,
)

__all__ = [
    "RANGE_TOLERANCE",
    "BatchDependentSamplingWarning",
    "ImageGenerators",
    "check_samples",
    "generate",
    "generate_batches",
    "image_seed",
    "rand",
    "randn",
    "save_grid",
    "stream_folder",
    "stream_npz",
    "write_folder",
    "write_grid",
]

#: How far outside ``[-1, 1]`` a sample may stray (float rounding of a tanh or of x0 clipping);
#: within it values are clamped, beyond it `generate` raises [`SampleError`][zoo.errors.SampleError].
RANGE_TOLERANCE = 1e-3


def check_samples(model: GenerativeModel, images: Any, k: int, *, first: int = 0) -> None:
    """Raise [`SampleError`][zoo.errors.SampleError] (one line) unless ``images`` is a floating tensor of
    shape ``k x C x H x W`` (the model's image shape), finite, within ``[-1, 1]`` +- RANGE_TOLERANCE."""
    name = model.name or type(model).__name__
    where = f"{name}.sample (images {first}..{first + k - 1})"
    if not isinstance(images, torch.Tensor):
        raise SampleError(f"{where} returned {type(images).__name__}, not a tensor")
    expected = (k, *model.image_shape)
    if tuple(images.shape) != expected:
        raise SampleError(f"{where} returned shape {tuple(images.shape)}, expected {expected} (n x C x H x W)")
    if not images.is_floating_point():
        raise SampleError(f"{where} returned {images.dtype}; samples are floats in [-1, 1]")
    finite = torch.isfinite(images)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise SampleError(f"{where} returned {bad} non-finite values (NaN or inf) of {images.numel()}")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1 - RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise SampleError(f"{where} returned values in [{lo:.4g}, {hi:.4g}], outside [-1, 1]; "
                          "end the sampler with tanh or clamp where the model's method says so")


def generate(
    model: GenerativeModel, n: int, *, seed: int = 0, batch_size: int | None = None,
    options: dict[str, Any] | None = None, progress: Any = None, compile: bool = False,
) -> torch.Tensor:
    """``n`` samples as ``uint8 n x C x H x W`` on the CPU; the same seed gives the same images.

    Image ``i``'s noise comes from its own generator, seeded by `image_seed` ``(seed, i)`` on
    the model's device, so the images do not depend on ``batch_size`` (up to the network's own
    floating-point arithmetic, which may round differently for different batch shapes; see
    ``tests/test_sampling_batch.py``). The generators live on the model's device, whose random
    streams differ: a CPU and a CUDA run of the same seed give different images.

    Every batch is checked where it is made (`check_samples`): a wrong shape or dtype, NaN or
    inf, or values outside ``[-1, 1]`` (beyond `RANGE_TOLERANCE`) raise
    [`SampleError`][zoo.errors.SampleError] instead of being clamped into an image.

    ``batch_size=None`` chooses the batch by measurement (`zoo.accel.sample_batch_size`,
    cached per model, config, options and device; one batch for up to 64 images).
    ``compile=True`` compiles the model's inference networks with ``torch.compile`` first
    (`zoo.accel.compile_for_inference`; worth it only when sampling takes minutes) and
    drops them afterwards. All ``n`` images are held in memory: for large ``n`` iterate
    `generate_batches` (the same images, one batch at a time) and write as you go
    (`stream_folder`, `stream_npz`).

    Args:
        model: a built model (`zoo.create_model`, or loaded from a checkpoint), on its device.
        n: number of images, ``>= 1``.
        seed: seed of the per-image noise generators, ``>= 0``.
        batch_size: images per forward pass, ``>= 1``; ``None`` measures the fastest (cached).
        options: the model's sampling options (``{"steps": 50}``), checked by the model.
        progress: ``progress(k)`` after each batch of ``k`` images, or ``None``.
        compile: ``torch.compile`` the inference networks first.

    Returns:
        ``uint8`` tensor ``n x C x H x W`` on the CPU, values ``0..255``.

    Raises:
        UsageError: ``n`` or ``batch_size`` below 1, or an unknown sampling option
            (`UnknownNameError`, a subclass).
        SampleError: the model returned a wrong shape or dtype, NaN/inf, or values outside
            ``[-1, 1]``.
    """
    return torch.cat(list(generate_batches(model, n, seed=seed, batch_size=batch_size, options=options,
                                           progress=progress, compile=compile)))


def generate_batches(
    model: GenerativeModel, n: int, *, seed: int = 0, batch_size: int | None = None,
    options: dict[str, Any] | None = None, progress: Any = None, compile: bool = False,
) -> Iterator[torch.Tensor]:
    """The images of `generate` as ``uint8 k x C x H x W`` CPU batches, in order, made lazily.

    Bit for bit the images `generate` returns for the same arguments (it concatenates these),
    so a writer that consumes them one at a time holds one batch, never all ``n`` images. Arguments
    are checked at the call (not at the first ``next``); ``progress(k)`` is called after each batch.
    Closing the iterator early restores the model's training mode.
    """
    from zoo import accel

    if n < 1:
        raise UsageError(f"number of samples must be >= 1, got {n}")
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"batch size must be >= 1, got {batch_size}")
    parsed = model.parse_sample_options(options)
    if batch_size is None:
        batch_size = accel.sample_batch_size(model, n, parsed)
    return _batches(model, n, seed, batch_size, parsed, progress, compile)


def _batches(model: GenerativeModel, n: int, seed: int, batch_size: int, parsed: dict[str, Any], progress: Any,
             compile: bool) -> Iterator[torch.Tensor]:
    from zoo import accel

    if compile:
        accel.compile_for_inference(model, {batch_size, n % batch_size or batch_size}, parsed)
    was_training = model.training
    model.eval()
    warned = False
    try:
        done = 0
        while done < n:
            k = min(batch_size, n - done)
            with torch.no_grad():
                generators = ImageGenerators.for_range(seed, done, k, device=model.device)
                batch_state = generators.get_state()
                images = model.sample(k, generator=generators, **parsed)
                check_samples(model, images, k, first=done)
                if not warned and not torch.equal(batch_state, generators.get_state()):
                    warned = True
                    warnings.warn(
                        f"{model.name or type(model).__name__}.sample drew noise from `generator` as one plain "
                        "torch.Generator (torch.randn(..., generator=generator)), so its images change with the "
                        "batch size; draw through self.randn(n, ...) / self.rand(n, ...) instead",
                        BatchDependentSamplingWarning,
                        stacklevel=3,  # the caller of generate (list() adds no frame)
                    )
                batch = to_uint8(images).cpu()
            done += k
            if progress is not None:
                progress(k)
            yield batch
    finally:
        model.train(was_training)
        if compile:
            accel.release_compiled(model)


def save_grid(
    model: GenerativeModel, path: str | Path, n: int = 64, *, seed: int = 0, options: dict[str, Any] | None = None,
    nrow: int | None = None,
) -> Path:
    images = generate(model, n, seed=seed, options=options)
    return write_grid(images, path, nrow=nrow)


def write_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """Write ``uint8`` images as one PNG grid, atomically (no half-written file under ``path``).

    Args:
        images: ``uint8`` tensor ``N x C x H x W`` with 1, 3 or 4 channels, values ``0..255``.
        path: the ``.png`` file to write; its folder must exist.
        nrow: images per row; ``None`` makes the grid as square as possible.

    Returns:
        ``path`` as a `Path`.
    """
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


def _png(image: torch.Tensor) -> Any:
    from PIL import Image

    array = image.permute(1, 2, 0).numpy()
    return Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)


def write_folder(images: torch.Tensor, folder: str | Path) -> Path:
    """One PNG per image, ``000000.png`` onwards (each written under a temp name, then renamed)."""
    return stream_folder([images], folder)


def stream_folder(batches: Iterable[torch.Tensor], folder: str | Path) -> Path:
    """Write ``uint8 k x C x H x W`` batches as one PNG per image, ``000000.png`` onwards, as they come.

    Each PNG is saved under a hidden temp name (``.000123.png.tmp``) and renamed, so an interrupted
    run leaves only whole images under their final names (the temp file of the image being written
    is removed). Holds one batch at a time.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    i = 0
    for batch in batches:
        for image in batch:
            name = f"{i:06d}.png"
            tmp = folder / f".{name}.tmp"
            try:
                _png(image).save(tmp, format="PNG")
                os.replace(tmp, folder / name)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            i += 1
    return folder


def stream_npz(batches: Iterable[torch.Tensor], path: str | Path, shape: Sequence[int]) -> Path:
    """Write ``uint8`` batches as an ``.npz`` holding ``images`` of ``shape`` (``n x C x H x W``), as they come.

    The archive is a ZIP64 file (``zipfile``, deflated) whose ``images.npy`` member is written
    incrementally: numpy's ``.npy`` header with the final shape, then each batch's bytes, so memory
    holds one batch however large ``n`` is; ``numpy.load`` reads it like ``np.savez_compressed``'s.
    Written to a temp file beside ``path`` and renamed when complete (`zoo.fileio.atomic_write`):
    an interrupted run leaves no half file under ``path``. Raises `ValueError` when the
    batches do not add up to ``shape``.
    """
    import zipfile

    import numpy as np

    from zoo.fileio import atomic_write

    shape = tuple(int(s) for s in shape)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": shape}

    def write(f: Any) -> None:
        with (zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as archive,
              archive.open("images.npy", "w", force_zip64=True) as member):
            np.lib.format.write_array_header_1_0(member, header)
            count = 0
            for batch in batches:
                if tuple(batch.shape[1:]) != shape[1:] or batch.dtype != torch.uint8:
                    raise ValueError(f"batch of {tuple(batch.shape)} {batch.dtype} does not fit {shape} uint8")
                count += len(batch)
                if count > shape[0]:
                    raise ValueError(f"more than the {shape[0]} images the header promises")
                member.write(batch.contiguous().numpy().tobytes())
            if count != shape[0]:
                raise ValueError(f"{count} images written, the header promises {shape[0]}")

    return atomic_write(path, write)
