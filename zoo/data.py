"""Datasets: the types every provider returns, and the image readers every part of genzoo shares.

A dataset is held in memory as ``uint8`` tensors ``N x C x H x W`` (small image datasets fit, and
the loader is then never the bottleneck), with a fixed held-out split used for validation and as
the real reference set for metrics. This module has no providers and no registry: the built-in
datasets (``mnist-5k``, ``folder:PATH``, ...) are the ``zoo_datasets`` plugin, registered through the
same ``zoo_register_datasets`` hook a third-party plugin uses, and names are resolved by
:func:`zoo.factory.load_dataset`.

The readers (:func:`read_image_folder`, :func:`read_image_array`, :func:`images_from_array`) are the
one implementation both training data and ``zoo eval`` use, so a file is read the same way
everywhere: gray stays gray only when every image is gray, transparency is kept as a 4th channel,
16-bit images (files and ``uint16`` arrays) are scaled to 8 bits (never clipped), odd files are
skipped and every skipped or converted file is counted and reported (:class:`ReadReport`), lossy
files are warned about, arrays are never unpickled.
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

    ``backbone`` names the metrics backbone the dataset is scored with under ``--backbone auto``
    (one of :data:`zoo.metric_names.BACKBONES`, e.g. ``"lenet"`` for a labelled digit-like set,
    ``"inception"`` or ``"dinov2-vit-s-14"``); :func:`zoo.factory.load_dataset` records it in the
    loaded dataset's ``info["backbone"]``. ``None``: genzoo's rule (:func:`zoo.metrics.default_backbone`).
    """

    name: str
    load: Callable[[str | None, Path, bool], ImageDataset]
    summary: str = ""
    labelled: bool = False
    backbone: str | None = None

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

#: File types a folder reader opens, and the Pillow decoders it allows (nothing else is tried: an
#: EPS file named ``.png`` never reaches Ghostscript).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
PIL_FORMATS = ("PNG", "JPEG", "BMP", "WEBP", "GIF", "TIFF")
_GRAY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


class ImageReadWarning(UserWarning):
    """Files of an image folder were skipped or converted, or are lossy (see :class:`ReadReport`)."""


@dataclass
class ReadReport:
    """What a folder reader did with every file it found, by reason, with the files' relative paths.

    ``skipped``: files not read (hidden, empty, not an image, broken links, ...); ``converted``:
    files read with a change (16-bit scaled to 8 bits, CMYK to RGB, EXIF rotation, first frame of
    an animation, alpha added or dropped, ...); ``lossy``: JPEG and lossy WebP files, whose
    compression artefacts move FID (quality 75 raises ``fid_lenet`` of real digits from 3.10 to 4.02).
    """

    what: str
    read: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)
    converted: dict[str, list[str]] = field(default_factory=dict)
    lossy: list[str] = field(default_factory=list)

    def skip(self, reason: str, name: str) -> None:
        self.skipped.setdefault(reason, []).append(name)

    def convert(self, reason: str, name: str) -> None:
        self.converted.setdefault(reason, []).append(name)

    @staticmethod
    def _parts(groups: dict[str, list[str]]) -> str:
        def names(files: list[str]) -> str:
            shown = ", ".join(one_line(f) for f in files[:3])
            return shown + (f", ... {len(files) - 3:,} more" if len(files) > 3 else "")

        return "; ".join(f"{len(files):,} {reason} ({names(files)})" for reason, files in groups.items())

    def summary(self) -> str:
        """``"1,000 images read, 3 skipped: 2 empty files (a.png, b.png); 1 not an image (c.png)"``."""
        text = f"{self.what}: {self.read:,} images read"
        if self.skipped:
            text += f", {sum(map(len, self.skipped.values())):,} skipped: {self._parts(self.skipped)}"
        if self.converted:
            text += f"; {len(set().union(*self.converted.values())):,} converted: {self._parts(self.converted)}"
        return text

    def notes(self) -> list[str]:
        """The lines a reader warns with: the summary when anything was skipped or converted, and
        one line about lossy files."""
        out = [self.summary()] if self.skipped or self.converted else []
        if self.lossy:
            out.append(
                f"{self.what}: {len(self.lossy):,} of {self.read:,} images are lossy (JPEG or lossy WebP, e.g. "
                f"{one_line(self.lossy[0])}): compression artefacts change FID and the other metrics; prefer PNG"
            )
        return out


def _webp_is_lossy(path: Path) -> bool:
    """Whether a WebP file holds a lossy (``VP8 ``) rather than a lossless (``VP8L``) bitstream."""
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
            return False
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return False
            fourcc, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if fourcc == b"VP8 ":
                return True
            if fourcc == b"VP8L":
                return False
            f.seek(size + (size & 1), os.SEEK_CUR)


