"""``train(request)`` and ``resume(request)``: the training verbs (``zoo train`` wraps them).

Both return the trainer's [`TrainResult`][zoo.trainer.TrainResult] and print nothing: progress goes to
the ``reporter``'s ``training(label)`` callback, warnings (an emulated precision) through
`warnings`. ``zoo train --resume`` and `resume` are one code path.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.text import slug

if TYPE_CHECKING:
    from zoo.bench.runner import BenchProgress
    from zoo.registry import Registry
    from zoo.trainer import Trainer, TrainResult

__all__ = ["ResumeRequest", "TrainRequest", "resume", "run_files", "train", "train_result_dict"]


@dataclass
class TrainRequest:
    """What to train. Only ``model`` is required; ``None`` means the model's or genzoo's default.

    ``dataset`` is a name (``zoo data list``), ``folder:PATH`` or ``npz:PATH``; ``image_size`` an
    int in 4..1024; the budget is ``steps`` (int >= 1), ``epochs`` (float > 0) or ``time_limit``
    (seconds, float > 0), 2000 steps when none is given. ``overrides`` maps config fields to values
    (``{"lr": 1e-4}``); ``loggers`` names training logs (default ``("csv",)``); ``precision`` is
    fp32, bf16, fp16 or auto (the model's recipe where the hardware runs it natively). ``run_dir``
    defaults to ``runs/MODEL-DATASET-TIMESTAMP`` and must be new or empty.
    """

    model: str
    dataset: str = "mnist-5k"
    data_dir: str | None = None
    image_size: int | None = None
    steps: int | None = None
    epochs: float | None = None
    time_limit: float | None = None
    batch_size: int | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    run_dir: str | Path | None = None
    checkpoint_every: int = 500
    loggers: Sequence[str] = ()
    compile: bool = False


@dataclass
class ResumeRequest:
    """Continue a run to its budget, or to a new one (``steps``, ``epochs`` or ``time_limit``).

    ``source`` is a run directory, a file in its ``checkpoints/`` or a loose checkpoint file (its
    folder becomes the run). ``model``, when given, must be the run's model (or a variant of it).
    ``loggers`` replaces the run's training logs when given. The config and training device are
    the checkpoint's; ``device`` is where a ``torchrun`` process joins its group.
    """

    source: str | Path
    model: str | None = None
    steps: int | None = None
    epochs: float | None = None
    time_limit: float | None = None
    loggers: Sequence[str] = ()
    device: str = "auto"


def train(request: TrainRequest, *, registry: Registry | None = None,
          reporter: BenchProgress | None = None) -> TrainResult:
    """Train ``request.model`` and write its run directory; returns the trainer's result.

    Under ``torchrun`` every process calls this and joins the process group (leave it with
    `zoo.distributed.shutdown`); rank 0 writes the run. Raises
    [`UsageError`][zoo.errors.UsageError] for a bad request (before any training),
    [`ZooError`][zoo.errors.ZooError] subclasses for data, config and training faults.
    """
    from zoo import distributed
    from zoo.device import resolve_device, resolve_precision
    from zoo.errors import UsageError
    from zoo.factory import create_model, load_dataset
    from zoo.registry import get_registry
    from zoo.rundir import check_new_run_dir, mark_run_dir
    from zoo.trainer import Trainer, TrainSettings, seed_everything

    world = distributed.init_from_env(request.device)  # under torchrun: join the process group
    reg = registry or get_registry()
    data = load_dataset(request.dataset, data_dir=request.data_dir, image_size=request.image_size, registry=reg)
    seed_everything(request.seed)
    model = create_model(request.model, data.image_shape, dict(request.overrides), registry=reg)
    if request.batch_size is None and model.default_batch_size > len(data.train):  # not the user's --batch-size
        raise UsageError(f"{request.dataset}: its training split holds {len(data.train)} images, fewer than "
                         f"{request.model}'s default batch size of {model.default_batch_size}; pass --batch-size "
                         f"{len(data.train)} or less, or use more images")
    recommended = model.recipe.precision if model.recipe else None
    settings = TrainSettings(
        steps=request.steps, epochs=request.epochs, time_limit=request.time_limit,
        batch_size=request.batch_size or model.default_batch_size, seed=request.seed, device=request.device,
        precision=resolve_precision(request.precision, resolve_device(request.device), recommended),
        checkpoint_every=request.checkpoint_every, loggers=checked_loggers(reg, request.loggers),
        compile=request.compile,
    )
    settings.validate(len(data.train))
    run_dir = Path(request.run_dir) if request.run_dir else (
        Path("runs") / f"{request.model}-{slug(request.dataset)}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir = distributed.broadcast_object(run_dir)  # rank 0's timestamp names the one run folder
    if world.distributed:
        distributed.check_batch_size(settings.batch_size, world.size)
    check_new_run_dir(run_dir)  # new, empty, or genzoo's own run without checkpoints (zoo.rundir)
    run_config = {"dataset_args": {"name": request.dataset, "data_dir": request.data_dir,
                                   "image_size": request.image_size}}
    trainer = Trainer(model, data, settings, run_dir, run_config=run_config)
    if world.is_main:
        mark_run_dir(run_dir)
    return fit(trainer, reporter)


def resume(request: ResumeRequest, *, registry: Registry | None = None,
           reporter: BenchProgress | None = None) -> TrainResult:
    """Continue the run at ``request.source``; returns the trainer's result.

    The checkpoint's training settings and the new budget are checked (finite, positive) before
    any training. Raises [`UsageError`][zoo.errors.UsageError] when the run is already at its budget or
    ``model`` is not the run's, [`CheckpointError`][zoo.errors.CheckpointError] for a damaged run.
    """
    from zoo import distributed
    from zoo.checkpoint import latest_checkpoint, load_checkpoint
    from zoo.errors import CheckpointError, UsageError
    from zoo.factory import create_model_from_checkpoint, load_dataset
    from zoo.registry import get_registry
    from zoo.trainer import Trainer, TrainSettings

    distributed.init_from_env(request.device)  # under torchrun: join the process group
    reg = registry or get_registry()
    source = Path(request.source)
    ckpt = latest_checkpoint(source)
    # A run directory, a file in its checkpoints/, or a loose checkpoint file (its folder becomes the run).
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    state = load_checkpoint(ckpt)
    entry = reg.entry(request.model) if request.model is not None else None
    if entry is not None and (entry.model_name or entry.cls.name) != state.get("model"):
        raise UsageError(f"zoo train {request.model} --resume {source}: that run trains {state.get('model')!r}, "
                         f"not {request.model!r} (leave MODEL out to resume it)")
    model = create_model_from_checkpoint(state, registry=reg, where=str(ckpt))
    saved = read_run_config(run_dir)
    args = saved.get("dataset_args", {"name": state.get("dataset")})
    data = load_dataset(args["name"], data_dir=args.get("data_dir"), image_size=args.get("image_size"), registry=reg)
    try:
        settings = TrainSettings(**state["train"])
        settings.validate(len(data.train))
    except (KeyError, TypeError, UsageError) as exc:
        raise CheckpointError(f"{ckpt}: its training settings no longer fit this genzoo ({exc})") from None
    if request.steps is not None or request.epochs is not None or request.time_limit is not None:
        settings.steps, settings.epochs, settings.time_limit = request.steps, request.epochs, request.time_limit
        settings.validate(len(data.train))  # --epochs nan or inf is one line here, not a traceback
    if request.loggers:
        settings.loggers = checked_loggers(reg, request.loggers)
    total = settings.total_steps(len(data.train), model.batches_per_step)
    if total is not None and total <= state["step"]:
        raise UsageError(f"{run_dir} is already at step {state['step']}; pass a larger --steps to continue")
    trainer = Trainer(model, data, settings, run_dir, run_config=saved)
    trainer.load_state_dict(state)
    return fit(trainer, reporter)


def fit(trainer: Trainer, reporter: BenchProgress | None) -> TrainResult:
    """``trainer.fit()`` under the run's lock, reporting through ``reporter.training`` on rank 0."""
    from zoo.device import warn_if_emulated
    from zoo.fileio import run_lock

    main = trainer.world.is_main
    if main:
        warn_if_emulated(trainer.settings.precision, trainer.device)  # one warning, before the slow steps
    lock = run_lock(trainer.run_dir) if main else contextlib.nullcontext()  # rank 0 writes
    report = reporter.training(trainer.model.name) if main and reporter is not None else contextlib.nullcontext()
    with lock, report as callback:
        trainer.progress = callback
        return trainer.fit()


def checked_loggers(reg: Registry, names: Sequence[str]) -> tuple[str, ...]:
    """The logger names, each checked against the registry (default: csv)."""
    names = tuple(dict.fromkeys(names or ("csv",)))
    for name in names:
        reg.logger(name)
    return names


def run_files(run_dir: Path | None) -> dict[str, str]:
    """The run's files that exist: ``{"config": path, "environment": ..., "losses": ..., ...}``."""
    files: dict[str, str] = {}
    if run_dir is not None:
        for name in ("config.json", "environment.json", "losses.csv", "tensorboard"):
            if (run_dir / name).exists():
                files[name.split(".")[0]] = str(run_dir / name)
    return files


def train_result_dict(result: TrainResult) -> dict[str, Any]:
    """What ``zoo train --json`` prints: what was trained and every file written."""
    run_dir = result.run_dir
    return {
        "run_dir": None if run_dir is None else str(run_dir),
        "steps": result.steps,
        "seconds": result.seconds,
        "images_per_s": result.images_per_s,
        "kimg": result.kimg,
        "flops": result.flops,
        "stopped_by": result.stopped_by,
        "losses": result.last_losses,
        "validation": result.validation,
        "checkpoint": None if result.checkpoint is None else str(result.checkpoint),
        "grid": None if result.grid is None else str(result.grid),
        "files": run_files(run_dir),
    }


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The run's ``config.json`` (``{}`` when absent); a damaged file is one CheckpointError line."""
    from zoo.errors import CheckpointError
    from zoo.fileio import parse_json

    path = run_dir / "config.json"
    if not path.is_file():
        return {}
    try:
        saved = parse_json(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(saved).__name__}")
    return saved
