"""``zoo train``: train one model, or resume a run."""

from __future__ import annotations

import click

from zoo.cli.app import announce, cli, echo_json, registry, stdout
from zoo.cli.configuration import config_option
from zoo.cli.options import data_dir_option, device_option, parse_duration, precision_option
from zoo.configfile import train_settings


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
    from zoo import api, distributed
    from zoo.cli.progress import progress_mode, verb_reporter
    from zoo.config import parse_assignments
    from zoo.errors import UsageError

    if nproc_per_node is not None:
        return _launch_torchrun(nproc_per_node, batch_size)
    time_limit = parse_duration(time_budget)
    reporter = verb_reporter(progress_mode(progress))
    if resume_from:
        if overrides:  # the run's config is the checkpoint's; a silently ignored --set would mislead
            raise UsageError(f"--set does not apply with --resume: {resume_from} keeps the config it was trained with")
        request = api.ResumeRequest(source=resume_from, model=model_name, steps=steps, epochs=epochs,
                                    time_limit=time_limit, loggers=loggers, device=device)
        result = api.resume(request, registry=registry(), reporter=reporter)
    else:
        if not model_name:
            raise UsageError("missing argument MODEL (see `zoo list`), or pass --resume RUN_DIR")
        request = api.TrainRequest(
            model=model_name, dataset=dataset, data_dir=data_dir, image_size=image_size, steps=steps, epochs=epochs,
            time_limit=time_limit, batch_size=batch_size, overrides=parse_assignments(overrides), seed=seed,
            device=device, precision=precision, run_dir=run_dir, checkpoint_every=checkpoint_every, loggers=loggers,
            compile=compile_networks,
        )
        result = api.train(request, registry=registry(), reporter=reporter)
    if distributed.is_main():
        _report(result, as_json)
    distributed.shutdown()


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


def _report(result, as_json: bool = False) -> None:
    if as_json:
        from zoo.api.training import train_result_dict

        echo_json(train_result_dict(result))
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
