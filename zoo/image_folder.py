"""Image folders: every image under a folder read by one rule, in phases: list the files, read
their headers, choose the size, check the decode budget, decode into one buffer, settle channels.

Part of `zoo.data` (whose `read_image_folder` is the entry point, with its
rules). Hostile folders are expected: headers are read before any pixel, and each skipped or
converted file is counted in a `ReadReport`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import DataError
from zoo.image_arrays import _bytes_text, _shown

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


def _widen(buf: np.ndarray, filled: int, channels: int) -> np.ndarray:
    """The first ``filled`` images of ``buf`` (``N x c x H x W``, c in 1, 3) with ``channels`` (3, 4)."""
    out = np.empty((buf.shape[0], channels, *buf.shape[2:]), np.uint8)
    out[:filled, :3] = buf[:filled, :3]  # gray broadcasts to RGB
    if channels == 4:
        out[:filled, 3] = 255
    return out


def _center_square(im: Any) -> Any:
    w, h = im.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return im.crop((left, top, left + s, top + s))


# -- the phases of zoo.data.read_image_folder, in order ------------------------------------------


def read_headers(folder: Path, rep: ReadReport, label: str) -> list[_Header]:
    """The header of every readable image under ``folder`` (no pixel decoded); DataError if none."""
    headers = []
    for path in image_files(folder, rep):
        header = _probe(path, str(path.relative_to(folder)), rep, label)
        if header is not None:
            headers.append(header)
    if not headers:
        _no_images(label, rep)
    return headers


def _no_images(label: str, rep: ReadReport) -> None:
    detail = f"; {rep.summary()}" if rep.skipped else ""
    raise DataError(f"{label}: no readable images ({', '.join(IMAGE_EXTENSIONS)}) found{detail}")


def target_size(headers: list[_Header], square_size: int | str | None, label: str, max_side: int) -> int | None:
    """The side images are read at (None: as they are, one size for all); DataError otherwise."""
    first = headers[0]
    if square_size in ("smallest", "first"):
        return min(max_side, *(min(h.width, h.height) for h in headers))
    if square_size is None:
        for h in headers[1:]:  # an EXIF rotation swaps the sides; it is checked again once decoded
            if sorted((h.width, h.height)) != sorted((first.width, first.height)):
                raise DataError(f"{label}: image {_shown(h.rel)} is {h.width}x{h.height}, the first image "
                                f"({_shown(first.rel)}) is {first.width}x{first.height}; generated images are "
                                "scored at one size")
        return None
    if isinstance(square_size, int) and not isinstance(square_size, bool) and 1 <= square_size <= max_side:
        return square_size
    raise DataError(f"{label}: square size must be 1 to {max_side}, 'smallest' or None, got {square_size!r}")


def check_budget(headers: list[_Header], size: int | None, budget: int, label: str) -> int:
    """The channels the headers promise (1, 3 or 4); DataError when decoding the images, or the
    result, would take more than ``budget`` bytes."""
    first = headers[0]
    channels = 4 if any(h.alpha for h in headers) else 1 if all(h.gray for h in headers) else 3
    decoded = sum(h.decoded_bytes for h in headers)
    result = len(headers) * channels * (size * size if size is not None else first.width * first.height)
    if max(decoded, result) > budget:
        raise DataError(f"{label}: {len(headers):,} images would decode to {_bytes_text(max(decoded, result))}, "
                        f"over the limit of {_bytes_text(budget)}; use fewer or smaller images, or raise "
                        "ZOO_MAX_DECODED_BYTES (bytes)")
    return channels


@dataclass
class Decoded:
    """Images decoded into one buffer: ``buf`` ``uint8 N x c x H x W`` holds ``n`` of them."""

    buf: np.ndarray
    n: int = 0
    #: (relative path, had an alpha channel) of each image in ``buf``, in order.
    alphas: list[tuple[str, bool]] = field(default_factory=list)
    gray: bool = True
    keep_alpha: bool = False


def decode(headers: list[_Header], size: int | None, channels: int, rep: ReadReport, label: str) -> Decoded:
    """Decode (and, for a ``size``, square and resize) one image at a time into one buffer."""
    out: Decoded | None = None
    ref: tuple[str, int, int] | None = None
    for header in headers:
        im = _open_image(header.path, header.rel, rep, label)
        if im is None:
            continue
        arr, has_alpha = _pixels(im, header.rel, rep)
        del im
        h, w = arr.shape[:2]
        if size is None:
            ref = ref or (header.rel, w, h)
            if (w, h) != ref[1:]:
                raise DataError(f"{label}: image {_shown(header.rel)} is {w}x{h}, the first image ({_shown(ref[0])}) "
                                f"is {ref[1]}x{ref[2]}; generated images are scored at one size")
        elif (w, h) != (size, size):
            arr = _square(arr, size)
        if out is None:
            out = Decoded(np.empty((len(headers), channels, *arr.shape[:2]), np.uint8))
        _place(out, arr, has_alpha, header.rel)
        del arr  # the peak: the result plus one decoded image
    if out is None:
        _no_images(label, rep)
    assert out is not None
    return out


def _square(arr: np.ndarray, size: int) -> np.ndarray:
    """``arr`` (``H x W x c``) centre-cropped square and resized to ``size`` in its own channels:
    bilinear works channel by channel (with alpha premultiplied), so this equals resizing after
    the folder's channel rule is applied."""
    from PIL import Image

    square = _center_square(Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr))
    arr = np.asarray(square.resize((size, size), Image.Resampling.BILINEAR))
    return arr[..., None] if arr.ndim == 2 else arr


