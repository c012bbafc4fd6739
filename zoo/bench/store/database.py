"""The SQLite results store: connections, retries under contention, writes and reads of rows.

Several ``zoo bench`` processes may write to one store at once: SQLite in WAL mode, with every
write in its own ``BEGIN IMMEDIATE`` transaction and a busy timeout, keeps every row.
"""

from __future__ import annotations

import math
import os
import random
import shlex
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from zoo.bench.store import schema
from zoo.bench.store.bulk import gc_paused
from zoo.bench.store.frame import rows_to_frame
from zoo.bench.store.paths import _from_store, _store_relative
from zoo.bench.store.row import (
    _COLUMNS,
    _JSON_COLUMNS,
    _PATH_COLUMNS,
    _SHARED_COLUMNS,
    IDENTITY_COLUMNS,
    ResultRow,
    _float,
    _load_images,
    _load_json,
    _parse_json,
    canonical_json,
    replaces,
)
from zoo.bench.store.side_file import keep_rows
from zoo.bench.store.sidecars import _remove_new_sidecars, _sidecars, open_mode
from zoo.errors import UsageError, ZooError
from zoo.fileio import STALE_TEMP_SECONDS, env_folder, remove_stale_temp_files

_SQLITE_MAGIC = b"SQLite format 3\x00"
T = TypeVar("T")


def _lenient_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _created_at(row: ResultRow) -> str:
    return str(row.created_at)  # a tampered row may hold a number: it sorts, never raises


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


_INSERT = (
    f"INSERT OR REPLACE INTO results ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _COLUMNS)})"
)
#: Matches the stored row of an identity (named parameters as `ResultRow._db_values` gives them).
_IDENTITY_WHERE = " AND ".join(
    "IFNULL(budget_amount, 'unknown') = IFNULL(:budget_amount, 'unknown')" if c == "budget_amount" else f"{c} = :{c}"
    for c in IDENTITY_COLUMNS
)


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


class StoreWriteError(ZooError):
    """Finished rows could not be written to the store (disk full, I/O error, read-only, locked)."""


# SQLite primary result codes of a write that failed for reasons outside the rows themselves.
_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN = 8, 10, 13, 14


def _is_write_error(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN)


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

    def _inspect(self, _conn: sqlite3.Connection) -> None:
        """Look before anything writes (switching to WAL already rewrites the header): through a
        read-only connection, refuse a foreign database or one with migrations we do not know."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        conn = self._connect(read_only=True)
        try:
            schema.inspect(conn, self.path)
        finally:
            conn.close()

    def _check_current(self, conn: sqlite3.Connection) -> None:
        schema.check_current(conn, self.path)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        schema.migrate(conn, self.path)

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

    def _from_db(self, values: Sequence[Any], parsed: dict[tuple[str, str], Any] | None = None,
                 folder: str | None = None) -> ResultRow:
        """A `ResultRow` from a database tuple (`_COLUMNS` order). Raises ValueError, TypeError
        (and the like) for a malformed row, as `ResultRow.from_dict` would. ``parsed`` caches the
        columns most rows share (`_SHARED_COLUMNS`: one protocol per board), decoded once per
        distinct text; every row still gets its own dict."""
        data = dict(zip(_COLUMNS, values, strict=True))
        folder = folder or self.folder
        for column in _JSON_COLUMNS:
            text = data[column]
            if parsed is not None and column in _SHARED_COLUMNS and isinstance(text, str) and text:
                key = (column, text)
                if key not in parsed:
                    parsed[key] = _load_json(text, column)
                data[column] = dict(parsed[key])
            else:
                data[column] = _load_json(text, column)
        for column in _PATH_COLUMNS:
            data[column] = _from_store(data[column], folder)
        data["images"] = {k: _from_store(v, folder) for k, v in _load_images(data["images"]).items()}
        curve = data["curve"]
        data["curve"] = _parse_json(curve, "curve") if isinstance(curve, (str, bytes)) and curve else curve
        return ResultRow(**data)  # validates (status, budget kind, seed, curve points...) as from_dict does

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
        sql += " ORDER BY rowid"  # by created_at below: SQLite's sort of a large store took longer

        params = {k: v for k, v in filters.items() if v is not None}

        def read(conn: sqlite3.Connection) -> list[ResultRow]:
            # Decoded while SQLite steps through the rows: one tuple at a time, never all at once.
            try:
                return self._load_rows(conn.execute(sql, params))
            except sqlite3.OperationalError as exc:
                if "decode" not in str(exc):
                    raise
            # A row's text is not UTF-8 (tampered): read again, not UTF-8 text as lone surrogates,
            # so that row alone is skipped as malformed. Only then: a Python text_factory is slower.
            conn.text_factory = _lenient_text
            return self._load_rows(conn.execute(sql, params), check_text=True)

        with gc_paused():
            rows = self._with_retry(read)
        rows.sort(key=_created_at)  # stable: rows created together keep their insertion order
        return rows

    def _load_rows(self, found: Iterable[Sequence[Any]], check_text: bool = False) -> list[ResultRow]:
        """Rows from database tuples; a malformed one is skipped and recorded in `skipped`.
        ``check_text``: text read with `_lenient_text` that is not UTF-8 makes its row malformed."""
        self.skipped = []
        rows = []
        parsed: dict[tuple[str, str], Any] = {}
        folder = self.folder  # once: abspath per row is a tenth of the read
        for values in found:
            try:
                if check_text:
                    for value in values:
                        if isinstance(value, str) and not value.isascii():
                            value.encode("utf-8")  # UnicodeEncodeError, a ValueError: not UTF-8 in the file
                rows.append(self._from_db(values, parsed, folder))
            except (ValueError, TypeError, OverflowError, KeyError, AttributeError, RecursionError) as exc:
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
