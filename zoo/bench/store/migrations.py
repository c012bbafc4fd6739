"""The store's schema as named, ordered migrations (the pattern of simonw/llm's ``migrations.py``).

To change the schema, append a new ``@migration`` function at the end of this file
(``m004_...``); never rename, reorder or edit a released one. `zoo.bench.store.schema`
applies them.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from zoo.bench.store.paths import _store_relative
from zoo.bench.store.row import IDENTITY_COLUMNS, PRECISIONS, _load_json, config_hash

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
        identity = tuple(data[c] for c in IDENTITY_COLUMNS if c != "tuning")  # m002's identity
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


@migration
def m004_external_rows(conn: sqlite3.Connection) -> None:
    """``external``: a JSON object saying where a row's samples came from when genzoo did not train
    the model (``zoo bench --samples``, ``zoo eval --store``); ``{}`` for every earlier row."""
    conn.execute("ALTER TABLE results ADD COLUMN external TEXT NOT NULL DEFAULT '{}'")


@migration
def m005_tuning(conn: sqlite3.Connection) -> None:
    """``tuning`` (the effort behind a tuned config, ``{}`` for others) joins the run identity, and
    ``tuning_trials`` keeps every trial of ``zoo bench --tune`` (`zoo.bench.trials`)."""
    conn.execute("ALTER TABLE results ADD COLUMN tuning TEXT NOT NULL DEFAULT '{}'")
    conn.execute("DROP INDEX results_identity")
    conn.execute(
        "CREATE UNIQUE INDEX results_identity ON results (protocol_hash, dataset, model, plugin, plugin_version, "
        "config_hash, budget_kind, IFNULL(budget_amount, 'unknown'), precision, seed, sample_options, tuning)"
    )
    conn.execute(
        """CREATE TABLE tuning_trials (
    study               TEXT NOT NULL,
    number              INTEGER NOT NULL,
    created_at          TEXT NOT NULL,
    model               TEXT NOT NULL,
    family              TEXT NOT NULL DEFAULT '',
    dataset             TEXT NOT NULL,
    protocol_hash       TEXT NOT NULL,
    tuning              TEXT NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('complete', 'pruned', 'failed')),
    value               REAL,
    params              TEXT NOT NULL,
    intermediate        TEXT NOT NULL DEFAULT '{}',
    system_attrs        TEXT NOT NULL DEFAULT '{}',
    config_label        TEXT NOT NULL DEFAULT '',
    config_hash         TEXT NOT NULL DEFAULT '',
    error               TEXT,
    PRIMARY KEY (study, number)
)"""
    )
    conn.execute("CREATE INDEX tuning_trials_by_board ON tuning_trials (dataset, protocol_hash, tuning)")