def _place(out: Decoded, arr: np.ndarray, has_alpha: bool, rel: str) -> None:
    """Copy one decoded image (``H x W x c``) into the next slot of ``out``, widening the buffer
    when the image has more channels than its header told."""
    colours = arr.shape[-1] - int(has_alpha)
    out.gray = out.gray and colours == 1
    out.keep_alpha = out.keep_alpha or (has_alpha and bool((arr[..., -1] < 255).any()))
    if out.buf.shape[1] < 4 and (has_alpha or colours > out.buf.shape[1]):  # a mode its header did not tell
        out.buf = _widen(out.buf, out.n, 4 if has_alpha else 3)
    dst = out.buf[out.n]
    colour = np.moveaxis(arr[..., :colours], -1, 0)
    if out.buf.shape[1] == 1:
        dst[0] = colour[0]
    else:
        dst[:3] = colour
    if out.buf.shape[1] == 4:
        dst[3] = arr[..., -1] if has_alpha else 255
    out.alphas.append((rel, has_alpha))
    out.n += 1


def settle_channels(decoded: Decoded, rep: ReadReport) -> np.ndarray:
    """The decoded images with the folder's channels (gray 1, 3, or 4 when some image has
    transparency), compacted in place (no second copy of the folder); conversions reported."""
    buf, n = decoded.buf, decoded.n
    for rel, has_alpha in decoded.alphas:
        if has_alpha and not decoded.keep_alpha:
            rep.convert("fully opaque alpha channels dropped", rel)
        elif decoded.keep_alpha and not has_alpha:
            rep.convert("opaque alpha channels added (the folder has transparency)", rel)
    final = 4 if decoded.keep_alpha else 1 if decoded.gray else 3
    per_old, per_new = buf[0].size, buf[0].size // buf.shape[1] * final
    if final < buf.shape[1]:
        # Keep the first ``final`` channels of each image, in place.
        flat = buf.reshape(-1)
        for i in range(1, n):
            flat[i * per_new:(i + 1) * per_new] = flat[i * per_old:i * per_old + per_new].copy()
    rep.read = n
    return buf.reshape(-1)[: n * per_new].reshape(n, final, *buf.shape[2:])