def image_files(root: Path, report: ReadReport | None = None) -> list[Path]:
    """Image files under ``root`` (recursively, sorted by path), by extension.

    Hidden files and folders (``.name``: ``.DS_Store``, macOS ``._x.png`` resource forks, ``.git``)
    are skipped, folders reached through symbolic links are not followed (a link may loop), links to
    files are followed, broken links and files with other extensions are skipped; each is counted
    in ``report``.
    """
    rep = report or ReadReport(str(root))
    found: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        base = Path(folder)
        for d in sorted(dirs):
            rel = str((base / d).relative_to(root))
            if d.startswith("."):
                rep.skip("hidden folders", rel)
            elif (base / d).is_symlink():
                rep.skip("linked folders (not followed)", rel)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (base / d).is_symlink())
        for name in sorted(files):
            path = base / name
            rel = str(path.relative_to(root))
            if name.startswith("."):
                rep.skip("hidden files", rel)
            elif path.suffix.lower() not in IMAGE_EXTENSIONS:
                rep.skip(f"other files (not {'/'.join(IMAGE_EXTENSIONS)})", rel)
            elif not path.exists():
                rep.skip("broken links", rel)
            elif not path.is_file():
                rep.skip("not regular files", rel)
            else:
                found.append(path)
    return sorted(found)


def _open_image(path: Path, rel: str, report: ReadReport) -> Any | None:
    """One file as a loaded Pillow image (first frame, EXIF-upright), or None (counted as skipped)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        if path.stat().st_size == 0:
            report.skip("empty files", rel)
            return None
        with Image.open(path, formats=list(PIL_FORMATS)) as im:
            if getattr(im, "n_frames", 1) > 1:
                report.convert("animations (first frame used)", rel)
                im.seek(0)
            im.load()
            fmt = im.format
            orientation = im.getexif().get(0x0112, 1)
            out = im.copy()
            if orientation not in (0, 1):
                out = ImageOps.exif_transpose(out)
                report.convert("rotated upright per EXIF orientation", rel)
    except Image.DecompressionBombError:
        report.skip(f"larger than Pillow's limit of {Image.MAX_IMAGE_PIXELS:,} pixels", rel)
        return None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        report.skip("not readable as PNG/JPEG/BMP/WebP/GIF/TIFF (corrupt, truncated or another format)", rel)
        return None
    if fmt == "JPEG" or (fmt == "WEBP" and _webp_is_lossy(path)):
        report.lossy.append(rel)
    return out


def _pixels(im: Any, rel: str, report: ReadReport) -> tuple[np.ndarray, bool]:
    """``(H x W x C uint8 array with C in 1, 3, 4, whether an alpha channel is present)`` for one image.

    16-bit (and 32-bit integer or float) gray is scaled from 0..65535 to 0..255, never clipped
    (values up to 255 in a 32-bit image are taken as 8-bit); palette images are expanded (with
    alpha when they have a transparent colour); CMYK, YCbCr, LAB and HSV become RGB.
    """
    mode = im.mode
    if mode in _WIDE_MODES:
        arr = np.asarray(im, dtype=np.float64)
        if not np.isfinite(arr).all():
            arr = np.nan_to_num(arr, nan=0.0, posinf=65535.0, neginf=0.0)
        if mode.startswith("I;16") or arr.max(initial=0) > 255:
            arr = arr.clip(0, 65535) * (255 / 65535)
            report.convert("16-bit scaled to 8 bits", rel)
        return np.round(arr.clip(0, 255)).astype(np.uint8)[..., None], False
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"), dtype=np.uint8)[..., None], False
    if mode in ("LA", "La"):
        arr = np.asarray(im.convert("LA"), dtype=np.uint8)
        return arr, True
    if mode in ("P", "PA"):
        report.convert("palette images expanded", rel)
        has_alpha = mode == "PA" or "transparency" in im.info
        return np.asarray(im.convert("RGBA" if has_alpha else "RGB"), dtype=np.uint8), has_alpha
    if mode in ("RGBA", "RGBa"):
        return np.asarray(im.convert("RGBA"), dtype=np.uint8), True
    if mode != "RGB":
        report.convert(f"{mode} converted to RGB", rel)
    return np.asarray(im.convert("RGB"), dtype=np.uint8), False


def _to_channels(arr: np.ndarray, has_alpha: bool, gray: bool, keep_alpha: bool) -> np.ndarray:
    """Bring one image to the folder's channels: 1 (gray), 3 (RGB) or 4 (RGBA)."""
    colour = arr[..., :-1] if has_alpha else arr
    alpha = arr[..., -1:] if has_alpha else np.full(arr.shape[:2] + (1,), 255, np.uint8)
    if gray and not keep_alpha:
        return colour[..., :1]
    if colour.shape[-1] == 1:
        colour = np.repeat(colour, 3, axis=-1)
    return np.concatenate([colour, alpha], axis=-1) if keep_alpha else colour


