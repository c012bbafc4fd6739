"""The benchmark's jobs: one (model, seed) trained once, evaluated along its budget and at its end.

Everything that can be wrong with a request (names, config overrides, sampling options, image
sizes, budgets) is resolved once by `plan_models` before the first model trains. Each job
then:

* skips itself when every row it would write is already in the store with status ``ok``;
* trains in a run folder named by its identity (model, config, budget, precision, batch, seed),
  resuming from the folder's last checkpoint when an earlier run was interrupted or killed;
* evaluates quality at log-spaced points of its budget with the cheapest sampler setting (the
  quality-versus-compute curve, kept in ``curve.json`` so a resumed job does not redo them), then
  every sampler setting of the sweep at the full budget;
* commits its rows as soon as they exist, so a failure or Ctrl-C keeps every finished row.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo import guard
from zoo.bench.costs import PeakMemory, is_oom, sample_flops_per_image
from zoo.bench.presets import Preset
from zoo.bench.store import ResultRow, ResultsStore, canonical_json, config_hash
from zoo.budget import Budget, log_spaced_points
from zoo.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from zoo.data import ImageDataset
from zoo.device import environment, resolve_precision, synchronize
from zoo.errors import ConfigError, UnknownNameError, UsageError, UserInterrupt, ZooError
from zoo.factory import create_model
from zoo.fileio import atomic_write_text, parse_json, run_lock
from zoo.metrics.protocol import Protocol
from zoo.model import GenerativeModel
from zoo.registry import ModelEntry, Registry
from zoo.rundir import check_new_run_dir, mark_run_dir
from zoo.text import clock_text, one_line, slug
from zoo.trainer import (
    Interrupted,
    Trainer,
    TrainProgress,
    TrainResult,
    TrainSettings,
    seed_everything,
)

#: ``progress(task, done, total)``: sampling and feature-extraction bars.
TaskFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class BenchStatus:
    """Where the whole benchmark stands: ``done`` of ``total`` jobs (a job is one model and
    seed), of which ``skipped`` were already in the store and ``failed`` failed; ``elapsed``
    seconds since the first job started."""

    done: int
    total: int
    skipped: int = 0
    failed: int = 0
    elapsed: float = 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left, from the jobs that ran so far (skipped ones cost nothing): elapsed
        time per job run, times the jobs left; 0 when all are done, ``None`` before any ran."""
        ran = self.done - self.skipped
        if self.done >= self.total:
            return 0.0
        return self.elapsed / ran * (self.total - self.done) if ran > 0 else None

    def line(self) -> str:
        """``jobs 3 of 12 done (1 skipped, 1 failed) · 0:04:10 so far · eta 0:12:30``."""
        extra = ", ".join(f"{n} {what}" for n, what in ((self.skipped, "skipped"), (self.failed, "failed")) if n)
        return (f"jobs {self.done} of {self.total} done{f' ({extra})' if extra else ''} · "
                f"{clock_text(self.elapsed)} so far · eta {clock_text(self.eta)}")


class JobCounter:
    """Counts finished jobs for `BenchProgress.overall`; ``clock`` gives seconds."""

    def __init__(self, total: int, clock: Callable[[], float] = time.monotonic):
        self.total, self.clock, self.start = total, clock, clock()
        self.done = self.skipped = self.failed = 0

    def status(self) -> BenchStatus:
        return BenchStatus(self.done, self.total, self.skipped, self.failed, self.clock() - self.start)

    def finish(self, skipped: bool = False, failed: bool = False) -> BenchStatus:
        self.done += 1
        self.skipped += bool(skipped)
        self.failed += bool(failed)
        return self.status()


def report_overall(progress: Any, status: BenchStatus) -> None:
    """``progress.overall(status)``, or one ``message`` line for a progress object written before
    `BenchProgress.overall` existed (one that does not subclass `BenchProgress`)."""
    overall = getattr(progress, "overall", None)
    if callable(overall):
        overall(status)
    else:
        progress.message(status.line())


