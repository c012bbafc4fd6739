"""``zoo bench``: train every model under one budget, evaluate under one protocol, record the cost.

Everything that can be wrong with the request (model and dataset names, config overrides, sampling
options, image sizes) is checked before the first model trains. Each (model, seed) then trains once
and is evaluated for every sampling setting of the preset; each result is committed to the store
as soon as it exists, so a failure or Ctrl-C keeps every finished row.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.bench.costs import (
    PeakMemory,
    is_oom,
    measure_train,
    sample_flops_per_image,
    with_oom_retry,
)
from zoo.bench.presets import Preset
from zoo.bench.store import ResultRow, ResultsStore
from zoo.data import ImageDataset
from zoo.device import autocast_factory, environment, make_scaler, resolve_device, synchronize
from zoo.errors import ConfigError, UnknownNameError, ZooError
from zoo.model import GenerativeModel
from zoo.registry import Registry
from zoo.trainer import Interrupted, Trainer, TrainSettings, seed_everything


@dataclass
class ModelPlan:
    """One model, fully resolved before any training starts."""

    cls: type[GenerativeModel]
    overrides: dict[str, Any]
    sample_settings: list[dict[str, Any]]  # parsed and validated, one evaluation (row) each
    plugin: str
    plugin_version: str

    @property
    def name(self) -> str:
        return self.cls.name


@dataclass
class BenchRequest:
    models: list[str]
    preset: Preset
    seeds: list[int] = field(default_factory=lambda: [0])
    dataset: str = "mnist-5k"
    device: str = "auto"
    precision: str = "fp32"
    steps: int | None = None  # overrides the preset's budget
    time_limit: float | None = None
    batch_size: int | None = None
    overrides: dict[str, str] = field(default_factory=dict)  # "model.key" -> value
    options: dict[str, str] = field(default_factory=dict)  # "model.key" or "key" -> value
    fail_fast: bool = False
    runs_dir: Path = Path("runs/bench")


def plan_models(registry: Registry, request: BenchRequest, dataset: ImageDataset) -> list[ModelPlan]:
    """Resolve names, configs and sampling options for every model, or raise before any work."""
    classes = registry.resolve_models(request.models)
    names = [c.name for c in classes]
    per_model: dict[str, dict[str, Any]] = {n: {} for n in names}
    for key, value in request.overrides.items():
        model, sep, field_name = key.partition(".")
        if not sep:
            raise ConfigError(key, "--set needs MODEL.KEY=VALUE in zoo bench (e.g. --set ddpm.lr=1e-4)")
        if model not in per_model:
            raise UnknownNameError("model in --set", model, names)
        per_model[model][field_name] = value
    plans = []
    for cls in classes:
        base = dict(cls.tiny_config) if request.preset.use_tiny_config else {}
        overrides = {**base, **per_model[cls.name]}
        cls.Config.from_overrides(overrides)  # validate now, build later per seed
        cls.check_image_shape(dataset.image_shape)
        plans.append(ModelPlan(cls, overrides, _sample_settings(cls, request), *_plugin_of(registry, cls.name)))
    _check_options_used(request.options, classes)
    return plans


def _sample_settings(cls: type[GenerativeModel], request: BenchRequest) -> list[dict[str, Any]]:
    declared = {o.name for o in cls.sample_options}
    explicit = {}
    for key, value in request.options.items():
        model, sep, opt = key.rpartition(".")
        if (sep and model == cls.name) or (not sep and opt in declared):
            explicit[opt] = value
    sweep = request.preset.sample_sweeps.get(cls.family, [{}]) if not explicit else [{}]
    settings = []
    for base in sweep:
        usable = {k: v for k, v in base.items() if k in declared}
        settings.append(cls.parse_sample_options({**usable, **explicit}))
    unique = []
    for s in settings:
        if s not in unique:
            unique.append(s)
    return unique


def _check_options_used(options: dict[str, str], classes: list[type[GenerativeModel]]) -> None:
    for key in options:
        model, sep, opt = key.rpartition(".")
        if sep:
            if model not in {c.name for c in classes}:
                raise UnknownNameError("model in --option", model, [c.name for c in classes])
            continue
        if not any(opt in {o.name for o in c.sample_options} for c in classes):
            known = sorted({o.name for c in classes for o in c.sample_options})
            raise UnknownNameError("sampling option", opt, known)


def _plugin_of(registry: Registry, name: str) -> tuple[str, str]:
    record = registry.models[name].plugin
    return record.distribution or record.name, record.version or ""


Reporter = Callable[[str], None]


class BenchRunner:
    def __init__(self, request: BenchRequest, registry: Registry, dataset: ImageDataset, protocol: Any,
                 store: ResultsStore, *, report: Reporter = print, progress: bool | None = None,
                 task_bars: Callable[[], Any] | None = None):
        self.request, self.registry, self.dataset, self.protocol = request, registry, dataset, protocol
        self.store, self.report, self.progress = store, report, progress
        # A factory of ``with``-blocks yielding progress(task, done, total); opened only around
        # sampling and metrics, never while the trainer's own bar is live.
        self.task_bars = task_bars or (lambda: contextlib.nullcontext(None))
        self.device = resolve_device(request.device)
        self.floor: dict[str, float] = {}
        self.rows: list[ResultRow] = []

    def run(self, plans: list[ModelPlan]) -> list[ResultRow]:
        from zoo.metrics import compute_floor

        self.report(f"floor: scoring {self.protocol.num_fake} held-out real images (cached per protocol)")
        self.floor = compute_floor(self.dataset, self.protocol)
        for plan in plans:
            for seed in self.request.seeds:
                rows = self.run_one(plan, seed)
                failed = [r for r in rows if r.status == "failed"]
                if failed and self.request.fail_fast:
                    raise ZooError(f"{plan.name} (seed {seed}) failed: {failed[0].error} (--fail-fast)")
        return self.rows

    def run_one(self, plan: ModelPlan, seed: int) -> list[ResultRow]:
        preset, req = self.request.preset, self.request
        run_dir = req.runs_dir / f"{plan.name}-{_slug(self.dataset.name)}-{preset.name}-s{seed}"
        base = self._row_base(plan, seed, run_dir)
        self.report(f"[{plan.name} seed {seed}] training ({self._budget_text()})")
        try:
            with PeakMemory(self.device) as memory:
                model, train_costs, config = self._train(plan, seed, run_dir)
                evaluations = [self._evaluate(model, options, seed, run_dir) for options in plan.sample_settings]
        except Interrupted:
            raise
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # the model failed; record it and carry on with the others
            message = _describe(exc)
            self.report(f"[{plan.name} seed {seed}] failed: {message}")
            row = ResultRow(**base, status="failed", error=message, config=plan.overrides,
                            sample_options=plan.sample_settings[0] if plan.sample_settings else {})
            return self._commit([row])
        rows = []
        for options, (metrics, sample_costs, grid) in zip(plan.sample_settings, evaluations, strict=True):
            costs = {**train_costs, **sample_costs, "peak_memory_mb": memory.mb, "memory_kind": memory.kind}
            rows.append(ResultRow(**base, status="ok", config=config, sample_options=options, metrics=metrics,
                                  costs=costs, grid_path=str(grid)))
            primary = self.protocol.primary_metric
            opts = ", ".join(f"{k}={v}" for k, v in options.items())
            self.report(f"[{plan.name} seed {seed}{' ' + opts if opts else ''}] {primary} {metrics[primary]:.3f} "
                        f"(floor {self.floor[primary]:.3f})")
        return self._commit(rows)

    def _commit(self, rows: list[ResultRow]) -> list[ResultRow]:
        for row in rows:
            self.store.add(row)
        self.rows.extend(rows)
        return rows

    def _budget_text(self) -> str:
        s = self._settings(0, 1)
        parts = [f"{s.time_limit:.0f}s" if s.time_limit else "", f"{s.steps} steps max" if s.steps else ""]
        return ", ".join(p for p in parts if p)

    def _settings(self, seed: int, batch_size: int) -> TrainSettings:
        preset, req = self.request.preset, self.request
        steps, time_limit = preset.max_steps, preset.time_limit
        if req.steps is not None or req.time_limit is not None:
            steps, time_limit = req.steps, req.time_limit
        return TrainSettings(steps=steps, time_limit=time_limit, batch_size=batch_size, seed=seed, device=req.device,
                             precision=req.precision, checkpoint_every=10**9, sample_grid=0)

    def _train(self, plan: ModelPlan, seed: int, run_dir: Path) -> tuple[GenerativeModel, dict[str, Any], dict[str, Any]]:
        req = self.request
        batch = req.batch_size or plan.cls.default_batch_size
        batch = min(batch, len(self.dataset.train))
        if run_dir.exists():  # a re-run replaces its run directory and its row
            import shutil

            shutil.rmtree(run_dir)

        def attempt(batch_size: int) -> tuple[GenerativeModel, Any]:
            seed_everything(seed)
            model = plan.cls(plan.cls.Config.from_overrides(plan.overrides), self.dataset.image_shape)
            trainer = Trainer(model, self.dataset, self._settings(seed, batch_size), run_dir, progress=self.progress)
            return model, trainer.fit()

        (model, result), used = with_oom_retry(attempt, batch, on_retry=lambda b: self.report(f"out of memory: retrying with batch {b}"))
        synchronize(self.device)
        autocast, scaler = autocast_factory(req.precision, self.device), make_scaler(req.precision, self.device)
        # Steady-state throughput on a copy, timed separately from the budgeted run (timm-style).
        speed, _ = with_oom_retry(lambda b: measure_train(model, self.dataset.train, b, autocast, scaler), used)
        costs = {
            **speed,
            "params": model.num_parameters(trainable_only=True),  # EMA copies are not model size
            "train_seconds": result.seconds,
            "train_steps": result.steps,
            "batch_size": used,
            "budget_stopped_by": result.stopped_by,
            **{f"validation_{k}": v for k, v in result.validation.items()},
        }
        return model, costs, model.config.to_dict()

    def _evaluate(self, model: GenerativeModel, options: dict[str, Any], seed: int, run_dir: Path) -> tuple[dict, dict, Path]:
        from zoo.metrics import compute_metrics
        from zoo.sampling import generate, write_grid

        n = self.protocol.num_fake
        label = f"{model.name}: sampling" + (f" ({', '.join(f'{k}={v}' for k, v in options.items())})" if options else "")
        with self.task_bars() as progress:
            done = [0]

            def on_batch(k: int) -> None:
                done[0] += k
                if progress is not None:
                    progress(label, done[0], n)

            generate(model, 2, seed=seed, options=options)  # warm-up, excluded from timing
            synchronize(self.device)
            start = time.perf_counter()
            images = generate(model, n, seed=seed, options=options, progress=on_batch)
            synchronize(self.device)
            seconds = time.perf_counter() - start
            metrics = compute_metrics(images, self.dataset, self.protocol, progress=progress)
        tag = "-".join(f"{k}{v}" for k, v in options.items())
        grid = write_grid(images[: self.request.preset.grid_size], run_dir / f"samples{'-' + tag if tag else ''}.png")
        costs = {
            "sample_images_per_s": n / seconds,
            "sample_steps": options.get("steps"),
            "sample_flops_per_image": sample_flops_per_image(model, options),
        }
        return metrics, costs, grid

    def _row_base(self, plan: ModelPlan, seed: int, run_dir: Path) -> dict[str, Any]:
        env = environment(self.device)
        env["plugin"], env["plugin_version"] = plan.plugin, plan.plugin_version
        return {
            "model": plan.name, "family": plan.cls.family, "plugin": plan.plugin, "plugin_version": plan.plugin_version,
            "dataset": self.dataset.name, "dataset_fingerprint": self.protocol.dataset_fingerprint, "seed": seed,
            "preset": self.request.preset.name, "protocol_hash": self.protocol.hash, "protocol": self.protocol.to_dict(),
            "floor": self.floor, "environment": env, "run_dir": str(run_dir),
        }


def _describe(exc: BaseException) -> str:
    if is_oom(exc):
        return "out of memory even at batch size 1"
    if isinstance(exc, ZooError):
        return str(exc)
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    loc = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}{loc}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text.split("/")[-1])[:40]


def device_summary(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
