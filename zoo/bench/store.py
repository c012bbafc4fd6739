"""The benchmark results store: one SQLite row per benchmark run.

Several ``zoo bench`` processes may write to one store at once. An atomic file rename loses rows
under that load (8 writers kept 50 of 320 rows in a test); SQLite in WAL mode, with every write in
its own ``BEGIN IMMEDIATE`` transaction and a busy timeout, keeps them all. Each row is committed on
its own, so Ctrl-C or a killed process keeps every row finished before it.

**Identity.** A row is identified by `IDENTITY_COLUMNS`: protocol_hash, dataset, model, plugin,
plugin_version, config_hash (of the fully resolved model config), budget_kind and budget_amount,
precision, seed and sample_options. Adding a row with the same identity replaces the old one, so
re-running a benchmark updates it; DDIM at 50 steps and DDPM at 1000 steps, or two learning rates,
stay separate rows. ``preset`` is descriptive only. An unknown budget amount (NaN, stored as NULL)
counts as one value for the identity.

**Paths.** ``grid_path`` and ``run_dir`` are stored relative to the store's folder when they lie
under it (absolute otherwise; a relative path handed in is taken relative to the current
directory) and come back absolute, resolved against the store's folder, so a store can be moved or
read from another directory together with its runs.

**Migrations.** The schema is built by named, ordered functions in `MIGRATIONS` (``m001_...``,
``m002_...``), each applied once in its own transaction and recorded by name in ``_zoo_migrations``
(the pattern of simonw/llm's ``migrations.py``). The legacy ``zoo_schema`` table of genzoo's first
stores is still read (version 1 = ``m001_initial`` applied) and still written (its version is the
number of migrations applied) so that an older genzoo refuses a newer store instead of writing
rows it does not understand. A store recording a migration this genzoo does not know is refused
with a [`UsageError`][zoo.errors.UsageError] before anything touches the file (not even a PRAGMA).

**Read-only stores.** When the store file or its folder cannot be written (a read-only mount, a
shared folder), the store opens read-only (`open_mode`): SQLite's ``mode=ro``, or
``immutable=1`` when a WAL store's ``-shm`` file cannot be created either. Readers (``zoo
leaderboard``, reports) work; a write fails with one line.

**Malformed rows.** A row whose columns do not load (bad JSON, a wrong type, a seed that is not an
integer) is skipped, not fatal: `ResultsStore.rows` leaves it out and records its id and
reason in `ResultsStore.skipped`, which the CLI reports as one warning line.

**Failed writes keep the row.** When writing finished rows fails (disk full, I/O error, a read-only
file, locked beyond the timeout), `ResultsStore.add_many` with ``keep_side_file=True`` keeps
them in ``rows.json`` in their run folder (the file ``zoo bench --collect RUNS_DIR`` ingests,
idempotently) and raises a `StoreWriteError` saying so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import shlex
import sqlite3
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from zoo.errors import UsageError, ZooError
from zoo.fileio import (
    STALE_TEMP_SECONDS,
    atomic_write_text,
    env_folder,
    parse_json,
    remove_stale_temp_files,
)

__all__ = [
    "BUDGET_KINDS",
    "IDENTITY_COLUMNS",
    "MIGRATIONS",
    "PRECISIONS",
    "SCHEMA_VERSION",
    "STATUSES",
    "ResultRow",
    "ResultsStore",
    "StoreWriteError",
    "canonical_json",
    "config_hash",
    "default_store_path",
    "open_mode",
    "replaces",
    "rows_to_frame",
]

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
)
_SQLITE_MAGIC = b"SQLite format 3\x00"
# Columns holding a nested dict, stored as canonical JSON text.
_JSON_COLUMNS = ("protocol", "config", "sample_options", "metrics", "floor", "costs", "environment")
#: JSON columns whose text repeats across rows: a read decodes each distinct text once.
_SHARED_COLUMNS = ("protocol", "config", "sample_options", "floor", "environment")
_PATH_COLUMNS = ("grid_path", "run_dir")
T = TypeVar("T")


def default_store_path() -> Path:
    """``$ZOO_RESULTS`` when set, else ``runs/results.sqlite`` under the current directory."""
    env = os.environ.get("ZOO_RESULTS", "").strip()
    if not env:
        return Path("runs") / "results.sqlite"
    path = Path(env).expanduser()
    if path.is_dir():
        raise UsageError(f"ZOO_RESULTS={path}: a folder, not a results file")
    env_folder("ZOO_RESULTS", path.parent, path)  # a file where its folder should be: UsageError
    return path


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
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=_json_default)


def config_hash(config: Mapping[str, Any] | None) -> str:
    """12 hex digits of the SHA-256 of the canonical JSON of a fully resolved model config."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()[:12]


