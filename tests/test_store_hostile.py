"""The results store under hostile conditions: a newer schema, a read-only mount, malformed rows,
a full disk or a stuck lock, and temp files a killed writer left behind."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import zoo_in_process
from tests.test_store import make_row
from zoo.bench import store as store_module
from zoo.bench.store import SCHEMA_VERSION, ResultsStore, StoreWriteError, open_mode
from zoo.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file in ``folder`` with the SHA-256 of its bytes."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


# -- (a) a newer genzoo's store is refused before any PRAGMA or write ---------------------------


@pytest.mark.parametrize("future", ["migration", "legacy-version"])
def test_future_schema_store_is_refused_and_stays_byte_identical(tmp_path, capsys, future):
    """Regression guard: this already held before issue 17's round (the check runs through a
    read-only connection); it pins byte-identity, no -wal/-shm and the journal mode."""
    path = tmp_path / "results.sqlite"
    ResultsStore(path).add(make_row())
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = DELETE")  # as a newer genzoo might leave it
    if future == "migration":
        conn.execute("INSERT INTO _zoo_migrations VALUES ('m999_from_the_future', 'later')")
    else:
        conn.execute("DROP TABLE _zoo_migrations")
        conn.execute("INSERT INTO zoo_schema VALUES (?, 'later')", (SCHEMA_VERSION + 5,))
    conn.commit()
    conn.close()
    before = _snapshot(tmp_path)
    assert list(before) == ["results.sqlite"]

    with pytest.raises(UsageError, match="newer genzoo"):
        ResultsStore(path)
    code, out, err = zoo_in_process(capsys, "leaderboard", "--results", str(path))
    assert code == 2 and "newer genzoo" in err and "Traceback" not in err

    assert _snapshot(tmp_path) == before  # byte-identical, and no -wal / -shm / journal created
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


# -- (b) read-only file or folder -------------------------------------------------------------


def _deny_writes(monkeypatch, *paths: Path) -> None:
    """Make :func:`os.access` answer "not writable" for ``paths``, as it does on a read-only mount."""
    real = os.access
    denied = {os.path.abspath(p) for p in paths}

    def access(path, mode, *args, **kwargs):  # noqa: ANN001, ANN202
        if mode & os.W_OK and os.path.abspath(path) in denied:
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(store_module.os, "access", access)


def test_open_mode_decides_from_what_can_be_written(tmp_path, monkeypatch):
    """The decision alone (tests run as root here, and root writes through chmod): each case of
    file and folder permissions, WAL or not, with and without a -shm file."""
    path = tmp_path / "results.sqlite"
    ResultsStore(path).add(make_row())  # a WAL store, closed: no -shm left
    assert store_module._is_wal(path) and not Path(f"{path}-shm").exists()
    assert open_mode(path) == "rw"
    with monkeypatch.context() as m:
        _deny_writes(m, path)
        assert open_mode(path) == "ro"  # the file is read-only, the folder can hold a -shm
    with monkeypatch.context() as m:
        _deny_writes(m, tmp_path)
        assert open_mode(path) == "immutable"  # WAL, no -shm, and none can be created
        Path(f"{path}-shm").write_bytes(b"")
        assert open_mode(path) == "ro"  # a -shm exists: mode=ro can read through it
        Path(f"{path}-shm").unlink()
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.close()
        assert open_mode(path) == "ro"  # a rollback-journal store needs no -shm
    assert open_mode(tmp_path / "new.sqlite") == "rw"


def test_read_only_folder_is_read_without_creating_anything(tmp_path, capsys, monkeypatch):
    """With the folder reported read-only the store opens ``immutable=1`` and the leaderboard
    works; nothing at all is created beside the store (what a read-only folder requires). A write
    fails with one line. Real for SQLite; the read-only folder itself is simulated (os.access)."""
    path = tmp_path / "results.sqlite"
    ResultsStore(path).add_many([make_row("ro-model", seed=0), make_row("ro-model", seed=1)])
    before = _snapshot(tmp_path)
    _deny_writes(monkeypatch, tmp_path)
    store = ResultsStore(path, create=False)
    assert store.mode == "immutable" and store.read_only and len(store.rows()) == 2
    code, out, err = zoo_in_process(capsys, "leaderboard", "--results", str(path), "--format", "json")
    assert code == 0, err
    assert json.loads(out)[0]["lines"][0]["model"] == "ro-model"
    with pytest.raises(StoreWriteError, match="could not be written"):
        store.add(make_row("new-model"))
    assert _snapshot(tmp_path) == before


def test_read_only_file_is_opened_mode_ro(tmp_path, monkeypatch):
    """A read-only file in a writable folder: a real ``mode=ro`` connection reads it."""
    path = tmp_path / "results.sqlite"
    ResultsStore(path).add(make_row("x"))
    _deny_writes(monkeypatch, path)
    store = ResultsStore(path, create=False)
    assert store.mode == "ro" and [r.model for r in store.rows()] == ["x"]
    with pytest.raises(StoreWriteError):
        store.add(make_row("y"))


def _read_only_mount_works() -> bool:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount --bind /tmp /tmp && mount -o remount,ro,bind /tmp /tmp"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _read_only_mount_works(), reason="needs unshare and mount namespaces for a real read-only mount")
def test_store_on_a_real_read_only_mount(tmp_path):
    """A real read-only bind mount (a mount namespace; root cannot write through it either):
    ``zoo leaderboard`` reads the store, ``zoo bench --collect`` into it fails with one line and
    exit 1, and the folder is unchanged. On main before this change the leaderboard failed with
    "not a usable genzoo results store: unable to open database file"."""
    folder = tmp_path / "store"
    path = folder / "results.sqlite"
    ResultsStore(path).add(make_row("mounted-model"))
    runs = tmp_path / "runs"
    (runs / "job").mkdir(parents=True)
    (runs / "job" / "rows.json").write_text(json.dumps([make_row("other-model").to_dict()]))
    before = _snapshot(folder)
    zoo = f"{shlex.quote(sys.executable)} -m zoo"
    script = (f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} {folder} && "
              f"{zoo} leaderboard --results {path} --format json > {tmp_path}/out.json && "
              f"{{ {zoo} bench --collect {runs} --results {path} > /dev/null 2> {tmp_path}/err.txt; echo $? > {tmp_path}/rc; }}")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "out.json").read_text())[0]["lines"][0]["model"] == "mounted-model"
    err = (tmp_path / "err.txt").read_text()
    assert (tmp_path / "rc").read_text().strip() == "1"
    assert "could not be written" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert _snapshot(folder) == before


# -- (c) one malformed row is skipped and reported --------------------------------------------


def _plant(path: Path, row_id: str, seed: int, columns: dict[str, object]) -> None:
    """Copy the first row under a new id and seed, with ``columns`` overwritten as raw SQL values."""
    conn = sqlite3.connect(path)
    names = [r[1] for r in conn.execute("PRAGMA table_info(results)")]
    values = dict(zip(names, conn.execute("SELECT * FROM results LIMIT 1").fetchone(), strict=True))
    values.update(row_id=row_id, seed=seed)
    values.update(columns)
    conn.execute(f"INSERT INTO results ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})", list(values.values()))
    conn.commit()
    conn.close()


def test_malformed_rows_are_skipped_and_reported(tmp_path, capsys):
    path = tmp_path / "results.sqlite"
    ResultsStore(path).add_many([make_row("good", seed=0), make_row("good", seed=1)])
    bad = {
        "bad-json": {"metrics": "{not json"},
        "list-not-object": {"config": "[1, 2]"},
        "seed-text": {"seed": "not-a-number"},
        "seed-infinite": {"seed": float("inf")},
        "images-wrong-type": {"images": '{"grid": 5}'},
        "curve-wrong-type": {"curve": '{"x": 1}'},
    }
    for i, (row_id, columns) in enumerate(bad.items()):
        _plant(path, row_id, 100 + i, columns)
    _plant(path, "nan-metric", 200, {"metrics": '{"fid_lenet": NaN}'})  # NaN is a missing score, not a bad row

    store = ResultsStore(path)
    rows = store.rows()
    assert sorted(r.row_id for r in rows if r.row_id in bad) == []
    assert len(rows) == 3 and {r.seed for r in rows} == {0, 1, 200}
    assert sorted(row_id for row_id, _ in store.skipped) == sorted(bad)

    code, out, err = zoo_in_process(capsys, "leaderboard", "--results", str(path))
    assert code == 0 and "good" in out
    warning = [line for line in err.splitlines() if "malformed" in line]
    assert len(warning) == 1 and "skipped 6 malformed row(s)" in warning[0]
    assert all(row_id in err for row_id in list(bad)[:5]) and "and 1 more" in warning[0]
    code, out, err = zoo_in_process(capsys, "leaderboard", "--results", str(path), "--format", "csv")
    assert code == 0 and "good" in out


def test_text_that_is_not_utf8_or_a_lone_surrogate_skips_its_row_not_the_store(tmp_path, capsys):
    """Invalid UTF-8 in one row's text made the whole store "not usable" (exit 2), and a lone
    surrogate escape in a JSON column reached the formats, which failed with a traceback."""
    path = tmp_path / "results.sqlite"
    ResultsStore(path).add_many([make_row("good", seed=0), make_row("good", seed=1)])
    conn = sqlite3.connect(path)
    _plant(path, "bad-bytes", 100, {})
    conn.execute("UPDATE results SET model = CAST(x'67616eff' AS TEXT) WHERE row_id = 'bad-bytes'")
    conn.commit()
    conn.close()
    _plant(path, "lone-surrogate", 101, {"sample_options": '{"steps": "\\ud800x"}'})
    _plant(path, "surrogate-key", 102, {"metrics": '{"fid_\\udc00": 1.0}'})

    store = ResultsStore(path, create=False)
    assert sorted(r.seed for r in store.rows()) == [0, 1]
    assert sorted(row_id for row_id, _ in store.skipped) == ["bad-bytes", "lone-surrogate", "surrogate-key"]
    for fmt in ("table", "csv", "json", "markdown", "latex"):
        code, out, err = zoo_in_process(capsys, "leaderboard", "--results", str(path), "--format", fmt)
        assert code == 0 and "Traceback" not in err, (fmt, err)
        assert [line for line in err.splitlines() if line] == [line for line in err.splitlines() if "skipped 3" in line]
        assert "good" in out


# -- (d) a failed write keeps the finished rows in a side file ---------------------------------


def _fill_disk(monkeypatch) -> None:
    """SQLite's own "database or disk is full": cap every connection at the pages the file has."""
    real = ResultsStore._connect

    def connect(self, read_only=False):  # noqa: ANN001, ANN202
        conn = real(self, read_only)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(ResultsStore, "_connect", connect)