class BenchProgress:
    """How [`zoo.bench.run_benchmark`][zoo.bench.run_benchmark] reports what it does; every method is a no-op here.

    Subclass it to show progress (the CLI draws rich bars): `message` gets one line per
    event, `overall` the whole benchmark's jobs done and ETA before the first job and after
    each, `training` wraps each training run and yields the trainer's progress callback,
    `tasks` wraps sampling and metrics and yields a ``progress(task, done, total)`` callback.
    """

    def message(self, text: str) -> None:
        """One line about the benchmark's progress ("[gan seed 0] training (128kimg)")."""

    def overall(self, status: BenchStatus) -> None:
        """The whole benchmark's progress; by default one `message` line."""
        self.message(status.line())

    @contextlib.contextmanager
    def training(self, label: str) -> Iterator[Callable[[TrainProgress], None] | None]:
        yield None

    @contextlib.contextmanager
    def tasks(self) -> Iterator[TaskFn | None]:
        yield None


@dataclass
class ModelPlan:
    """One model of a request, fully resolved before any training starts."""

    entry: ModelEntry
    overrides: dict[str, Any]  # everything applied on top of the class defaults (variant included)
    config: dict[str, Any]  # the resolved config, as stored in every row
    config_label: str  # how the config differs from the registered name's defaults ("lr=0.01")
    config_hash: str  # of the resolved config and the batch size
    batch_size: int
    precision: str  # fp32, bf16 or fp16 (``auto`` resolved)
    sample_settings: list[dict[str, Any]]  # parsed and validated, one row each
    curve_setting: dict[str, Any]  # the cheapest of them, used for the points along the budget
    tuning: dict[str, Any] = field(default_factory=dict)  # the effort behind a tuned config (zoo.bench.tuning)

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def cls(self) -> type[GenerativeModel]:
        return self.entry.cls

    @property
    def plugin(self) -> str:
        return self.entry.plugin.distribution or self.entry.plugin.name

    @property
    def plugin_version(self) -> str:
        return self.entry.plugin.version or ""


def plan_models(registry: Registry, names: list[str], *, preset: Preset, dataset: ImageDataset, device: torch.device,
                precision: str, batch_size: int | None, overrides: dict[str, str], options: dict[str, str]) -> list[ModelPlan]:
    """Resolve names, configs, precisions, batch sizes and sampling options, or raise before any work."""
    entries = registry.resolve_models(names)
    known = [e.name for e in entries]
    per_model: dict[str, dict[str, Any]] = {n: {} for n in known}
    for key, value in overrides.items():
        model, sep, field_name = key.rpartition(".")
        if not sep:
            raise ConfigError(key, "--set needs MODEL.KEY=VALUE in zoo bench (e.g. --set ddpm.lr=1e-4)")
        if model not in per_model:
            raise _not_benchmarked("--set", key, model, registry, known)
        per_model[model][field_name] = value
    _check_options_used(options, entries, registry)
    plans = []
    for entry in entries:
        cls, variant = entry.cls, entry.overrides
        recipe = cls.recipe if preset.use_recipes else None
        resolved = resolve_precision(precision, device, recipe.precision if recipe else None)
        if recipe is not None:
            recipe = recipe.for_precision(resolved, auto=precision.strip().lower() == "auto")
        base = dict(cls.tiny_config) if preset.use_tiny_config else {}
        if recipe is not None:
            base.update(recipe.overrides)
        applied = {**variant, **base, **per_model[entry.name]}
        config = cls.Config.from_overrides(applied).to_dict()
        cls.check_image_shape(dataset.image_shape)
        # Labels say how a line differs from what its name promises: the variant, with the smoke
        # preset's tiny networks taken as given; a recipe's and the user's changes show.
        tiny = dict(cls.tiny_config) if preset.use_tiny_config else {}
        defaults = cls.Config.from_overrides({**variant, **tiny}).to_dict()
        batch = batch_size or (recipe.batch_size if recipe and recipe.batch_size else None) or cls.default_batch_size
        if batch_size and batch_size > len(dataset.train):  # as zoo train: the user's number is kept or refused
            raise UsageError(f"--batch-size {batch_size} is larger than the training split ({len(dataset.train)} images)")
        batch = min(batch, len(dataset.train))  # a default larger than a small dataset shrinks to it
        label = " ".join(f"{k}={_text(v)}" for k, v in sorted(config.items()) if defaults.get(k) != v)
        if batch != cls.default_batch_size:
            label = f"{label} batch={batch}".strip()
        settings = _sample_settings(cls, entry.name, preset, options)
        plans.append(ModelPlan(
            entry=entry, overrides=applied, config=config, config_label=label,
            config_hash=config_hash({"config": config, "batch_size": batch}), batch_size=batch,
            precision=resolved,
            sample_settings=settings, curve_setting=min(settings, key=lambda s: s.get("steps") or 0),
        ))
    return plans


