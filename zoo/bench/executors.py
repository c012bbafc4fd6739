"""Where benchmark jobs run: in this process, in local processes, or on a Slurm cluster (submitit).

A benchmark is one job per identity (model x seed x configuration x budget; see
`zoo.bench.runner.BenchRunner.job`). The ``serial`` executor runs them one after another in
this process, writing rows straight into the SQLite store. The others run each job elsewhere:

* the submitting process skips jobs whose rows are already ``ok`` in the store, writes a job spec
  (``<runs_dir>/.jobs/<run folder name>.json``: the request narrowed to one model and seed), and
  hands the specs to the executor;
* a job (``python -m zoo.bench.worker SPEC``, `zoo.bench.worker.run_job_spec`) rebuilds the request
  with a private scratch store, trains (resuming from its run folder's checkpoints), evaluates, and
  writes its rows as JSON into its own run folder (``rows.json``, written atomically);
* the submitting process, or ``zoo bench --collect RUNS_DIR`` later, ingests the ``rows.json``
  files into the store (`collect`). No two machines ever write one SQLite file, which is what
  corrupts SQLite on a network file system.

A job that dies (killed, out of memory, node failure) leaves no ``rows.json``: the submitter
records failed rows with the error and the job's log path, and the next invocation runs that job
again (resuming from its checkpoints) while skipping every job whose rows are ok.

``local``: at most ``jobs`` child processes at once, each ``python -m zoo.bench.worker SPEC``
with its output in ``<run folder>/job.log``. ``slurm``: a submitit job array (``map_array`` of the same command) with
``slurm_partition``, ``gpus_per_node`` and ``slurm_array_parallelism``; its logs are under
``<runs_dir>/.submitit/``. Tests run the same submitit path with ``cluster="local"`` or ``"debug"``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import UsageError, ZooError
from zoo.fileio import atomic_write_text, parse_json
from zoo.rundir import mark_run_dir
from zoo.text import one_line

if TYPE_CHECKING:
    from zoo.bench.api import BenchRequest
    from zoo.bench.runner import BenchProgress, BenchRunner, Job
    from zoo.bench.store import ResultRow, ResultsStore

__all__ = ["EXECUTORS", "WORKER_COMMAND", "ExecutorSettings", "collect", "read_job_rows", "run_jobs", "slurm_executor"]

EXECUTORS = ("serial", "local", "slurm")
ROWS_FILE = "rows.json"
#: What runs one job from its spec file (a local child process, a Slurm array task).
WORKER_COMMAND = (sys.executable, "-m", "zoo.bench.worker")
LOG_FILE = "job.log"


@dataclass(frozen=True)
class ExecutorSettings:
    """How ``zoo bench`` dispatches its jobs (``--executor``, ``--jobs``, ``--slurm-*``).

    ``jobs``: local processes at once (default 1), or the Slurm array's parallelism (default: all).
    ``slurm_gpus_per_job`` GPUs per job (``gpus_per_node``, one task per job), ``slurm_cpus_per_job``
    CPUs per job, ``slurm_timeout_min`` the wall-time limit of each job in minutes.
    ``submitit_cluster`` replaces ``"slurm"`` by submitit's ``"local"`` or ``"debug"`` executor
    (tests; a machine without Slurm).
    """

    kind: str = "serial"
    jobs: int | None = None
    slurm_partition: str | None = None
    slurm_gpus_per_job: int = 1
    slurm_cpus_per_job: int | None = None
    slurm_timeout_min: int = 24 * 60
    submitit_cluster: str = "slurm"

    def validate(self) -> None:
        if self.kind not in EXECUTORS:
            raise UsageError(f"--executor must be one of {', '.join(EXECUTORS)}, got {self.kind!r}")
        if self.jobs is not None and self.jobs < 1:
            raise UsageError(f"--jobs must be >= 1, got {self.jobs}")
        if self.kind == "serial" and self.jobs not in (None, 1):
            raise UsageError("--jobs needs --executor local or slurm (the serial executor runs one job at a time)")
        if self.kind == "slurm" and self.submitit_cluster == "slurm" and not self.slurm_partition:
            raise UsageError("--executor slurm needs --slurm-partition NAME (sinfo lists them)")
        if self.slurm_gpus_per_job < 0 or (self.slurm_cpus_per_job is not None and self.slurm_cpus_per_job < 1):
            raise UsageError("--slurm-gpus-per-job must be >= 0 and --slurm-cpus-per-job >= 1")
        if self.slurm_timeout_min < 1:
            raise UsageError(f"--slurm-timeout must be >= 1 minute, got {self.slurm_timeout_min}")
        if self.submitit_cluster not in ("slurm", "local", "debug"):
            raise UsageError(f"submitit cluster must be slurm, local or debug, got {self.submitit_cluster!r}")


# -- the job side ----------------------------------------------------------------------------------


def _request_to_json(request: BenchRequest) -> dict[str, Any]:
    from zoo.bench.presets import Preset

    if isinstance(request.preset, Preset):
        raise UsageError("jobs run by --executor local/slurm need a preset name, not a Preset object")
    data = {f.name: getattr(request, f.name) for f in fields(request)}
    for key in ("results", "runs_dir", "backbone_weights", "inception_weights", "data_dir"):
        if data.get(key) is not None:
            data[key] = os.fspath(data[key])
    data["models"], data["seeds"] = list(data["models"]), list(data["seeds"])
    from zoo.bench.sweep import values_to_json

    data["overrides"], data["options"] = values_to_json(data["overrides"]), values_to_json(data["options"])
    data["tuned"] = dict(data["tuned"])
    return data


def read_job_rows(run_dir: str | os.PathLike[str]) -> list[ResultRow] | None:
    """The rows a job wrote into ``run_dir/rows.json`` (``None`` if it wrote none); a damaged file is a ZooError."""
    from zoo.bench.store import ResultRow

    path = Path(run_dir) / ROWS_FILE
    if not path.is_file():
        return None
    try:
        data = parse_json(path.read_text())
        return [ResultRow.from_dict(item) for item in data]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ZooError(f"{path}: not a rows file written by a genzoo job ({one_line(exc)})") from None


def collect(store: ResultsStore, runs_dir: str | os.PathLike[str]) -> list[ResultRow]:
    """Ingest every ``<runs_dir>/*/rows.json`` into ``store``, then remove it: each file is
    ingested once, so a later ``--collect`` cannot put its (by then older) rows back. A row
    replaces the stored row of its identity only as `zoo.bench.store.replaces` allows.

    Returns the rows ingested. Raises [`UsageError`][zoo.errors.UsageError] if ``runs_dir`` is not a folder.
    Run folders without ``rows.json`` (jobs still running, or killed) are left alone.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        raise UsageError(f"--collect {root}: not a folder")
    rows: list[ResultRow] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        found = read_job_rows(folder)
        if found is not None:
            store.add_many(found)
            rows.extend(found)
            ingested(folder)
    return rows


def ingested(run_dir: str | os.PathLike[str]) -> None:
    """Remove ``run_dir/rows.json`` once its rows are committed to the store (only then)."""
    (Path(run_dir) / ROWS_FILE).unlink(missing_ok=True)


# -- the submitting side ---------------------------------------------------------------------------


@dataclass
class _Pending:
    index: int  # the job's position in the request
    job: Job
    spec: Path
    log: Path


def run_jobs(runner: BenchRunner, jobs: Sequence[Job], request: BenchRequest, settings: ExecutorSettings,
             progress: BenchProgress) -> list[tuple[list[ResultRow], bool]]:
    """Run ``jobs`` on ``settings``'s executor; returns ``(rows, reused)`` per job, in order.

    Jobs whose rows are all ``ok`` in the store are skipped (unless ``request.rerun``); the others
    run elsewhere and their rows are ingested into ``runner.store`` as each finishes.
    """
    from zoo.bench.runner import JobCounter, report_overall
    from zoo.bench.sweep import pin_to_plan

    settings.validate()
    request_json = _request_to_json(request)
    out: dict[int, tuple[list[ResultRow], bool]] = {}
    pending: list[_Pending] = []
    counter = JobCounter(len(jobs))
    for i, job in enumerate(jobs):
        if not request.rerun:
            found = [runner.store.find(identity) for identity in job.identities]
            if all(r is not None and r.status == "ok" for r in found):
                progress.message(f"[{job.plan.name} seed {job.seed}] already in the store; skipped")
                out[i] = ([r for r in found if r is not None], True)
                counter.finish(skipped=True)
                continue
        mark_run_dir(job.run_dir)  # checked before any job ran; the marker makes job.log genzoo's own
        (job.run_dir / ROWS_FILE).unlink(missing_ok=True)  # rows of an earlier attempt are not this run's
        spec = runner.runs_dir / ".jobs" / f"{job.run_dir.name}.json"
        log = job.run_dir / LOG_FILE
        atomic_write_text(spec, json.dumps({
            "request": pin_to_plan(request_json, job.plan), "model": job.plan.name, "seed": job.seed,
            "runs_dir": os.fspath(runner.runs_dir), "run_dir": os.fspath(job.run_dir), "log": os.fspath(log),
        }, indent=1) + "\n")
        pending.append(_Pending(i, job, spec, log))
    if pending:
        progress.message(f"{len(pending)} job(s) to run on the {settings.kind} executor"
                         + (f" ({len(jobs) - len(pending)} already in the store)" if len(pending) < len(jobs) else ""))
        backend = _run_local if settings.kind == "local" else _run_submitit
        report_overall(progress, counter.status())
        for item, error, log in backend(pending, settings, runner.runs_dir, progress):
            rows = _finished_rows(runner, item.job, error, log)
            runner.store.add_many(rows)
            ingested(item.job.run_dir)
            out[item.index] = (rows, False)
            report_overall(progress, counter.finish(failed=any(r.status == "failed" for r in rows)))
    return [out[i] for i in range(len(jobs))]


def _finished_rows(runner: BenchRunner, job: Job, error: str | None, log: str) -> list[ResultRow]:
    from zoo.bench.store import ResultRow

    rows = None
    if error is None:
        try:
            rows = read_job_rows(job.run_dir)
        except ZooError as exc:
            error = str(exc)
        if rows is None and error is None:
            error = f"the job ended without writing {job.run_dir / ROWS_FILE}"
    if rows is not None:
        return rows
    message = f"{error} (log: {log})"
    return [ResultRow(**runner._base(job, options)["fields"], status="failed", error=message)
            for options in job.plan.sample_settings]


def _run_local(pending: list[_Pending], settings: ExecutorSettings, runs_dir: Path, progress: BenchProgress):  # noqa: ANN202
    """Yield ``(item, error or None, log path)`` as child processes finish, ``settings.jobs`` at a time."""
    limit = settings.jobs or 1
    queue = list(pending)
    running: list[tuple[_Pending, subprocess.Popen, Any]] = []
    try:
        while queue or running:
            while queue and len(running) < limit:
                item = queue.pop(0)
                log = open(item.log, "a")  # noqa: SIM115 - closed when the child ends
                log.write(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} zoo bench job {item.job.plan.name} seed {item.job.seed}\n")
                log.flush()
                child = subprocess.Popen([*WORKER_COMMAND, os.fspath(item.spec)],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                progress.message(f"[{item.job.plan.name} seed {item.job.seed}] started (pid {child.pid}, log {item.log})")
                running.append((item, child, log))
            time.sleep(0.2)
            for entry in list(running):
                item, child, log = entry
                code = child.poll()
                if code is None:
                    continue
                running.remove(entry)
                log.close()
                error = None if code == 0 else f"job process exited with {_exit_text(code)}"
                progress.message(f"[{item.job.plan.name} seed {item.job.seed}] "
                                 + ("finished" if error is None else f"failed: {error}"))
                yield item, error, os.fspath(item.log)
    finally:  # Ctrl-C or an error here: stop the children (SIGTERM: they checkpoint and exit)
        for _, child, _log in running:
            if child.poll() is None:
                child.terminate()
        for _, child, log in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=60)
            log.close()


def _exit_text(code: int) -> str:
    if code < 0:
        import signal

        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def slurm_executor(settings: ExecutorSettings, folder: str | os.PathLike[str], array_size: int) -> Any:
    """A configured ``submitit.AutoExecutor`` for ``array_size`` jobs (Slurm, or local/debug in tests).

    Slurm parameters: one task per job, ``gpus_per_node = slurm_gpus_per_job``, ``cpus_per_task``,
    ``timeout_min``, ``slurm_partition``, ``slurm_array_parallelism = jobs`` (default all at once).
    Raises [`UsageError`][zoo.errors.UsageError] when submitit is not installed.
    """
    try:
        import submitit
    except ImportError:
        raise UsageError("--executor slurm needs submitit: pip install 'genzoo[cluster]'") from None
    try:
        executor = submitit.AutoExecutor(folder=os.fspath(Path(folder) / "%j"), cluster=settings.submitit_cluster)
    except RuntimeError as exc:  # submitit's "Could not detect srun": not on a Slurm login node
        raise UsageError(f"--executor slurm: {exc} (run zoo bench where sbatch/srun work, or use --executor local)") from None
    params: dict[str, Any] = {"name": "zoo-bench", "timeout_min": settings.slurm_timeout_min, "tasks_per_node": 1,
                              "nodes": 1}
    if settings.slurm_gpus_per_job:
        params["gpus_per_node"] = settings.slurm_gpus_per_job
    if settings.slurm_cpus_per_job:
        params["cpus_per_task"] = settings.slurm_cpus_per_job
    if settings.slurm_partition:
        params["slurm_partition"] = settings.slurm_partition
    params["slurm_array_parallelism"] = settings.jobs or max(1, array_size)
    if settings.submitit_cluster != "slurm":  # local/debug executors know no GPUs-per-job on a CPU machine
        params.pop("gpus_per_node", None)
    executor.update_parameters(**params)
    return executor


def _run_submitit(pending: list[_Pending], settings: ExecutorSettings, runs_dir: Path, progress: BenchProgress):  # noqa: ANN202
    from submitit.helpers import CommandFunction

    executor = slurm_executor(settings, runs_dir / ".submitit", len(pending))
    # A command, not a pickled function: the dispatcher never imports the worker (zoo.bench.worker).
    submitted = executor.map_array(CommandFunction(list(WORKER_COMMAND)), [os.fspath(p.spec) for p in pending])
    for item, job in zip(pending, submitted, strict=True):
        progress.message(f"[{item.job.plan.name} seed {item.job.seed}] submitted as {settings.submitit_cluster} job {job.job_id}")
    for item, job in zip(pending, submitted, strict=True):
        error = None
        try:
            job.result()
        except Exception as exc:  # submitit's FailedJobError / UncompletedJobError, or the job's own error
            error = _first_line(exc)
        log = os.fspath(getattr(job.paths, "stderr", "")) if hasattr(job, "paths") else ""
        progress.message(f"[{item.job.plan.name} seed {item.job.seed}] " + ("finished" if error is None else f"failed: {error}"))
        yield item, error, log


def _first_line(exc: BaseException) -> str:
    """The last informative line of a job's error (submitit wraps the remote traceback)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    informative = [line for line in lines if not line.startswith(("File ", "Traceback", "^", "~"))]
    text = informative[-1] if informative else type(exc).__name__
    return text[:400]


def settings_from(request: BenchRequest) -> ExecutorSettings:
    """The executor settings a request carries (``executor``, ``jobs``, ``slurm`` mapping)."""
    extra: Mapping[str, Any] = getattr(request, "slurm", None) or {}
    known = {f.name for f in fields(ExecutorSettings)}
    unknown = sorted(set(extra) - known)
    if unknown:
        raise UsageError(f"unknown executor setting(s): {', '.join(unknown)}")
    return ExecutorSettings(kind=request.executor, jobs=request.jobs, **dict(extra))
