"""``zoo bench``: parse the request, call `zoo.bench.run_benchmark`, print what it returned."""

from __future__ import annotations

import contextlib
import shlex
import signal
from pathlib import Path

import click

from zoo.cli.app import announce, cli, echo_json, registry, stderr, stdout
from zoo.cli.configuration import config_option
from zoo.cli.options import backbone_options, data_dir_option, device_option, parse_seeds
from zoo.configfile import bench_settings
from zoo.errors import UserInterrupt
from zoo.guard import signal_raises

#: The fewest generated images a protocol scores (zoo.metrics.protocol.MIN_IMAGES; a test keeps
#: them equal): here as a number, so that ``zoo bench --help`` needs no torch.
MIN_IMAGES = 10


@cli.command("bench")
@click.option("--models", metavar="LIST", help="Comma-separated model names, e.g. gan,vae,ddpm.")
@click.option("--dataset", default="mnist-5k", show_default=True)
@data_dir_option
@click.option("--preset", default="quick", show_default=True, help="smoke, quick, standard or paper (docs/benchmarks.md).")
@click.option("--seeds", default="0", show_default=True,
              help="Comma-separated training seeds, e.g. 0,1,2; or auto[:CAP]: 3 seeds, then one more at a time "
                   "for the models whose rank group is contested, up to CAP (10) a model.")
@click.option("--budget", metavar="AMOUNT", help="Training budget per model: 2m, 1000steps, 64kimg or 2e13flops (replaces the preset's).")
@click.option("--steps", type=click.IntRange(min=1), help="Same as --budget Nsteps.")
@click.option("--time", "time_budget", metavar="DURATION", help="Same as --budget with a duration: 90s, 5m (depends on the machine's load).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Default: each model's recipe or paper batch size.")
@click.option("--set", "overrides", multiple=True, metavar="MODEL.KEY=VALUE", help="Config override for one model.")
@click.option("--option", "options", multiple=True, metavar="[MODEL.]KEY=VALUE", help="Sampling option, e.g. ddpm.steps=100.")
@click.option("--num-fake", type=click.IntRange(min=MIN_IMAGES), help="Generated images per evaluation (default: the preset's).")
@click.option("--curve-points", type=click.IntRange(min=1), help="Evaluations along the budget, log-spaced (default: the preset's).")
@backbone_options
@device_option
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True,
              help="auto: each model's recipe where the hardware runs its precision natively (bf16 on CPUs "
                   "with avx512_bf16/AMX), else fp32 with the recipe's fallback (zoo describe MODEL).")
@click.option("--results", type=click.Path(dir_okay=False, path_type=Path), help="Results store [default: $ZOO_RESULTS or runs/results.sqlite].")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), help="Run folders [default: bench/ beside the store].")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the HTML leaderboard here.")
@click.option("--samples", "samples", multiple=True, metavar="NAME=SOURCE[,SOURCE...]",
              help="Your own model's samples (image folder, .npz or zoo export; several: its seeds), scored "
                   "under this board's protocol and ranked as an external row NAME.")
@click.option("--rerun", is_flag=True, help="Train again even where the store already holds the rows.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first model that fails.")
@click.option("--json", "as_json", is_flag=True, help="Print this run's result rows as JSON instead of the table.")
@click.option("--tune", type=click.IntRange(min=1), metavar="N",
              help="Tune every model first: N trials each (Optuna, seeded, successive halving) at --tune-budget, "
                   "then its best config at the full budget (docs/benchmarks.md).")
@click.option("--tune-budget", metavar="AMOUNT", help="Budget of each tuning trial (default: a quarter of the budget).")
@click.option("--tune-seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
              help="Seed of the tuning sampler: the same seed picks the same trials.")
@click.option("--dry-run", is_flag=True, help="Print the jobs (model, config, seed, budget, already in the store?) and exit; "
                                              "trains and writes nothing.")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: when stderr is a terminal).")
@click.option("--executor", type=click.Choice(["serial", "local", "slurm"]), default="serial", show_default=True,
              help="Where jobs run: this process, --jobs local processes, or a Slurm job array (docs/distributed.md).")
