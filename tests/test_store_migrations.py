"""Results store migrations, run identity and store-relative paths."""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
from pathlib import Path

import pytest

from zoo.bench.store import IDENTITY_COLUMNS, SCHEMA_VERSION, ResultRow, ResultsStore, config_hash
from zoo.errors import UsageError

# The schema of genzoo's first stores (zoo_schema version 1), copied verbatim.
V1_SCHEMA = """
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
    UNIQUE (model, dataset, seed, protocol_hash, preset, sample_options)
);
CREATE INDEX IF NOT EXISTS results_by_board ON results (dataset, protocol_hash);
"""

CONFIG = {"lr": 2e-4, "betas": [0.5, 0.999]}


def v1_store(path: Path, rows: list[dict]) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("INSERT INTO zoo_schema VALUES (1, '2024-01-01T00:00:00+00:00')")
    for i, values in enumerate(rows):
        data = dict(row_id=f"r{i}", created_at=f"2024-01-01T00:00:{i:02d}+00:00", model="dcgan", family="gan",
                    plugin="zoo_dcgan", plugin_version="0.1.0", dataset="mnist-5k", dataset_fingerprint="sha256:abc",
                    seed=0, preset="quick", protocol_hash="p" * 16, protocol=json.dumps({"primary_metric": "fid_lenet"}),
                    status="ok", error=None, config=json.dumps(CONFIG, sort_keys=True, separators=(",", ":")),
                    sample_options="{}", metrics=json.dumps({"fid_lenet": 12.5 + i}), floor=json.dumps({"fid_lenet": 1.5}),
                    costs=json.dumps({"train_seconds": 120.0, "train_steps": 900}), environment=json.dumps({"device": "cpu"}),
                    grid_path=None, run_dir=None)
        data.update(values)
        conn.execute(f"INSERT INTO results ({', '.join(data)}) VALUES ({', '.join('?' * len(data))})", list(data.values()))
    conn.commit()
    conn.close()


def make_row(**changes) -> ResultRow:
    values = dict(model="vae", dataset="mnist-5k", seed=0, protocol_hash="p" * 16, plugin="zoo_vae", plugin_version="0.1.0",
                  config={"lr": 1e-3}, budget_kind="steps", budget_amount=1000.0, precision="bf16",
                  metrics={"fid_lenet": 20.0})
    values.update(changes)
    return ResultRow(**values)


def test_v1_store_migrates_forward_and_keeps_its_rows(tmp_path):
    path = tmp_path / "runs" / "results.sqlite"
    path.parent.mkdir()
    (tmp_path / "runs" / "dcgan-s0").mkdir()
    (tmp_path / "runs" / "dcgan-s0" / "grid.png").write_bytes(b"png")
    v1_store(path, [
        dict(grid_path="runs/dcgan-s0/grid.png", run_dir="runs/dcgan-s0"),  # relative to the runner's cwd (tmp_path)
        dict(seed=1, status="failed", error="boom", preset="smoke"),
        dict(seed=2, preset="my-own", sample_options=json.dumps({"sampler": "ddim", "steps": 50}, sort_keys=True, separators=(",", ":"))),
        dict(seed=2, preset="another-own", sample_options=json.dumps({"sampler": "ddim", "steps": 50}, sort_keys=True, separators=(",", ":"))),
    ])
    store = ResultsStore(path)
    assert store.migrations() == ["m001_initial", "m002_run_identity", "m003_row_images", "m004_external_rows", "m005_tuning"]
    assert store.schema_version() == SCHEMA_VERSION
    rows = {(r.seed, r.preset): r for r in store.rows()}
    # The two unknown presets collide under the new identity: the newer one stays in results,
    # the older one is kept aside, not lost.
    assert set(rows) == {(0, "quick"), (1, "smoke"), (2, "another-own")}
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT row_id, preset FROM _zoo_m002_duplicates").fetchall() == [("r2", "my-own")]
    conn.close()
    quick = rows[(0, "quick")]
    assert quick.metrics == {"fid_lenet": 12.5} and quick.config == CONFIG
    assert quick.config_hash == config_hash(CONFIG) and len(quick.config_hash) == 12
    assert (quick.budget_kind, quick.budget_amount, quick.precision) == ("time", 120.0, "fp32")
    assert quick.grid_path == str(tmp_path / "runs" / "dcgan-s0" / "grid.png")
    assert quick.run_dir == str(tmp_path / "runs" / "dcgan-s0")
    assert quick.curve == [] and quick.config_label == ""
    smoke = rows[(1, "smoke")]
    assert (smoke.status, smoke.error, smoke.budget_kind, smoke.budget_amount) == ("failed", "boom", "steps", 4.0)
    own = rows[(2, "another-own")]
    assert own.budget_kind == "time" and math.isnan(own.budget_amount)
    assert own.sample_options == {"sampler": "ddim", "steps": 50}
    # Stored relative to the store's folder now.
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT grid_path FROM results WHERE row_id = 'r0'").fetchone()[0] == "dcgan-s0/grid.png"
    conn.close()
    # Reopening applies nothing again; new rows use the new identity.
    again = ResultsStore(path)
    assert again.migrations() == ["m001_initial", "m002_run_identity", "m003_row_images", "m004_external_rows", "m005_tuning"]
    again.add(ResultRow.from_dict({**own.to_dict(), "row_id": "new", "metrics": {"fid_lenet": 1.0}}))
    assert again.count() == 3 and again.find(own.identity).metrics == {"fid_lenet": 1.0}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("how", ["unknown-migration", "legacy-version"])
