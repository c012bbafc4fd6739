"""``zoo eval``: FID, IS, KID, precision/recall, density/coverage, memorisation and mode coverage
of a run, a checkpoint or a set of images.

Every number is printed with the protocol it was measured under (and its hash) and next to the
floor of that protocol: held-out real images scored exactly like the generated ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from zoo.cli.app import announce, cli, echo_json, stdout, warn
from zoo.cli.options import backbone_options, data_dir_option, device_option
from zoo.metric_names import BACKBONES, higher_is_better  # noqa: F401 - BACKBONES: what eval accepts


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _format(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if key.startswith("kid"):
        return f"{value:.5f}"
    if key.startswith("classes"):
        return f"{value:.0f}"
    return f"{value:.4f}" if key.startswith(("precision", "recall", "density", "coverage", "memorised", "kl")) else f"{value:.3f}"


def _print_human(result: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    protocol, metrics, floor = result["protocol"], result["metrics"], result["floor"]
    source = result["source"]
    drawn = ""
    if source.get("model"):  # sampled now: say from what and how, so the number can be placed
        options = ", ".join(f"{k}={v}" for k, v in (source.get("sample_options") or {}).items())
        drawn = f" ({source['model']} step {source.get('step')}{'; ' + options if options else ''})"
    # The title as its own line: a Table title does not wrap to the terminal's width.
    stdout.print(Text(f"{source['path']}{drawn}: {protocol['num_fake']} generated images vs {protocol['dataset']}"),
                 soft_wrap=False)
    table = Table(
        caption=(f"floor: held-out real images scored like these, mean ± std of {floor['draws']} draws" if floor.get("spread") else
                 f"floor: {protocol['num_fake']} held-out real images scored exactly like generated ones"),
        title_justify="left", caption_justify="left",
    )
    for col, justify in (("metric", "left"), ("value", "right"), ("floor (real vs real)", "right"), ("better", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for key, value in metrics.items():
        if key.endswith("_std"):
            continue
        std_key = f"{key}_std"
        shown = _format(key, value) + (f" ± {_format(key, metrics[std_key])}" if std_key in metrics else "")
        spread = (floor.get("spread") or {}).get(key)
        floor_shown = _format(key, floor.get(key)) + (f" ± {_format(key, spread)}" if spread is not None else "")
        table.add_row(key, shown, floor_shown, "higher" if higher_is_better(key) else "lower")
    stdout.print(table)

    ptable = Table(title=f"protocol {protocol['hash']} (compare only results with this hash)", title_justify="left")
    ptable.add_column("field")
    ptable.add_column("value", overflow="fold")
    for key, value in protocol.items():
        if key == "hash":
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = "x".join(str(v) for v in value)
        ptable.add_row(key, Text(str(value)))
    stdout.print(ptable)
    threshold = result.get("memorisation_threshold")
    if threshold is not None:
        tag = protocol.get("metric_tag") or protocol["backbone"]
        stdout.print(
            Text(f"memorised_{tag}: share of generated images nearer to a training image than {threshold:.4g}, the "
                 f"{protocol['memorisation_quantile']:.0%} quantile of half the held-out real images' "
                 "nearest-training distances (the floor's share is measured on the other half)"),
            highlight=False, soft_wrap=False,
        )  # prose, wrapped at the terminal's width
    for note in result.get("warnings", []):
        warn(note)
    if "export" in result:
        e = result["export"]
        stdout.print(f"export: {e['format']}, quantize {e['quantize']}, {e['size_bytes'] / 1e6:.3f} MB on disk, "
                     f"{e['images_per_s']:.1f} images/s sampling (NFE {e['nfe']}, batch {e['batch_size']})",
                     highlight=False, markup=False)


@cli.command("eval")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--dataset", help="Reference dataset (default: the run's dataset, else mnist-5k).")
@data_dir_option
@click.option("--image-size", type=click.IntRange(4, 1024), help="Resize the reference dataset to this size (as training did).")
@click.option("--num-fake", type=click.IntRange(min=1),
              help="Generated images to score, at least 10 (default: 10k capped by the held-out split).")
@click.option("--num-real", type=click.IntRange(min=1), help="Reference images (default: 50k capped by the train split).")
@backbone_options
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
              help="Seed of the reference draw, KID subsets and sampling.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Sampling option (checkpoints and exports only).")
@click.option("--batch-size", type=int, default=200, show_default=True, help="Batch size for sampling and features; lowered, with a warning, to what fits in memory.")
@device_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.option("--store", "store", is_flag=True,
              help="Also store the score as an external row of the leaderboard (image folders, arrays, exports).")
@click.option("--name", "name", help="Name of the external row with --store [default: the source's name].")
@click.option("--results", type=click.Path(dir_okay=False, path_type=Path),
              help="Results store for --store [default: $ZOO_RESULTS or runs/results.sqlite].")
def eval_command(
    source: Path, dataset: str | None, data_dir: str | None, image_size: int | None, num_fake: int | None,
    num_real: int | None, backbone: str, backbone_weights: Path | None, seed: int, inception_weights: Path | None,
    options: tuple[str, ...],
    batch_size: int, device: str, as_json: bool, store: bool = False, name: str | None = None,
    results: Path | None = None,
) -> None:
    """Score SOURCE (a run directory, checkpoint, `zoo export` folder, image folder or .npz/.npy of images) against a dataset.

    Prints FID, IS, KID, precision/recall, density/coverage, memorisation and (labelled data) mode
    coverage next to the floor (held-out real images scored the same way) and the protocol they
    were measured under; compare only results with the same protocol hash. A run or checkpoint is
    sampled with --seed and --option. Warns where a number means little at these counts.
    """
    announce(f"scoring {source} against {dataset or 'its dataset'}: loading torch...")
    from zoo import api
    from zoo.cli.progress import progress_mode, verb_reporter
    from zoo.config import parse_assignments

    request = api.EvalRequest(
        source=source, dataset=dataset, data_dir=data_dir, image_size=image_size, num_fake=num_fake,
        num_real=num_real, backbone=backbone, backbone_weights=backbone_weights, seed=seed,
        inception_weights=inception_weights, options=parse_assignments(options, "--option"), batch_size=batch_size,
        device=device, store=store, name=name, results=results,
    )
    evaluation = api.evaluate(request, reporter=verb_reporter(progress_mode(None)))
    result = evaluation.to_dict()
    if as_json:
        echo_json(result)
        return
    _print_human(result)
    if evaluation.stored is not None:
        from rich.text import Text

        stored = evaluation.stored
        stdout.print(Text(f"stored as external row {stored['model']} (seed {stored['seed']}) in {stored['results']}"))
