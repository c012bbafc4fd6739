"""Applying `MIGRATIONS` to a store, and refusing stores that
are not genzoo's or were written by a newer genzoo.

Each migration runs once in its own transaction and is recorded by name in ``_zoo_migrations``.
The legacy ``zoo_schema`` table of genzoo's first stores is still read (version 1 =
``m001_initial`` applied) and still written (its version is the number of migrations applied) so
that an older genzoo refuses a newer store instead of writing rows it does not understand.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from zoo.bench.store.migrations import MIGRATIONS
from zoo.bench.store.row import _utc_now
from zoo.errors import UsageError

#: The legacy ``zoo_schema`` version a store reaches with every migration applied.
SCHEMA_VERSION = len(MIGRATIONS)
_KNOWN = [m.__name__ for m in MIGRATIONS]


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


def refuse_unknown(path: Path, tables: set[str], names: list[str], legacy: int) -> None:
    """UsageError for a foreign SQLite database or a store with migrations we do not know."""
    if tables and not tables & {"zoo_schema", "_zoo_migrations"}:
        raise UsageError(f"{path} is an SQLite database but not a genzoo results store; refusing to touch it")
    unknown = [n for n in names if n not in _KNOWN]
    if unknown or legacy > SCHEMA_VERSION:
        what = f"migration {unknown[0]}" if unknown else f"schema version {legacy}"
        raise UsageError(f"results store {path} was written by a newer genzoo ({what}, newer than this genzoo understands); upgrade genzoo, it was left untouched")


def inspect(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse (UsageError) what `refuse_unknown` refuses, through ``conn`` (read-only)."""
    tables = _tables(conn)
    refuse_unknown(path, tables, *_applied(conn, tables))


def check_current(conn: sqlite3.Connection, path: Path) -> None:
    """A read-only store cannot be migrated: UsageError unless it has every migration."""
    tables = _tables(conn)
    if not tables:
        raise UsageError(f"results store {path} is read-only and empty (run `zoo bench` with a writable --results)")
    names, legacy = _applied(conn, tables)
    missing = [n for n in _KNOWN if n not in names]
    if missing:
        raise UsageError(f"results store {path} is read-only and was written by an older genzoo (it needs "
                         f"migration {missing[0]}); open it once where it is writable, or copy it somewhere writable")


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Apply the migrations ``conn``'s store lacks, each in its own ``BEGIN IMMEDIATE``."""
    tables = _tables(conn)
    names, legacy = _applied(conn, tables)
    refuse_unknown(path, tables, names, legacy)
    if all(n in names for n in _KNOWN) and legacy == SCHEMA_VERSION:
        return  # nothing to write
    conn.execute("PRAGMA journal_mode = WAL")
    for index, fn in enumerate(MIGRATIONS, start=1):
        conn.execute("BEGIN IMMEDIATE")
        # Look again under the write lock: another process may have migrated meanwhile.
        tables = _tables(conn)
        names, legacy = _applied(conn, tables)
        refuse_unknown(path, tables, names, legacy)
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
