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

Modules, one job each: `.row` (the row type, canonical JSON, hashes), `.migrations`
(the schema, append-only), `.schema` (applying migrations), `.database` (connections,
writes, reads), `.sidecars` (SQLite's files beside the database), `.side_file`
(``rows.json``), `.frame` (pandas). Every public name is importable from here.
"""

from __future__ import annotations

import os  # noqa: F401 - tests patch zoo.bench.store.os.access, the one every module uses

from zoo.bench.store.database import ResultsStore, StoreWriteError, default_store_path
from zoo.bench.store.frame import rows_to_frame
from zoo.bench.store.migrations import MIGRATIONS, migration  # noqa: F401 - importable as before
from zoo.bench.store.row import (
    BUDGET_KINDS,
    IDENTITY_COLUMNS,
    PRECISIONS,
    STATUSES,
    ResultRow,
    _parse_json,  # noqa: F401 - the leaderboard decodes JSON columns as the store does
    canonical_json,
    config_hash,
    replaces,
)
from zoo.bench.store.schema import SCHEMA_VERSION
from zoo.bench.store.side_file import SIDE_FILE, keep_rows  # noqa: F401 - importable as before
from zoo.bench.store.sidecars import _is_wal, open_mode  # noqa: F401 - _is_wal: tests

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
