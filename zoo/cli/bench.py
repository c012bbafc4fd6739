"""``zoo bench``: the main job. Train, sample, evaluate and time models under one protocol."""

from __future__ import annotations

from pathlib import Path

import click

from zoo.cli.app import cli, echo_json, registry, stderr, stdout
from zoo.cli.options import (
    data_dir_option,
    device_option,
    parse_duration,
    parse_seeds,
    precision_option,
)


@cli.command("bench")
@click.option("--models", required=True, metavar="LIST", help="Comma-separated model names, e.g. gan,vae,ddpm.")
@click.option("--dataset", default="mnist-5k", show_default=True)
@data_dir_option
@click.option("--preset", default="quick", show_default=True, help="smoke, quick, standard or paper (docs/benchmarks.md).")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated training seeds, e.g. 0,1,2.")
@click.option("--steps", type=click.IntRange(min=1), help="Step budget per model (replaces the preset's budget).")
@click.option("--time", "time_budget", metavar="DURATION", help="Wall-clock budget per model: 90s, 5m (replaces the preset's).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Default: each model's paper batch size.")
@click.option("--set", "overrides", multiple=True, metavar="MODEL.KEY=VALUE", help="Config override for one model.")
@click.option("--option", "options", multiple=True, metavar="[MODEL.]KEY=VALUE", help="Sampling option, e.g. ddpm.steps=100.")
@click.option("--num-fake", type=click.IntRange(min=2), help="Generated images per evaluation (default: the preset's).")
@click.option("--backbone", default="auto", show_default=True, help="Metric backbone: auto, lenet or inception.")
@click.option("--inception-weights", type=click.Path(dir_okay=False), envvar="ZOO_INCEPTION_WEIGHTS", help="Local Inception weights (offline).")
@device_option
@precision_option
@click.option("--results", type=click.Path(dir_okay=False, path_type=Path), help="Results store [default: $ZOO_RESULTS or runs/results.sqlite].")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/bench"), show_default=True)
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the HTML leaderboard here.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first model that fails.")
@click.option("--json", "as_json", is_flag=True, help="Print this run's result rows as JSON instead of the table.")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: when stderr is a terminal).")
def bench_command(models, dataset, data_dir, preset, seeds, steps, time_budget, batch_size, overrides, options, num_fake,
                  backbone, inception_weights, device, precision, results, runs_dir, html_path, fail_fast, as_json, progress) -> None:
    """Benchmark models: same budget, same protocol, with cost measured alongside quality.

    Each model and seed is trained, sampled for every sampler setting of the preset, evaluated
    (FID / IS / KID / precision-recall against the protocol's reference, with the real-vs-real
    floor), timed, and written to the results store. Exit code 1 if any model failed.
    """
    from zoo.bench.leaderboard import build_leaderboard, print_leaderboards
    from zoo.bench.presets import get_preset
    from zoo.bench.report import write_html
    from zoo.bench.runner import BenchRequest, BenchRunner, plan_models
    from zoo.bench.store import ResultsStore, default_store_path
    from zoo.config import parse_assignments
    from zoo.data import load_dataset
    from zoo.device import check_precision, resolve_device
    from zoo.metrics import make_protocol

    reg = registry()
    chosen = get_preset(preset)
    request = BenchRequest(
        models=models.split(","), preset=chosen, seeds=parse_seeds(seeds), dataset=dataset, device=device,
        precision=precision, steps=steps, time_limit=parse_duration(time_budget), batch_size=batch_size,
        overrides=parse_assignments(overrides), options=parse_assignments(options, "--option"), fail_fast=fail_fast,
        runs_dir=runs_dir,
    )
    reg.resolve_models(request.models)  # unknown names fail before anything is loaded
    check_precision(precision, resolve_device(device))
    store = ResultsStore(results or default_store_path())  # a corrupt store fails before training
    data = load_dataset(dataset, data_dir=data_dir)
    plans = plan_models(reg, request, data)
    from zoo.metrics import default_backbone

    uses_inception = (default_backbone(data) if backbone == "auto" else backbone) == "inception"
    protocol = make_protocol(
        data, num_real=min(chosen.num_real, len(data.train)),
        num_fake=min(num_fake or chosen.num_fake, len(data.test)), backbone=backbone,
        weights_path=inception_weights if uses_inception else None,
    )
    from rich.markup import escape

    say = lambda msg: stderr.print(f"[dim]zoo bench:[/] {escape(msg)}", highlight=False)  # noqa: E731
    say(f"{len(plans)} model(s) x {len(request.seeds)} seed(s), preset {chosen.name}, {dataset}, protocol {protocol.hash} "
        f"({protocol.backbone}, {protocol.num_fake} generated vs {protocol.num_real} real)")
    from zoo.cli.progress import task_bars

    interactive = stderr.is_terminal if progress is None else progress
    runner = BenchRunner(request, reg, data, protocol, store, report=say, progress=progress,
                         task_bars=lambda: task_bars(interactive))
    try:
        rows = runner.run(plans)
    finally:
        finished = runner.rows
        if finished and not as_json:
            boards = build_leaderboard(store.rows(dataset=data.name, protocol_hash=protocol.hash))
            print_leaderboards(boards, stdout)
            html = html_path or store.path.parent / "leaderboard.html"
            write_html(boards, html, base_dir=Path.cwd())
            stdout.print(f"results: {store.path}  html: {html}", highlight=False)
    if as_json:
        echo_json([r.to_dict() for r in rows])
    failed = [r for r in rows if r.status == "failed"]
    if failed:
        stderr.print(f"zoo bench: {len(failed)} run(s) failed: " + "; ".join(f"{r.model} seed {r.seed}: {r.error}" for r in failed),
                     highlight=False, markup=False)
        raise click.exceptions.Exit(1)
