"""``zoo eval``: FID, IS, KID, precision/recall, density/coverage, memorisation and mode coverage
of a run, a checkpoint or a set of images.

Every number is printed with the protocol it was measured under (and its hash) and next to the
floor of that protocol: held-out real images scored exactly like the generated ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from zoo.cli.app import announce, cli, echo_json, registry, stderr, stdout, warn
from zoo.cli.options import backbone_options, data_dir_option, device_option
from zoo.cli.progress import task_bars
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


def _check_counts(ds: Any, num_fake: int | None, num_real: int | None) -> None:
    """--num-fake and --num-real within what the protocol can score on ``ds``: a usage error (exit 2)
    before any sampling, naming the option, instead of the protocol's MetricsError (exit 1)."""
    from zoo.errors import UsageError
    from zoo.metrics.nearest import PRDC_NEIGHBORHOOD
    from zoo.metrics.protocol import MIN_IMAGES

    if num_fake is not None and not MIN_IMAGES <= num_fake <= len(ds.test):
        raise UsageError(f"--num-fake must be between {MIN_IMAGES} and the {len(ds.test)} held-out images of "
                         f"{ds.name} (the floor scores that many real images), got {num_fake}")
    low = max(MIN_IMAGES, PRDC_NEIGHBORHOOD + 1)
    if num_real is not None and not low <= num_real <= len(ds.train):
        raise UsageError(f"--num-real must be between {low} and the {len(ds.train)} images of {ds.name}'s train "
                         f"split, got {num_real}")


@cli.command("eval")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--dataset", help="Reference dataset (default: the run's dataset, else mnist-5k).")
@data_dir_option
@click.option("--image-size", type=click.IntRange(4, 1024), help="Resize the reference dataset to this size (as training did).")
@click.option("--num-fake", type=click.IntRange(min=1), help="Generated images to score (default: 10k capped by the held-out split).")
@click.option("--num-real", type=click.IntRange(min=1), help="Reference images (default: 50k capped by the train split).")
@backbone_options
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
              help="Seed of the reference draw, KID subsets and sampling.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Sampling option (checkpoints and exports only).")
@click.option("--batch-size", type=int, default=200, show_default=True, help="Batch size for sampling and features.")
@device_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.option("--store", "store", is_flag=True,
              help="Also store the score as an external row of the leaderboard (image folders, arrays, exports).")
@click.option("--name", "row_name", help="Name of the external row with --store [default: the source's name].")
@click.option("--results", type=click.Path(dir_okay=False, path_type=Path),
              help="Results store for --store [default: $ZOO_RESULTS or runs/results.sqlite].")
