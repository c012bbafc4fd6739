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
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.dataspec import DatasetSpec  # noqa: F401  (declared torch-free; public here too)
from zoo.deprecation import moved_names
from zoo.errors import DataError
from zoo.text import one_line, printable

DEFAULT_DATASET = "mnist-5k"


def _shown(text: str) -> str:
    """A file name or value from the user on one line: control characters and newlines escaped."""
    return printable(str(text)).replace("\n", "\\n").replace("\t", "\\t")


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
    """Files of an image folder were skipped or converted, or are lossy (see `ReadReport`)."""


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
            shown = ", ".join(_shown(f) for f in files[:3])
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
                f"{_shown(self.lossy[0])}): compression artefacts change FID and the other metrics; prefer PNG"
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


@dataclass(frozen=True)
class _Header:
    """What a file's header says, before any pixel is decoded."""

    path: Path
    rel: str
    width: int
    height: int
    mode: str
    alpha: bool  # the decoded image will (probably) carry an alpha channel
    gray: bool  # ... and one colour channel

    @property
    def decoded_bytes(self) -> int:
        """What Pillow holds for the decoded image: 1 byte a pixel for 1/L/P, 2 for 16-bit, else 4."""
        per_pixel = 1 if self.mode in ("1", "L", "P") else 2 if self.mode.startswith("I;16") else 4
        return self.width * self.height * per_pixel


_UNREADABLE = "not readable as PNG/JPEG/BMP/WebP/GIF/TIFF (corrupt, truncated or another format)"


def _bomb(label: str, rel: str, size: tuple[int, int] | None) -> DataError:
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS or 0
    what = f"is {size[0]}x{size[1]} = {size[0] * size[1]:,} pixels" if size else f"has over {2 * limit:,} pixels"
    return DataError(f"{label}: {_shown(rel)} {what}, over the limit of {limit:,} pixels per image (a decompression "
                     "bomb?); remove or shrink it")


def _probe(path: Path, rel: str, report: ReadReport, label: str) -> _Header | None:
    """A file's header (size, mode) without decoding its pixels, or None (counted as skipped).

    Raises [`DataError`][zoo.errors.DataError] naming the file for a decompression bomb: more pixels than
    Pillow's ``Image.MAX_IMAGE_PIXELS`` (89 million by default).
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        if path.stat().st_size == 0:
            report.skip("empty files", rel)
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below, as an error
            with Image.open(path, formats=list(PIL_FORMATS)) as im:
                (w, h), mode, info = im.size, im.mode, im.info
    except Image.DecompressionBombError:
        raise _bomb(label, rel, None) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        report.skip(_UNREADABLE, rel)
        return None
    if Image.MAX_IMAGE_PIXELS is not None and w * h > Image.MAX_IMAGE_PIXELS:
        raise _bomb(label, rel, (w, h))
    alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa") or (mode == "P" and "transparency" in info)
    gray = mode in _GRAY_MODES or mode in ("LA", "La")
    return _Header(path, rel, w, h, mode, alpha, gray)


def _open_image(path: Path, rel: str, report: ReadReport, label: str) -> Any | None:
    """One file as a loaded Pillow image (first frame, EXIF-upright), or None (counted as skipped).

    Raises [`DataError`][zoo.errors.DataError] naming the file for a decompression bomb.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path, formats=list(PIL_FORMATS)) as im:
            if Image.MAX_IMAGE_PIXELS is not None and im.size[0] * im.size[1] > Image.MAX_IMAGE_PIXELS:
                raise _bomb(label, rel, im.size)  # replaced since its header was read
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
        raise _bomb(label, rel, None) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        report.skip(_UNREADABLE, rel)
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


#: The most bytes a folder may make the reader allocate: the decoded images summed, and the images
#: it returns. Set ``ZOO_MAX_DECODED_BYTES`` (a whole number of bytes) or pass ``max_bytes=`` to
#: change it.
MAX_DECODED_BYTES = 2**31

#: The largest image side genzoo reads a folder at, or builds a model for (a checkpoint claiming
#: larger images is refused before anything is built, see [`zoo.factory`][zoo.factory]).
MAX_IMAGE_SIDE = 4096


def _bytes_text(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,} bytes"


def decode_budget(max_bytes: int | None = None) -> int:
    """``max_bytes``, else ``ZOO_MAX_DECODED_BYTES``, else `MAX_DECODED_BYTES` (bytes).

    Raises [`UsageError`][zoo.errors.UsageError] when the variable is not a positive whole number.
    """
    from zoo.errors import UsageError

    if max_bytes is not None:
        return int(max_bytes)
    env = os.environ.get("ZOO_MAX_DECODED_BYTES", "").strip()
    if not env:
        return MAX_DECODED_BYTES
    try:
        value = int(env.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"ZOO_MAX_DECODED_BYTES must be a positive whole number of bytes, got {_shown(env)!r}")
    return value