def _parse_json(value: str | bytes, column: str) -> Any:
    """`zoo.fileio.parse_json` of a column; its ValueError names the column."""
    try:
        return parse_json(value)
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
        values["budget_amount"] = None if math.isnan(self.budget_amount) else self.budget_amount
        return tuple(values[c] for c in IDENTITY_COLUMNS)

    key = identity  # the name of the identity before run identities (kept for callers)

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
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
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
_INSERT = (
    f"INSERT OR REPLACE INTO results ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _COLUMNS)})"
)
#: Matches the stored row of an identity (named parameters as `ResultRow._db_values` gives them).
_IDENTITY_WHERE = " AND ".join(
    "IFNULL(budget_amount, 'unknown') = IFNULL(:budget_amount, 'unknown')" if c == "budget_amount" else f"{c} = :{c}"
    for c in IDENTITY_COLUMNS
)


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


# -- paths relative to the store -----------------------------------------------------------------


def _store_relative(value: str | None, folder: str) -> str | None:
    """``value`` relative to ``folder`` when it lies under it, else absolute."""
    if value is None or value == "":
        return value
    absolute = os.path.abspath(os.path.expanduser(value))
    try:
        common = os.path.commonpath([absolute, folder])
    except ValueError:  # another drive on Windows
        return absolute
    return os.path.relpath(absolute, folder) if common == folder else absolute


def _from_store(value: str | None, folder: str) -> str | None:
    if value is None or value == "":
        return value
    return value if os.path.isabs(value) else os.path.normpath(os.path.join(folder, value))


# -- migrations ----------------------------------------------------------------------------------

