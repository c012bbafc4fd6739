"""A refused or failed run never replaces an ok row; --collect ingests a side file once; --rerun retrains."""

from __future__ import annotations

import json

from tests.helpers import ROOT, run_zoo, zoo_in_process
from zoo.bench.executors import collect
from zoo.bench.store import ResultRow, ResultsStore


def _row(status: str = "ok", created_at: str = "2025-01-01T00:00:00+00:00", **kw) -> ResultRow:
    kw = {"seed": 0, **kw}
    return ResultRow(model="m", dataset="d", protocol_hash="p" * 12, status=status, created_at=created_at,
                     error=None if status == "ok" else "boom", metrics={"fid": 1.0} if status == "ok" else {}, **kw)


def test_a_failed_or_older_row_never_replaces_an_ok_row(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    good = _row(created_at="2025-01-02T00:00:00+00:00")
    assert store.add(good)
    refused = _row("failed", created_at="2025-01-03T00:00:00+00:00")
    older_ok = _row(created_at="2025-01-01T00:00:00+00:00")
    assert store.add_many([refused, older_ok]) == [refused, older_ok]  # neither is written
    assert store.find(good).row_id == good.row_id
    newer_ok = _row(created_at="2025-01-04T00:00:00+00:00")
    assert store.add(newer_ok) and store.find(good).row_id == newer_ok.row_id
    # A failed row is replaced by any ok row and by a newer failed one, never by an older failed one.
    other = {"seed": 1}
    first = _row("failed", created_at="2025-01-02T00:00:00+00:00", **other)
    assert store.add(first)
    assert not store.add(_row("failed", created_at="2025-01-01T00:00:00+00:00", **other))
    late_ok = _row(created_at="2025-01-01T00:00:00+00:00", **other)
    assert store.add(late_ok) and store.find(late_ok).status == "ok"


def test_collect_ingests_each_side_file_once_and_never_puts_older_rows_back(tmp_path):
    runs = tmp_path / "bench"
    (runs / "job").mkdir(parents=True)
    store = ResultsStore(tmp_path / "r.sqlite")
    old = _row(created_at="2025-01-01T00:00:00+00:00", run_dir=str(runs / "job"))
    (runs / "job" / "rows.json").write_text(json.dumps([old.to_dict()]))
    assert [r.row_id for r in collect(store, runs)] == [old.row_id]
    assert not (runs / "job" / "rows.json").exists()  # ingested once, then removed
    new = _row(created_at="2025-01-05T00:00:00+00:00", run_dir=str(runs / "job"))
    store.add(new)
    assert collect(store, runs) == [] and store.find(new).row_id == new.row_id
    # A side file that reappears (copied back from a backup) cannot put its older row back either.
    (runs / "job" / "rows.json").write_text(json.dumps([old.to_dict()]))
    collect(store, runs)
    assert store.find(new).row_id == new.row_id


def test_two_concurrent_reruns_keep_the_ok_row_and_rerun_trains_from_step_0(capsys, tmp_path, monkeypatch):
    """Rerun A trains; while it holds the run lock, rerun B (another process, same identity) is
    refused: exit 1, one line, and the ok row stays. Then A trains all 4 steps again (it used to
    resume at the final step and only re-evaluate) and its newer ok row replaces the old one."""
    from zoo_gan.model import GAN

    monkeypatch.chdir(tmp_path)
    args = ("bench", "--models", "gan", "--preset", "smoke", "--no-progress")
    code, _, err = zoo_in_process(capsys, *args)
    assert code == 0, err
    path = tmp_path / "runs" / "results.sqlite"
    (first,) = ResultsStore(path).rows()
    assert first.status == "ok"

    seen: dict[str, object] = {"steps": 0}
    original = GAN.train_step

    def train_step(self, batch, step):  # noqa: ANN001, ANN202
        if seen["steps"] == 0:  # A holds the job's run lock now: start B and wait for it
            other = run_zoo(*args, "--rerun", cwd=tmp_path, env={"PYTHONPATH": str(ROOT)}, timeout=600)
            seen["other"] = other
            seen["rows"] = ResultsStore(path).rows()
        seen["steps"] += 1
        return original(self, batch, step)

    monkeypatch.setattr(GAN, "train_step", train_step)
    code, _, err = zoo_in_process(capsys, *args, "--rerun")
    assert code == 0, err
    other = seen["other"]
    assert other.returncode == 1 and "in use" in other.stderr, other.stderr
    assert "Traceback" not in other.stderr
    assert [(r.row_id, r.status) for r in seen["rows"]] == [(first.row_id, "ok")]  # B left the ok row alone
    assert seen["steps"] == 4  # A retrained the smoke budget from step 0
    (final,) = ResultsStore(path).rows()
    assert final.status == "ok" and final.row_id != first.row_id and final.identity == first.identity
