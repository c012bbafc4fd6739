"""genzoo's on-disk metric caches: reference features and floors, in formats that cannot run code.

torch-fidelity's own cache is keyed by name strings only (stale statistics are reused silently) and
is read with full unpickling (a planted file runs code), so genzoo calls it with ``cache=False`` and
keeps its own cache here instead:

* reference features and FID statistics as ``.npz`` read with ``allow_pickle=False``;
* floors (real-versus-real scores) as JSON;
* reference features keyed by the protocol's reference hash (the protocol without ``num_fake`` and
  the settings only generated sets use), floors by the protocol hash; both cover the dataset's content fingerprint, the backbone's
  weight hash and every count and setting.

Files are written atomically (temp file in the same folder, fsync, ``os.replace``); temp files a
killed writer left are removed by the next process (see `cache_dir`). A file that is
truncated, malformed or does not match its key is reported with a warning and recomputed.
"""

from __future__ import annotations

import io
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from zoo.fileio import atomic_write_bytes, env_folder, remove_stale_temp_files_once


class CacheWarning(UserWarning):
    """A cache file was unreadable and is being recomputed."""


def cache_dir() -> Path:
    """``$ZOO_CACHE_DIR``, else the platform's user cache folder for genzoo (platformdirs:
    ``$XDG_CACHE_HOME/genzoo`` or ``~/.cache/genzoo`` on Linux, ``~/Library/Caches/genzoo`` on
    macOS): where metric statistics and trained backbones live."""
    env = os.environ.get("ZOO_CACHE_DIR")
    if env:
        root = env_folder("ZOO_CACHE_DIR", Path(env).expanduser())  # a file there: UsageError (exit 2)
    else:
        from platformdirs import user_cache_dir

        root = Path(user_cache_dir("genzoo", appauthor=False))
    _clean_cache(root)
    return root


def _clean_cache(root: Path) -> None:
    """Once per process and cache root: remove temp files a killed writer left in the cache's
    folders (``metrics``, ``backbones``, ``accel``, ...), untouched for
    `zoo.fileio.STALE_TEMP_SECONDS` (younger ones may be a live writer's, in this process or
    another sharing the cache)."""
    key = os.path.abspath(root)
    if key in _CLEANED:
        return
    _CLEANED.add(key)
    try:
        folders = [root, *(p for p in root.iterdir() if p.is_dir())] if root.is_dir() else []
    except OSError:
        return
    for folder in folders:
        remove_stale_temp_files_once(folder)


_CLEANED: set[str] = set()


def metrics_cache_dir() -> Path:
    return cache_dir() / "metrics"


def _recompute_warning(path: Path, reason: str) -> None:
    warnings.warn(f"ignoring corrupt metrics cache file {path} ({reason}); recomputing", CacheWarning, stacklevel=3)


# -- reference features ---------------------------------------------------------------------------


#: The k-NN radii of the reference features (density/coverage), stored as one more N x 1 float64 "layer".
RADII = "knn-radii"


def reference_path(protocol_hash: str, fingerprint: str) -> Path:
    """Keyed by `Protocol.reference_hash` (no ``num_fake``: every --num-fake shares it)."""
    return metrics_cache_dir() / f"reference-{protocol_hash}-{fingerprint}.npz"


def save_reference(path: Path, key: str, features: dict[str, np.ndarray], mu: np.ndarray, sigma: np.ndarray) -> None:
    """Store the reference features per layer plus FID's ``mu`` and ``sigma`` under ``key``."""
    arrays: dict[str, Any] = {f"features/{name}": np.ascontiguousarray(value) for name, value in features.items()}
    arrays.update(key=np.array(key), mu=mu, sigma=sigma)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_reference(
    path: Path, key: str, layers: list[str], num: int, fid_layer: str
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray] | None:
    """Load what `save_reference` wrote, or ``None`` (with a warning if the file was bad).

    Every array is checked for shape, dtype and finiteness before it is trusted: ``num`` rows of
    float32 features per layer, and ``mu`` / ``sigma`` as wide as the ``fid_layer`` features.
    """
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                raise ValueError("key mismatch")
            features = {name: z[f"features/{name}"] for name in layers}
            mu, sigma = z["mu"], z["sigma"]
        for name, f in features.items():
            dtype = np.float64 if name == RADII else np.float32
            if f.ndim != 2 or f.shape[0] != num or f.dtype != dtype or not np.isfinite(f).all():
                raise ValueError(f"bad features for layer {name!r}")
        d = features[fid_layer].shape[1]
        if mu.shape != (d,) or sigma.shape != (d, d) or not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
            raise ValueError("bad mu/sigma")
    except Exception as exc:  # zip errors, missing keys, pickled object arrays, truncation
        _recompute_warning(path, f"{type(exc).__name__}: {exc}")
        return None
    return features, mu, sigma


# -- floors ---------------------------------------------------------------------------------------


def floor_path(protocol_hash: str) -> Path:
    return metrics_cache_dir() / f"floor-{protocol_hash}.json"


def save_floor(path: Path, key: str, values: dict[str, Any], threshold: float | None = None) -> None:
    """Store the floor (metric means, ``"spread"``, ``"draws"``; see `zoo.metrics.floors`) and
    the protocol's memorisation threshold under ``key``."""
    means = {k: v for k, v in values.items() if k not in ("spread", "draws")}
    record: dict[str, Any] = {"key": key, "metrics": means}
    if "spread" in values:
        record["spread"] = values["spread"]
        record["draws"] = values.get("draws")
    if threshold is not None:
        record["memorisation_threshold"] = threshold
    atomic_write_bytes(path, json.dumps(record, indent=1, sort_keys=True).encode())


def load_floor_record(path: Path, key: str) -> tuple[dict[str, Any], float | None] | None:
    """``(floor, memorisation threshold or None)`` stored by `save_floor`, or ``None``."""
    if not path.is_file():
        return None
    try:
        data: Any = json.loads(path.read_text())
        if data.get("key") != key:
            raise ValueError("key mismatch")
        values: dict[str, Any] = {str(k): float(v) for k, v in data["metrics"].items()}
        if not values or not all(math.isfinite(v) for v in values.values()):
            raise ValueError("missing or non-finite values")
        if "spread" in data:
            spread = {str(k): float(v) for k, v in data["spread"].items()}
            if not all(math.isfinite(v) and v >= 0 for v in spread.values()):
                raise ValueError("bad floor spread")
            values["spread"] = spread
            values["draws"] = int(data["draws"])
        threshold = data.get("memorisation_threshold")
        if threshold is not None:
            threshold = float(threshold)
            if not math.isfinite(threshold) or threshold < 0:
                raise ValueError("bad memorisation threshold")
    except Exception as exc:
        _recompute_warning(path, f"{type(exc).__name__}: {exc}")
        return None
    return values, threshold
