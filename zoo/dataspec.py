"""A registered dataset's declaration, free of torch, so ``zoo data list`` needs no torch import
(the loader runs, and imports what it needs, only when the dataset is loaded)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoo.data import ImageDataset


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset.

    ``load(arg, data_dir, download)`` returns an `ImageDataset`. For a ``prefix`` spec such as
    ``folder:`` the name ends with a colon and ``arg`` is what follows it (a path); otherwise ``arg``
    is ``None``.

    ``backbone`` names the metrics backbone the dataset is scored with under ``--backbone auto``
    (one of `zoo.metric_names.BACKBONES`, e.g. ``"lenet"`` for a labelled digit-like set,
    ``"inception"`` or ``"dinov2-vit-s-14"``); [`zoo.factory.load_dataset`][zoo.factory.load_dataset] records it in the
    loaded dataset's ``info["backbone"]``. ``None``: genzoo's rule (`zoo.metrics.default_backbone`).
    """

    name: str
    load: Callable[[str | None, Path, bool], ImageDataset]
    summary: str = ""
    labelled: bool = False
    backbone: str | None = None

    @property
    def prefix(self) -> bool:
        return self.name.endswith(":")
