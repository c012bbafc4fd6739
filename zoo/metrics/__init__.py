"""Sample-quality metrics under one recorded protocol: FID, IS, KID, precision/recall via torch-fidelity;
density/coverage, memorisation and mode coverage on the same features.

Typical use:

    from zoo.factory import load_dataset
    from zoo.metrics import make_protocol, compute_metrics, compute_floor

    ds = load_dataset("mnist-5k")
    protocol = make_protocol(ds)                   # lenet backbone, 4000 real / 1000 generated
    scores = compute_metrics(fake_uint8, ds, protocol)   # {"fid_lenet": ..., "is_lenet": ...}
    floor = compute_floor(ds, protocol)            # the same metrics for held-out real images
    record = {"protocol": protocol.to_dict(), "metrics": scores, "floor": floor}

See ``docs/metrics.md`` for the protocol, the backbones, and why numbers from different protocols
must never be compared.
"""

# Names are imported on first use (PEP 562): importing a light submodule (``zoo.metrics.stats_cache``
# for the cache folder, as loading a dataset does) must not pull in torch-fidelity, which imports
# torchvision's whole model zoo.
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.metrics.backbones import default_backbone
    from zoo.metrics.engine import (
        Evaluation,
        backbone_features,
        compute_floor,
        compute_metrics,
        evaluate,
        floor_images,
        frechet_distance,
        metrics_from_features,
        nearest_pairs,
        reference_images,
    )
    from zoo.metrics.protocol import BACKBONES, Protocol, make_protocol, metric_higher_is_better
    from zoo.metrics.stats_cache import CacheWarning, cache_dir

_LAZY = {
    "default_backbone": "zoo.metrics.backbones",
    **dict.fromkeys(("Evaluation", "backbone_features", "compute_floor", "compute_metrics", "evaluate",
                     "floor_images", "frechet_distance", "metrics_from_features", "nearest_pairs",
                     "reference_images"), "zoo.metrics.engine"),
    **dict.fromkeys(("BACKBONES", "Protocol", "make_protocol", "metric_higher_is_better"),
                    "zoo.metrics.protocol"),
    **dict.fromkeys(("CacheWarning", "cache_dir"), "zoo.metrics.stats_cache"),
}

__all__ = [
    "BACKBONES",
    "Evaluation",
    "evaluate",
    "CacheWarning",
    "Protocol",
    "backbone_features",
    "cache_dir",
    "compute_floor",
    "compute_metrics",
    "default_backbone",
    "floor_images",
    "frechet_distance",
    "make_protocol",
    "metric_higher_is_better",
    "metrics_from_features",
    "nearest_pairs",
    "reference_images",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo.metrics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