def _widen(buf: np.ndarray, filled: int, channels: int) -> np.ndarray:
    """The first ``filled`` images of ``buf`` (``N x c x H x W``, c in 1, 3) with ``channels`` (3, 4)."""
    out = np.empty((buf.shape[0], channels, *buf.shape[2:]), np.uint8)
    out[:filled, :3] = buf[:filled, :3]  # gray broadcasts to RGB
    if channels == 4:
        out[:filled, 3] = 255
    return out


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

    from PIL import Image

    folder = Path(root).expanduser()
    label = what or str(folder)
    if not folder.is_dir():
        raise DataError(f"{label}: no such directory")
    budget = decode_budget(max_bytes)
    rep = report if report is not None else ReadReport(label)
    rep.what = label
    headers = []
    for path in image_files(folder, rep):
        header = _probe(path, str(path.relative_to(folder)), rep, label)
        if header is not None:
            headers.append(header)
    if not headers:
        detail = f"; {rep.summary()}" if rep.skipped else ""
        raise DataError(f"{label}: no readable images ({', '.join(IMAGE_EXTENSIONS)}) found{detail}")
    first = headers[0]
    if square_size in ("smallest", "first"):
        size: int | None = min(MAX_IMAGE_SIDE, *(min(h.width, h.height) for h in headers))
    elif square_size is None:
        size = None
        for h in headers[1:]:  # an EXIF rotation swaps the sides; it is checked again once decoded
            if sorted((h.width, h.height)) != sorted((first.width, first.height)):
                raise DataError(f"{label}: image {_shown(h.rel)} is {h.width}x{h.height}, the first image "
                                f"({_shown(first.rel)}) is {first.width}x{first.height}; generated images are "
                                "scored at one size")
    elif isinstance(square_size, int) and not isinstance(square_size, bool) and 1 <= square_size <= MAX_IMAGE_SIDE:
        size = square_size
    else:
        raise DataError(f"{label}: square size must be 1 to {MAX_IMAGE_SIDE}, 'smallest' or None, got {square_size!r}")
    channels = 4 if any(h.alpha for h in headers) else 1 if all(h.gray for h in headers) else 3
    decoded = sum(h.decoded_bytes for h in headers)
    result = len(headers) * channels * (size * size if size is not None else first.width * first.height)
    if max(decoded, result) > budget:
        raise DataError(f"{label}: {len(headers):,} images would decode to {_bytes_text(max(decoded, result))}, "
                        f"over the limit of {_bytes_text(budget)}; use fewer or smaller images, or raise "
                        "ZOO_MAX_DECODED_BYTES (bytes)")

    buf: np.ndarray | None = None
    n = 0
    alphas: list[tuple[str, bool]] = []
    gray = True
    keep_alpha = False
    ref: tuple[str, int, int] | None = None
    for header in headers:
        rel = header.rel
        im = _open_image(header.path, rel, rep, label)
        if im is None:
            continue
        arr, has_alpha = _pixels(im, rel, rep)
        del im
        colours = arr.shape[-1] - int(has_alpha)
        gray = gray and colours == 1
        keep_alpha = keep_alpha or (has_alpha and bool((arr[..., -1] < 255).any()))
        h, w = arr.shape[:2]
        if size is None:
            if ref is None:
                ref = (rel, w, h)
            elif (w, h) != ref[1:]:
                raise DataError(f"{label}: image {_shown(rel)} is {w}x{h}, the first image ({_shown(ref[0])}) is "
                                f"{ref[1]}x{ref[2]}; generated images are scored at one size")
        elif (w, h) != (size, size):
            # Resized in its own channels: bilinear works channel by channel (with alpha premultiplied),
            # so this equals resizing after the folder's channel rule is applied.
            square = _center_square(Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr))
            arr = np.asarray(square.resize((size, size), Image.Resampling.BILINEAR))
            arr = arr[..., None] if arr.ndim == 2 else arr
        if buf is None:
            buf = np.empty((len(headers), channels, *arr.shape[:2]), np.uint8)
        elif buf.shape[1] < 4 and (has_alpha or colours > buf.shape[1]):  # a mode its header did not tell
            buf = _widen(buf, n, 4 if has_alpha else 3)
        dst = buf[n]
        colour = np.moveaxis(arr[..., :colours], -1, 0)
        if buf.shape[1] == 1:
            dst[0] = colour[0]
        else:
            dst[:3] = colour
        if buf.shape[1] == 4:
            dst[3] = arr[..., -1] if has_alpha else 255
        alphas.append((rel, has_alpha))
        n += 1
        del arr
    if buf is None:
        detail = f"; {rep.summary()}" if rep.skipped else ""
        raise DataError(f"{label}: no readable images ({', '.join(IMAGE_EXTENSIONS)}) found{detail}")
    for rel, has_alpha in alphas:
        if has_alpha and not keep_alpha:
            rep.convert("fully opaque alpha channels dropped", rel)
        elif keep_alpha and not has_alpha:
            rep.convert("opaque alpha channels added (the folder has transparency)", rel)
    final = 4 if keep_alpha else 1 if gray else 3
    per_old, per_new = buf[0].size, buf[0].size // buf.shape[1] * final
    if final < buf.shape[1]:
        # Keep the first ``final`` channels of each image, in place: no second copy of the folder.
        flat = buf.reshape(-1)
        for i in range(1, n):
            flat[i * per_new:(i + 1) * per_new] = flat[i * per_old:i * per_old + per_new].copy()
    out = buf.reshape(-1)[: n * per_new].reshape(n, final, *buf.shape[2:])
    rep.read = n
    for note in rep.notes():
        warnings.warn(note, ImageReadWarning, stacklevel=2)
    return images_from_array(out, label)


