"""A benchmark you can trust: run identity, resumable and idempotent sweeps, curves along the budget."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import EXAMPLE_SRC, ROOT, zoo_in_process
from zoo.bench.leaderboard import build_leaderboard
from zoo.bench.store import ResultsStore


def _bench(capsys, tmp_path, *args: str) -> tuple[int, str, str]:
    return zoo_in_process(capsys, "bench", "--preset", "smoke", "--no-progress", "--results", str(tmp_path / "r.sqlite"),
                          *args)


def test_configurations_and_budgets_are_separate_entries_and_nothing_is_lost(capsys, tmp_path):
    """The issue's example: a second run with --set vae.lr=... used to replace the first run's row."""
    assert _bench(capsys, tmp_path, "--models", "vae")[0] == 0
    first = ResultsStore(tmp_path / "r.sqlite").rows()
    assert _bench(capsys, tmp_path, "--models", "vae", "--set", "vae.lr=0.01")[0] == 0
    assert _bench(capsys, tmp_path, "--models", "vae", "--steps", "3")[0] == 0
    rows = ResultsStore(tmp_path / "r.sqlite").rows()
    assert len(rows) == 3
    assert first[0].row_id in {r.row_id for r in rows}  # the first run's row survives untouched
    assert len({r.config_hash for r in rows}) == 2 and len({(r.budget_kind, r.budget_amount) for r in rows}) == 2
    (board,) = build_leaderboard(rows)
    assert len(board.table) == 3  # three entries, never averaged together
    assert (board.table["n_seeds"] == 1).all()
    assert any("lr=0.01" in label for label in board.table["label"])


def test_rerunning_skips_finished_jobs_and_returns_their_rows(capsys, tmp_path):
    code, out, _ = _bench(capsys, tmp_path, "--models", "gan", "--json")
    assert code == 0
    first = json.loads(out)
    code, out, err = _bench(capsys, tmp_path, "--models", "gan", "--json")
    assert code == 0 and "already in the store; skipped" in err
    assert [r["row_id"] for r in json.loads(out)] == [r["row_id"] for r in first]
    code, out, err = _bench(capsys, tmp_path, "--models", "gan", "--json", "--rerun")
    assert code == 0 and "skipped" not in err
    assert len(ResultsStore(tmp_path / "r.sqlite").rows()) == 1  # a re-run replaces only its own row


def test_an_interrupted_job_resumes_from_its_checkpoint(capsys, tmp_path):
    assert _bench(capsys, tmp_path, "--models", "gan", "--steps", "6")[0] == 0
    store = ResultsStore(tmp_path / "r.sqlite")
    (row,) = store.rows()
    store.delete(row.row_id)  # as if the process died after training, before its row was written
    code, _, err = _bench(capsys, tmp_path, "--models", "gan", "--steps", "6")
    assert code == 0 and "resuming at step 6" in err
    (again,) = store.rows()
    assert again.metrics == row.metrics and again.run_dir == row.run_dir


def test_each_row_carries_its_curve_and_run_folders_are_named_by_identity(capsys, tmp_path):
    code, out, _ = _bench(capsys, tmp_path, "--models", "gan,ddpm", "--steps", "4", "--curve-points", "3", "--json")
    assert code == 0
    for row in json.loads(out):
        curve = row["curve"]
        assert [round(p["fraction"], 3) for p in curve] == [0.25, 0.5, 1.0]
        assert [p["train_steps"] for p in curve] == [1, 2, 4]
        assert curve[-1]["metrics"] == row["metrics"]
        assert all(p["train_kimg"] > 0 and p["train_flops"] > 0 and p["train_seconds"] > 0 for p in curve)
        assert row["costs"]["train_kimg"] == pytest.approx(4 * row["costs"]["batch_size"] / 1000)
        assert row["run_dir"].endswith("-s0") and "4steps-fp32" in row["run_dir"]


def test_evaluating_along_the_budget_does_not_change_training(tmp_path):
    """The curve's evaluations (sampling, metrics, a first backbone build) leave the training stream alone."""
    from zoo.factory import load_dataset
    from zoo.metrics import compute_metrics, make_protocol
    from zoo.sampling import generate
    from zoo.testing import tiny_model
    from zoo.trainer import Trainer, TrainSettings, seed_everything

    data = load_dataset("mnist-5k")
    protocol = make_protocol(data, num_real=100, num_fake=50, seed=3)

    def train(points):
        seed_everything(0)
        model = tiny_model("gan")
        trainer = Trainer(model, data, TrainSettings(budget="4steps", batch_size=32, sample_grid=0))

        def on_point(trainer, fraction, spent):
            compute_metrics(generate(trainer.model, 50, seed=1), data, protocol)
            torch.rand(3)  # a careless callback drawing from the global RNG

        trainer.fit(on_point=on_point, points=points)
        return model.state_dict()

    plain, evaluated = train([]), train([0.25, 0.5])
    assert all(torch.equal(plain[k], evaluated[k]) for k in plain)


