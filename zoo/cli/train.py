"""``zoo train``: train one model, or resume a run."""

from __future__ import annotations

import time
from pathlib import Path

import click

from zoo.cli.app import announce, cli, echo_json, registry, stdout
from zoo.cli.configuration import config_option
from zoo.cli.options import data_dir_option, device_option, parse_duration, precision_option
from zoo.configfile import train_settings
from zoo.text import slug


@cli.command("train")
@click.argument("model_name", metavar="MODEL", required=False)
@click.option("--dataset", default="mnist-5k", show_default=True, help="Dataset name (zoo data list), folder:PATH or npz:PATH.")
@data_dir_option
@click.option("--image-size", type=click.IntRange(4, 1024), help="Resize images to this square size.")
@click.option("--steps", type=click.IntRange(min=1), help="Optimizer steps in total (default 2000 if no budget is given).")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), help="Passes over the training split.")
@click.option("--time", "time_budget", metavar="DURATION", help="Wall-clock budget: 90s, 5m, 1h.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Default: the model's paper batch size.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config field (repeatable).")
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=0, show_default=True)
@device_option
@precision_option
@click.option("--run-dir", type=click.Path(file_okay=False), help="Default: runs/MODEL-DATASET-TIMESTAMP.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=500, show_default=True, help="Steps between checkpoints.")
@click.option("--resume", "resume_from", type=click.Path(), help="Continue a run directory (or checkpoint) to its budget.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@click.option("--nproc-per-node", type=click.IntRange(min=1), metavar="N",
              help="Data-parallel training on N processes of this machine: runs torchrun (docs/distributed.md).")
@click.option("--logger", "loggers", multiple=True, metavar="NAME",
              help="Training log (repeatable): csv (losses.csv, the default), tensorboard (pip install 'genzoo[tensorboard]').")
@click.option("--json", "as_json", is_flag=True, help="Print what the run wrote (run directory, steps, seconds, losses, paths) as JSON.")
@click.option("--compile", "compile_networks", is_flag=True, default=False,
              help="torch.compile the model's networks (inductor): faster steps after a compile of minutes on a CPU; "
                   "see docs/benchmarks.md.")
@config_option(train_settings, "Settings from a TOML file (or a run's config.json); options given here win. See docs/configuration.md.")
def train_command(model_name, dataset, data_dir, image_size, steps, epochs, time_budget, batch_size, overrides,
                  seed, device, precision, run_dir, checkpoint_every, resume_from, progress, nproc_per_node,
                  loggers, as_json, compile_networks=False) -> None:
    """Train MODEL on a dataset and write a run directory.

    The run directory holds config.json, environment.json, losses.csv, checkpoints/ and a sample
    grid (samples.png). Ctrl-C saves a checkpoint at the step boundary; --resume continues it.
    --config run.toml reads the options from a file (a run's config.json trains it again).
    """
    if resume_from:
        announce(f"resuming {resume_from}: loading torch...")
    elif model_name:
        announce(f"training {model_name} on {dataset}: loading torch...")
    from zoo import distributed
    from zoo.config import parse_assignments
    from zoo.device import resolve_device, resolve_precision
    from zoo.errors import UsageError
    from zoo.factory import create_model, load_dataset
    from zoo.rundir import check_new_run_dir, mark_run_dir
    from zoo.trainer import Trainer, TrainSettings, seed_everything

    if nproc_per_node is not None:
        return _launch_torchrun(nproc_per_node, batch_size)
    world = distributed.init_from_env(device)  # under torchrun: join the process group (gloo/NCCL)
    reg = registry()
    time_limit = parse_duration(time_budget)
    if resume_from:
        if overrides:  # the run's config is the checkpoint's; a silently ignored --set would mislead
            raise UsageError(f"--set does not apply with --resume: {resume_from} keeps the config it was trained with")
        return _resume(reg, Path(resume_from), steps, epochs, time_limit, progress, loggers, as_json, model_name)
    if not model_name:
        raise UsageError("missing argument MODEL (see `zoo list`), or pass --resume RUN_DIR")
    parsed = parse_assignments(overrides)
    data = load_dataset(dataset, data_dir=data_dir, image_size=image_size, registry=reg)
    seed_everything(seed)
    model = create_model(model_name, data.image_shape, parsed, registry=reg)
    recommended = model.recipe.precision if model.recipe else None
    settings = TrainSettings(steps=steps, epochs=epochs, time_limit=time_limit, batch_size=batch_size or model.default_batch_size,
                             seed=seed, device=device, precision=resolve_precision(precision, resolve_device(device), recommended),
                             checkpoint_every=checkpoint_every, loggers=_loggers(reg, loggers),
                             compile=compile_networks)
    settings.validate(len(data.train))
    run_dir = Path(run_dir) if run_dir else Path("runs") / f"{model_name}-{slug(dataset)}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = distributed.broadcast_object(run_dir)  # rank 0's timestamp names the one run folder
    if world.distributed:
        distributed.check_batch_size(settings.batch_size, world.size)
    # New, empty, or genzoo's own run without checkpoints: never someone's folder (zoo.rundir).
    check_new_run_dir(run_dir)
    run_config = {"dataset_args": {"name": dataset, "data_dir": data_dir, "image_size": image_size}}
    trainer = Trainer(model, data, settings, run_dir, run_config=run_config)
    if world.is_main:
        mark_run_dir(run_dir)
    result = _fit(trainer, progress)
    if world.is_main:
        _report(result, as_json)
    distributed.shutdown()


def _resume(reg, source: Path, steps, epochs, time_limit, progress, loggers=(), as_json=False, model_name=None) -> None:
    """Continue the run at ``source`` to its budget (or the new one given). A MODEL given with
    --resume must be the run's model (or a variant of it); the checkpoint's training settings and the
    new budget are checked (finite, positive) before any training."""
    from zoo.checkpoint import latest_checkpoint, load_checkpoint
    from zoo.errors import CheckpointError, UsageError
    from zoo.factory import create_model_from_checkpoint, load_dataset
    from zoo.trainer import Trainer, TrainSettings

    ckpt = latest_checkpoint(source)
    # A run directory, a file in its checkpoints/, or a loose checkpoint file (its folder becomes the run).
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    state = load_checkpoint(ckpt)
    entry = reg.entry(model_name) if model_name is not None else None
    if entry is not None and (entry.model_name or entry.cls.name) != state.get("model"):
        raise UsageError(f"zoo train {model_name} --resume {source}: that run trains {state.get('model')!r}, "
                         f"not {model_name!r} (leave MODEL out to resume it)")
    model = create_model_from_checkpoint(state, registry=reg, where=str(ckpt))
    saved = _read_run_config(run_dir)
    args = saved.get("dataset_args", {"name": state.get("dataset")})
    data = load_dataset(args["name"], data_dir=args.get("data_dir"), image_size=args.get("image_size"), registry=reg)
    try:
        settings = TrainSettings(**state["train"])
        settings.validate(len(data.train))
    except (KeyError, TypeError, UsageError) as exc:
        raise CheckpointError(f"{ckpt}: its training settings no longer fit this genzoo ({exc})") from None
    if steps is not None or epochs is not None or time_limit is not None:  # a new budget replaces the old one
        settings.steps, settings.epochs, settings.time_limit = steps, epochs, time_limit
        settings.validate(len(data.train))  # --epochs nan or inf is one line here, not a traceback
    if loggers:
        settings.loggers = _loggers(reg, loggers)
    total = settings.total_steps(len(data.train), model.batches_per_step)
    if total is not None and total <= state["step"]:
        raise UsageError(f"{run_dir} is already at step {state['step']}; pass a larger --steps to continue")
    trainer = Trainer(model, data, settings, run_dir, run_config=saved)
    trainer.load_state_dict(state)
    result = _fit(trainer, progress)
    if trainer.world.is_main:
        _report(result, as_json)


def _fit(trainer, progress: bool | None):  # noqa: ANN202
    """Train with a bar on a terminal, plain lines elsewhere, nothing with --no-progress (or off rank 0)."""
    import contextlib

    from zoo.cli.progress import progress_mode, training_bar
    from zoo.device import warn_if_emulated
    from zoo.fileio import run_lock
    from zoo.trainer import log_progress

    mode = progress_mode(progress) if trainer.world.is_main else "off"
    if trainer.world.is_main:
        warn_if_emulated(trainer.settings.precision, trainer.device)  # one line, before the slow steps
    lock = run_lock(trainer.run_dir) if trainer.world.is_main else contextlib.nullcontext()  # rank 0 writes
    with lock, training_bar(trainer.model.name, mode == "bars") as bar:
        trainer.progress = bar or (log_progress(trainer.settings.log_every) if mode == "lines" else None)
        return trainer.fit()


def _launch_torchrun(nproc: int, batch_size: int | None) -> None:
    """Replace this process by ``torchrun --standalone --nproc-per-node N -m zoo train ...`` (same arguments)."""
    import os
    import sys

    from zoo.errors import UsageError

    if os.environ.get("WORLD_SIZE") not in (None, "", "1"):
        raise UsageError("--nproc-per-node is for a plain zoo train; this process already runs under torchrun")
    if batch_size is not None and batch_size % nproc:
        raise UsageError(f"--batch-size {batch_size} is the global batch and must be divisible by --nproc-per-node {nproc}")
    args, skip = [], False
    argv = sys.argv[1:]
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "--nproc-per-node":
            skip = i + 1 < len(argv)
            continue
        if arg.startswith("--nproc-per-node="):
            continue
        args.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "zoo", *args]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)


