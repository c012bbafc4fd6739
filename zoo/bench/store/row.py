"""Result rows: the row type, its identity, canonical JSON and config hashes.

A row is plain data (a dataclass); nested columns are dicts stored as canonical JSON text, so
equal dicts give equal text and the store's UNIQUE identity compares them by content.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

import orjson

from zoo.fileio import parse_json

STATUSES = ("ok", "failed")
#: Budget units of the field: wall-clock seconds, optimizer steps, thousands of real images shown, training FLOPs.
BUDGET_KINDS = ("time", "steps", "kimg", "flops")
PRECISIONS = ("fp32", "bf16", "fp16")
#: The columns that identify a run; adding a row with the same values replaces the old row.
IDENTITY_COLUMNS = (
    "protocol_hash",
    "dataset",
    "model",
    "plugin",
    "plugin_version",
    "config_hash",
    "budget_kind",
    "budget_amount",
    "precision",
    "seed",
    "sample_options",
    "tuning",
)
# Columns holding a nested dict, stored as canonical JSON text.
_JSON_COLUMNS = ("protocol", "config", "sample_options", "metrics", "floor", "costs", "environment", "tuning", "external")
#: JSON columns whose text repeats across rows: a read decodes each distinct text once.
_SHARED_COLUMNS = ("protocol", "config", "sample_options", "floor", "environment", "tuning")
_PATH_COLUMNS = ("grid_path", "run_dir")


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json_default(value: Any) -> Any:
    # NumPy / torch scalars, paths and anything else a runner may leave in a dict.
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def canonical_json(value: Any) -> str:
    """Stable JSON text (sorted keys, no spaces): equal dicts give equal strings, so the UNIQUE
    constraint and grouping by sample options compare by content. NaN/inf are kept (Python's JSON
    reads them back). A mapping or ``None`` gives an object; a list (a curve) stays a list."""
    if isinstance(value, (list, tuple)):
        data: Any = list(value)
    else:
        data = dict(value or {})
    return _CANONICAL.encode(data)


# One encoder for every call: json.dumps with options builds a new one each time (a large
# store's leaderboard writes a canonical text per row).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=_json_default)


def config_hash(config: Mapping[str, Any] | None) -> str:
    """12 hex digits of the SHA-256 of the canonical JSON of a fully resolved model config."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()[:12]


#: Text with more opening brackets than this goes to the standard parser (see `_parse_json`):
#: nesting is at most this deep, far below where the standard parser gives up.
FAST_MAX_BRACKETS = 500
_LONG_DIGITS = re.compile(r"\d{19}")


def _parse_json(value: str | bytes, column: str) -> Any:
    """A column's JSON, as `zoo.fileio.parse_json` reads it; its ValueError names the column.

    orjson parses the text genzoo writes: a store of 100,000 rows decodes several times faster
    (``zoo leaderboard``, issue 27). The standard parser reads the rest, so a column loads, or is
    refused, exactly as it decides (but for a lone surrogate escape, text no output can encode:
    refused too): what orjson refuses (NaN and Infinity, which genzoo's
    canonical JSON keeps for missing scores; bytes), and what orjson would read differently
    (19 digits or more in a row: it turns integers past 64 bits into floats; more than
    `FAST_MAX_BRACKETS` brackets: it accepts nesting the standard parser refuses as too deep)."""
    if isinstance(value, str) and value.count("[") + value.count("{") <= FAST_MAX_BRACKETS \
            and not _LONG_DIGITS.search(value):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            pass
    try:
        loaded = parse_json(value)
        if isinstance(value, str) and "\\ud" in value.lower():  # an escaped surrogate: paired?
            json.dumps(loaded, ensure_ascii=False).encode("utf-8")  # a lone one: UnicodeEncodeError
        return loaded
    except ValueError as exc:
        raise ValueError(f"result column {column!r}: {exc}") from None


def _load_json(value: Any, column: str) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    loaded = _parse_json(value, column)
    if not isinstance(loaded, dict):
        raise ValueError(f"result column {column!r} must hold a JSON object, got {type(loaded).__name__}")
    return loaded


def _load_curve(value: Any) -> list[dict[str, Any]]:
    if value is None or value == "":
        return []
    loaded = _parse_json(value, "curve") if isinstance(value, (str, bytes)) else value
    if not isinstance(loaded, (list, tuple)) or not all(isinstance(p, Mapping) for p in loaded):
        raise ValueError("result column 'curve' must hold a JSON list of objects")
    return [dict(p) for p in loaded]


def _load_images(value: Any) -> dict[str, str]:
    loaded = _load_json(value, "images") if isinstance(value, (str, bytes)) or value is None else value
    if not isinstance(loaded, Mapping) or not all(isinstance(k, str) and isinstance(v, (str, os.PathLike)) for k, v in loaded.items()):
        raise ValueError("result column 'images' must hold a JSON object of name -> path")
    return {k: os.fspath(v) for k, v in loaded.items()}