def test_zoo_eval_gives_the_same_numbers_for_any_batch_size(capsys, tmp_path):
    run = tmp_path / "run"
    assert zoo_in_process(capsys, "train", "gan", "--steps", "3", "--set", "g_hidden=32", "--set", "d_units=16",
                          "--run-dir", str(run), "--no-progress")[0] == 0
    results = []
    for batch in ("200", "100", "7"):
        code, out, err = zoo_in_process(capsys, "eval", str(run), "--num-fake", "200", "--num-real", "400",
                                        "--batch-size", batch, "--json")
        assert code == 0, err
        results.append(json.loads(out)["metrics"])
    assert results[0] == results[1]
    # Batch 7 changes which BLAS kernel a linear layer uses; the images agree to a level or so.
    assert results[2]["fid_lenet"] == pytest.approx(results[0]["fid_lenet"], rel=1e-4)


def test_seeds_are_checked_before_training(capsys, tmp_path):
    for seeds, message in (("0,0", "must not repeat"), (str(2**63), "2**63-1")):
        code, _, err = _bench(capsys, tmp_path, "--models", "gan", "--seeds", seeds)
        assert code == 2 and message in err, err
    assert not (tmp_path / "bench").exists()


def test_killed_bench_finishes_only_the_remaining_work(tmp_path):
    """SIGKILL a bench after its first job wrote its rows; the next run skips that job and finishes."""
    store_path = tmp_path / "r.sqlite"
    args = [sys.executable, "-m", "zoo", "bench", "--models", "gan,vae", "--preset", "smoke", "--budget", "300steps",
            "--results", str(store_path), "--no-progress"]
    env = {"PYTHONPATH": str(EXAMPLE_SRC)}
    import os

    env = {**os.environ, **env}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if store_path.exists() and ResultsStore(store_path).count() >= 1:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the bench finished before it could be killed: " + proc.stderr.read()[-500:]
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done = ResultsStore(store_path).rows()
    assert [r.model for r in done] == ["gan"]
    again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "[gan seed 0] already in the store; skipped" in again.stderr
    rows = ResultsStore(store_path).rows()
    assert sorted(r.model for r in rows) == ["gan", "vae"]  # exactly one row per identity
    assert next(r for r in rows if r.model == "gan").row_id == done[0].row_id


def test_a_job_killed_before_its_first_file_leaves_a_folder_the_next_run_takes(capsys, tmp_path, monkeypatch):
    """The run folder carries genzoo's marker before training writes anything into it, so a bench
    killed at any point (here: the trainer writes a stray file, then the job dies) resumes instead
    of refusing the folder as "not a genzoo run folder" (seen under load in the SIGKILL test)."""
    from zoo import trainer
    from zoo.rundir import MARKER

    real_init = trainer.Trainer.__init__
    seen = []

    def dying_init(self, model, dataset, settings, run_dir, *args, **kwargs):
        seen.append((Path(run_dir) / MARKER).is_file())
        (Path(run_dir) / "half-written.log").write_text("killed here\n")
        raise RuntimeError("killed before the first checkpoint")

    monkeypatch.setattr(trainer.Trainer, "__init__", dying_init)
    code, _, err = _bench(capsys, tmp_path, "--models", "gan")
    assert code != 0 and seen == [True], err
    monkeypatch.setattr(trainer.Trainer, "__init__", real_init)
    code, _, err = _bench(capsys, tmp_path, "--models", "gan", "--rerun")
    assert code == 0, err