@click.option("--jobs", type=click.IntRange(min=1), help="Jobs at once (local processes, or the Slurm array's parallelism).")
@click.option("--slurm-partition", metavar="NAME", help="Slurm partition for --executor slurm.")
@click.option("--slurm-gpus-per-job", type=click.IntRange(min=0), default=1, show_default=True, help="GPUs per Slurm job.")
@click.option("--slurm-timeout", "slurm_timeout_min", type=click.IntRange(min=1), default=24 * 60, show_default=True,
              metavar="MINUTES", help="Wall-time limit of each Slurm job.")
@click.option("--collect", "collect_dir", type=click.Path(file_okay=False, path_type=Path), metavar="RUNS_DIR",
              help="Only ingest the rows.json files under RUNS_DIR into the store (rows of --executor jobs, and finished "
                   "rows a store could not take: disk full, I/O error), then print the leaderboard. Safe to repeat.")
@config_option(bench_settings, "Settings from a TOML file (models, preset, seeds, [set.MODEL], [option.MODEL], ...); "
                               "options given here win. See docs/configuration.md.")
def bench_command(models, dataset, data_dir, preset, seeds, budget, steps, time_budget, batch_size, overrides, options,
                  num_fake, curve_points, backbone, backbone_weights, inception_weights, device, precision, results, runs_dir, html_path,
                  samples, rerun, fail_fast, as_json, progress, executor, jobs, slurm_partition, slurm_gpus_per_job,
                  slurm_timeout_min, collect_dir, tune, tune_budget, tune_seed, dry_run) -> None:
    """Benchmark models: same budget, same protocol, with cost measured alongside quality.

    Each model and seed is trained once, evaluated at points along its budget (the
    quality-versus-compute curve) and, at the end, for every sampler setting of the preset (FID /
    IS / KID / precision-recall against the protocol's reference, with the real-vs-real floor),
    timed, and written to the results store. Running the same command again skips what the store
    already holds and resumes interrupted jobs. Exit code 1 if any model failed.
    """
    if collect_dir is None and models:
        announce(f"benchmarking {models} on {dataset} ({preset}): loading torch...")
    from zoo.api import BenchRequest, benchmark
    from zoo.bench.leaderboard import build_leaderboard, print_leaderboards
    from zoo.bench.report import write_html
    from zoo.bench.sweep import collect_assignments
    from zoo.bench.trials import attach_trials
    from zoo.cli.options import budget_text
    from zoo.cli.progress import bench_progress, progress_mode
    from zoo.errors import UsageError
    from zoo.outputs import check_output_folder

    if html_path is not None:
        check_output_folder(html_path, "--html")  # before hours of training, not after
    if collect_dir is not None:
        return _collect(collect_dir, results, as_json, html_path)
    from zoo.bench.auto_seeds import parse_auto
    from zoo.bench.external import parse_samples

    external = parse_samples(samples)
    cap = parse_auto(seeds)
    if not models and not external:
        raise UsageError("missing option --models LIST (e.g. --models gan,vae), --samples NAME=DIR, "
                         "or --collect RUNS_DIR")
    slurm = {"slurm_partition": slurm_partition, "slurm_gpus_per_job": slurm_gpus_per_job,
             "slurm_timeout_min": slurm_timeout_min} if executor == "slurm" else {}
    request = BenchRequest(
        models=[m.strip() for m in models.split(",") if m.strip()] if models else [], samples=external, preset=preset,
        seeds=parse_seeds(seeds) if cap is None else [0], dataset=dataset, data_dir=data_dir,
        budget=budget_text(budget, steps, time_budget), batch_size=batch_size, precision=precision, device=device,
        overrides=collect_assignments(overrides), options=collect_assignments(options, "--option"), num_fake=num_fake,
        backbone=backbone, backbone_weights=str(backbone_weights) if backbone_weights else None,
        inception_weights=str(inception_weights) if inception_weights else None, results=results, runs_dir=runs_dir,
        curve_points=curve_points, fail_fast=fail_fast, rerun=rerun, executor=executor, jobs=jobs, slurm=slurm,
        dry_run=dry_run, tune=tune, tune_budget=tune_budget, tune_seed=tune_seed,
    )
    from zoo.trainer import Interrupted  # training stopped by a signal, after a checkpoint

    try:
        with _sigterm_as_interrupt():
            kwargs = {"registry": registry(), "reporter": bench_progress(progress_mode(progress))}
            if cap is None:
                result = benchmark(request, **kwargs)
            else:  # zoo.bench.auto_seeds: more seeds only where the rank groups are contested
                from zoo.bench.auto_seeds import run_auto

                result = run_auto(request, cap, benchmark, announce=_note, **kwargs)
    except (Interrupted, KeyboardInterrupt) as exc:
        signum = exc.exit_code - 128 if isinstance(exc, Interrupted) else getattr(exc, "signum", signal.SIGINT)
        text, command = resume_message(signum, str(exc) if isinstance(exc, Interrupted) else "")
        stderr.print(text, highlight=False, markup=False, soft_wrap=False)  # wrapped at the width
        stderr.print(f"  {command}", highlight=False, markup=False, soft_wrap=True)  # one copyable line
        raise click.exceptions.Exit(128 + signum) from None
    if dry_run:
        from zoo.bench.plan import render_plan

        if as_json:
            echo_json([j.to_dict() for j in result.planned])
        else:
            stdout.print(render_plan(result.planned, stdout.width), highlight=False, markup=False, soft_wrap=True)
        return
    if as_json:
        echo_json([r.to_dict() for r in result.rows])
    else:
        boards = build_leaderboard(result.rows)
        attach_trials(boards, result.store)
        print_leaderboards(boards, stdout)
        html = write_html(boards, html_path or result.store.path.parent / "leaderboard.html", base_dir=result.store.folder)
        stdout.print(f"results: {_shown(result.store.path)}\nhtml: {_shown(html)}", highlight=False, markup=False)
    if result.failed:
        stderr.print(f"zoo bench: {len(result.failed)} run(s) failed: "
                     + "; ".join(f"{r.model} seed {r.seed}: {r.error}" for r in result.failed), highlight=False, markup=False)
        raise click.exceptions.Exit(1)