def read_image_folder(root: str | os.PathLike[str], *, square_size: int | str | None = None,
                      what: str | None = None, report: ReadReport | None = None) -> torch.Tensor:
    """Every image under ``root`` as ``uint8 N x C x H x W``, by one rule for training and metrics.

    * Channels: 1 when every image is gray (L, 1-bit, 16-bit, without transparency), 4 when some
      image has an alpha channel that is not fully opaque (images without one get alpha 255), 3
      otherwise (an all-opaque alpha is dropped).
    * 16-bit images are scaled to 8 bits (``round(v * 255 / 65535)``), never clipped; palette, CMYK
      and other modes are converted; EXIF orientation is applied; an animation gives its first frame.
    * Skipped, each counted: hidden files and folders, folders behind links, broken links, empty
      files, files that are not PNG/JPEG/BMP/WebP/GIF/TIFF (Pillow opens only those decoders),
      corrupt or truncated files, decompression bombs; files with other extensions.
    * Sizes: ``square_size=None`` keeps images as they are and requires one size for all (how
      generated images are scored); an int centre-crops each image square and resizes it to that
      size; ``"first"`` uses the first image's shorter side (how a training folder is read).

    What was skipped or converted is warned about once per call as an :class:`ImageReadWarning`
    (``"1,000 images read, 3 skipped: ..."``), and lossy files (JPEG, lossy WebP) once more;
    ``report`` (a :class:`ReadReport`) receives the details. Raises
    :class:`~zoo.errors.DataError` when no image can be read or sizes differ.
    """
    import warnings

    from PIL import Image

    folder = Path(root).expanduser()
    label = what or str(folder)
    if not folder.is_dir():
        raise DataError(f"{label}: no such directory")
    rep = report if report is not None else ReadReport(label)
    rep.what = label
    files = image_files(folder, rep)
    loaded: list[tuple[str, Any, np.ndarray, bool]] = []
    for path in files:
        rel = str(path.relative_to(folder))
        im = _open_image(path, rel, rep)
        if im is None:
            continue
        arr, has_alpha = _pixels(im, rel, rep)
        loaded.append((rel, im, arr, has_alpha))
    if not loaded:
        detail = f"; {rep.summary()}" if rep.skipped else ""
        raise DataError(f"{label}: no readable images ({', '.join(IMAGE_EXTENSIONS)}) found{detail}")
    gray = all(arr.shape[-1] - int(alpha) == 1 for _, _, arr, alpha in loaded)
    keep_alpha = any(alpha and bool((arr[..., -1] < 255).any()) for _, _, arr, alpha in loaded)
    first_w, first_h = loaded[0][1].size
    size = min(first_w, first_h) if square_size == "first" else square_size
    arrays = []
    for rel, _, arr, has_alpha in loaded:
        if has_alpha and not keep_alpha:
            rep.convert("fully opaque alpha channels dropped", rel)
        elif keep_alpha and not has_alpha:
            rep.convert("opaque alpha channels added (the folder has transparency)", rel)
        out = _to_channels(arr, has_alpha, gray, keep_alpha)
        h, w = out.shape[:2]
        if isinstance(size, int):
            if (w, h) != (size, size):
                im = Image.fromarray(out[..., 0] if out.shape[-1] == 1 else out)
                out = np.asarray(_center_square(im).resize((size, size), Image.Resampling.BILINEAR))
                out = out[..., None] if out.ndim == 2 else out
        elif (w, h) != (first_w, first_h):
            raise DataError(f"{label}: image {one_line(rel)} is {w}x{h}, the first image ({one_line(loaded[0][0])}) is "
                            f"{first_w}x{first_h}; generated images are scored at one size")
        arrays.append(out)
    rep.read = len(arrays)
    for note in rep.notes():
        warnings.warn(note, ImageReadWarning, stacklevel=2)
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
    elif arr.dtype == np.uint16:  # 16-bit images: scaled to 8 bits like 16-bit PNGs, never clipped
        arr = np.round(arr.astype(np.float64) * (255 / 65535)).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0 or arr.max() > 255:
            raise DataError(f"{what}: integer images must lie in [0, 255]")
        arr = arr.astype(np.uint8)
    else:
        raise DataError(f"{what}: unsupported image dtype {arr.dtype}")
    tensor = torch.from_numpy(np.ascontiguousarray(arr))
    check_images(tensor, what)
    return tensor