def _center_square(im: Any) -> Any:
    w, h = im.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return im.crop((left, top, left + s, top + s))


def _npy_header_bytes(fp: Any) -> int:
    """Bytes the ``.npy`` array whose header starts at ``fp`` decodes to (the header only is read)."""
    version = np.lib.format.read_magic(fp)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(fp)
    return math.prod(int(s) for s in shape) * int(dtype.itemsize)  # Python ints: no overflow


def _check_array_sizes(path: Path, label: str, budget: int) -> None:
    """Refuse, from the ``.npy`` headers alone, an ``.npz``/``.npy`` whose arrays decode to more
    than ``budget`` bytes (a 4 MB ``.npz`` of zeros can hold a 4 GB array). Raises DataError."""
    arrays: list[tuple[str, int]] = []
    try:
        with path.open("rb") as fh:
            magic = fh.read(6)
            fh.seek(0)
            if magic.startswith(b"PK\x03\x04"):
                with zipfile.ZipFile(fh) as zf:
                    for info in zf.infolist():
                        if info.filename.endswith(".npy"):
                            with zf.open(info) as member:
                                arrays.append((info.filename[:-4], _npy_header_bytes(member)))
            elif magic == np.lib.format.MAGIC_PREFIX:
                arrays.append(("array", _npy_header_bytes(fh)))
    except Exception as exc:  # a damaged header or zip: one line, like np.load's own errors below
        raise DataError(f"{label}: cannot read the array ({one_line(exc)})") from None
    if len(arrays) > 1:  # only the arrays read_image_array loads: images (else the first) and labels
        first = next((a for a in arrays if a[0] == "images"), arrays[0])
        arrays = [first, *(a for a in arrays if a[0] == "labels" and a is not first)]
    total = sum(size for _, size in arrays)
    if total > budget:
        name, size = max(arrays, key=lambda a: a[1])
        raise DataError(f"{label}: array {_shown(name)!r} would decode to {_bytes_text(size)}"
                        f"{f' ({_bytes_text(total)} in all)' if len(arrays) > 1 else ''}, over the limit of "
                        f"{_bytes_text(budget)}; use a smaller array, or raise ZOO_MAX_DECODED_BYTES (bytes)")


def read_image_array(path: str | os.PathLike[str], *, what: str | None = None) -> tuple[torch.Tensor, np.ndarray | None]:
    """``(images, labels)`` from an ``.npz`` (key ``images``, else the first array; optional
    ``labels``) or an ``.npy`` file, never unpickled. Raises [`DataError`][zoo.errors.DataError]."""
    path = Path(path).expanduser()
    label = what or str(path)
    if not path.is_file():
        raise DataError(f"{label}: no such file")
    _check_array_sizes(path, label, decode_budget())
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


#: The most classes a labelled dataset may have: labels are class indices ``0 .. MAX_NUM_CLASSES - 1``
#: (a classifier over them is built for the metrics, so a label of 10**12 must not reach it).
MAX_NUM_CLASSES = 100_000


def labels_from_array(labels: Any, what: str) -> torch.Tensor:
    """Class labels as ``int64`` of shape ``N``, or a one-line `DataError`.

    Labels must be whole numbers (any integer dtype, or floats holding whole numbers) in
    ``0 .. MAX_NUM_CLASSES - 1``; negative, huge, fractional, non-finite or non-numeric labels and
    labels that are not one per image (``N`` or ``N x 1``) are refused.
    """
    arr = np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"{what}: labels must be one number per image, got shape {arr.shape}")
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise DataError(f"{what}: labels must be whole numbers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and arr.size and not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
        raise DataError(f"{what}: labels must be whole numbers, got NaN, infinite or fractional values")
    if arr.size and (arr.min() < 0 or arr.max() >= MAX_NUM_CLASSES):
        raise DataError(f"{what}: labels must be class indices 0 to {MAX_NUM_CLASSES - 1:,}, got "
                        f"{arr.min():.15g} to {arr.max():.15g}")
    return torch.from_numpy(arr.astype(np.int64))


def images_from_array(array: Any, what: str) -> torch.Tensor:
    """Normalise an array of images to ``uint8 N x C x H x W`` or raise a `DataError`."""
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


# Moved in 0.2.0 (kept for at least one minor release; see zoo.deprecation).
__getattr__ = moved_names(__name__, {"load_dataset": "zoo.factory"}, since="0.2.0")