class _Terminated(UserInterrupt):
    """SIGTERM outside a training loop (which handles it itself: checkpoint, then Interrupted);
    a `UserInterrupt`, so no plugin is blamed for it."""

    signum = signal.SIGTERM


def _sigterm_as_interrupt() -> contextlib.AbstractContextManager[None]:
    """SIGTERM raises `_Terminated` (so the resume message is printed, not a silent
    death); the trainer installs its own handler while it trains and restores this one after."""
    return signal_raises(signal.SIGTERM, _Terminated)


def resume_message(signum: int, detail: str = "") -> tuple[str, str]:
    """What an interrupted ``zoo bench`` prints: why it stopped, and the command that resumes it
    (the same command line; ``--rerun`` left out, since it would redo the finished jobs)."""
    from zoo.cli import app

    args = [a for a in app.invocation if a != "--rerun"]
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    dropped = " (without --rerun, which would redo them)" if "--rerun" in app.invocation else ""
    return (f"zoo bench: {detail or f'interrupted by {name}'}.\n"
            "Finished jobs are in the results store; run the same command again to resume: it skips "
            f"them and continues the interrupted job from its last checkpoint{dropped}:",
            shlex.join(["zoo", *args]))


def _collect(runs_dir: Path, results: Path | None, as_json: bool, html_path: Path | None) -> None:
    """``zoo bench --collect RUNS_DIR``: ingest the rows jobs wrote, print them."""
    from zoo.bench.executors import collect
    from zoo.bench.leaderboard import build_leaderboard, print_leaderboards
    from zoo.bench.report import write_html
    from zoo.bench.store import ResultsStore, default_store_path

    store = ResultsStore(results or default_store_path())
    rows = collect(store, runs_dir)
    if as_json:
        echo_json([r.to_dict() for r in rows])
        return
    stderr.print(f"collected {len(rows)} row(s) from {runs_dir} into {store.path}", highlight=False, markup=False)
    if rows:
        boards = build_leaderboard(rows)
        print_leaderboards(boards, stdout)
        html = write_html(boards, html_path or store.path.parent / "leaderboard.html", base_dir=store.folder)
        stdout.print(f"results: {store.path}  html: {html}", highlight=False, markup=False)


def _note(text: str) -> None:
    stderr.print(text, highlight=False, markup=False)


def _shown(path: Path) -> str:
    """A path as short as it can be written: relative to the current directory when under it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
