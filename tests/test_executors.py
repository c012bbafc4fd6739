"""Benchmark jobs run elsewhere (zoo.bench.executors): local processes, submitit (Slurm/local/debug).

No cluster is needed: the Slurm submission is checked by rendering submitit's sbatch file, and the
submitit path runs with its debug executor (in this process) and its local executor (processes).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, zoo_in_process
from zoo.bench.api import BenchRequest, run_benchmark
from zoo.bench.executors import ExecutorSettings, collect, read_job_rows, slurm_executor
from zoo.bench.store import ResultRow, ResultsStore
from zoo.errors import UsageError, ZooError

SMOKE = ["--preset", "smoke", "--no-progress", "--json"]


def _row(model: str, seed: int, run_dir: Path, **kw) -> ResultRow:
    return ResultRow(model=model, dataset="d", seed=seed, protocol_hash="p" * 12, run_dir=str(run_dir),
                     metrics={"fid": 1.0 + seed}, **kw)


def test_slurm_submission_parameters(tmp_path, monkeypatch):
    """The sbatch file submitit would submit: partition, GPUs, one task, time limit, a 40-job array 5 at a time."""
    submitit = pytest.importorskip("submitit")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "srun"  # submitit only checks that srun exists before it builds a Slurm executor
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    settings = ExecutorSettings(kind="slurm", jobs=5, slurm_partition="gpu-a100", slurm_gpus_per_job=1,
                                slurm_cpus_per_job=8, slurm_timeout_min=90)
    settings.validate()
    executor = slurm_executor(settings, tmp_path / ".submitit", array_size=40)
    assert isinstance(executor._executor, submitit.SlurmExecutor)
    from submitit.slurm.slurm import _make_sbatch_string

    params = executor._executor.parameters
    text = _make_sbatch_string(command="python -m submitit.core._submit X", folder=str(tmp_path / ".submitit" / "%j"),
                               map_count=40, **params)
    lines = set(text.splitlines())
    for expected in ("#SBATCH --partition=gpu-a100", "#SBATCH --gpus-per-node=1", "#SBATCH --ntasks-per-node=1",
                     "#SBATCH --cpus-per-task=8", "#SBATCH --time=90", "#SBATCH --array=0-39%5",
                     "#SBATCH --job-name=zoo-bench", "#SBATCH --nodes=1"):
        assert expected in lines, f"{expected} not in:\n{text}"


def test_executor_settings_refuse_bad_input(monkeypatch):
    with pytest.raises(UsageError, match="slurm-partition"):
        ExecutorSettings(kind="slurm").validate()
    with pytest.raises(UsageError, match="--jobs needs"):
        ExecutorSettings(kind="serial", jobs=2).validate()
    with pytest.raises(UsageError, match="--executor must be"):
        ExecutorSettings(kind="ray").validate()
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(UsageError, match="srun"):  # not on a cluster: one line, not submitit's traceback
        slurm_executor(ExecutorSettings(kind="slurm", slurm_partition="p"), "/tmp/unused", 1)


def test_cli_usage_errors(capsys):
    code, _, err = zoo_in_process(capsys, "bench", "--models", "gan", "--jobs", "2")
    assert code == 2 and "--jobs needs --executor local or slurm" in err
    code, _, err = zoo_in_process(capsys, "bench", "--models", "gan", "--executor", "slurm")
    assert code == 2 and "--slurm-partition" in err
    code, _, err = zoo_in_process(capsys, "bench")
    assert code == 2 and "--models" in err
    code, _, err = zoo_in_process(capsys, "bench", "--collect", "/nonexistent/runs")
    assert code == 2 and "not a folder" in err


def test_collect_ingests_rows_files_and_leaves_running_jobs(tmp_path):
    runs = tmp_path / "bench"
    for model, seed in (("gan", 0), ("vae", 1)):
        folder = runs / f"{model}-s{seed}"
        folder.mkdir(parents=True)
        row = _row(model, seed, folder)
        (folder / "rows.json").write_text(json.dumps([row.to_dict()]))
    (runs / "still-running").mkdir()  # no rows.json yet: left alone
    store = ResultsStore(tmp_path / "results.sqlite")
    rows = collect(store, runs)
    assert sorted((r.model, r.seed) for r in rows) == [("gan", 0), ("vae", 1)]
    stored = store.rows()
    assert sorted((r.model, r.seed, r.metrics["fid"]) for r in stored) == [("gan", 0, 1.0), ("vae", 1, 2.0)]
    assert not list(runs.glob("*/rows.json"))  # each file is ingested once, then removed
    assert collect(store, runs) == [] and len(store.rows()) == 2
    (runs / "gan-s0" / "rows.json").write_text("{not json")
    with pytest.raises(ZooError, match="not a rows file"):
        read_job_rows(runs / "gan-s0")


def test_submitit_debug_executor_runs_a_job_and_ingests_its_rows(tmp_path):
    """The Slurm code path (spec file, map_array, rows.json, ingestion) with submitit's in-process executor."""
    pytest.importorskip("submitit")
    request = BenchRequest(models=["gan"], preset="smoke", seeds=[0], results=tmp_path / "r.sqlite", device="cpu",
                           executor="slurm", slurm={"submitit_cluster": "debug"})
    result = run_benchmark(request)
    assert [(r.model, r.seed, r.status) for r in result.rows] == [("gan", 0, "ok")]
    run_dir = Path(result.rows[0].run_dir)
    assert read_job_rows(run_dir) is None  # the job wrote its own rows.json, removed once ingested
    assert (tmp_path / "bench" / ".jobs" / f"{run_dir.name}.json").is_file()
    assert [r.identity for r in result.store.rows()] == [result.rows[0].identity]
    again = run_benchmark(request)  # done jobs are skipped, not submitted
    assert again.reused == 1 and again.rows[0].row_id == result.rows[0].row_id