def test_newer_store_is_refused_byte_for_byte_unchanged(tmp_path, how):
    path = tmp_path / "r.sqlite"
    ResultsStore(path).add(make_row())
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = DELETE")  # a store whose header WAL mode would rewrite
    if how == "unknown-migration":
        conn.execute("INSERT INTO _zoo_migrations VALUES ('m999_from_the_future', 'later')")
    else:
        conn.execute("UPDATE zoo_schema SET version = ?", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    before, names = _digest(path), sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UsageError, match="newer genzoo") as info:
        ResultsStore(path)
    assert "\n" not in str(info.value)
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == names


def test_identity_upserts_and_find(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    row = make_row()
    assert len(row.identity) == len(IDENTITY_COLUMNS)
    assert store.find(row.identity) is None and not store.has_ok(row)
    store.add(row)
    assert store.find(row.identity) == row and store.has_ok(row.identity)
    store.add(make_row(metrics={"fid_lenet": 10.0}, preset="renamed"))  # same identity: replaced
    assert store.count() == 1 and store.rows()[0].metrics == {"fid_lenet": 10.0}
    for change in (dict(config={"lr": 1e-2}, config_label="lr=0.01"), dict(budget_kind="time"), dict(budget_amount=2000.0),
                   dict(precision="fp32"), dict(plugin_version="0.2.0"), dict(seed=1), dict(sample_options={"temperature": 0.5})):
        store.add(make_row(**change))
    assert store.count() == 8
    # An unknown budget amount is one value for the identity.
    store.add(make_row(budget_amount=math.nan, metrics={"fid_lenet": 1.0}))
    store.add(make_row(budget_amount=math.nan, metrics={"fid_lenet": 2.0}))
    assert store.count() == 9
    assert store.find(make_row(budget_amount=math.nan).identity).metrics == {"fid_lenet": 2.0}
    store.add(make_row(seed=5, status="failed", error="x"))
    assert store.find(make_row(seed=5).identity) is not None and not store.has_ok(make_row(seed=5).identity)


def test_config_hash_is_canonical_and_rows_validate():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
    assert make_row().config_hash == config_hash({"lr": 1e-3})
    assert make_row(config_hash="0123456789ab").config_hash == "0123456789ab"
    with pytest.raises(ValueError, match="budget_kind"):
        make_row(budget_kind="epochs")
    with pytest.raises(ValueError, match="precision"):
        make_row(precision="int8")


def test_curve_round_trips(tmp_path):
    curve = [{"fraction": 0.5, "train_steps": 500, "train_kimg": 32.0, "train_flops": 1e12, "train_seconds": 30.0,
              "metrics": {"fid_lenet": 40.0}},
             {"fraction": 1.0, "train_steps": 1000, "train_kimg": 64.0, "train_flops": 2e12, "train_seconds": 60.0,
              "metrics": {"fid_lenet": 20.0}}]
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add(make_row(curve=curve))
    assert store.rows()[0].curve == curve


def test_paths_are_stored_relative_to_the_store_and_resolved_from_anywhere(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "runs" / "vae-s0").mkdir(parents=True)
    monkeypatch.chdir(project)
    store = ResultsStore(Path("runs") / "results.sqlite")
    store.add(make_row(grid_path="runs/vae-s0/grid.png", run_dir="runs/vae-s0"))
    store.add(make_row(seed=1, grid_path=str(tmp_path / "outside" / "grid.png")))
    conn = sqlite3.connect(project / "runs" / "results.sqlite")
    stored = dict(conn.execute("SELECT seed, grid_path FROM results").fetchall())
    conn.close()
    assert stored == {0: "vae-s0/grid.png", 1: str(tmp_path / "outside" / "grid.png")}

    # Moved and read from another directory: the relative paths follow the store.
    (project).rename(tmp_path / "moved")
    monkeypatch.chdir(tmp_path)
    rows = {r.seed: r for r in ResultsStore(Path("moved") / "runs" / "results.sqlite").rows()}
    assert rows[0].grid_path == str(tmp_path / "moved" / "runs" / "vae-s0" / "grid.png")
    assert rows[0].run_dir == str(tmp_path / "moved" / "runs" / "vae-s0")
    assert rows[1].grid_path == str(tmp_path / "outside" / "grid.png")


def test_m003_row_images_are_stored_relative_to_the_store(tmp_path):
    """The images column (m003) round-trips name -> path, relative to the store's folder like grid_path."""
    from zoo.bench.store import ResultRow

    path = tmp_path / "store" / "results.sqlite"
    store = ResultsStore(path)
    assert "m003_row_images" in store.migrations()
    pairs = tmp_path / "store" / "runs" / "x" / "nearest.png"
    row = ResultRow(model="vae", dataset="mnist-5k", seed=0, protocol_hash="p" * 12, images={"nearest_neighbours": str(pairs)})
    store.add(row)
    with sqlite3.connect(path) as conn:
        stored = conn.execute("SELECT images FROM results").fetchone()[0]
    assert json.loads(stored) == {"nearest_neighbours": os.path.join("runs", "x", "nearest.png")}
    moved = tmp_path / "moved"
    (tmp_path / "store").rename(moved)
    assert ResultsStore(moved / "results.sqlite").rows()[0].images == {"nearest_neighbours": str(moved / "runs" / "x" / "nearest.png")}


def test_m004_external_rows_migrates_an_m003_store_and_round_trips_the_source(tmp_path):
    """A store made before m004 (its column dropped, its record removed) gains ``external`` on
    open; its rows read ``{}`` (trained by genzoo) and an external row keeps where it came from."""
    from zoo.bench.store import ResultRow

    path = tmp_path / "results.sqlite"
    store = ResultsStore(path)
    store.add(ResultRow(model="vae", dataset="mnist-5k", seed=0, protocol_hash="p" * 12))
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE results DROP COLUMN external")
        conn.execute("DELETE FROM _zoo_migrations WHERE name = 'm004_external_rows'")
    again = ResultsStore(path)
    assert again.migrations()[-1] == "m004_external_rows"
    assert again.rows()[0].external == {}
    source = {"source": "samples/", "kind": "folder", "images": 1200, "scored": 1000}
    again.add(ResultRow(model="mine", dataset="mnist-5k", seed=0, protocol_hash="p" * 12, plugin="external",
                        external=source))
    assert {r.model: r.external for r in ResultsStore(path).rows()} == {"vae": {}, "mine": source}
