"""One benchmark job, run from its spec file: ``python -m zoo.bench.worker SPEC``.

The dispatcher (`zoo.bench.executors`) launches this as a command (a local child process, or
a Slurm array task through submitit's ``CommandFunction``), so it never imports this module, and
this module, which calls [`zoo.bench.run_benchmark`][zoo.bench.run_benchmark], sits above both.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from zoo.bench.api import BenchRequest, run_benchmark
from zoo.bench.executors import ROWS_FILE
from zoo.errors import ZooError
from zoo.fileio import atomic_write_text

__all__ = ["main", "run_job_spec"]


def run_job_spec(spec_path: str | os.PathLike[str]) -> str:
    """Run one job from its spec file; write its rows to ``<run folder>/rows.json``; return that path.

    This is what a local child process or a Slurm array task executes. The rows are those of
    [`zoo.bench.run_benchmark`][zoo.bench.run_benchmark] for the one model and seed, measured with a scratch store in a
    temporary folder (so the shared store is never opened here). Raises [`ZooError`][zoo.errors.ZooError]
    when the request no longer resolves to the spec's run folder (genzoo or a plugin changed).
    """
    from zoo.bench.sweep import values_from_json

    spec = json.loads(Path(spec_path).read_text())
    given = spec["request"]
    given = {**given, "overrides": values_from_json(given.get("overrides", {})),
             "options": values_from_json(given.get("options", {}))}
    request = BenchRequest(**{**given, "models": [spec["model"]], "seeds": [spec["seed"]],
                              "runs_dir": spec["runs_dir"], "executor": "serial", "jobs": None,
                              "fail_fast": False})  # --rerun passes through: retrain, not resume
    log = spec.get("log", "")
    with tempfile.TemporaryDirectory(prefix="zoo-job-") as scratch:
        request = replace(request, results=str(Path(scratch) / "job.sqlite"))
        result = run_benchmark(request, progress=_PrintProgress())
    rows = result.rows
    where = {r.run_dir for r in rows}
    if where != {spec["run_dir"]}:
        raise ZooError(f"job {spec['model']} seed {spec['seed']} resolved to {sorted(map(str, where))}, not "
                       f"{spec['run_dir']}: genzoo or a plugin changed since it was submitted")
    for row in rows:
        if row.status == "failed" and log:
            row.error = f"{row.error} (log: {log})"
    path = Path(spec["run_dir"]) / ROWS_FILE
    atomic_write_text(path, json.dumps([r.to_dict() for r in rows], indent=1, default=str) + "\n")
    return str(path)


class _PrintProgress:
    """Plain lines on stderr (the job's log): what a cluster job shows instead of bars."""

    def __init__(self) -> None:
        from zoo.bench.runner import BenchProgress

        self._base = BenchProgress()

    def message(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def training(self, label: str):  # noqa: ANN201 - a context manager yielding a progress callback
        from zoo.trainer import log_progress

        return contextlib.nullcontext(log_progress(200))

    def tasks(self):  # noqa: ANN201
        return self._base.tasks()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m zoo.bench.worker SPEC``: run one job (what a local child process executes)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m zoo.bench.worker JOB_SPEC.json", file=sys.stderr)
        return 2
    try:
        print(run_job_spec(args[0]), flush=True)
    except ZooError as exc:
        print(f"zoo bench job: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

