"""``run_benchmark(request) -> result``: the benchmark as a library call (``zoo bench`` wraps it).

One request names the models, the dataset, the preset and whatever replaces the preset's
choices. `run_benchmark` resolves everything once (model names, configs, sampling options,
the protocol and its backbone, the dataset and its fingerprint), then runs one job per model and
seed and returns every row of the request: the ones it measured and the ones it found already in
the store (a re-run of the same command skips finished work and resumes interrupted jobs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.bench.plan import PlannedJob, dry_run
from zoo.bench.presets import Preset, get_preset
from zoo.bench.runner import (
    BenchProgress,
    BenchRunner,
    JobCounter,
    ModelPlan,
    check_job_dir,
    report_overall,
)
from zoo.bench.store import ResultRow, ResultsStore, default_store_path, open_mode
from zoo.bench.sweep import plan_sweeps
from zoo.bench.tuning import settings_for, tune_request
from zoo.budget import Budget
from zoo.device import check_precision, resolve_device, warn_if_emulated
from zoo.errors import UsageError, ZooError
from zoo.factory import load_dataset
from zoo.metrics import make_protocol
from zoo.metrics.protocol import Protocol
from zoo.registry import Registry, get_registry

if TYPE_CHECKING:
    import torch

__all__ = ["BenchProgress", "BenchRequest", "BenchResult", "run_benchmark"]

MAX_SEED = 2**63 - 1  # what SQLite's INTEGER and torch.manual_seed both accept


@dataclass
class BenchRequest:
    """What to benchmark. Only ``models`` is required; ``None`` means "the preset's choice".

    ``budget`` is text in the field's units (``"2m"``, ``"1000steps"``, ``"64kimg"``,
    ``"2e13flops"``; see [`zoo.budget.Budget`][zoo.budget.Budget]). ``overrides`` maps ``"model.key"`` to a config
    value, ``options`` maps ``"model.key"`` or ``"key"`` to a sampling option. ``precision="auto"``
    uses each model's declared recipe where the hardware runs it natively (bf16 on CPUs with
    avx512_bf16 or AMX, and on recent GPUs), elsewhere fp32 and the recipe's ``fallback`` if it has
    one (`zoo.Recipe`). ``runs_dir`` defaults to ``bench/``
    beside the results store.
    """

    models: Sequence[str]
    preset: str | Preset = "quick"
    seeds: Sequence[int] = (0,)
    dataset: str = "mnist-5k"
    data_dir: str | None = None
    budget: str | None = None
    batch_size: int | None = None
    precision: str = "auto"
    device: str = "auto"
    #: ``"model.key"`` -> value, or a `zoo.bench.sweep.Sweep` of values (one job each)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    #: ``"[model.]key"`` -> value, or a `Sweep` (one row each)
    options: Mapping[str, Any] = field(default_factory=dict)
    num_fake: int | None = None
    backbone: str = "auto"
    #: Local weights of the chosen backbone (``--backbone-weights``); Inception's may also come from
    #: ``inception_weights``, used only when the backbone is Inception.
    backbone_weights: str | None = None
    inception_weights: str | None = None
    results: str | Path | None = None
    runs_dir: str | Path | None = None
    curve_points: int | None = None
    fail_fast: bool = False
    rerun: bool = False
    #: Where jobs run (zoo.bench.executors): "serial" (this process), "local" (``jobs`` child
    #: processes at once) or "slurm" (a submitit job array; ``slurm`` holds ExecutorSettings fields
    #: such as ``slurm_partition``, ``slurm_gpus_per_job``). Non-serial jobs write rows.json into
    #: their run folders and this process ingests them into the store.
    executor: str = "serial"
    jobs: int | None = None
    slurm: Mapping[str, Any] = field(default_factory=dict)
    #: Plan only: resolve everything, look the jobs up in the store, train nothing, write nothing
    #: (the result's ``planned`` lists the jobs; see `zoo.bench.plan`).
    dry_run: bool = False
    #: Tune every model first (zoo.bench.tuning): ``tune`` trials each at ``tune_budget`` (default:
    #: a quarter of the budget), then the best config of each at the full budget.
    tune: int | None = None
    tune_budget: str | None = None
    tune_seed: int = 0
    #: The tuning effort behind the config ``overrides`` give (``ResultRow.tuning``): set by
    #: executors for a tuned job's child process (zoo.bench.sweep.pin_to_plan), not by users.
    tuned: Mapping[str, Any] = field(default_factory=dict)
    #: Samples made elsewhere, scored under this board's protocol as external rows: name -> its
    #: sources (folders, arrays, export folders), one seed each (`zoo.bench.external`).
    samples: Mapping[str, Sequence[str | Path]] = field(default_factory=dict)


@dataclass
class BenchResult:
    """The rows of a request (measured now or found in the store), and what they were measured under."""

    rows: list[ResultRow]
    store: ResultsStore | None  # None only for a dry run without a store
    protocol: Protocol | None  # None only for a dry run whose backbone is not ready here
    plans: list[ModelPlan]
    reused: int = 0  # jobs skipped because their rows were already in the store
    planned: list[PlannedJob] = field(default_factory=list)  # a dry run's jobs

    @property
    def failed(self) -> list[ResultRow]:
        return [r for r in self.rows if r.status == "failed"]


def run_benchmark(request: BenchRequest, *, registry: Registry | None = None,
                  progress: BenchProgress | None = None) -> BenchResult:
    """Train, sample, evaluate and time every model and seed of ``request``; returns its rows.

    Raises [`UsageError`][zoo.errors.UsageError] (and its subclasses) for anything wrong with the request,
    before any training. A model that fails during its run is a row with ``status="failed"``, and
    the others carry on (``fail_fast`` raises [`ZooError`][zoo.errors.ZooError] instead). Rows are
    committed to the store one job at a time.
    """
    reg = registry or get_registry()
    progress = progress or BenchProgress()
    preset = request.preset if isinstance(request.preset, Preset) else get_preset(request.preset)
    seeds = _check_seeds(request.seeds)
    if request.executor != "serial" or request.jobs not in (None, 1) or request.slurm:
        from zoo.bench.executors import settings_from

        settings_from(request).validate()  # a bad --executor/--jobs/--slurm-* fails before any work
    budget = Budget.parse(request.budget or preset.budget)
    _check_count(request.num_fake)
    device = resolve_device(request.device)
    if request.precision != "auto":
        check_precision(request.precision, device)
    data = load_dataset(request.dataset, data_dir=request.data_dir, registry=reg)
    names = [str(m).strip() for m in request.models]
    twice = sorted({m for m in names if names.count(m) > 1})
    if twice:  # the same jobs twice would look like two lines' worth of evidence
        raise UsageError(f"model {twice[0]!r} is named twice in --models; name each model once")
    # Names, configs and options resolved once, before anything is created on disk.
    plans = plan_sweeps(reg, list(request.models), preset=preset, dataset=data, device=device,
                        precision=request.precision, batch_size=request.batch_size,
                        overrides=dict(request.overrides), options=dict(request.options)
                        ) if request.models or not request.samples else []
    for plan in plans if request.tuned else ():
        plan.tuning = dict(request.tuned)
    store_path = Path(request.results or default_store_path())
    tune_settings = settings_for(request, plans, budget)  # --tune checked before any work
    if request.dry_run:
        result = BenchResult([], None, None, plans)
        result.store, result.protocol, result.planned = dry_run(
            request, reg, plans, preset=preset, seeds=seeds, budget=budget, dataset=data, store_path=store_path,
            tune_settings=tune_settings)
        return result
    _warn_emulated(plans, device)
    if open_mode(store_path) != "rw":  # rows measured now could not be stored: refuse before training
        raise UsageError(f"results store {store_path} is read-only here (its file or folder); "
                         "pass --results with a writable path")
    # an existing store is opened now, so a bad one fails before the protocol's work; a new one
    # is made only once the request is known to be good
    store = ResultsStore(store_path) if store_path.exists() else None
    with progress.tasks() as tasks:
        protocol = make_protocol(
            data, num_real=min(preset.num_real, len(data.train)),
            num_fake=min(request.num_fake or preset.num_fake, len(data.test)), backbone=request.backbone,
            weights_path=request.backbone_weights, inception_weights=request.inception_weights, progress=tasks,
        )
    external = []
    if request.samples:  # every source read and checked before any job writes anything
        from zoo.bench.external import load_entries

        external = load_entries({k: [Path(p) for p in v] for k, v in request.samples.items()}, data, protocol,
                                models=[*reg.models, *(p.name for p in plans)])
    store = store if store is not None else ResultsStore(store_path)
    runs_dir = Path(request.runs_dir) if request.runs_dir is not None else store.path.parent / "bench"
    progress.message(f"{len(plans)} model(s) x {len(seeds)} seed(s){f' + {len(external)} external' if external else ''}, preset {preset.name}, budget {budget}, "
                     f"{data.name}, protocol {protocol.hash} ({protocol.backbone}, {protocol.num_fake} generated "
                     f"vs {protocol.num_real} real)")
    runner = BenchRunner(dataset=data, protocol=protocol, store=store, preset=preset, budget=budget, device=device,
                         runs_dir=runs_dir, progress=progress, curve_points=request.curve_points, rerun=request.rerun)
    if tune_settings is not None:  # trials first (kept in the store); then each model's best config
        plans = tune_request(request, reg, plans, tune_settings, runner, store, progress,
                             preset=preset, dataset=data, device=device)
    result = BenchResult([], store, protocol, plans)
    jobs = [runner.job(plan, seed) for plan in plans for seed in seeds]
    for job in jobs:  # every job folder is checked before the first job writes anything
        check_job_dir(job)
    if request.executor != "serial":  # each job elsewhere writes rows.json; ingested here (zoo.bench.executors)
        from zoo.bench.executors import run_jobs, settings_from

        for rows, reused in run_jobs(runner, jobs, request, settings_from(request), progress):
            result.rows.extend(rows)
            result.reused += reused
        return _score_external(result, external, runner, preset, progress)
    counter = JobCounter(len(jobs))
    report_overall(progress, counter.status())
    for job in jobs:
        rows, reused = runner.run(job)
        result.rows.extend(rows)
        result.reused += reused
        failed = [r for r in rows if r.status == "failed"]
        report_overall(progress, counter.finish(skipped=reused, failed=bool(failed)))
        if failed and request.fail_fast:
            raise ZooError(f"{job.plan.name} (seed {job.seed}) failed: {failed[0].error} (--fail-fast)")
    return _score_external(result, external, runner, preset, progress)


def _score_external(result: BenchResult, external: list[Any], runner: BenchRunner, preset: Preset,
                    progress: BenchProgress) -> BenchResult:
    """Score the ``--samples`` sources (read and checked before the jobs) into external rows."""
    if external:
        from zoo.bench.external import score_sources

        with progress.tasks() as tasks:
            result.rows += score_sources(external, dataset=runner.dataset, protocol=runner.protocol,
                                         store=runner.store, runs_dir=runner.runs_dir, floor=runner.floor or None,
                                         environment=runner.env, preset=preset.name, grid_size=preset.grid_size,
                                         progress=tasks)
    return result


def _warn_emulated(plans: list[ModelPlan], device: torch.device) -> None:
    """One warning per emulated precision the whole benchmark uses (training, then sampling), not
    one per model or job: ``auto`` never picks one, so these come from --precision or --option."""
    for precision in sorted({p.precision for p in plans}):
        warn_if_emulated(precision, device, "training", stacklevel=3)
    sampled = {str(s.get("precision", "fp32")) for p in plans for s in p.sample_settings}
    for precision in sorted(sampled):
        warn_if_emulated(precision, device, "sampling", stacklevel=3)


def _check_count(num_fake: int | None) -> None:
    """``num_fake`` below what a protocol scores is a usage error before the store or any run exists."""
    from zoo.metrics.protocol import MIN_IMAGES

    if num_fake is not None and (isinstance(num_fake, bool) or not isinstance(num_fake, int) or num_fake < MIN_IMAGES):
        raise UsageError(f"--num-fake must be a whole number of at least {MIN_IMAGES} generated images, got {num_fake!r}")


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    """Seeds as ints in 0..2**63-1 (SQLite's INTEGER, torch.manual_seed), none repeated; else UsageError."""
    import operator

    try:  # operator.index takes ints (numpy's too) and refuses 1.5 instead of truncating it
        if isinstance(seeds, (str, bytes)) or any(isinstance(s, bool) for s in seeds):
            raise TypeError
        out = [operator.index(s) for s in seeds]
    except TypeError:
        raise UsageError(f"seeds must be whole numbers, got {seeds!r}") from None
    if not out:
        raise UsageError("at least one seed is needed")
    if any(s < 0 or s > MAX_SEED for s in out):
        raise UsageError(f"seeds must lie between 0 and 2**63-1, got {out}")
    if len(set(out)) != len(out):
        raise UsageError(f"seeds must not repeat, got {out}")
    return out
