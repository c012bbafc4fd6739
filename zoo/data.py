"""Datasets: the types every provider returns, and the image readers every part of genzoo shares.

A dataset is held in memory as ``uint8`` tensors ``N x C x H x W`` (small image datasets fit, and
the loader is then never the bottleneck), with a fixed held-out split used for validation and as
the real reference set for metrics. This module has no providers and no registry: the built-in
datasets (``mnist-5k``, ``folder:PATH``, ...) are the ``zoo_datasets`` plugin, registered through the
same ``zoo_register_datasets`` hook a third-party plugin uses, and names are resolved by
:func:`zoo.factory.load_dataset`.

The readers (:func:`read_image_folder`, :func:`read_image_array`, :func:`images_from_array`) are the
one implementation both training data and ``zoo eval`` use, so a file is read the same way
everywhere: gray stays gray only when every image is gray, 16-bit images are scaled to 8 bits
(never clipped), arrays are never unpickled.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import DataError
from zoo.text import one_line

DEFAULT_DATASET = "mnist-5k"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass
class ImageDataset:
    """An in-memory image dataset with a fixed held-out split (all ``uint8``, ``N x C x H x W``)."""

    name: str
    train: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    num_classes: int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    _fingerprint: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            check_images(getattr(self, split), f"{self.name} {split} split")
        if self.train.shape[1:] != self.test.shape[1:]:
            raise DataError(f"{self.name}: train and test images differ in shape")
        if len(self.test) == 0 or len(self.train) == 0:
            raise DataError(f"{self.name}: both splits need at least one image")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.shape[1:]
        return int(c), int(h), int(w)

    def fingerprint(self) -> str:
        """A content hash of both splits: metric caches and protocols key on it.

        Computed once per dataset object (the splits are treated as immutable) and carried over by
        :meth:`to`, so evaluating many models does not re-hash the data.
        """
        if self._fingerprint is None:
            h = hashlib.sha256()
            for t in (self.train, self.test):
                h.update(str(tuple(t.shape)).encode())
                h.update(t.contiguous().cpu().numpy().tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def to(self, device: torch.device | str) -> ImageDataset:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return ImageDataset(
            self.name, self.train.to(device), self.test.to(device), move(self.train_labels),
            move(self.test_labels), self.num_classes, dict(self.info), self._fingerprint,
        )


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset.

    ``load(arg, data_dir, download)`` returns an :class:`ImageDataset`. For a ``prefix`` spec such as
    ``folder:`` the name ends with a colon and ``arg`` is what follows it (a path); otherwise ``arg``
    is ``None``.
    """

    name: str
    load: Callable[[str | None, Path, bool], ImageDataset]
    summary: str = ""
    labelled: bool = False

    @property
    def prefix(self) -> bool:
        return self.name.endswith(":")