def _commit_through_the_runner(store: ResultsStore, rows):  # noqa: ANN001, ANN202
    from zoo.bench.runner import BenchRunner

    runner = BenchRunner.__new__(BenchRunner)  # only _commit is exercised: the runner's one write
    runner.store = store
    return runner._commit(rows)


def _ingest_command(message: str) -> list[str]:
    command = re.search(r"`zoo (bench --collect [^`]+)`", message)
    assert command, message
    return shlex.split(command.group(1))


@pytest.mark.parametrize("fault", ["disk-full", "locked"])
def test_finished_rows_survive_a_failed_write_and_are_ingested_once(tmp_path, capsys, monkeypatch, fault):
    path = tmp_path / "results.sqlite"
    store = ResultsStore(path, timeout=0.05, retry_seconds=0.2)
    store.add(make_row("earlier"))
    run_dir = tmp_path / "bench" / "m-s0"
    run_dir.mkdir(parents=True)
    rows = [make_row("finished", seed=0, run_dir=str(run_dir), grid_path=str(run_dir / "samples.png"),
                     error=None, costs={"note": "x" * 20000}, budget_amount=float("nan")),
            make_row("finished", seed=0, run_dir=str(run_dir), grid_path=None, sample_options={"steps": 10})]
    blocker = None
    with monkeypatch.context() as m:
        if fault == "disk-full":
            _fill_disk(m)
        else:
            blocker = sqlite3.connect(path, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")  # another process stuck holding the write lock
        with pytest.raises(StoreWriteError) as caught:
            _commit_through_the_runner(store, rows)
    if blocker is not None:
        blocker.rollback()
        blocker.close()
    message = str(caught.value)
    side = run_dir / "rows.json"
    assert str(side) in message and "zoo bench --collect" in message and "\n" not in message
    assert ("full" in message) if fault == "disk-full" else ("locked" in message)

    def refuse(name):  # noqa: ANN001
        raise AssertionError(f"non-standard JSON token {name}")

    kept = json.loads(side.read_text(), parse_constant=refuse)  # strict JSON: NaN budget is null
    assert [k["sample_options"] for k in kept] == [{}, {"steps": 10}] and kept[0]["budget_amount"] is None
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    assert [r.model for r in ResultsStore(path).rows()] == ["earlier"]

    args = _ingest_command(message)
    for _ in range(2):  # the command the error names, twice: the second adds nothing
        code, out, err = zoo_in_process(capsys, *args, "--json")
        assert code == 0, err
        assert sorted(r.model for r in ResultsStore(path).rows()) == ["earlier", "finished", "finished"]
    stored = {r.row_id: r.to_dict() for r in ResultsStore(path).rows()}
    for row in rows:
        assert {k: v for k, v in stored[row.row_id].items() if v == v} == {k: v for k, v in row.to_dict().items() if v == v}


def test_side_file_merges_with_rows_already_kept(tmp_path, monkeypatch):
    """Two failed writes into one run folder keep both sets; a re-run row replaces its old copy."""
    store = ResultsStore(tmp_path / "results.sqlite")
    run_dir = tmp_path / "bench" / "m-s0"
    _fill_disk(monkeypatch)
    for rows in ([make_row("a", run_dir=str(run_dir), costs={"n": "x" * 20000})],
                 [make_row("b", run_dir=str(run_dir), costs={"n": "y" * 20000})],
                 [make_row("a", run_dir=str(run_dir), costs={"n": "z" * 20000})]):
        with pytest.raises(StoreWriteError):
            store.add_many(rows, keep_side_file=True)
    kept = json.loads((run_dir / "rows.json").read_text())
    assert sorted((k["model"], k["costs"]["n"][0]) for k in kept) == [("a", "z"), ("b", "y")]


def test_without_a_side_file_the_write_error_says_what_failed(tmp_path, monkeypatch):
    """Not "not a usable results store": the file is fine, the disk is full."""
    store = ResultsStore(tmp_path / "results.sqlite")
    _fill_disk(monkeypatch)
    with pytest.raises(StoreWriteError, match="could not be written: database or disk is full"):
        store.add(make_row(costs={"n": "x" * 20000}))


# -- stale temp files --------------------------------------------------------------------------


def _plant_temps(folder: Path, name: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    stale = folder / f".{name}.a1b2c3d4.tmp"
    fresh = folder / f".{name}.e5f6g7h8.tmp"
    stale.write_bytes(b"half a file")
    fresh.write_bytes(b"a live writer's")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    return stale, fresh


def test_stale_temp_files_in_the_caches_are_removed_on_the_next_run(tmp_path, monkeypatch):
    from zoo import fileio
    from zoo.metrics import stats_cache

    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(stats_cache, "_CLEANED", set())  # a fresh process
    monkeypatch.setattr(fileio, "_cleaned", set())
    planted = {sub: _plant_temps(tmp_path / "cache" / sub, "reference-abc.npz") for sub in ("metrics", "backbones", "accel")}
    keep = tmp_path / "cache" / "metrics" / "floor-abc.json"
    keep.write_text("{}")
    assert stats_cache.metrics_cache_dir() == tmp_path / "cache" / "metrics"
    for stale, fresh in planted.values():
        assert not stale.exists() and fresh.exists()  # a younger temp may be a live writer's
    assert keep.read_text() == "{}"


def test_stale_temp_files_beside_the_store_are_removed_when_it_opens(tmp_path):
    path = tmp_path / "results.sqlite"
    ResultsStore(path)
    stale, fresh = _plant_temps(tmp_path, "leaderboard.html")
    other = tmp_path / ".notes.tmp"  # not a name genzoo's atomic writes make
    other.write_text("mine")
    os.utime(other, (0, 0))
    ResultsStore(path)
    assert not stale.exists() and fresh.exists() and other.exists()


def test_run_lock_clears_temp_files_of_a_dead_writer_in_its_folder(tmp_path):
    """Only the lock holder writes in a run folder, so every temp file there is a dead writer's
    (side files, job markers, curves, configs), however young."""
    from zoo.fileio import run_lock

    stale, fresh = _plant_temps(tmp_path / "run", "rows.json")
    done = tmp_path / "run" / "rows.json"
    done.write_text("[]")
    with run_lock(tmp_path / "run"):
        assert not stale.exists() and not fresh.exists()
    assert done.read_text() == "[]"


def test_bench_refuses_a_read_only_store_before_training(tmp_path, capsys, monkeypatch):
    """Rows measured now could not be stored: zoo bench says so (exit 2) before any run exists."""
    path = tmp_path / "results.sqlite"
    ResultsStore(path).add(make_row())
    before = _snapshot(tmp_path)
    _deny_writes(monkeypatch, path)
    code, _, err = zoo_in_process(capsys, "bench", "--models", "gan", "--preset", "smoke", "--results", str(path),
                                  "--runs-dir", str(tmp_path / "runs"))
    assert code == 2 and "read-only" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() and _snapshot(tmp_path) == before