Migration = Callable[[sqlite3.Connection], None]
#: Every migration in the order it is applied; each is recorded by its function name.
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Append ``fn`` to `MIGRATIONS`. Never rename, reorder or edit a released migration:
    add a new one (``m003_...``) instead."""
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_initial(conn: sqlite3.Connection) -> None:
    """The first schema (genzoo's ``zoo_schema`` version 1)."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS results (
    row_id              TEXT PRIMARY KEY,
    created_at          TEXT NOT NULL,
    model               TEXT NOT NULL,
    family              TEXT NOT NULL DEFAULT '',
    plugin              TEXT NOT NULL DEFAULT '',
    plugin_version      TEXT NOT NULL DEFAULT '',
    dataset             TEXT NOT NULL,
    dataset_fingerprint TEXT NOT NULL DEFAULT '',
    seed                INTEGER NOT NULL,
    preset              TEXT NOT NULL DEFAULT '',
    protocol_hash       TEXT NOT NULL,
    protocol            TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error               TEXT,
    config              TEXT NOT NULL,
    sample_options      TEXT NOT NULL,
    metrics             TEXT NOT NULL,
    floor               TEXT NOT NULL,
    costs               TEXT NOT NULL,
    environment         TEXT NOT NULL,
    grid_path           TEXT,
    run_dir             TEXT,
    UNIQUE (model, dataset, seed, protocol_hash, preset, sample_options)
)"""
    )
    conn.execute("CREATE INDEX IF NOT EXISTS results_by_board ON results (dataset, protocol_hash)")


# The budgets of the presets genzoo 0.1 shipped (version-1 rows do not record their budget).
_V1_PRESET_BUDGETS = {"smoke": ("steps", 4.0), "quick": ("time", 120.0), "standard": ("time", 1200.0), "paper": ("time", 28800.0)}
_V1_COLUMNS = (
    "row_id", "created_at", "model", "family", "plugin", "plugin_version", "dataset", "dataset_fingerprint", "seed",
    "preset", "protocol_hash", "protocol", "status", "error", "config", "sample_options", "metrics", "floor", "costs",
    "environment", "grid_path", "run_dir",
)


def _v1_budget(preset: str, costs: Mapping[str, Any]) -> tuple[str, float]:
    for kind, key in (("time", "budget_seconds"), ("steps", "budget_steps"), ("kimg", "budget_kimg"), ("flops", "budget_flops")):
        if isinstance(costs.get(key), (int, float)):
            return kind, float(costs[key])
    if preset in _V1_PRESET_BUDGETS:
        return _V1_PRESET_BUDGETS[preset]
    return "time", math.nan


def _v1_path(value: str | None, folder: str) -> str | None:
    """A version-1 path was written relative to the runner's working directory, which the row does
    not record: take the first of (the store's folder, its parents, the current directory) under
    which it exists; keep it unchanged when none does."""
    if not value or os.path.isabs(value):
        return _store_relative(value, folder) if value else value
    bases = [folder, *(str(p) for p in Path(folder).parents), os.getcwd()]
    for base in bases:
        candidate = os.path.normpath(os.path.join(base, value))
        if os.path.exists(candidate):
            return _store_relative(candidate, folder)
    return value


@migration
def m002_run_identity(conn: sqlite3.Connection) -> None:
    """Run identity: config hash, budget, precision, curve; ``preset`` leaves the identity; paths
    become relative to the store's folder.

    Version-1 rows get ``config_hash`` from their stored config; ``budget_kind``/``budget_amount``
    from ``costs["budget_<unit>"]`` when present, else from the preset genzoo 0.1 shipped under
    that name, else ``("time", NaN)``; ``precision`` from ``environment``/``costs["precision"]``
    else ``"fp32"``; an empty ``config_label`` and ``curve``. Newest rows are copied first; an older
    row whose new identity collides with a newer one (it differed only by an unknown preset) is
    kept, unranked, in ``_zoo_m002_duplicates`` rather than lost.
    """
    folder = _db_folder(conn)
    conn.execute(
        """CREATE TABLE results_m002 (
    row_id              TEXT PRIMARY KEY,
    created_at          TEXT NOT NULL,
    model               TEXT NOT NULL,
    family              TEXT NOT NULL DEFAULT '',
    plugin              TEXT NOT NULL DEFAULT '',
    plugin_version      TEXT NOT NULL DEFAULT '',
    dataset             TEXT NOT NULL,
    dataset_fingerprint TEXT NOT NULL DEFAULT '',
    seed                INTEGER NOT NULL,
    preset              TEXT NOT NULL DEFAULT '',
    protocol_hash       TEXT NOT NULL,
    protocol            TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error               TEXT,
    config              TEXT NOT NULL,
    config_hash         TEXT NOT NULL,
    config_label        TEXT NOT NULL DEFAULT '',
    budget_kind         TEXT NOT NULL CHECK (budget_kind IN ('time', 'steps', 'kimg', 'flops')),
    budget_amount       REAL,
    precision           TEXT NOT NULL CHECK (precision IN ('fp32', 'bf16', 'fp16')),
    sample_options      TEXT NOT NULL,
    metrics             TEXT NOT NULL,
    floor               TEXT NOT NULL,
    costs               TEXT NOT NULL,
    curve               TEXT NOT NULL DEFAULT '[]',
    environment         TEXT NOT NULL,
    grid_path           TEXT,
    run_dir             TEXT
)"""
    )
    # NULL (unknown) budget amounts are one value for the identity, so a re-run replaces its row.
    conn.execute(
        "CREATE UNIQUE INDEX results_identity ON results_m002 (protocol_hash, dataset, model, plugin, plugin_version, "
        "config_hash, budget_kind, IFNULL(budget_amount, 'unknown'), precision, seed, sample_options)"
    )
    old = conn.execute(f"SELECT {', '.join(_V1_COLUMNS)} FROM results ORDER BY created_at DESC, rowid DESC").fetchall()
    seen: set[tuple[Any, ...]] = set()
    duplicates: list[tuple[Any, ...]] = []
    for values in old:
        data = dict(zip(_V1_COLUMNS, values, strict=True))
        costs, env = _load_json(data["costs"], "costs"), _load_json(data["environment"], "environment")
        kind, amount = _v1_budget(data["preset"], costs)
        precision = env.get("precision") or costs.get("precision") or "fp32"
        data.update(
            config_hash=config_hash(_load_json(data["config"], "config")),
            config_label="",
            budget_kind=kind,
            budget_amount=None if math.isnan(amount) else amount,
            precision=precision if precision in PRECISIONS else "fp32",
            curve="[]",
            grid_path=_v1_path(data["grid_path"], folder),
            run_dir=_v1_path(data["run_dir"], folder),
        )
        identity = tuple(data[c] for c in IDENTITY_COLUMNS)
        if identity in seen:
            duplicates.append(values)
            continue
        seen.add(identity)
        conn.execute(f"INSERT INTO results_m002 ({', '.join(data)}) VALUES ({', '.join('?' * len(data))})", tuple(data.values()))
    if duplicates:
        conn.execute("CREATE TABLE _zoo_m002_duplicates AS SELECT * FROM results WHERE 0")
        conn.executemany(f"INSERT INTO _zoo_m002_duplicates VALUES ({', '.join('?' * len(_V1_COLUMNS))})", duplicates)
    conn.execute("DROP TABLE results")
    conn.execute("ALTER TABLE results_m002 RENAME TO results")
    conn.execute("CREATE INDEX results_by_board ON results (dataset, protocol_hash)")


def _db_folder(conn: sqlite3.Connection) -> str:
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main" and file:
            return os.path.dirname(os.path.abspath(file))
    return os.getcwd()


@migration
def m003_row_images(conn: sqlite3.Connection) -> None:
    """``images``: a JSON object of name -> path (store-relative, like ``grid_path``) for images a run
    writes besides its sample grid, such as the (sample | nearest training image) pairs."""
    conn.execute("ALTER TABLE results ADD COLUMN images TEXT NOT NULL DEFAULT '{}'")


#: The legacy ``zoo_schema`` version a store reaches with every migration applied.
SCHEMA_VERSION = len(MIGRATIONS)
_KNOWN = [m.__name__ for m in MIGRATIONS]


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _applied(conn: sqlite3.Connection, tables: set[str]) -> tuple[list[str], int]:
    """Names of the migrations a store records, and its legacy ``zoo_schema`` version (0: none)."""
    legacy = 0
    if "zoo_schema" in tables:
        legacy = conn.execute("SELECT MAX(version) FROM zoo_schema").fetchone()[0] or 0
    if "_zoo_migrations" in tables:
        names = [r[0] for r in conn.execute("SELECT name FROM _zoo_migrations ORDER BY rowid")]
    else:  # a version-1 store: zoo_schema version N means the first N migrations (only 1 existed)
        names = _KNOWN[: min(legacy, 1)]
    return names, legacy


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


class StoreWriteError(ZooError):
    """Finished rows could not be written to the store (disk full, I/O error, read-only, locked)."""


# SQLite primary result codes of a write that failed for reasons outside the rows themselves.
_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN = 8, 10, 13, 14


def _is_write_error(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN)


def _is_wal(path: Path) -> bool:
    """Whether the database file says WAL mode (header bytes 18 and 19 are 2)."""
    try:
        with path.open("rb") as fh:
            header = fh.read(20)
    except OSError:
        return False
    return len(header) == 20 and header[18] == 2 and header[19] == 2


def open_mode(path: str | os.PathLike[str]) -> str:
    """How a store at ``path`` can be opened: ``"rw"``, ``"ro"`` or ``"immutable"``.

    ``"rw"`` when the file (or, for a new store, its folder) and its folder are writable, since
    SQLite creates its journal or ``-wal``/``-shm`` files beside the database. ``"ro"``
    (``mode=ro``) otherwise. ``"immutable"`` (``immutable=1``: SQLite assumes nobody writes the file
    and creates nothing) when even ``mode=ro`` cannot work: a WAL store in an unwritable folder
    without an existing ``-shm`` file. Decided with `os.access`, so root on a read-only
    mount and a test's monkeypatch both get the answer the kernel would give a write. A folder
    that does not exist yet is judged by its nearest existing ancestor (where it would be created).
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    # A folder that does not exist yet is created by whoever may write its nearest existing ancestor.
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    folder_ok = folder.is_dir() and os.access(folder, os.W_OK)
    file_ok = os.access(path, os.W_OK) if path.exists() else folder_ok
    if folder_ok and file_ok:
        return "rw"
    shm = Path(f"{path}-shm")
    if not folder_ok and _is_wal(path) and not shm.exists():
        return "immutable"
    return "ro"


_SIDECAR_SUFFIXES = ("-wal", "-shm", "-journal")
_WAL_DMS_LOCK = 128  # the -shm byte every connection with the WAL open holds a shared lock on (os_unix.c)


def _sidecars(path: Path) -> set[str]:
    """Which of SQLite's ``-wal``/``-shm``/``-journal`` files exist beside ``path`` now."""
    return {s for s in _SIDECAR_SUFFIXES if os.path.lexists(f"{path}{s}")}


def _in_use(shm: Path) -> bool:
    """Whether another connection holds ``shm`` open (its DMS byte is locked); unreadable counts as in use."""
    import fcntl

    try:
        fd = os.open(shm, os.O_RDWR)
    except OSError:
        return True
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _WAL_DMS_LOCK)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the test lock
    return False