def _text(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _sample_settings(cls: type[GenerativeModel], name: str, preset: Preset, options: dict[str, str]) -> list[dict[str, Any]]:
    """The sampling settings of one model's rows: ``--option`` values if any were given for it, else
    the model's own ``bench_sweep``, else the preset's sweep for its family.

    A family sweep is never trimmed to fit: a key the model does not declare, or a value it refuses,
    is a [`ConfigError`][zoo.errors.ConfigError] here, before anything trains, naming the fixes (declare
    ``bench_sweep`` on the model class, or pass ``--option MODEL.KEY=VALUE``).
    """
    declared = {o.name for o in cls.sample_options}
    explicit = {}
    for key, value in options.items():
        model, sep, opt = key.rpartition(".")
        if (sep and model == name) or (not sep and opt in declared):
            explicit[opt] = value
    if explicit:
        sweep, source = [{}], None
    elif cls.bench_sweep is not None:
        sweep, source = [dict(s) for s in cls.bench_sweep], None
    else:
        sweep, source = preset.sample_sweeps.get(cls.family, [{}]), f"preset {preset.name!r}'s {cls.family} sweep"
    settings: list[dict[str, Any]] = []
    for base in sweep:
        if source is not None:
            missing = [k for k in base if k not in declared]
            try:
                if missing:
                    raise UsageError(f"it declares no sampling option {', '.join(map(repr, missing))}")
                parsed = cls.parse_sample_options({**base, **explicit})
            except UsageError as exc:
                raise ConfigError("bench_sweep", (
                    f"{source} sets {base}, which model {name!r} cannot take ({exc}); declare the model's own sweep "
                    f"(class attribute bench_sweep = [{{...}}, ...]) or pass --option {name}.KEY=VALUE"), name) from None
        else:
            parsed = cls.parse_sample_options({**base, **explicit})
        if parsed not in settings:
            settings.append(parsed)
    return settings


def _not_benchmarked(option: str, key: str, model: str, registry: Registry, known: list[str]) -> ZooError:
    """The error for ``--set/--option MODEL.KEY`` naming a model not in ``known`` (the bench's)."""
    if model in registry.models:  # a real model, just not benchmarked here
        return UsageError(f"{option} {key}: {model!r} is not among the models benchmarked ({', '.join(known)}); "
                          "add it to --models or drop the setting")
    return UnknownNameError(f"model in {option}", model, known)


def _check_options_used(options: dict[str, str], entries: list[ModelEntry], registry: Registry) -> None:
    for key in options:
        model, sep, opt = key.rpartition(".")
        if sep:
            if model not in {e.name for e in entries}:
                raise _not_benchmarked("--option", key, model, registry, [e.name for e in entries])
            continue
        if not any(opt in {o.name for o in e.cls.sample_options} for e in entries):
            known = sorted({o.name for e in entries for o in e.cls.sample_options})
            raise UnknownNameError("sampling option", opt, known)


def check_job_dir(job: Job) -> None:
    """Refuse a job folder that is neither this benchmark's (its ``job.json``; `BenchRunner._claim`
    checks whose) nor new, empty, or a genzoo run without checkpoints (`zoo.rundir.check_new_run_dir`).
    Raises [`UsageError`][zoo.errors.UsageError]; writes nothing."""
    if not (job.run_dir / "job.json").is_file():
        check_new_run_dir(job.run_dir, option="--runs-dir")


@dataclass
class Job:
    """One (model, seed) of a benchmark: the rows it writes share everything but the sampler setting."""

    plan: ModelPlan
    seed: int
    budget: Budget
    run_dir: Path
    identities: list[tuple[Any, ...]] = field(default_factory=list)


class BenchRunner:
    """Runs the jobs of one benchmark under one protocol, writing rows to ``store``."""

    def __init__(self, *, dataset: ImageDataset, protocol: Protocol, store: ResultsStore, preset: Preset,
                 budget: Budget, device: torch.device, runs_dir: Path, progress: BenchProgress | None = None,
                 curve_points: int | None = None, rerun: bool = False):
        self.dataset, self.protocol, self.store, self.preset = dataset, protocol, store, preset
        self.budget, self.device, self.runs_dir, self.rerun = budget, device, runs_dir, rerun
        self.progress = progress or BenchProgress()
        n = preset.curve_points if curve_points is None else curve_points
        self.points = log_spaced_points(n)[:-1] if n > 1 else []  # the last point is the final evaluation
        self.floor: dict[str, float] = {}
        self.env = environment(device)
        self._dog = guard.Watchdog()  # replaced by each job's own (run)

    # -- identity ------------------------------------------------------------------------------

    def job(self, plan: ModelPlan, seed: int) -> Job:
        train_identity = canonical_json({
            "model": plan.name, "plugin_version": plan.plugin_version, "config_hash": plan.config_hash,
            "budget": self.budget.to_dict(), "precision": plan.precision, "seed": seed,
            "dataset": self.protocol.dataset_fingerprint,
            **({"tuning": plan.tuning} if plan.tuning else {}),  # untuned folders keep their names
        })
        digest = hashlib.sha256(train_identity.encode()).hexdigest()[:10]
        name = f"{slug(plan.name)}-{slug(self.dataset.name, 24)}-{self.budget}-{plan.precision}-{digest}-s{seed}"
        job = Job(plan, seed, self.budget, self.runs_dir / name)
        job.identities = [self._base(job, options)["identity"] for options in plan.sample_settings]
        return job

    def _base(self, job: Job, options: dict[str, Any]) -> dict[str, Any]:
        plan = job.plan
        fields: dict[str, Any] = {
            "model": plan.name, "family": plan.cls.family, "plugin": plan.plugin, "plugin_version": plan.plugin_version,
            "dataset": self.protocol.dataset, "dataset_fingerprint": self.protocol.dataset_fingerprint, "seed": job.seed,
            "preset": self.preset.name, "protocol_hash": self.protocol.hash, "protocol": self.protocol.to_dict(),
            "config": plan.config, "config_hash": plan.config_hash, "config_label": plan.config_label,
            "budget_kind": job.budget.kind, "budget_amount": job.budget.amount, "precision": plan.precision,
            "sample_options": options, "floor": self.floor, "environment": self.env, "run_dir": str(job.run_dir),
            "tuning": plan.tuning,
        }
        identity = ResultRow(**fields).identity
        return {"fields": fields, "identity": identity}

    # -- running -------------------------------------------------------------------------------

    def run(self, job: Job) -> tuple[list[ResultRow], bool]:
        """Rows of ``job`` and whether they were reused (already in the store, status ok)."""
        if not self.rerun:
            found = [self.store.find(identity) for identity in job.identities]
            if all(r is not None and r.status == "ok" for r in found):
                self.progress.message(f"[{job.plan.name} seed {job.seed}] already in the store; skipped")
                return [r for r in found if r is not None], True
        check_job_dir(job)  # a usage error for the whole benchmark, not a failed row: nothing is written
        if not self.floor:
            from zoo.metrics import compute_floor

            self.progress.message(f"floor: scoring {self.protocol.num_fake} held-out real images (cached per protocol)")
            with self.progress.tasks() as tasks:
                self.floor = compute_floor(self.dataset, self.protocol, progress=tasks)
        batch = job.plan.batch_size
        # Plugin code can neither end nor stall the bench (zoo.guard): Ctrl-C is told from a plugin's
        # KeyboardInterrupt, a step that never returns is stopped, torch's global state is restored.
        with guard.torch_state(), guard.user_interrupts(), guard.Watchdog(self._killed(job)) as self._dog:
            return self._run(job, batch)

    def _killed(self, job: Job) -> Callable[[str, int], None]:
        """What the watchdog does before it ends a process whose job could not be stopped."""

        def record(message: str, _code: int) -> None:
            self.progress.message(f"[{job.plan.name} seed {job.seed}] failed: {message}")
            self._commit([ResultRow(**self._base(job, options)["fields"], status="failed", error=message)
                          for options in job.plan.sample_settings])

        return record

    def _run(self, job: Job, batch: int) -> tuple[list[ResultRow], bool]:
        try:
            mark_run_dir(job.run_dir)  # first: a bench killed at any later point leaves a folder it resumes
            with run_lock(job.run_dir), PeakMemory(self.device) as memory:
                if self.rerun:  # train again from step 0; under the lock, so never another process's files
                    self._claim(job)
                    self._reset(job)
                while True:
                    try:
                        model, result, curve = self._train(job, batch)
                        break
                    except Exception as exc:
                        if not is_oom(exc) or batch == 1:
                            raise
                        batch //= 2  # recorded in the row's costs; the identity keeps the batch asked for
                        self.progress.message(f"[{job.plan.name} seed {job.seed}] out of memory: retrying with batch {batch}")
                        self._reset(job)
                evaluations = [self._evaluate(model, job, options) for options in job.plan.sample_settings]
        except (Interrupted, UserInterrupt):
            raise
        except BaseException as exc:  # the model failed; record it and carry on with the others
            self._dog.disarm()
            fault = guard.fault_message(exc)
            if fault is None and not isinstance(exc, Exception):
                raise
            message = fault or ("out of memory even at batch size 1" if is_oom(exc) else str(exc)
                                if isinstance(exc, ZooError) else one_line(exc, where=True))
            self.progress.message(f"[{job.plan.name} seed {job.seed}] failed: {message}")
            rows = [ResultRow(**self._base(job, options)["fields"], status="failed", error=message)
                    for options in job.plan.sample_settings]
            self._commit(rows)
            if self._dog.signum is not None:  # SIGTERM/SIGINT arrived: the bench stops after this row
                raise guard.Stopped(self._dog.signum, f"{job.plan.name} seed {job.seed}: {message}") from None
            return rows, False
        rows = []
        for options, (metrics, sample_costs, grid, images) in zip(job.plan.sample_settings, evaluations, strict=True):
            costs = {**self._train_costs(model, result, batch), **sample_costs,
                     "peak_memory_mb": memory.mb, "memory_kind": memory.kind}
            final = {"fraction": 1.0, **result.spent, "metrics": metrics}
            row_curve = [*curve, final] if options == job.plan.curve_setting else [final]
            rows.append(ResultRow(**self._base(job, options)["fields"], status="ok", metrics=metrics, costs=costs,
                                  grid_path=str(grid), curve=row_curve, images=images))
            primary = self.protocol.primary_metric
            opts = ", ".join(f"{k}={v}" for k, v in options.items())
            self.progress.message(f"[{job.plan.name} seed {job.seed}{' ' + opts if opts else ''}] {primary} "
                                  f"{metrics[primary]:.3f} (floor {self.floor[primary]:.3f})")
        return self._commit(rows), False

    def _commit(self, rows: list[ResultRow]) -> list[ResultRow]:
        # A store that cannot take the rows (disk full, I/O error) keeps them in the run folder's rows.json.
        kept = self.store.add_many(rows, keep_side_file=True)
        if kept:  # a failed or refused run: the store keeps its ok row of this identity
            self.progress.message(f"[{rows[0].model} seed {rows[0].seed}] not stored: the store keeps "
                                  f"its ok row of this run")
        return rows

    def _reset(self, job: Job) -> None:
        """Drop this job's own checkpoints and curve (after an out-of-memory retry changes its batch)."""
        for path in [*list_checkpoints(job.run_dir), job.run_dir / "curve.json"]:
            path.unlink(missing_ok=True)

    def _train(self, job: Job, batch: int) -> tuple[GenerativeModel, TrainResult, list[dict[str, Any]]]:
        plan = job.plan
        self._claim(job)
        settings = TrainSettings(budget=str(job.budget), batch_size=batch, seed=job.seed,
                                 device=str(self.device), precision=plan.precision, checkpoint_every=200, sample_grid=0)
        resumed = list_checkpoints(job.run_dir)
        seed_everything(job.seed)
        model = create_model(plan.entry.cls, self.dataset.image_shape, plan.overrides)
        trainer = Trainer(model, self.dataset, settings, job.run_dir)
        curve_path = job.run_dir / "curve.json"
        curve: list[dict[str, Any]] = []
        if resumed:
            state = load_checkpoint(latest_checkpoint(job.run_dir), map_location=self.device)
            trainer.load_state_dict(state)
            if curve_path.is_file():
                try:
                    curve = [p for p in parse_json(curve_path.read_text()) if p["train_steps"] <= trainer.step]
                except (OSError, ValueError, TypeError, KeyError) as exc:  # damaged or crafted: one line
                    raise ZooError(f"{curve_path}: not a learning curve written by genzoo ({one_line(exc)})") from None
            self.progress.message(f"[{plan.name} seed {job.seed}] resuming at step {trainer.step} from {job.run_dir}")
        else:
            self.progress.message(f"[{plan.name} seed {job.seed}] training ({job.budget}, {plan.precision}, "
                                  f"batch {plan.batch_size}{', ' + plan.config_label if plan.config_label else ''})")

        seconds = job.budget.amount if job.budget.kind == "time" else None

        def arm(elapsed: float) -> None:  # a step still running this long after the budget ends is stopped
            left = None if seconds is None else max(0.0, seconds - elapsed) + guard.BUDGET_GRACE_SECONDS
            self._dog.arm(left, f"{plan.name}.train_step",
                          f"within {guard.BUDGET_GRACE_SECONDS:g}s after the {job.budget} budget ran out")

        def on_point(trainer: Trainer, fraction: float, spent: dict[str, Any]) -> None:
            self._dog.arm(None, f"{plan.name}")  # evaluation is not training time
            metrics, _, _, _ = self._evaluate(trainer.model, job, plan.curve_setting, grid=False)
            curve.append({"fraction": fraction, **spent, "metrics": metrics})
            atomic_write_text(curve_path, json.dumps(curve, indent=1))
            trainer.save()  # a job killed after this point resumes past it
            self.progress.message(f"[{plan.name} seed {job.seed}] {fraction:.0%} of the budget: "
                                  f"{self.protocol.primary_metric} {metrics[self.protocol.primary_metric]:.3f}")
            arm(trainer.elapsed)

        with self.progress.training(plan.name) as callback:
            def tick(progress: TrainProgress) -> None:
                arm(progress.elapsed)
                if callback is not None:
                    callback(progress)

            trainer.progress = tick if seconds is not None else callback
            arm(trainer.elapsed)
            try:
                result = trainer.fit(on_point=on_point, points=self.points)
            finally:
                self._dog.arm(None, f"{plan.name}")
        synchronize(self.device)
        return trainer.model, result, curve

    def _claim(self, job: Job) -> None:
        """Write (or check) the job's identity in its run folder; never take over another job's folder."""
        marker = job.run_dir / "job.json"
        text = canonical_json({"identities": [list(map(str, i)) for i in job.identities]})
        if marker.is_file():
            if marker.read_text() != text:
                raise UsageError(f"{job.run_dir} holds another benchmark job; move it away or pass another --runs-dir")
            return
        atomic_write_text(marker, text)

    def _train_costs(self, model: GenerativeModel, result: TrainResult, batch: int) -> dict[str, Any]:
        images_per_step = batch * model.batches_per_step  # WGAN-GP: n_critic batches a step
        per_image = result.flops_per_step / images_per_step if result.flops_per_step else None
        return {
            **result.spent,
            "train_images_per_s": result.images_per_s,
            "train_flops_per_image": per_image,
            "achieved_train_flops_per_s": result.flops / result.seconds if result.flops and result.seconds else None,
            "params": model.num_parameters(trainable_only=True),  # EMA copies are not model size
            "batch_size": batch,
            "budget_stopped_by": result.stopped_by,
            "cpu_threads": torch.get_num_threads(),
            **{f"validation_{k}": v for k, v in result.validation.items()},
        }

    def _evaluate(self, model: GenerativeModel, job: Job, options: dict[str, Any], *, grid: bool = True,
                  ) -> tuple[dict[str, float], dict[str, Any], Path | None, dict[str, str]]:
        """``(metrics, sampling costs, grid path, other images)``; with ``grid`` the sample grid and
        the (sample | nearest training image) pairs of the most suspicious samples are written."""
        from zoo.accel import sample_batch_size
        from zoo.metrics import evaluate, nearest_pairs
        from zoo.sampling import generate, write_grid

        n = self.protocol.num_fake
        label = f"{job.plan.name}: sampling" + (f" ({', '.join(f'{k}={v}' for k, v in options.items())})" if options else "")
        with self.progress.tasks() as tasks:
            done = [0]

            def on_batch(k: int) -> None:
                done[0] += k
                if tasks is not None:
                    tasks(label, done[0], n)

            generate(model, 2, seed=job.seed, options=options)  # warm-up, excluded from timing
            sample_batch_size(model, n, model.parse_sample_options(options))  # measured once, cached
            synchronize(self.device)
            start = time.perf_counter()
            images = generate(model, n, seed=job.seed, options=options, progress=on_batch)
            synchronize(self.device)
            seconds = time.perf_counter() - start
            evaluation = evaluate(images, self.dataset, self.protocol, progress=tasks)
        metrics = evaluation.metrics
        if not grid:
            return metrics, {}, None, {}
        tag = "-".join(f"{k}{v}" for k, v in options.items())
        suffix = "-" + slug(tag, 80) if tag else ""
        path = write_grid(images[: self.preset.grid_size], job.run_dir / f"samples{suffix}.png")
        extra: dict[str, str] = {}
        if evaluation.nearest:
            pairs = nearest_pairs(images, self.dataset, evaluation.nearest)
            extra["nearest_neighbours"] = str(write_grid(pairs, job.run_dir / f"nearest{suffix}.png", nrow=2))
        costs = {
            "sample_images_per_s": n / seconds,
            "sample_steps": options.get("steps"),
            # network evaluations per image, where the model says (flow: Heun costs 2 steps - 1)
            "sample_nfe": model.sample_nfe(**options),
            "sample_flops_per_image": sample_flops_per_image(model, options),
        }
        return metrics, costs, path, extra