def _env() -> dict[str, str]:
    env = {**os.environ}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _bench(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zoo", "bench", *args], capture_output=True, text=True,
                          env=_env(), timeout=timeout)


def _by_identity(text: str) -> dict:
    rows = [ResultRow.from_dict(d) for d in json.loads(text)]
    return {r.identity: r for r in rows}


@pytest.mark.slow
def test_local_executor_gives_the_serial_rows(tmp_path):
    models = ["--models", "gan,vae", "--seeds", "0,1"]
    serial = _bench(*models, *SMOKE, "--results", str(tmp_path / "serial" / "r.sqlite"))
    assert serial.returncode == 0, serial.stderr
    local = _bench(*models, *SMOKE, "--executor", "local", "--jobs", "2", "--results", str(tmp_path / "local" / "r.sqlite"))
    assert local.returncode == 0, local.stderr
    want, got = _by_identity(serial.stdout), _by_identity(local.stdout)
    assert len(want) == 4 and set(got) == set(want)
    for identity, row in want.items():
        other = got[identity]
        assert other.status == row.status == "ok"
        assert other.metrics == pytest.approx(row.metrics, rel=1e-6, abs=1e-9), row.model
        assert [p["train_steps"] for p in other.curve] == [p["train_steps"] for p in row.curve]
        assert Path(other.run_dir).name == Path(row.run_dir).name  # same identity, same run folder name
    stored = ResultsStore(tmp_path / "local" / "r.sqlite").rows()
    assert {r.identity for r in stored} == set(want)


def _job_children(parent: int) -> dict[str, int]:
    """spec file name -> pid of the submitting process's job children."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"zoo.bench.worker" in argv:
            found[Path(argv[-2].decode() if argv[-1] == b"" else argv[-1].decode()).name] = int(entry.name)
    return found


@pytest.mark.slow
def test_a_killed_job_is_a_failed_row_and_only_it_runs_again(tmp_path):
    store = tmp_path / "r.sqlite"
    args = ["--models", "gan,vae", "--seeds", "0,1", *SMOKE, "--executor", "local", "--jobs", "2", "--results", str(store)]
    proc = subprocess.Popen([sys.executable, "-m", "zoo", "bench", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    victim = None
    try:
        deadline = time.monotonic() + 600
        while victim is None:
            assert proc.poll() is None and time.monotonic() < deadline, "the gan seed 1 job never started"
            for spec, pid in _job_children(proc.pid).items():
                if spec.startswith("gan-") and spec.endswith("-s1.json"):
                    victim = spec
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        out, err = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err  # a run failed
    rows = _by_identity(out)
    failed = [r for r in rows.values() if r.status == "failed"]
    assert [(r.model, r.seed) for r in failed] == [("gan", 1)]
    assert "SIGKILL" in failed[0].error and "(log: " in failed[0].error and "job.log" in failed[0].error
    assert sum(r.status == "ok" for r in rows.values()) == 3
    again = _bench(*args)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("already in the store; skipped") == 3
    assert "1 job(s) to run" in again.stderr and "[gan seed 1] started" in again.stderr
    final = _by_identity(again.stdout)
    assert set(final) == set(rows) and all(r.status == "ok" for r in final.values())