def _remove_new_sidecars(path: Path, before: set[str]) -> None:
    """Remove the ``-wal``/``-shm``/``-journal`` files that this process's refused open created.

    SQLite creates them beside a WAL database even for a ``mode=ro`` read, and leaves them when
    the read fails. Only files absent before the open go, and only while nobody else has the WAL
    open and no frame was written to a new ``-wal``: another process's files are never touched.
    """
    created = {s for s in _SIDECAR_SUFFIXES if s not in before and os.path.lexists(f"{path}{s}")}
    if not created:
        return
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    if shm.is_file() and _in_use(shm):
        return
    if "-wal" in created and wal.is_file() and wal.stat().st_size > 0:
        created.discard("-wal")  # frames someone wrote: not ours to drop
    for suffix in created:
        with contextlib.suppress(OSError):
            os.unlink(f"{path}{suffix}")


class ResultsStore:
    """A results database at ``path`` (created with its parent folders unless ``create=False``).

    ``timeout`` is SQLite's busy timeout in seconds: how long one statement waits for another
    writer. Beyond it, writes retry with exponential backoff for ``retry_seconds`` more before
    giving up with a [`ZooError`][zoo.errors.ZooError]. A file that is not a genzoo results store, or a
    store written by a newer genzoo, is refused with a [`UsageError`][zoo.errors.UsageError] and never
    written to.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        create: bool = True,
        timeout: float = 30.0,
        retry_seconds: float = 120.0,
    ) -> None:
        self.path = Path(path if path is not None else default_store_path()).expanduser()
        self.timeout = float(timeout)
        self.retry_seconds = float(retry_seconds)
        #: ``(row_id, reason)`` of each malformed row the last `rows` call skipped.
        self.skipped: list[tuple[str, str]] = []
        self.empty = False
        self._check_file(create)
        #: ``"rw"``, ``"ro"`` or ``"immutable"`` (see `open_mode`), decided once on opening.
        self.mode = open_mode(self.path)
        #: A zero-byte file opened by a reader (``create=False``): an empty store, never written.
        self.empty = not create and self.path.stat().st_size == 0
        if self.empty:
            self.mode = "ro"
            return
        before = _sidecars(self.path)
        try:
            self._with_retry(self._inspect)  # read-only: refuses foreign and newer stores untouched
            if self.mode == "rw":
                self._with_retry(self._migrate)
            else:
                self._with_retry(self._check_current)
        except BaseException:
            _remove_new_sidecars(self.path, before)  # a refused store's folder stays exactly as it was
            raise
        if self.mode == "rw":
            # Reports and side files written atomically beside the store by a killed process.
            remove_stale_temp_files(self.path.parent, older_than=STALE_TEMP_SECONDS)

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.path)!r})"

    @property
    def folder(self) -> str:
        """The absolute folder of the store: stored relative paths are relative to it."""
        return os.path.dirname(os.path.abspath(self.path))

    # -- opening ---------------------------------------------------------------------------------

    def _check_file(self, create: bool) -> None:
        """Refuse anything that is not an SQLite file before SQLite gets a chance to write to it."""
        if self.path.is_dir():
            raise UsageError(f"results store {self.path} is a directory; pass a file path such as {self.path / 'results.sqlite'}")
        if self.path.exists():
            try:
                with self.path.open("rb") as fh:
                    header = fh.read(len(_SQLITE_MAGIC))
            except OSError as exc:
                raise UsageError(f"cannot read results store {self.path}: {exc.strerror or exc}") from None
            # A zero-byte file is an empty database to SQLite; anything else must carry the magic.
            if header and header != _SQLITE_MAGIC:
                raise UsageError(f"{self.path} is not a genzoo results store (not an SQLite database); refusing to touch it")
            return
        if not create:
            raise UsageError(f"no results store at {self.path} (run `zoo bench` first, or pass --results PATH)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the folder for results store {self.path}: {exc.strerror or exc}") from None

    @property
    def read_only(self) -> bool:
        """Whether the store was opened read-only (its file or folder is not writable)."""
        return self.mode != "rw"

    def _connect(self, read_only: bool = False) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; every write says BEGIN IMMEDIATE itself,
        # which takes the write lock up front instead of failing to upgrade a read lock later.
        mode = getattr(self, "mode", "rw")
        if read_only or mode != "rw":
            query = "immutable=1" if mode == "immutable" else "mode=ro"
            uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?" + query
            conn = sqlite3.connect(uri, uri=True, timeout=self.timeout, isolation_level=None)
        else:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        return conn

    def _refuse_unknown(self, tables: set[str], names: list[str], legacy: int) -> None:
        if tables and not tables & {"zoo_schema", "_zoo_migrations"}:
            raise UsageError(f"{self.path} is an SQLite database but not a genzoo results store; refusing to touch it")
        unknown = [n for n in names if n not in _KNOWN]
        if unknown or legacy > SCHEMA_VERSION:
            what = f"migration {unknown[0]}" if unknown else f"schema version {legacy}"
            raise UsageError(f"results store {self.path} was written by a newer genzoo ({what}, newer than this genzoo understands); upgrade genzoo, it was left untouched")

    def _inspect(self, _conn: sqlite3.Connection) -> None:
        """Look before anything writes (switching to WAL already rewrites the header): through a
        read-only connection, refuse a foreign database or one with migrations we do not know."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        conn = self._connect(read_only=True)
        try:
            tables = _tables(conn)
            self._refuse_unknown(tables, *_applied(conn, tables))
        finally:
            conn.close()

    def _check_current(self, conn: sqlite3.Connection) -> None:
        """A read-only store cannot be migrated: it must already have every migration."""
        tables = _tables(conn)
        if not tables:
            raise UsageError(f"results store {self.path} is read-only and empty (run `zoo bench` with a writable --results)")
        names, legacy = _applied(conn, tables)
        missing = [n for n in _KNOWN if n not in names]
        if missing:
            raise UsageError(f"results store {self.path} is read-only and was written by an older genzoo (it needs "
                             f"migration {missing[0]}); open it once where it is writable, or copy it somewhere writable")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        tables = _tables(conn)
        names, legacy = _applied(conn, tables)
        self._refuse_unknown(tables, names, legacy)
        if all(n in names for n in _KNOWN) and legacy == SCHEMA_VERSION:
            return  # nothing to write
        conn.execute("PRAGMA journal_mode = WAL")
        for index, fn in enumerate(MIGRATIONS, start=1):
            conn.execute("BEGIN IMMEDIATE")
            # Look again under the write lock: another process may have migrated meanwhile.
            tables = _tables(conn)
            names, legacy = _applied(conn, tables)
            self._refuse_unknown(tables, names, legacy)
            conn.execute("CREATE TABLE IF NOT EXISTS zoo_schema (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
            if "_zoo_migrations" not in tables:
                conn.execute("CREATE TABLE _zoo_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
                conn.executemany("INSERT INTO _zoo_migrations (name, applied_at) VALUES (?, ?)", [(n, _utc_now()) for n in names])
            if fn.__name__ not in names:
                fn(conn)
                conn.execute("INSERT INTO _zoo_migrations (name, applied_at) VALUES (?, ?)", (fn.__name__, _utc_now()))
            if legacy < index:  # one line: the version an older genzoo compares with its own
                conn.execute("DELETE FROM zoo_schema")
                conn.execute("INSERT INTO zoo_schema (version, applied_at) VALUES (?, ?)", (index, _utc_now()))
            conn.execute("COMMIT")

    def _with_retry(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``operation`` on a fresh connection, retrying while another writer holds the lock.

        SQLite's busy handler already waits ``timeout`` seconds; under heavy contention a
        transaction can still see SQLITE_BUSY (e.g. while the WAL is checkpointed), so back off and
        try again instead of losing the row.
        """
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.02
        while True:
            conn: sqlite3.Connection | None = None
            try:
                conn = self._connect()
                return operation(conn)
            except sqlite3.IntegrityError:
                raise  # a constraint violation is a bug in the caller, not a broken file
            except sqlite3.DatabaseError as exc:
                if conn is not None and conn.in_transaction:
                    conn.rollback()
                if _is_lock_error(exc) and time.monotonic() < deadline:
                    time.sleep(delay * (1 + random.random()))
                    delay = min(delay * 2, 1.0)
                    continue
                if _is_lock_error(exc):
                    raise StoreWriteError(f"results store {self.path} stayed locked for over {self.timeout + self.retry_seconds:.0f}s; is another process stuck holding it?") from None
                if _is_write_error(exc):  # the file is fine; the disk, the mount or the permissions are not
                    raise StoreWriteError(f"results store {self.path} could not be written: {exc}") from None
                raise UsageError(f"{self.path} is not a usable genzoo results store: {exc}") from None
            finally:
                if conn is not None:
                    conn.close()  # closing an open transaction rolls it back

    # -- writing ---------------------------------------------------------------------------------

    def _to_db(self, row: ResultRow) -> dict[str, Any]:
        values = row._db_values()
        for column in _PATH_COLUMNS:
            values[column] = _store_relative(values[column], self.folder)
        values["images"] = canonical_json({k: _store_relative(v, self.folder) for k, v in row.images.items()})
        return values

    def add(self, row: ResultRow) -> bool:
        """Insert ``row``, replacing the row with the same identity where `replaces` allows;
        committed before returning. Returns whether it was written."""
        return not self.add_many([row])

    def add_many(self, rows: Iterable[ResultRow], *, keep_side_file: bool = False) -> list[ResultRow]:
        """Insert several rows in one transaction (all or none); returns the rows *not* written
        because the store holds a better row of their identity (see `replaces`: a failed row
        never replaces an ``ok`` one, an older row never a newer one).

        With ``keep_side_file``, a write that fails for a reason outside the rows (disk full, I/O
        error, read-only store, locked beyond the timeout: a `StoreWriteError`) keeps the
        rows in ``rows.json`` in their run folder (atomic write, merged with rows already kept
        there) and raises a `StoreWriteError` naming the file and the ingest command.
        """
        rows = list(rows)
        values = [self._to_db(r) for r in rows]
        if not values:
            return []
        find = f"SELECT status, created_at FROM results WHERE {_IDENTITY_WHERE}"

        def write(conn: sqlite3.Connection) -> list[ResultRow]:
            conn.execute("BEGIN IMMEDIATE")  # the check and the write see one state of the store
            superseded = []
            for row, value in zip(rows, values, strict=True):
                old = conn.execute(find, value).fetchone()
                if old is None or replaces(str(old[0]), str(old[1]), row.status, row.created_at):
                    conn.execute(_INSERT, value)
                else:
                    superseded.append(row)
            conn.execute("COMMIT")
            return superseded

        try:
            return self._with_retry(write)
        except StoreWriteError as exc:
            if not keep_side_file:
                raise
            kept = keep_rows(rows)
            if not kept:
                raise
            where = "; ".join(str(p) for p in kept)
            # One --collect per runs folder (the folder holding the run folders); quoted for a shell.
            command = "; ".join(f"zoo bench --collect {shlex.quote(runs)} --results {shlex.quote(str(self.path))}"
                                for runs in sorted({str(p.parent.parent) for p in kept}))
            raise StoreWriteError(
                f"{exc}; the {len(rows)} finished row(s) are kept in {where}: once the store is writable, "
                f"ingest them with `{command}`"
            ) from None

    def delete(self, row_id: str) -> bool:
        """Remove one row by id; returns whether it existed."""

        def remove(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            count = conn.execute("DELETE FROM results WHERE row_id = ?", (row_id,)).rowcount
            conn.execute("COMMIT")
            return count > 0

        return self._with_retry(remove)

    # -- reading ---------------------------------------------------------------------------------

    def _from_db(self, values: Sequence[Any], parsed: dict[tuple[str, str], Any] | None = None) -> ResultRow:
        data = dict(zip(_COLUMNS, values, strict=True))
        if parsed is not None:  # columns most rows share (one protocol per board): decoded once
            for column in _SHARED_COLUMNS:
                text = data[column]
                if isinstance(text, str) and text:
                    key = (column, text)
                    if key not in parsed:
                        parsed[key] = _load_json(text, column)
                    data[column] = parsed[key]  # from_dict copies it (dict(...)) for this row
        for column in _PATH_COLUMNS:
            data[column] = _from_store(data[column], self.folder)
        data["images"] = {k: _from_store(v, self.folder) for k, v in _load_images(data["images"]).items()}
        return ResultRow.from_dict(data)

    def rows(
        self,
        dataset: str | None = None,
        protocol_hash: str | None = None,
        model: str | None = None,
        status: str | None = None,
    ) -> list[ResultRow]:
        """Rows matching every filter given, oldest first; paths come back absolute."""
        if self.empty:
            self.skipped = []
            return []
        filters = {"dataset": dataset, "protocol_hash": protocol_hash, "model": model, "status": status}
        where = [f"{k} = :{k}" for k, v in filters.items() if v is not None]
        sql = f"SELECT {', '.join(_COLUMNS)} FROM results"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, rowid"

        def read(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(sql, {k: v for k, v in filters.items() if v is not None}).fetchall()

        return self._load_rows(self._with_retry(read))

    def _load_rows(self, found: Iterable[Sequence[Any]]) -> list[ResultRow]:
        """Rows from database tuples; a malformed one is skipped and recorded in `skipped`."""
        self.skipped = []
        rows = []
        parsed: dict[tuple[str, str], Any] = {}
        for values in found:
            try:
                rows.append(self._from_db(values, parsed))
            except (ValueError, TypeError, OverflowError, KeyError, AttributeError) as exc:
                row_id = values[_COLUMNS.index("row_id")]
                self.skipped.append((str(row_id), f"{type(exc).__name__}: {exc}"))
        return rows

    def skipped_message(self) -> str | None:
        """One warning line about the rows the last `rows` call skipped, or None."""
        if not self.skipped:
            return None
        shown = "; ".join(f"row {row_id} ({reason})" for row_id, reason in self.skipped[:5])
        more = f"; and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
        return f"skipped {len(self.skipped)} malformed row(s) in results store {self.path}: {shown}{more}"

    def find(self, identity: Sequence[Any] | ResultRow) -> ResultRow | None:
        """The row with this identity (a `ResultRow.identity` tuple, or a row), or None.
        The runner uses it to skip work already done (see `has_ok`)."""
        values = list(identity.identity if isinstance(identity, ResultRow) else identity)
        if len(values) != len(IDENTITY_COLUMNS):
            raise ValueError(f"an identity has {len(IDENTITY_COLUMNS)} values ({', '.join(IDENTITY_COLUMNS)}), got {len(values)}")
        if self.empty:
            return None
        params = dict(zip(IDENTITY_COLUMNS, values, strict=True))
        if not isinstance(params["sample_options"], str):
            params["sample_options"] = canonical_json(params["sample_options"])
        amount = _float(params["budget_amount"])
        params["budget_amount"] = None if math.isnan(amount) else amount
        sql = f"SELECT {', '.join(_COLUMNS)} FROM results WHERE {_IDENTITY_WHERE}"
        found = self._with_retry(lambda conn: conn.execute(sql, params).fetchone())
        loaded = self._load_rows([found]) if found is not None else []
        return loaded[0] if loaded else None  # a malformed row counts as absent: a re-run replaces it

    def has_ok(self, identity: Sequence[Any] | ResultRow) -> bool:
        """Whether a successful row with this identity is already stored."""
        row = self.find(identity)
        return row is not None and row.status == "ok"

    def count(self) -> int:
        if self.empty:
            return 0
        return self._with_retry(lambda conn: conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def migrations(self) -> list[str]:
        """Names of the migrations this store records, in the order they were applied."""
        if self.empty:
            return []
        return self._with_retry(lambda conn: [r[0] for r in conn.execute("SELECT name FROM _zoo_migrations ORDER BY rowid")])

    def schema_version(self) -> int:
        """The legacy ``zoo_schema`` version: the number of migrations applied."""
        if self.empty:
            return 0
        return self._with_retry(lambda conn: conn.execute("SELECT MAX(version) FROM zoo_schema").fetchone()[0])

    def to_frame(self, **filters: Any):  # noqa: ANN201 - pandas is imported lazily
        """The rows as a pandas DataFrame, one line per row, with nested dicts flattened into
        ``metrics.*``, ``floor.*``, ``costs.*``, ``sample_options.*`` and ``environment.*`` columns
        (``protocol``, ``config`` and ``curve`` stay as they are)."""
        return rows_to_frame(self.rows(**filters))


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


#: The file finished rows are kept in when the store cannot take them (the one ``--collect`` reads).
SIDE_FILE = "rows.json"


def keep_rows(rows: Sequence[ResultRow]) -> list[Path]:
    """Keep ``rows`` in ``<run_dir>/rows.json`` for each run folder they name (atomic write, merged
    by identity with rows already kept there, newest wins); returns the files written. Rows
    without a run folder are not kept. ``zoo bench --collect RUNS_DIR`` ingests these files."""
    by_dir: dict[str, list[ResultRow]] = {}
    for row in rows:
        if row.run_dir:
            by_dir.setdefault(os.path.abspath(row.run_dir), []).append(row)
    written = []
    for folder, kept in by_dir.items():
        path = Path(folder) / SIDE_FILE
        merged: dict[tuple[Any, ...], ResultRow] = {}
        if path.exists():
            try:
                merged = {r.identity: r for r in (ResultRow.from_dict(d) for d in json.loads(path.read_text()))}
            except (OSError, ValueError, TypeError, KeyError, RecursionError, MemoryError):  # unreadable: set aside, never overwritten
                os.replace(path, path.with_name(f"{SIDE_FILE}.damaged-{int(time.time())}"))
        merged.update({r.identity: r for r in kept})
        data = [_finite(r.to_dict()) for r in merged.values()]  # strict JSON: NaN becomes null
        atomic_write_text(path, json.dumps(data, indent=1, default=_json_default, allow_nan=False) + "\n")
        written.append(path)
    return written


def rows_to_frame(rows: Iterable[ResultRow]):  # noqa: ANN201
    """Flatten result rows into a DataFrame (see `ResultsStore.to_frame`)."""
    import pandas as pd

    flat_prefixes = ("metrics", "floor", "costs", "sample_options", "environment")
    records = []
    for row in rows:
        data = row.to_dict()
        record = {k: v for k, v in data.items() if k not in flat_prefixes}
        for prefix in flat_prefixes:
            for key, value in data[prefix].items():
                record[f"{prefix}.{key}"] = value
        records.append(record)
    if not records:
        return pd.DataFrame(columns=[c for c in _COLUMNS if c not in flat_prefixes])
    frame = pd.DataFrame.from_records(records)
    for column in frame.columns:
        if column.startswith(("metrics.", "floor.", "costs.")):
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame
