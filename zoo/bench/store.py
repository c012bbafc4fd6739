"""The benchmark results store: one SQLite row per model x dataset x seed x protocol.

Several ``zoo bench`` processes may write to one store at once. An atomic file rename loses rows
under that load (8 writers kept 50 of 320 rows in a test); SQLite in WAL mode, with every write in
its own ``BEGIN IMMEDIATE`` transaction and a busy timeout, keeps them all. Each row is committed on
its own, so Ctrl-C or a killed process keeps every row finished before it.

A row is identified by (model, dataset, seed, protocol_hash, preset, sample_options): adding a row
with the same identity replaces the old one, so re-running a benchmark updates it, and DDIM at 50
steps and DDPM at 1000 steps stay separate rows.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from zoo.errors import UsageError, ZooError

__all__ = ["SCHEMA_VERSION", "STATUSES", "ResultRow", "ResultsStore", "default_store_path"]

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed")
_SQLITE_MAGIC = b"SQLite format 3\x00"
# Columns holding a nested dict, stored as canonical JSON text.
_JSON_COLUMNS = ("protocol", "config", "sample_options", "metrics", "floor", "costs", "environment")
_IDENTITY = ("model", "dataset", "seed", "protocol_hash", "preset", "sample_options")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS zoo_schema (
    version     INTEGER PRIMARY KEY,
    applied_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
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
    UNIQUE ({", ".join(_IDENTITY)})
);
CREATE INDEX IF NOT EXISTS results_by_board ON results (dataset, protocol_hash);
"""

T = TypeVar("T")


def default_store_path() -> Path:
    """``$ZOO_RESULTS`` when set, else ``runs/results.sqlite`` under the current directory."""
    env = os.environ.get("ZOO_RESULTS", "").strip()
    return Path(env).expanduser() if env else Path("runs") / "results.sqlite"


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


def canonical_json(value: Mapping[str, Any] | None) -> str:
    """Stable JSON text (sorted keys, no spaces): equal dicts give equal strings, so the UNIQUE
    constraint and grouping by sample options compare by content. NaN/inf are kept (Python's JSON
    reads them back)."""
    return json.dumps(dict(value or {}), sort_keys=True, separators=(",", ":"), default=_json_default)


def _load_json(value: Any, column: str) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    loaded = json.loads(value)
    if not isinstance(loaded, dict):
        raise ValueError(f"result column {column!r} must hold a JSON object, got {type(loaded).__name__}")
    return loaded


