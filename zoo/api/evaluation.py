"""``evaluate(request)``: score a run, checkpoint, export or set of images (``zoo eval`` wraps it).

Every number comes with the protocol it was measured under (and its hash) and the floor of that
protocol: held-out real images scored exactly like the generated ones. Notes about the input
(skipped or converted images, an option that does not apply) are `EvalWarning` warnings,
issued as they happen; notes about the numbers are in `EvalResult.warnings`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import UsageError

if TYPE_CHECKING:
    from zoo.bench.runner import BenchProgress
    from zoo.data import ImageDataset

__all__ = ["EvalRequest", "EvalResult", "EvalWarning", "evaluate", "source_kind"]


class EvalWarning(UserWarning):
    """Something about the input of `evaluate` worth a line (an ignored option, a conversion)."""


@dataclass
class EvalRequest:
    """What to score: ``source`` against ``dataset`` (default: the run's dataset, else mnist-5k).

    ``source`` is a run directory, checkpoint, ``zoo export`` folder, image folder or .npz/.npy of
    uint8 images. ``num_fake`` (>= 10 and at most the held-out split) and ``num_real`` default to
    the protocol's counts. ``backbone`` is ``auto`` or a name of
    `zoo.metric_names.BACKBONES`; ``*_weights`` are local weight files (offline machines).
    ``seed`` seeds the reference draw, KID subsets and sampling; ``options`` are sampling options
    (runs, checkpoints and exports only); ``batch_size`` (>= 1) is for sampling and features.
    ``store``: also store the score as an external row ``name`` (default: the source's name) of
    the leaderboard in ``results`` (default: $ZOO_RESULTS or runs/results.sqlite); samples only
    (folders, arrays, exports), scored under the board's protocol (`zoo.bench.external`).
    """

    source: str | Path
    dataset: str | None = None
    data_dir: str | None = None
    image_size: int | None = None
    num_fake: int | None = None
    num_real: int | None = None
    backbone: str = "auto"
    backbone_weights: str | Path | None = None
    seed: int = 0
    inception_weights: str | Path | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int = 200
    device: str = "auto"
    store: bool = False
    name: str | None = None
    results: str | Path | None = None


@dataclass
class EvalResult:
    """The scores of one source: ``metrics`` and ``floor`` (metric name -> float or None), the
    ``protocol`` as a dict (its ``hash`` included), what was scored (``source``), notes about the
    numbers (``warnings``), the memorisation threshold and nearest-neighbour details, and for an
    export its size and sampling speed (``export``)."""

    source: dict[str, Any]
    metrics: dict[str, float | None]
    floor: dict[str, float | None]
    protocol: dict[str, Any]
    warnings: list[str]
    memorisation_threshold: float | None = None
    nearest: Any = None
    export: dict[str, Any] | None = None
    #: With ``store``: the external row written (``model``, ``seed``, ``results``: the store's path).
    stored: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """What ``zoo eval --json`` prints."""
        out = {"source": self.source, "metrics": self.metrics, "floor": self.floor, "protocol": self.protocol,
               "warnings": self.warnings, "memorisation_threshold": self.memorisation_threshold,
               "nearest": self.nearest}
        if self.export is not None:
            out["export"] = self.export
        if self.stored is not None:
            out["stored"] = self.stored
        return out


def _warn(text: str) -> None:
    warnings.warn(text, EvalWarning, stacklevel=3)


def check_counts(ds: ImageDataset, num_fake: int | None, num_real: int | None) -> None:
    """``num_fake`` and ``num_real`` within what the protocol can score on ``ds``: a usage error
    (exit 2) before any sampling, naming the option, instead of the protocol's MetricsError."""
    from zoo.metrics.nearest import PRDC_NEIGHBORHOOD
    from zoo.metrics.protocol import MIN_IMAGES

    if num_fake is not None and not MIN_IMAGES <= num_fake <= len(ds.test):
        raise UsageError(f"--num-fake must be between {MIN_IMAGES} and the {len(ds.test)} held-out images of "
                         f"{ds.name} (the floor scores that many real images), got {num_fake}")
    low = max(MIN_IMAGES, PRDC_NEIGHBORHOOD + 1)
    if num_real is not None and not low <= num_real <= len(ds.train):
        raise UsageError(f"--num-real must be between {low} and the {len(ds.train)} images of {ds.name}'s train "
                         f"split, got {num_real}")


def _load_source(source: Path, kind: str, options: dict[str, Any], device: Any) -> tuple[Any, dict[str, Any], Any,
                                                                                          dict[str, Any]]:
    """``(model or None, meta, images or None, parsed options)`` of ``source``; images are read
    now (folders and arrays), a model or export is sampled later under the protocol."""
    from zoo.data import ImageReadWarning, ReadReport
    from zoo.device import warn_if_emulated
    from zoo.metrics.sources import load_image_array, load_image_folder

    if kind == "export":
        from zoo.export import load_export

        return None, dict(load_export(source)[1]), None, options  # checks the folder and runtime first
    if kind in ("run", "checkpoint"):
        from zoo.checkpoint import load_model

        model, meta = load_model(source, map_location=device)
        options = model.parse_sample_options(options)
        warn_if_emulated(str(options.get("precision", "fp32")), device, "sampling")
        return model, meta, None, options
    if options:
        raise UsageError("--option applies to run directories and checkpoints, not to image files")
    with warnings.catch_warnings():  # the report below says it once, in zoo's own words
        warnings.simplefilter("ignore", ImageReadWarning)
        report = ReadReport(str(source))
        images = load_image_folder(source, report) if kind == "folder" else load_image_array(source)
    if kind == "folder":
        for note in report.notes():
            _warn(note)
    return None, {}, images, options


def evaluate(request: EvalRequest, *, reporter: BenchProgress | None = None) -> EvalResult:
    """Score ``request.source``; returns the metrics, the floor and the protocol.

    Raises [`UsageError`][zoo.errors.UsageError] for counts or options that do not fit (before any
    sampling), [`DataError`][zoo.errors.DataError] for unreadable images, and
    [`MetricsError`][zoo.errors.MetricsError] for a protocol that cannot be scored.
    """
    import contextlib

    from zoo.data import DEFAULT_DATASET
    from zoo.device import resolve_device
    from zoo.factory import load_dataset
    from zoo.metrics import compute_floor, make_protocol
    from zoo.metrics import evaluate as score

    if request.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {request.batch_size}")
    source, seed, batch_size, num_fake = Path(request.source), request.seed, request.batch_size, request.num_fake
    dev = resolve_device(request.device)
    kind = source_kind(source)
    if (request.name or request.results) and not request.store:
        raise UsageError("--name and --results go with --store")
    if request.store and kind in ("run", "checkpoint"):
        raise UsageError(f"--store takes samples (an image folder, an array, an export); {source} is a run: "
                         "benchmark its model with zoo bench")
    model, meta, images, options = _load_source(source, kind, dict(request.options), dev)
    size = request.image_size
    if size is None and meta.get("image_shape"):
        size = int(meta["image_shape"][1])
    ds = load_dataset(request.dataset or meta.get("dataset") or DEFAULT_DATASET, data_dir=request.data_dir,
                      image_size=size)
    if images is not None:
        images, num_fake = _fit_images(images, num_fake, ds, source)
    check_counts(ds, num_fake, request.num_real)
    export_info = None
    with reporter.tasks() if reporter is not None else contextlib.nullcontext() as progress:
        protocol = make_protocol(
            ds, num_real=request.num_real, num_fake=num_fake, backbone=request.backbone, seed=seed,
            weights_path=_text(request.backbone_weights), inception_weights=_text(request.inception_weights),
            progress=progress,
            source_images=None if images is None or request.store else len(images),  # --store: the board's
        )
        if request.store:
            return _store(request, source, ds, protocol, progress)
        if request.inception_weights is not None and protocol.backbone != "inception":
            _warn(f"--inception-weights ignored: the backbone is {protocol.backbone}")
        # a batch too big for memory is lowered, never refused: neither the images nor the
        # features depend on it (feature rounding aside)
        batch_size, feature_batch = _cap_batches(batch_size, model, options, images is None, ds, protocol, dev)
        if kind == "export":
            from zoo.export import generate_from_export

            images, export_info = generate_from_export(source, protocol.num_fake, seed=seed, batch_size=batch_size,
                                                       options=options)
        if model is not None:
            images = _generate(model, protocol.num_fake, seed, batch_size, options, progress)
        assert images is not None
        evaluation = score(images, ds, protocol, batch_size=feature_batch, device=dev, progress=progress)
        floor = compute_floor(ds, protocol, batch_size=feature_batch, device=dev, progress=progress)
    return _result(source, kind, meta, options, protocol, evaluation, floor, len(images), export_info, batch_size)


def _cap_batches(batch_size: int, model: Any, options: dict[str, Any], sampled: bool, ds: ImageDataset,
                 protocol: Any, dev: Any) -> tuple[int, int]:
    """``(sampling batch, feature batch)``: ``batch_size`` lowered to what fits in memory, with
    one `zoo.memory.BatchCapWarning` for each it lowers. ``sampled``: the images are drawn (a
    run, checkpoint or export); an export's runtime is not probed, only held to `MAX_BATCH`."""
    from zoo import accel
    from zoo.memory import MAX_BATCH, lower_to_cap
    from zoo.metrics.engine import feature_batch_cap

    sampling, features = batch_size, batch_size
    per_sample = min(batch_size, protocol.num_fake)  # what a batch really holds
    cap = MAX_BATCH if model is None else accel.sample_batch_cap(model, options, per_sample)
    if sampled and per_sample > cap:
        sampling = lower_to_cap(batch_size, cap, note="sampling")
    per_feature = min(batch_size, max(protocol.num_real, protocol.num_fake))
    if per_feature > (cap := feature_batch_cap(ds, protocol, per_feature, dev)):
        features = lower_to_cap(batch_size, cap, note="features")
    return sampling, features


def _store(request: EvalRequest, source: Path, ds: ImageDataset, protocol: Any, progress: Any) -> EvalResult:
    """``--store``: `zoo.bench.external.store_source` scores and stores the source."""
    from zoo.bench.external import store_source
    from zoo.bench.store import ResultsStore, default_store_path
    from zoo.registry import get_registry
    from zoo.text import slug

    results = Path(request.results or default_store_path())
    row = store_source(source, name=request.name or slug(source.stem or source.name, 64), dataset=ds,
                       protocol=protocol, store=ResultsStore(results), models=get_registry().models,
                       progress=progress)
    src = {"path": str(source), "kind": row.external["kind"], "num_images": protocol.num_fake,
           "source_images": row.external["images"], "stored_as": row.model, "seed": row.seed}
    return EvalResult(source=src, metrics=row.metrics, floor=row.floor, protocol=protocol.to_dict(),
                      warnings=protocol.warnings(),
                      stored={"model": row.model, "seed": row.seed, "results": str(results)})


def _fit_images(images: Any, num_fake: int | None, ds: ImageDataset, source: Path) -> tuple[Any, int]:
    """Images read from files, with the dataset's channels, and how many of them to score."""
    from zoo.metrics.protocol import default_counts
    from zoo.metrics.sources import match_channels

    images, note = match_channels(images, ds.image_shape[0])
    if note:
        _warn(f"{source}: {note}")
    if num_fake is None:
        if len(images) < 10:  # no --num-fake was given: name what is short, not the option
            raise UsageError(f"{source} holds {len(images)} images; scoring needs at least 10")
        return images, min(default_counts(ds)[1], len(images))
    if num_fake > len(images):
        raise UsageError(f"--num-fake {num_fake} but {source} holds only {len(images)} images")
    return images, num_fake


def _result(source: Path, kind: str, meta: dict[str, Any], options: dict[str, Any], protocol: Any, evaluation: Any,
            floor: dict[str, Any], source_images: int, export_info: dict[str, Any] | None,
            batch_size: int) -> EvalResult:
    """The `EvalResult` of a scored source, saying what was scored and how."""
    model = kind in ("run", "checkpoint")
    src: dict[str, Any] = {"path": str(source), "kind": kind, "num_images": protocol.num_fake,
                           "source_images": source_images}
    if protocol.fake_draw:  # never a silent subset: say how many were scored, of how many, and how
        evaluation.warnings.insert(0, f"scored {protocol.num_fake:,} of the {source_images:,} images in {source}, "
                                      f"drawn at random with seed {protocol.seed} (not in file order)")
    if model:
        src.update(model=meta.get("model"), step=meta.get("step"), checkpoint=meta.get("path"), sample_options=options)
    result = EvalResult(source=src, metrics=evaluation.metrics, floor=floor, protocol=protocol.to_dict(),
                        warnings=evaluation.warnings, memorisation_threshold=evaluation.memorisation_threshold,
                        nearest=evaluation.nearest)
    if export_info is not None:
        src.update(model=meta.get("model"), step=(meta.get("source") or {}).get("step"),
                   sample_options=export_info["options"])
        result.export = {"format": meta["format"], "quantize": meta["quantize"], "size_bytes": export_info["size_bytes"],
                         "images_per_s": export_info["images_per_s"], "nfe": export_info["nfe"],
                         "batch_size": batch_size}
    return result


def _text(path: str | Path | None) -> str | None:
    return None if path is None else str(path)


def _generate(model: Any, n: int, seed: int, batch_size: int, options: dict[str, Any], progress: Any) -> Any:
    """``n`` images of ``model`` (uint8), reporting ``("sampling", done, n)`` to ``progress``."""
    from zoo.sampling import generate

    done = 0

    def on_batch(k: int) -> None:
        nonlocal done
        done += k
        if progress is not None:
            progress("sampling", done, n)

    return generate(model, n, seed=seed, batch_size=batch_size, options=options, progress=on_batch)


def source_kind(path: Path) -> str:
    """``"run"``, ``"checkpoint"``, ``"export"`` (a ``zoo export`` folder), ``"folder"`` or ``"array"``.
    Raises [`DataError`][zoo.errors.DataError] for a single image file."""
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
