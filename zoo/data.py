"""Datasets: the types every provider returns, and the image readers every part of genzoo shares.

A dataset is held in memory as ``uint8`` tensors ``N x C x H x W`` (small image datasets fit, and
the loader is then never the bottleneck), with a fixed held-out split used for validation and as
the real reference set for metrics. This module has no providers and no registry: the built-in
datasets (``mnist-5k``, ``folder:PATH``, ...) are the ``zoo_datasets`` plugin, registered through the
same ``zoo_register_datasets`` hook a third-party plugin uses, and names are resolved by
[`zoo.factory.load_dataset`][zoo.factory.load_dataset].

The readers (`read_image_folder`, `read_image_array`, `images_from_array`) are the
one implementation both training data and ``zoo eval`` use, so a file is read the same way
everywhere: gray stays gray only when every image is gray, transparency is kept as a 4th channel,
16-bit images (files and ``uint16`` arrays) are scaled to 8 bits (never clipped), odd files are
skipped and every skipped or converted file is counted and reported (`ReadReport`), lossy
files are warned about, arrays are never unpickled.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.dataspec import DatasetSpec  # noqa: F401  (declared torch-free; public here too)
from zoo.deprecation import moved_names
from zoo.errors import DataError

# The readers live in their own modules; every public name stays importable from zoo.data.
from zoo.image_arrays import (  # noqa: F401
    MAX_DECODED_BYTES,
    MAX_NUM_CLASSES,
    check_images,
    decode_budget,
    images_from_array,
    labels_from_array,
    read_image_array,
)
from zoo.image_folder import (  # noqa: F401
    IMAGE_EXTENSIONS,
    PIL_FORMATS,
    ImageReadWarning,
    ReadReport,
    image_files,
)

DEFAULT_DATASET = "mnist-5k"



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
    _labelled_fingerprint: str | None = field(default=None, repr=False, compare=False)

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
        """A content hash of both splits' images (16 hex digits): protocols and metric caches key on it.

        Images only, so existing protocol hashes stay put; labels matter only to the lenet backbone,
        whose weights (and so the protocol's ``weights_sha256``) follow `labelled_fingerprint`.
        Computed once per dataset object (the splits are treated as immutable) and carried over by
        `to`, so evaluating many models does not re-hash the data.
        """
        if self._fingerprint is None:
            h = hashlib.sha256()
            for t in (self.train, self.test):
                h.update(str(tuple(t.shape)).encode())
                h.update(t.contiguous().cpu().numpy().tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def labelled_fingerprint(self) -> str:
        """`fingerprint` extended by the labels and class count (16 hex digits); equal to it
        for unlabelled data. The lenet backbone's cache and the shipped weights key on it: labels
        train that classifier, so relabelled data (0-9 as 1-10) is another classifier."""
        if self._labelled_fingerprint is None:
            if self.train_labels is None and self.test_labels is None:
                self._labelled_fingerprint = self.fingerprint()
            else:
                h = hashlib.sha256(f"{self.fingerprint()}|labels|{self.num_classes}".encode())
                for y in (self.train_labels, self.test_labels):
                    y = torch.empty(0, dtype=torch.int64) if y is None else y
                    h.update(str(tuple(y.shape)).encode())
                    h.update(y.to(torch.int64).contiguous().cpu().numpy().tobytes())
                self._labelled_fingerprint = h.hexdigest()[:16]
        return self._labelled_fingerprint

    @property
    def identity_name(self) -> str:
        """The name protocols, result rows and backbone caches record: `name`, except for a
        dataset named by a path (``npz:PATH``, ``folder:PATH``), which is its prefix and content
        fingerprint, so a relative path, an absolute path and a copy are one dataset."""
        prefix = self.info.get("named_by_path")
        return f"{prefix}{self.fingerprint()}" if isinstance(prefix, str) and prefix else self.name

    def to(self, device: torch.device | str) -> ImageDataset:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return ImageDataset(
            self.name, self.train.to(device), self.test.to(device), move(self.train_labels),
            move(self.test_labels), self.num_classes, dict(self.info), self._fingerprint,
            self._labelled_fingerprint,
        )



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



#: The largest image side genzoo reads a folder at, or builds a model for (a checkpoint claiming
#: larger images is refused before anything is built, see [`zoo.factory`][zoo.factory]).
MAX_IMAGE_SIDE = 4096


def read_image_folder(root: str | os.PathLike[str], *, square_size: int | str | None = None,
                      what: str | None = None, report: ReadReport | None = None,
                      max_bytes: int | None = None) -> torch.Tensor:
    """Every image under ``root`` as ``uint8 N x C x H x W``, by one rule for training and metrics.

    * Channels: 1 when every image is gray (L, 1-bit, 16-bit, without transparency), 4 when some
      image has an alpha channel that is not fully opaque (images without one get alpha 255), 3
      otherwise (an all-opaque alpha is dropped).
    * 16-bit images are scaled to 8 bits (``round(v * 255 / 65535)``), never clipped; palette, CMYK
      and other modes are converted; EXIF orientation is applied; an animation gives its first frame.
    * Skipped, each counted: hidden files and folders, folders behind links, broken links, empty
      files, files that are not PNG/JPEG/BMP/WebP/GIF/TIFF (Pillow opens only those decoders),
      corrupt or truncated files; files with other extensions.
    * Sizes: ``square_size=None`` keeps images as they are and requires one size for all (how
      generated images are scored); an int (1 to `MAX_IMAGE_SIDE`) centre-crops each image
      square and resizes it to that size; ``"smallest"`` (``"first"`` is its old name) uses the
      smallest shorter side of all images, at most `MAX_IMAGE_SIDE` (how a training folder is
      read), so a folder is never upsampled to its largest image.
    * Untrusted folders are bounded before any pixel is decoded: every file's header is read first,
      and a folder whose images would decode to more than ``max_bytes`` (default
      `decode_budget`: ``ZOO_MAX_DECODED_BYTES`` or `MAX_DECODED_BYTES`, 2 GiB; Pillow's
      in-memory sizes, 1 to 4 bytes a pixel), or whose result would exceed it, is refused. Images
      are then decoded and resized one at a time into the result, so the peak is the result (a
      third more while an opaque alpha channel is still possible) plus one decoded image.

    What was skipped or converted is warned about once per call as an `ImageReadWarning`
    (``"1,000 images read, 3 skipped: ..."``), and lossy files (JPEG, lossy WebP) once more;
    ``report`` (a `ReadReport`) receives the details. Raises a one-line
    [`DataError`][zoo.errors.DataError] when no image can be read, sizes differ (``square_size=None``),
    the folder is over the budget, or a file is a decompression bomb (more pixels than Pillow's
    ``Image.MAX_IMAGE_PIXELS``; the message names the file).
    """
    import warnings

    from zoo import image_folder as phases

    folder = Path(root).expanduser()
    label = what or str(folder)
    if not folder.is_dir():
        raise DataError(f"{label}: no such directory")
    budget = decode_budget(max_bytes)
    rep = report if report is not None else ReadReport(label)
    rep.what = label
    headers = phases.read_headers(folder, rep, label)
    size = phases.target_size(headers, square_size, label, MAX_IMAGE_SIDE)
    channels = phases.check_budget(headers, size, budget, label)
    decoded = phases.decode(headers, size, channels, rep, label)
    out = phases.settle_channels(decoded, rep)
    for note in rep.notes():
        warnings.warn(note, ImageReadWarning, stacklevel=2)
    return images_from_array(out, label)


# Moved in 0.2.0 (kept for at least one minor release; see zoo.deprecation).
__getattr__ = moved_names(__name__, {"load_dataset": "zoo.factory"}, since="0.2.0")
