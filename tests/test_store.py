"""The SQLite results store: round trips, upserts, refusal of foreign files, concurrent writers."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import random
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from zoo.bench.store import SCHEMA_VERSION, ResultRow, ResultsStore, default_store_path
from zoo.errors import UsageError

PROTOCOL = {"primary_metric": "fid_lenet", "n_real": 1000, "n_gen": 1000, "backbone": "lenet"}


def make_row(model: str = "dcgan", seed: int = 0, **changes) -> ResultRow:
    values = dict(
        model=model,
        family="gan",
        plugin="zoo_dcgan",
        plugin_version="0.1.0",
        dataset="mnist-5k",
        dataset_fingerprint="sha256:abc",
        seed=seed,
        preset="quick",
        protocol_hash="p" * 16,
        protocol=PROTOCOL,
        config={"lr": 2e-4, "betas": [0.5, 0.999], "nested": {"depth": 3}},
        sample_options={},
        metrics={"fid_lenet": 12.5 + seed, "is_lenet": 8.25, "kid_lenet": 0.0125},
        floor={"fid_lenet": 1.5, "is_lenet": 9.8, "kid_lenet": 0.0001},
        costs={"train_images_per_s": 5123.5, "params": 3_576_577, "peak_memory_mb": 210.0},
        environment={"device": "cpu", "torch": "2.15.0", "python": "3.11.7"},
        grid_path="runs/x/grid.png",
        run_dir="runs/x",
    )
    values.update(changes)
    return ResultRow(**values)


def test_default_path_follows_environment(monkeypatch, tmp_path):
    assert default_store_path() == Path("runs") / "results.sqlite"
    monkeypatch.setenv("ZOO_RESULTS", str(tmp_path / "elsewhere.sqlite"))
    assert default_store_path() == tmp_path / "elsewhere.sqlite"


def test_round_trip_keeps_every_field(tmp_path):
    store = ResultsStore(tmp_path / "deep" / "folder" / "results.sqlite")
    # Paths come back absolute (stored relative to the store's folder), so give absolute ones.
    row = make_row(status="failed", error="RuntimeError: boom\nline 2", grid_path=str(tmp_path / "deep" / "folder" / "x" / "grid.png"),
                   run_dir=str(tmp_path / "elsewhere" / "x"))
    store.add(row)
    (back,) = store.rows()
    assert back == row
    assert back.to_dict() == row.to_dict()
    assert ResultRow.from_dict(row.to_dict()) == row
    # Nested dicts come back as dicts, not JSON text, with their types.
    assert back.config["betas"] == [0.5, 0.999] and back.costs["params"] == 3_576_577
    assert back.error == "RuntimeError: boom\nline 2"

    store.add(make_row(seed=1, metrics={"fid_lenet": float("nan"), "is_lenet": float("inf")}))
    nan_row = store.rows(status="ok")[0]
    assert math.isnan(nan_row.metrics["fid_lenet"]) and nan_row.metrics["is_lenet"] == math.inf
    assert store.schema_version() == SCHEMA_VERSION


def test_store_uses_wal_and_a_schema_table(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultsStore(path).add(make_row())
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM zoo_schema").fetchall() == [(SCHEMA_VERSION,)]
    finally:
        conn.close()


def test_upsert_replaces_same_identity_and_keeps_different_options(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add(make_row(metrics={"fid_lenet": 30.0}))
    store.add(make_row(metrics={"fid_lenet": 20.0}))  # a re-run of the same benchmark
    assert [r.metrics["fid_lenet"] for r in store.rows()] == [20.0]

    # Same options in another key order are the same identity.
    store.add(make_row(model="ddpm", sample_options={"sampler": "ddim", "steps": 50}))
    store.add(make_row(model="ddpm", sample_options={"steps": 50, "sampler": "ddim"}, metrics={"fid_lenet": 4.0}))
    store.add(make_row(model="ddpm", sample_options={"sampler": "ddpm", "steps": 1000}))
    store.add(make_row(seed=1))
    store.add(make_row(protocol_hash="q" * 16))
    store.add(make_row(preset="full", budget_amount=1200.0))  # the preset is descriptive; its budget is identity
    assert store.count() == 6
    ddim = store.rows(model="ddpm")
    assert {r.sample_options["steps"] for r in ddim} == {50, 1000}
    assert next(r for r in ddim if r.sample_options["steps"] == 50).metrics["fid_lenet"] == 4.0


def test_filters(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add_many([make_row(), make_row(model="vae"), make_row(dataset="cifar10"), make_row(seed=2, status="failed", error="x")])
    assert len(store.rows()) == 4
    assert {r.model for r in store.rows(dataset="mnist-5k")} == {"dcgan", "vae"}
    assert [r.dataset for r in store.rows(model="dcgan", dataset="cifar10")] == ["cifar10"]
    assert [r.seed for r in store.rows(status="failed")] == [2]
    assert store.rows(protocol_hash="nope") == []


def test_to_frame_flattens_metrics_and_costs(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.add_many([make_row(seed=0), make_row(seed=1)])
    frame = store.to_frame(dataset="mnist-5k")
    assert len(frame) == 2
    assert frame["metrics.fid_lenet"].tolist() == [12.5, 13.5]
    assert frame["costs.params"].dtype.kind in "if"
    assert frame["environment.device"].tolist() == ["cpu", "cpu"]
    assert len(ResultsStore(tmp_path / "empty.sqlite").to_frame()) == 0


def test_bad_rows_are_rejected():
    with pytest.raises(ValueError, match="status"):
        make_row(status="crashed")
    with pytest.raises(ValueError, match="model"):
        make_row(model="")


@pytest.mark.parametrize("content", [b"this is my thesis, not a database\n" * 50, random.Random(0).randbytes(4096)],
                         ids=["text", "random-bytes"])
def test_foreign_file_is_refused_and_left_untouched(tmp_path, content):
    path = tmp_path / "results.sqlite"
    path.write_bytes(content)
    with pytest.raises(UsageError, match="not a genzoo results store") as info:
        ResultsStore(path)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.sqlite"]  # no -wal / -shm left


def test_other_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "app.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(UsageError, match="not a genzoo results store"):
        ResultsStore(path)
    assert path.read_bytes() == before


def test_missing_store_without_create_and_directory_paths(tmp_path):
    with pytest.raises(UsageError, match="no results store"):
        ResultsStore(tmp_path / "absent.sqlite", create=False)
    assert not (tmp_path / "absent.sqlite").exists()
    with pytest.raises(UsageError, match="directory"):
        ResultsStore(tmp_path)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultsStore(path)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO zoo_schema VALUES (?, 'later')", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(UsageError, match="newer"):
        ResultsStore(path)


# -- several processes ---------------------------------------------------------------------------


def _context() -> mp.context.BaseContext:
    # fork starts in milliseconds; spawn (re-importing torch per child) is the portable fallback.
    return mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def _writer(path: str, worker: int, n: int, start) -> None:  # noqa: ANN001 - an Event
    start.wait()
    store = ResultsStore(path)  # every writer also races on creating the schema
    for i in range(n):
        store.add(make_row(model=f"m{worker}", seed=i, metrics={"fid_lenet": float(worker * 1000 + i)}))


def test_concurrent_writer_processes_lose_nothing(tmp_path):
    """The field-notes scenario: 8 processes x 40 rows into one fresh store keep all 320 rows."""
    path = str(tmp_path / "shared.sqlite")
    ctx = _context()
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(path, w, 40, start)) for w in range(8)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * 8
    rows = ResultsStore(path).rows()
    assert len(rows) == 320
    assert {(r.model, r.seed) for r in rows} == {(f"m{w}", i) for w in range(8) for i in range(40)}
    assert all(r.metrics["fid_lenet"] == int(r.model[1:]) * 1000 + r.seed for r in rows)


def _write_forever(path: str) -> None:
    store = ResultsStore(path)
    i = 0
    while True:
        store.add(make_row(seed=i, metrics={"fid_lenet": float(i)}))
        i += 1


def _die_inside_a_transaction(path: str) -> None:
    store = ResultsStore(path)
    store.add_many([make_row(seed=i) for i in range(5)])
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE results SET model = 'half-written'")
    conn.execute("DELETE FROM results WHERE seed = 0")
    os._exit(3)  # no commit, no cleanup: like a crash mid-write


def test_writer_killed_mid_run_keeps_committed_rows(tmp_path):
    path = str(tmp_path / "r.sqlite")
    ctx = _context()
    proc = ctx.Process(target=_write_forever, args=(path,))
    proc.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if Path(path).exists() and ResultsStore(path).count() >= 20:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=30)
    assert proc.exitcode == -signal.SIGKILL

    store = ResultsStore(path)
    rows = store.rows()
    assert len(rows) >= 20
    # Every committed row is whole, and they are exactly seeds 0..n-1 in order.
    assert sorted(r.seed for r in rows) == list(range(len(rows)))
    assert all(r.metrics == {"fid_lenet": float(r.seed)} and r.costs["params"] == 3_576_577 for r in rows)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    store.add(make_row(seed=10_000))  # the lock died with the process
    assert store.count() == len(rows) + 1


def test_uncommitted_transaction_of_a_crashed_writer_is_rolled_back(tmp_path):
    path = str(tmp_path / "r.sqlite")
    proc = _context().Process(target=_die_inside_a_transaction, args=(path,))
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 3
    store = ResultsStore(path, timeout=5)
    rows = store.rows()
    assert sorted(r.seed for r in rows) == [0, 1, 2, 3, 4]
    assert {r.model for r in rows} == {"dcgan"}
    store.add(make_row(seed=99))
    assert store.count() == 6
