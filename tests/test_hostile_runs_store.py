"""Hostile run folders and results stores: each is one line, a non-zero exit, and nothing changed.

* ``zoo train --run-dir`` (and ``zoo bench``'s job folders) take only a new folder, an empty one,
  or a genzoo run folder without checkpoints; ``/`` or a project folder with its own
  ``config.json``/``losses.csv``/``samples.png`` is refused before anything is written.
* A read of a zero-byte store leaves it zero bytes; a refused store (truncated, paired with
  another database's ``-wal``) leaves its folder exactly as it was (no stray ``-wal``/``-shm``).
* A store whose folder does not exist yet is creatable where the nearest existing ancestor is
  writable; a truly unwritable place is still "read-only here".
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import types
from pathlib import Path

import pytest

from tests.helpers import zoo_in_process
from zoo.errors import UsageError


def _snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` with a digest of its bytes (folders as "dir")."""
    found = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        found[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _project(folder: Path) -> Path:
    """Someone's own folder with the names a run writes, none of them genzoo's."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"name": "my thesis", "lr": 0.1}))
    (folder / "losses.csv").write_text("epoch,loss\n1,0.5\n")
    (folder / "samples.png").write_bytes(b"\x89PNG\r\n\x1a\nmine")
    return folder


# -- run folders ---------------------------------------------------------------------------------


def test_train_refuses_someone_elses_folder_and_changes_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    proj = _project(tmp_path / "proj")
    before = _snapshot(proj)
    code, _, err = zoo_in_process(capsys, "train", "gan", "--steps", "2", "--run-dir", "proj", "--no-progress")
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "proj" in err and "not a genzoo run folder" in err and "empty or new --run-dir" in err
    assert _snapshot(proj) == before


def test_root_and_files_are_refused_by_the_check_itself(tmp_path):
    from zoo.rundir import check_new_run_dir

    with pytest.raises(UsageError, match="empty or new --run-dir"):
        check_new_run_dir("/")  # reads only: never trains into / to find out
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        check_new_run_dir(tmp_path / "file")


def test_new_empty_and_genzoo_folders_without_checkpoints_are_accepted(tmp_path):
    from zoo.rundir import MARKER, check_new_run_dir, mark_run_dir

    check_new_run_dir(tmp_path / "new" / "run")
    (tmp_path / "empty").mkdir()
    check_new_run_dir(tmp_path / "empty")
    marked = mark_run_dir(tmp_path / "marked").parent
    assert (marked / MARKER).is_file()
    (marked / ".lock").write_text("123\n")
    (marked / "losses.csv").write_text("step,loss\n")
    check_new_run_dir(marked)
    old = tmp_path / "old-run"  # made before the marker existed: recognised by genzoo's config.json
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"model": "gan", "config": {}, "dataset": "mnist-5k", "train": {}}))
    check_new_run_dir(old)
    (old / "checkpoints").mkdir()
    (old / "checkpoints" / "step-00000002.pt").write_bytes(b"x")
    with pytest.raises(UsageError, match="--resume"):
        check_new_run_dir(old)
    deep = tmp_path / "deep"  # a config.json that is not genzoo's, however it is built
    deep.mkdir()
    (deep / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UsageError, match="not a genzoo run folder"):
        check_new_run_dir(deep)


def test_bench_job_refuses_a_folder_that_is_not_genzoos(tmp_path):
    from zoo.bench.runner import BenchProgress, BenchRunner, Job

    proj = _project(tmp_path / "runs" / "gan-job")
    (proj / "checkpoints").mkdir()
    (proj / "checkpoints" / "step-00000200.pt").write_bytes(b"not genzoo's")
    before = _snapshot(tmp_path)
    runner = BenchRunner.__new__(BenchRunner)  # only what run() reads before training
    runner.rerun, runner.progress, runner.floor = True, BenchProgress(), {"fid": 0.0}
    plan = types.SimpleNamespace(name="gan", batch_size=4, sample_settings=[{}])
    with pytest.raises(UsageError, match="not a genzoo run folder.*--runs-dir"):
        runner.run(Job(plan, 0, None, proj))
    assert _snapshot(tmp_path) == before  # no .lock, no job.json, no failed row's side file


# -- results stores ------------------------------------------------------------------------------


def _store_file(path: Path) -> Path:
    from zoo.bench.store import ResultsStore

    ResultsStore(path)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE pad (x)")
    conn.executemany("INSERT INTO pad VALUES (?)", [("x" * 500,) for _ in range(200)])
    conn.commit()
    conn.close()
    assert path.stat().st_size > 20_000
    return path


def test_leaderboard_of_a_zero_byte_store_leaves_it_zero_bytes(capsys, tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    code, _, err = zoo_in_process(capsys, "leaderboard", "--results", str(empty), "--format", "json")
    assert code == 0, err
    assert empty.stat().st_size == 0 and sorted(os.listdir(tmp_path)) == ["empty.db"]


def test_truncated_store_is_refused_and_leaves_no_stray_files(capsys, tmp_path):
    data = _store_file(tmp_path / "good.db").read_bytes()[:20_000]
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "trunc.db").write_bytes(data)
    before = _snapshot(folder)
    code, _, err = zoo_in_process(capsys, "leaderboard", "--results", str(folder / "trunc.db"))
    assert code == 2 and "malformed" in err and len(err.strip().splitlines()) == 1, err
    assert _snapshot(folder) == before


def test_store_with_another_databases_wal_is_refused_and_leaves_no_stray_shm(capsys, tmp_path):
    good = _store_file(tmp_path / "good.db")
    folder = tmp_path / "c"
    folder.mkdir()
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("PRAGMA journal_mode = WAL")
    other.execute("CREATE TABLE q (x)")
    other.execute("INSERT INTO q VALUES (1)")
    other.commit()
    shutil.copy(tmp_path / "other.db-wal", folder / "mine.db-wal")  # copied while it still holds the frames
    other.close()
    shutil.copy(good, folder / "mine.db")
    before = _snapshot(folder)
    code, _, err = zoo_in_process(capsys, "leaderboard", "--results", str(folder / "mine.db"))
    assert code == 2 and "not a genzoo results store" in err and len(err.strip().splitlines()) == 1, err
    assert _snapshot(folder) == before


def test_a_healthy_store_still_opens_after_a_refused_neighbour(tmp_path):
    from zoo.bench.store import ResultsStore

    store = ResultsStore(_store_file(tmp_path / "good.db"))
    assert store.count() == 0 and not store.read_only


# -- store folders that do not exist yet ---------------------------------------------------------


def test_open_mode_judges_a_missing_folder_by_its_nearest_existing_ancestor(tmp_path, monkeypatch):
    from zoo.bench import store as store_module

    missing = tmp_path / "does" / "not" / "exist" / "results.db"
    assert store_module.open_mode(missing) == "rw"
    real_access = os.access
    monkeypatch.setattr(store_module.os, "access",
                        lambda p, mode, **kw: False if Path(p) == tmp_path else real_access(p, mode, **kw))
    assert store_module.open_mode(missing) == "ro"


def _stop_after_the_store_check(monkeypatch):
    import zoo.bench.api as api

    def stop(*args, **kwargs):
        raise UsageError("stopped after the store check")

    monkeypatch.setattr(api, "make_protocol", stop)


def test_bench_creates_a_store_in_a_folder_that_does_not_exist_yet(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _stop_after_the_store_check(monkeypatch)
    results = tmp_path / "x" / "does" / "not" / "exist" / "results.db"
    code, _, err = zoo_in_process(capsys, "bench", "--models", "gan", "--preset", "smoke", "--results", str(results))
    assert code == 2 and "stopped after the store check" in err and "read-only" not in err, err


def test_bench_in_an_unwritable_place_is_still_read_only_here(capsys, tmp_path, monkeypatch):
    from zoo.bench import store as store_module

    monkeypatch.chdir(tmp_path)
    _stop_after_the_store_check(monkeypatch)
    results = tmp_path / "locked" / "sub" / "results.db"
    (tmp_path / "locked").mkdir()
    real_access = os.access
    monkeypatch.setattr(store_module.os, "access",
                        lambda p, mode, **kw: False if Path(p) == tmp_path / "locked" else real_access(p, mode, **kw))
    code, _, err = zoo_in_process(capsys, "bench", "--models", "gan", "--preset", "smoke", "--results", str(results))
    assert code == 2 and "read-only here" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "locked" / "sub").exists()