def check_images(images: Any, what: str) -> None:
    """Refuse anything but a finite ``uint8`` tensor ``N x C x H x W`` with 1, 3 or 4 channels."""
    if not isinstance(images, torch.Tensor):
        raise DataError(f"{what}: expected a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise DataError(f"{what}: expected uint8 images, got {images.dtype}")
    if images.ndim != 4:
        raise DataError(f"{what}: expected N x C x H x W images, got shape {tuple(images.shape)}")
    if images.shape[1] not in (1, 3, 4):
        raise DataError(f"{what}: expected 1, 3 or 4 channels, got {images.shape[1]}")
    if images.shape[2] < 4 or images.shape[3] < 4:
        raise DataError(f"{what}: images of {images.shape[2]}x{images.shape[3]} are too small")


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` to float32 ``[-1, 1]``, the range models train on."""
    return images.float().div_(127.5).sub_(1.0)


def resize_dataset(ds: ImageDataset, size: int) -> ImageDataset:
    if size < 4 or size > 1024:
        raise DataError(f"image size must be between 4 and 1024, got {size}")
    return ImageDataset(
        ds.name, resize_images(ds.train, size), resize_images(ds.test, size), ds.train_labels,
        ds.test_labels, ds.num_classes, {**ds.info, "resized_to": size},
    )


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear, antialiased resize of uint8 images to ``size x size``."""
    import torch.nn.functional as F

    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


def split_holdout(
    images: torch.Tensor, labels: torch.Tensor | None, test_fraction: float, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """A fixed split; stratified by label when labels exist, so every class is held out equally."""
    g = torch.Generator().manual_seed(seed)
    if labels is None:
        perm = torch.randperm(len(images), generator=g)
        n_test = max(1, int(round(len(images) * test_fraction)))
        test_idx, train_idx = perm[:n_test], perm[n_test:]
    else:
        test_parts, train_parts = [], []
        for c in torch.unique(labels):
            idx = torch.nonzero(labels == c).flatten()
            idx = idx[torch.randperm(len(idx), generator=g)]
            n_test = max(1, int(round(len(idx) * test_fraction)))
            test_parts.append(idx[:n_test])
            train_parts.append(idx[n_test:])
        # Shuffle so that neither split is sorted by label.
        test_idx = torch.cat(test_parts)[torch.randperm(sum(len(p) for p in test_parts), generator=g)]
        train_idx = torch.cat(train_parts)[torch.randperm(sum(len(p) for p in train_parts), generator=g)]
    pick = lambda t, i: None if t is None else t[i]  # noqa: E731
    return images[train_idx], images[test_idx], pick(labels, train_idx), pick(labels, test_idx)




# -- readers (training data and metrics alike) ------------------------------------------------

_GRAY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "F")
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L")


def _to_uint8_array(im: Any, gray: bool) -> np.ndarray:
    """One Pillow image as ``uint8`` H x W (gray) or H x W x 3, 16-bit values scaled, not clipped."""
    if gray and im.mode in _WIDE_MODES:
        arr = np.asarray(im, dtype=np.int64)
        # 16-bit sources span 0..65535; Pillow's convert("L") would clip them at 255.
        if im.mode != "I" or arr.max(initial=0) > 255:
            arr = np.round(arr.clip(0, 65535) * (255 / 65535))
        return arr.astype(np.uint8)
    return np.asarray(im.convert("L" if gray else "RGB"), dtype=np.uint8)


def image_files(root: Path) -> list[Path]:
    """Image files under ``root`` (recursively, sorted by path), by extension."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def read_image_folder(root: str | os.PathLike[str], *, square_size: int | str | None = None,
                      what: str | None = None) -> torch.Tensor:
    """Every image under ``root`` as ``uint8 N x C x H x W``.

    Images are gray (1 channel) when every image is gray, RGB otherwise (an alpha channel is
    dropped). ``square_size=None`` keeps images as they are and requires one size for all (how
    generated images are scored); an int centre-crops each image square and resizes it to that
    size; ``"first"`` uses the first image's shorter side (how a training folder is read).

    Raises :class:`~zoo.errors.DataError` naming the file for anything unreadable.
    """
    from PIL import Image, UnidentifiedImageError

    folder = Path(root).expanduser()
    label = what or str(folder)
    if not folder.is_dir():
        raise DataError(f"{label}: no such directory")
    files = image_files(folder)
    if not files:
        raise DataError(f"{label}: no images ({', '.join(IMAGE_EXTENSIONS)}) found")
    images: list[Any] = []
    for path in files:
        try:
            with Image.open(path) as im:
                im.load()
                images.append(im.copy())
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DataError(f"{label}: cannot read image {path.name} ({one_line(exc)})") from None
    gray = all(im.mode in _GRAY_MODES for im in images)
    size = min(images[0].size) if square_size == "first" else square_size
    arrays = []
    for path, im in zip(files, images, strict=True):
        if isinstance(size, int):
            im = _center_square(im).resize((size, size), Image.Resampling.BILINEAR)
        elif im.size != images[0].size:
            w, h = images[0].size
            raise DataError(f"{label}: image {path.name} is {im.size[0]}x{im.size[1]}, the first image is {w}x{h}")
        arrays.append(_to_uint8_array(im, gray))
    return images_from_array(np.stack(arrays), label)


def _center_square(im: Any) -> Any:
    w, h = im.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return im.crop((left, top, left + s, top + s))


def read_image_array(path: str | os.PathLike[str], *, what: str | None = None) -> tuple[torch.Tensor, np.ndarray | None]:
    """``(images, labels)`` from an ``.npz`` (key ``images``, else the first array; optional
    ``labels``) or an ``.npy`` file, never unpickled. Raises :class:`~zoo.errors.DataError`."""
    path = Path(path).expanduser()
    label = what or str(path)
    if not path.is_file():
        raise DataError(f"{label}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                keys = list(loaded.keys())
                if not keys:
                    raise DataError(f"{label}: the archive holds no arrays")
                array = loaded["images"] if "images" in keys else loaded[keys[0]]
                labels = loaded["labels"] if "labels" in keys else None
        else:
            array, labels = loaded, None
    except DataError:
        raise
    except Exception as exc:  # zip errors, pickled object arrays, truncated files
        raise DataError(f"{label}: cannot read the array ({one_line(exc)})") from None
    return images_from_array(array, label), labels


def images_from_array(array: Any, what: str) -> torch.Tensor:
    """Normalise an array of images to ``uint8 N x C x H x W`` or raise a :class:`DataError`."""
    arr = np.asarray(array)
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4 and arr.shape[-1] in (1, 3, 4) and arr.shape[1] not in (1, 3, 4):
        arr = arr.transpose(0, 3, 1, 2)
    if arr.ndim != 4:
        raise DataError(f"{what}: expected N x H x W or N x H x W x C images, got shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{what}: no images (array shape {arr.shape})")
    if arr.dtype == np.uint8:
        pass
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise DataError(f"{what}: images contain NaN or infinite values")
        if arr.min() < 0 or arr.max() > 1:
            raise DataError(f"{what}: float images must lie in [0, 1], got [{arr.min():.3g}, {arr.max():.3g}]")
        arr = np.round(arr * 255).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0 or arr.max() > 255:
            raise DataError(f"{what}: integer images must lie in [0, 255]")
        arr = arr.astype(np.uint8)
    else:
        raise DataError(f"{what}: unsupported image dtype {arr.dtype}")
    tensor = torch.from_numpy(np.ascontiguousarray(arr))
    check_images(tensor, what)
    return tensor