def eval_command(
    source: Path, dataset: str | None, data_dir: str | None, image_size: int | None, num_fake: int | None,
    num_real: int | None, backbone: str, backbone_weights: Path | None, seed: int, inception_weights: Path | None,
    options: tuple[str, ...],
    batch_size: int, device: str, as_json: bool, store: bool = False, row_name: str | None = None,
    results: Path | None = None,
) -> None:
    """Score SOURCE (a run directory, checkpoint, `zoo export` folder, image folder or .npz/.npy of images) against a dataset.

    Prints FID, IS, KID, precision/recall, density/coverage, memorisation and (labelled data) mode
    coverage next to the floor (held-out real images scored the same way) and the protocol they
    were measured under; compare only results with the same protocol hash. A run or checkpoint is
    sampled with --seed and --option. Warns where a number means little at these counts.
    """
    announce(f"scoring {source} against {dataset or 'its dataset'}: loading torch...")
    import warnings

    from zoo.config import parse_assignments
    from zoo.data import DEFAULT_DATASET, ImageReadWarning, ReadReport
    from zoo.device import resolve_device, warn_if_emulated
    from zoo.errors import UsageError
    from zoo.factory import load_dataset
    from zoo.metrics import compute_floor, evaluate, make_protocol
    from zoo.metrics.protocol import default_counts
    from zoo.metrics.sources import load_image_array, load_image_folder, match_channels

    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    dev = resolve_device(device)
    kind = source_kind(source)
    if (row_name or results) and not store:
        raise UsageError("--name and --results go with --store")
    if store and kind in ("run", "checkpoint"):
        raise UsageError(f"--store takes samples (an image folder, an array, an export); {source} is a run: "
                         "benchmark its model with zoo bench")
    parsed_options = parse_assignments(options, "--option")
    model: Any = None
    meta: dict[str, Any] = {}
    images = None
    export_info: dict[str, Any] | None = None
    if kind == "export":
        from zoo.export import load_export

        meta = dict(load_export(source)[1])  # checks the folder and the runtime before any work
    elif kind in ("run", "checkpoint"):
        from zoo.checkpoint import load_model

        model, meta = load_model(source, map_location=dev)
        parsed_options = model.parse_sample_options(parsed_options)
        warn_if_emulated(str(parsed_options.get("precision", "fp32")), dev, "sampling")
    else:
        if parsed_options:
            raise UsageError("--option applies to run directories and checkpoints, not to image files")
        with warnings.catch_warnings():  # the report below says it once, in zoo's own words
            warnings.simplefilter("ignore", ImageReadWarning)
            report = ReadReport(str(source))
            images = load_image_folder(source, report) if kind == "folder" else load_image_array(source)
        if kind == "folder":
            for note in report.notes():
                warn(note)

    name = dataset or meta.get("dataset") or DEFAULT_DATASET
    size = image_size
    if size is None and meta.get("image_shape"):
        size = int(meta["image_shape"][1])
    ds = load_dataset(name, data_dir=data_dir, image_size=size)
    if images is not None:
        images, note = match_channels(images, ds.image_shape[0])
        if note:
            warn(f"{source}: {note}")
        if num_fake is None:
            if len(images) < 10:  # the user gave no --num-fake: name what is short, not the option
                raise UsageError(f"{source} holds {len(images)} images; scoring needs at least 10")
            num_fake = min(default_counts(ds)[1], len(images))
        elif num_fake > len(images):
            raise UsageError(f"--num-fake {num_fake} but {source} holds only {len(images)} images")

    _check_counts(ds, num_fake, num_real)
    with task_bars(stderr.is_terminal) as progress:  # bars only for a person watching
        protocol = make_protocol(
            ds, num_real=num_real, num_fake=num_fake, backbone=backbone, seed=seed,
            weights_path=str(backbone_weights) if backbone_weights else None,
            inception_weights=str(inception_weights) if inception_weights else None, progress=progress,
            source_images=None if images is None or store else len(images),  # --store: the board's protocol
        )
        if store:
            return _store(source, row_name, ds, protocol, results, as_json, progress)
        if inception_weights is not None and protocol.backbone != "inception":
            warn(f"--inception-weights ignored: the backbone is {protocol.backbone}")
        if kind == "export":
            from zoo.export import generate_from_export

            images, export_info = generate_from_export(source, protocol.num_fake, seed=seed, batch_size=batch_size,
                                                       options=parsed_options)
        if model is not None:
            from zoo.sampling import generate

            done = [0]

            def on_batch(k: int) -> None:
                done[0] += k
                if progress is not None:
                    progress("sampling", done[0], protocol.num_fake)

            images = generate(model, protocol.num_fake, seed=seed, batch_size=batch_size, options=parsed_options, progress=on_batch)
        assert images is not None
        evaluation = evaluate(images, ds, protocol, batch_size=batch_size, device=dev, progress=progress)
        floor = compute_floor(ds, protocol, batch_size=batch_size, device=dev, progress=progress)

    src: dict[str, Any] = {"path": str(source), "kind": kind, "num_images": protocol.num_fake,
                           "source_images": len(images)}
    if protocol.fake_draw:  # never a silent subset: say how many were scored, of how many, and how
        evaluation.warnings.insert(0, f"scored {protocol.num_fake:,} of the {len(images):,} images in {source}, "
                                      f"drawn at random with seed {protocol.seed} (not in file order)")
    if model is not None:
        src.update(model=meta.get("model"), step=meta.get("step"), checkpoint=meta.get("path"), sample_options=parsed_options)
    result = {
        "source": src, "metrics": evaluation.metrics, "floor": floor, "protocol": protocol.to_dict(),
        "warnings": evaluation.warnings, "memorisation_threshold": evaluation.memorisation_threshold,
        "nearest": evaluation.nearest,
    }
    if export_info is not None:
        src.update(model=meta.get("model"), step=(meta.get("source") or {}).get("step"), sample_options=export_info["options"])
        result["export"] = {"format": meta["format"], "quantize": meta["quantize"], "size_bytes": export_info["size_bytes"],
                            "images_per_s": export_info["images_per_s"], "nfe": export_info["nfe"], "batch_size": batch_size}
    if as_json:
        echo_json(result)
    else:
        _print_human(result)


def _store(source: Path, name: str | None, ds: Any, protocol: Any, results: Path | None, as_json: bool,
           progress: Any) -> None:
    """``zoo eval SOURCE --store``: zoo.bench.external scores and stores it; printed like an eval."""
    from rich.text import Text

    from zoo.bench.external import store_source
    from zoo.bench.store import ResultsStore, default_store_path
    from zoo.text import slug

    row = store_source(source, name=name or slug(source.stem or source.name, 64), dataset=ds, protocol=protocol,
                       store=ResultsStore(results or default_store_path()), models=registry().models,
                       progress=progress)
    result = {"source": {"path": str(source), "kind": row.external["kind"], "num_images": protocol.num_fake,
                         "source_images": row.external["images"], "stored_as": row.model, "seed": row.seed},
              "metrics": row.metrics, "floor": row.floor, "protocol": protocol.to_dict(), "warnings": protocol.warnings()}
    if as_json:
        echo_json(result)
        return
    _print_human(result)
    stdout.print(Text(f"stored as external row {row.model} (seed {row.seed}) in {results or default_store_path()}"))


def source_kind(path: Path) -> str:
    """``"run"``, ``"checkpoint"``, ``"export"`` (a ``zoo export`` folder), ``"folder"`` or ``"array"``."""
    from zoo.checkpoint import CHECKPOINT_DIR
    from zoo.data import IMAGE_EXTENSIONS
    from zoo.errors import DataError
    from zoo.export import is_export_dir
    from zoo.metrics.sources import ARRAY_SUFFIXES

    if path.is_dir() and is_export_dir(path):
        return "export"
    if path.is_dir():
        return "run" if (path / CHECKPOINT_DIR).is_dir() else "folder"
    if path.suffix.lower() in ARRAY_SUFFIXES:
        return "array"
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise DataError(f"{path} is a single image; pass the folder that holds the generated images")
    return "checkpoint"
