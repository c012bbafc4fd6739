"""Image arrays: the checks every image tensor passes, ``.npz``/``.npy`` files read without
unpickling and bounded by their headers, labels, and the decode budget folders share.

Part of `zoo.data` (which re-exports every public name here).
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import DataError
from zoo.text import one_line, printable


def _shown(text: str) -> str:
    """A file name or value from the user on one line: control characters and newlines escaped."""
    return printable(str(text)).replace("\n", "\\n").replace("\t", "\\t")



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



#: The most bytes a folder may make the reader allocate: the decoded images summed, and the images
#: it returns. Set ``ZOO_MAX_DECODED_BYTES`` (a whole number of bytes) or pass ``max_bytes=`` to
#: change it.
MAX_DECODED_BYTES = 2**31


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


def read_image_array(path: str | os.PathLike[str], *, what: str | None = None, dataset: bool = False) -> tuple[torch.Tensor, np.ndarray | None]:
    """``(images, labels)`` from an ``.npz`` (key ``images``, else its only array besides
    ``labels``; optional ``labels``) or an ``.npy`` file, never unpickled. Raises
    [`DataError`][zoo.errors.DataError], also for several arrays none of which is ``images``,
    and with ``dataset`` (a training set, whose labels matter) for any array besides ``images``
    and ``labels``."""
    path = Path(path).expanduser()
    label = what or str(path)
    if path.is_dir():
        raise DataError(f"{label}: is a folder, not an .npz/.npy file (a folder of images is folder:PATH)")
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
                extra = [k for k in keys if k not in ("images", "labels")]
                if dataset and "images" in keys and extra:  # y_train beside images: labels would go unread
                    raise DataError(f"{label}: holds {', '.join(repr(k) for k in extra[:6])} besides 'images'; "
                                    "keep only 'images' (and the labels as 'labels')")
                if "images" not in keys and len([k for k in keys if k != "labels"]) > 1:
                    # x_train, y_train, ...: the first array is a guess, and a wrong one trains on labels
                    raise DataError(f"{label}: holds arrays {', '.join(repr(k) for k in keys[:6])} and none named "
                                    "'images'; name the image array 'images' (and the labels 'labels')")
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