def _float(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass(eq=False)
class ResultRow:
    """One benchmark result: a model trained on a dataset with a seed, evaluated under a protocol.

    ``metrics`` and ``floor`` share keys (``fid_lenet``, ``is_lenet``, ``kid_lenet``, ...); ``floor``
    holds the real-versus-real score of the protocol, the best a perfect generator can reach at this
    sample count. A failed run has ``status="failed"``, its ``error`` and whatever it measured.

    Run identity (see `identity`): ``config_hash`` is computed from ``config`` when left
    empty (so ``config`` must be the fully resolved config); ``budget_kind`` is one of
    `BUDGET_KINDS` and ``budget_amount`` is in its unit (seconds, steps, kimg, FLOPs; NaN
    when unknown); ``precision`` is one of `PRECISIONS`. ``config_label`` is a human label of
    how the config differs from the model's defaults (``"lr=0.01"``, ``""`` for the defaults).
    ``curve`` lists quality-versus-compute points of the run, each
    ``{"fraction", "train_steps", "train_kimg", "train_flops", "train_seconds", "metrics"}``; the
    last point is at the full budget and its metrics equal ``metrics``.
    """

    model: str
    dataset: str
    seed: int
    protocol_hash: str
    status: str = "ok"
    error: str | None = None
    family: str = ""
    plugin: str = ""
    plugin_version: str = ""
    dataset_fingerprint: str = ""
    preset: str = ""
    protocol: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    sample_options: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    floor: dict[str, Any] = field(default_factory=dict)
    costs: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    grid_path: str | None = None
    run_dir: str | None = None
    row_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: str = field(default_factory=_utc_now)
    config_hash: str = ""
    config_label: str = ""
    budget_kind: str = "time"
    budget_amount: float = math.nan
    precision: str = "fp32"
    curve: list[dict[str, Any]] = field(default_factory=list)
    #: Images of the run besides the sample grid, by name (``"nearest_neighbours"``: generated
    #: images beside their nearest training images); paths stored relative to the store like grid_path.
    images: dict[str, str] = field(default_factory=dict)
    #: The tuning effort behind ``config`` (``zoo bench --tune``, `zoo.bench.tuning`): trials,
    #: trial budget, search-space hash, sampler, pruner; ``{}`` for a config not tuned. Part of the
    #: identity: rows tuned differently are separate runs, on separate leaderboards.
    tuning: dict[str, Any] = field(default_factory=dict)
    #: Samples made elsewhere (``zoo bench --samples``, ``zoo eval --store``): where they came from
    #: (``{"source", "kind", "images", "scored", "draw"}``; see `zoo.bench.external`); ``{}``
    #: for a row genzoo trained. An external row records no training cost.
    external: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"result status must be one of {STATUSES}, got {self.status!r}")
        for name in ("model", "dataset", "protocol_hash"):
            if not getattr(self, name):
                raise ValueError(f"result row needs a non-empty {name}")
        if self.budget_kind not in BUDGET_KINDS:
            raise ValueError(f"budget_kind must be one of {BUDGET_KINDS}, got {self.budget_kind!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        self.seed = int(self.seed)
        self.budget_amount = _float(self.budget_amount)
        self.preset = self.preset or ""
        self.plugin = self.plugin or ""
        self.plugin_version = self.plugin_version or ""
        self.config_label = self.config_label or ""
        self.config_hash = self.config_hash or config_hash(self.config)
        self.curve = _load_curve(self.curve)
        self.images = _load_images(self.images)
        for name in _PATH_COLUMNS:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, os.fspath(value))

    @property
    def identity(self) -> tuple[Any, ...]:
        """The values of `IDENTITY_COLUMNS`: the run a re-added row replaces. Sample options
        are canonical JSON; an unknown budget amount is ``None`` (so identities compare equal)."""
        values = {c: getattr(self, c) for c in IDENTITY_COLUMNS}
        values["sample_options"] = canonical_json(self.sample_options)
        values["tuning"] = canonical_json(self.tuning)
        values["budget_amount"] = None if math.isnan(self.budget_amount) else self.budget_amount
        return tuple(values[c] for c in IDENTITY_COLUMNS)

    @property
    def primary_metric(self) -> str | None:
        return self.protocol.get("primary_metric")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with nested dicts (JSON-serialisable for JSON-safe contents)."""
        return {f.name: _copy(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResultRow:
        """Inverse of `to_dict`; also accepts JSON text for nested columns (a database row).
        Unknown keys are ignored so rows written by a newer genzoo still load."""
        kwargs = {k: v for k, v in data.items() if k in _FIELD_NAMES}
        for column in _JSON_COLUMNS:
            if column in kwargs:
                kwargs[column] = _load_json(kwargs[column], column)
        return cls(**kwargs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResultRow):
            return NotImplemented
        return self._comparable() == other._comparable()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass default

    def _comparable(self) -> list[Any]:
        data = self.to_dict()
        data["budget_amount"] = None if math.isnan(self.budget_amount) else self.budget_amount
        return [data[f.name] for f in fields(self)]

    def _db_values(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for column in _JSON_COLUMNS:
            values[column] = canonical_json(values[column])
        values["curve"] = canonical_json(values["curve"])
        values["images"] = canonical_json(values["images"])
        values["budget_amount"] = None if math.isnan(self.budget_amount) else self.budget_amount
        return values


def _copy(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.loads(json.dumps(value, default=_json_default))
    return value

_COLUMNS = tuple(f.name for f in fields(ResultRow))
_FIELD_NAMES = frozenset(_COLUMNS)


def replaces(old_status: str, old_created: str, new_status: str, new_created: str) -> bool:
    """Whether a row (``new_*``) may replace the stored row of its identity (``old_*``).

    An ``ok`` row is replaced only by an ``ok`` row at least as new: a failed or refused run (a
    rerun the run lock turned away, one that crashed) never loses a good result, and rows ingested
    again by ``--collect`` never put an older result back. A failed row is replaced by any ``ok``
    row and by a failed row at least as new. ``*_created`` are ISO-8601 UTC times (`ResultRow.created_at`).
    """
    if old_status == "ok":
        return new_status == "ok" and new_created >= old_created
    return new_status == "ok" or new_created >= old_created