def _loggers(reg, names) -> tuple[str, ...]:  # noqa: ANN001
    """The --logger names, each checked against the registry (default: csv)."""
    names = tuple(dict.fromkeys(names or ("csv",)))
    for name in names:
        reg.logger(name)
    return names


def _report(result, as_json: bool = False) -> None:
    if as_json:
        echo_json(_result_dict(result))
        return
    losses = ", ".join(f"{k} {v:.4g}" for k, v in result.last_losses.items())
    # steps and seconds count every session of the run; the rate is this session's
    stdout.print(f"trained {result.steps} steps in {result.seconds:.1f}s of training (this session "
                 f"{result.images_per_s:.0f} img/s); {losses}", highlight=False, markup=False)
    for key, value in result.validation.items():
        stdout.print(f"validation {key}: {value:.4f}", highlight=False, markup=False)
    stdout.print(f"run directory: {result.run_dir}", highlight=False, markup=False)
    if result.grid:
        stdout.print(f"sample grid: {result.grid}", highlight=False, markup=False)


def _result_dict(result) -> dict:  # noqa: ANN001
    """What ``zoo train --json`` prints: what was trained and every file written."""
    run_dir = result.run_dir
    files = {}
    if run_dir is not None:
        for name in ("config.json", "environment.json", "losses.csv", "tensorboard"):
            if (run_dir / name).exists():
                files[name.split(".")[0]] = str(run_dir / name)
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
        "files": files,
    }


def _read_run_config(run_dir: Path) -> dict:
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