@dataclass
class ResultRow:
    """One benchmark result: a model trained on a dataset with a seed, evaluated under a protocol.

    ``metrics`` and ``floor`` share keys (``fid_lenet``, ``is_lenet``, ``kid_lenet``, ...); ``floor``
    holds the real-versus-real score of the protocol, the best a perfect generator can reach at this
    sample count. A failed run has ``status="failed"``, its ``error`` and whatever it measured.
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

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"result status must be one of {STATUSES}, got {self.status!r}")
        for name in ("model", "dataset", "protocol_hash"):
            if not getattr(self, name):
                raise ValueError(f"result row needs a non-empty {name}")
        self.seed = int(self.seed)
        self.preset = self.preset or ""
        for name in ("grid_path", "run_dir"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, os.fspath(value))

    @property
    def key(self) -> tuple[str, str, int, str, str, str]:
        """The identity a re-run replaces: (model, dataset, seed, protocol_hash, preset, options)."""
        return (self.model, self.dataset, self.seed, self.protocol_hash, self.preset, canonical_json(self.sample_options))

    @property
    def primary_metric(self) -> str | None:
        return self.protocol.get("primary_metric")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with nested dicts (JSON-serialisable for JSON-safe contents)."""
        return {f.name: _copy(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResultRow:
        """Inverse of :meth:`to_dict`; also accepts JSON text for nested columns (a database row).
        Unknown keys are ignored so rows written by a newer genzoo still load."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for column in _JSON_COLUMNS:
            if column in kwargs:
                kwargs[column] = _load_json(kwargs[column], column)
        return cls(**kwargs)

    def _db_values(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for column in _JSON_COLUMNS:
            values[column] = canonical_json(values[column])
        return values


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_json_default)) if isinstance(value, dict) else value


_COLUMNS = tuple(f.name for f in fields(ResultRow))
_INSERT = (
    f"INSERT OR REPLACE INTO results ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _COLUMNS)})"
)


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


class ResultsStore:
    """A results database at ``path`` (created with its parent folders unless ``create=False``).

    ``timeout`` is SQLite's busy timeout in seconds: how long one statement waits for another
    writer. Beyond it, writes retry with exponential backoff for ``retry_seconds`` more before
    giving up with a :class:`~zoo.errors.ZooError`. A file that is not a genzoo results store is
    refused with a :class:`~zoo.errors.UsageError` and never written to.
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
        self._check_file(create)
        self._with_retry(self._init_schema)

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.path)!r})"

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

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; every write says BEGIN IMMEDIATE itself,
        # which takes the write lock up front instead of failing to upgrade a read lock later.
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        return conn

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        # Look before writing anything (switching to WAL already rewrites the header).
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "zoo_schema" not in tables:
            raise UsageError(f"{self.path} is an SQLite database but not a genzoo results store; refusing to touch it")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        # executescript() would COMMIT first: run the statements one by one inside the transaction.
        for statement in filter(str.strip, _SCHEMA.split(";")):
            conn.execute(statement)
        version = conn.execute("SELECT MAX(version) FROM zoo_schema").fetchone()[0]
        if version is None:
            conn.execute("INSERT INTO zoo_schema (version, applied_at) VALUES (?, ?)", (SCHEMA_VERSION, _utc_now()))
        elif version > SCHEMA_VERSION:
            conn.execute("ROLLBACK")
            raise UsageError(f"results store {self.path} has schema version {version}, newer than this genzoo understands ({SCHEMA_VERSION}); upgrade genzoo")
        # Future migrations go here: `if version < 2: ALTER TABLE ...; INSERT INTO zoo_schema ...`.
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
                    raise ZooError(f"results store {self.path} stayed locked for over {self.timeout + self.retry_seconds:.0f}s; is another process stuck holding it?") from None
                raise UsageError(f"{self.path} is not a usable genzoo results store: {exc}") from None
            finally:
                if conn is not None:
                    conn.close()  # closing an open transaction rolls it back

    # -- writing ---------------------------------------------------------------------------------

    def add(self, row: ResultRow) -> None:
        """Insert ``row``, replacing any row with the same identity; committed before returning."""
        self.add_many([row])

    def add_many(self, rows: Iterable[ResultRow]) -> None:
        """Insert several rows in one transaction (all or none)."""
        values = [r._db_values() for r in rows]
        if not values:
            return

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_INSERT, values)
            conn.execute("COMMIT")

        self._with_retry(write)

    def delete(self, row_id: str) -> bool:
        """Remove one row by id; returns whether it existed."""

        def remove(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            count = conn.execute("DELETE FROM results WHERE row_id = ?", (row_id,)).rowcount
            conn.execute("COMMIT")
            return count > 0

        return self._with_retry(remove)

    # -- reading ---------------------------------------------------------------------------------

    def rows(
        self,
        dataset: str | None = None,
        protocol_hash: str | None = None,
        model: str | None = None,
        status: str | None = None,
    ) -> list[ResultRow]:
        """Rows matching every filter given, oldest first."""
        filters = {"dataset": dataset, "protocol_hash": protocol_hash, "model": model, "status": status}
        where = [f"{k} = :{k}" for k, v in filters.items() if v is not None]
        sql = f"SELECT {', '.join(_COLUMNS)} FROM results"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, rowid"

        def read(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(sql, {k: v for k, v in filters.items() if v is not None}).fetchall()

        return [ResultRow.from_dict(dict(zip(_COLUMNS, r, strict=True))) for r in self._with_retry(read)]

    def count(self) -> int:
        return self._with_retry(lambda conn: conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def schema_version(self) -> int:
        return self._with_retry(lambda conn: conn.execute("SELECT MAX(version) FROM zoo_schema").fetchone()[0])

    def to_frame(self, **filters: Any):  # noqa: ANN201 - pandas is imported lazily
        """The rows as a pandas DataFrame, one line per row, with nested dicts flattened into
        ``metrics.*``, ``floor.*``, ``costs.*``, ``sample_options.*`` and ``environment.*`` columns
        (``protocol`` and ``config`` stay dicts)."""
        return rows_to_frame(self.rows(**filters))


def rows_to_frame(rows: Iterable[ResultRow]):  # noqa: ANN201
    """Flatten result rows into a DataFrame (see :meth:`ResultsStore.to_frame`)."""
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
