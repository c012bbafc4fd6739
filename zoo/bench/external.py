"""Your own model on the board: samples made elsewhere, scored under a board's protocol, stored as
*external* rows and ranked with the rest.

``zoo bench --samples mine=DIR1,DIR2`` and ``zoo eval SOURCE --store --name mine`` come here. A
source is a folder of images, an ``.npz``/``.npy`` array or a ``zoo export`` folder; the sources of
one name are its seeds (0, 1, ...). Everything is checked before anything is written (the image
size and channels against the dataset, the count against the protocol, the name against the
registry's models, the protocol against the store's boards), so bad input is one line (a
[`UsageError`][zoo.errors.UsageError], exit 2) and the store stays as it was.

A source holding more than ``num_fake`` images is scored on a seeded draw of them (the protocol's
`FAKE_DRAW_RULE`), recorded in the row's ``external`` field (not in the
protocol: the board's protocol hash stays the board's). An external row records no training cost:
``plugin`` is ``"external"``, its config, sampling options and costs are empty, and the
leaderboard labels it ``NAME (external)`` with its sources instead of a budget.
"""
from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.bench.external_text import external_text
from zoo.bench.store import ResultRow, ResultsStore
from zoo.data import ImageDataset
from zoo.errors import UsageError, ZooError
from zoo.metrics.protocol import FAKE_DRAW_RULE, Protocol
from zoo.text import slug

__all__ = ["EXTERNAL", "ExternalSource", "check_name", "check_protocol", "external_text", "load_entries",
           "load_source", "parse_samples", "score_sources", "source_kind"]

#: ``ResultRow.plugin`` of an external row.
EXTERNAL = "external"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class SeedAddedWarning(UserWarning):
    """``zoo eval --store --name NAME`` added a new source as another seed of an existing entry."""


@dataclass
class ExternalSource:
    """One source of one external entry, loaded and checked: ``images`` is ``uint8 num_fake x C x
    H x W`` (the scored draw), ``info`` what the row's ``external`` field records."""

    name: str
    seed: int
    path: Path
    images: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)


def parse_samples(specs: Iterable[str]) -> dict[str, list[Path]]:
    """``["mine=DIR1,DIR2", "theirs=x.npz"]`` -> ``{"mine": [DIR1, DIR2], "theirs": [x.npz]}``.

    A name may be given twice (its sources are added). Raises `UsageError` for a spec
    without ``=``, an empty or odd name (letters, digits, ``_.-``; 64 at most), no source, or a
    source named twice for one name (its "seeds" would be one set of images scored twice).
    """
    out: dict[str, list[Path]] = {}
    for spec in specs:
        name, sep, rest = str(spec).partition("=")
        name = name.strip()
        if not sep or not rest.strip():
            raise UsageError(f"--samples takes NAME=SOURCE[,SOURCE...], got {spec!r}")
        check_name(name)
        sources = out.setdefault(name, [])
        for text in (p.strip() for p in rest.split(",")):
            if not text:
                continue
            if any(os.path.realpath(text) == os.path.realpath(s) for s in sources):
                raise UsageError(f"--samples {name}: {text} is given twice; each source is one seed of {name}")
            sources.append(Path(text))
    return out


def check_name(name: str, models: Iterable[str] = ()) -> None:
    """A usable external name that is not a model's (``UsageError`` otherwise)."""
    if not _NAME.fullmatch(name):
        raise UsageError(f"external name {name!r} must be letters, digits, '_', '.' or '-' "
                         "(starting with a letter or digit, 64 at most)")
    if name in set(models):
        raise UsageError(f"external name {name!r} is a model's name; pick another (e.g. {name}-samples)")


def source_kind(path: Path) -> str:
    """``"export"``, ``"folder"`` or ``"array"``; ``UsageError`` for anything else (a run folder or a
    checkpoint is a model genzoo can sample: score it with ``zoo eval``)."""
    from zoo.checkpoint import CHECKPOINT_DIR
    from zoo.export import is_export_dir
    from zoo.metrics.sources import ARRAY_SUFFIXES

    if not path.exists():
        raise UsageError(f"samples source {path} does not exist")
    if path.is_dir():
        if is_export_dir(path):
            return "export"
        if (path / CHECKPOINT_DIR).is_dir():
            raise UsageError(f"{path} is a run folder, not samples; benchmark its model with --models")
        return "folder"
    if path.suffix.lower() in ARRAY_SUFFIXES:
        return "array"
    raise UsageError(f"samples source {path} is not a folder of images, an .npz/.npy array or a zoo export folder")


def load_source(name: str, seed: int, path: Path, dataset: ImageDataset, protocol: Protocol) -> ExternalSource:
    """Read one source and check it against ``dataset`` and ``protocol`` (one-line ``UsageError``)."""
    import warnings

    from zoo.data import ImageReadWarning, ReadReport
    from zoo.metrics.sources import load_image_array, load_image_folder, match_channels

    kind = source_kind(path)
    n = protocol.num_fake
    try:
        if kind == "export":
            from zoo.export import generate_from_export, load_export

            load_export(path)  # checks the folder and the runtime before sampling
            images, _ = generate_from_export(path, n, seed=seed)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ImageReadWarning)
                images = load_image_folder(path, ReadReport(str(path))) if kind == "folder" else load_image_array(path)
    except UsageError:
        raise
    except ZooError as exc:  # unreadable samples are the user's input: a usage error
        raise UsageError(f"{name}: {exc}") from None
    images, _ = match_channels(images, dataset.image_shape[0])
    if tuple(images.shape[1:]) != tuple(dataset.image_shape):
        got, want = "x".join(map(str, images.shape[1:])), "x".join(map(str, dataset.image_shape))
        raise UsageError(f"{name}: {path} holds {got} images (C x H x W); {dataset.name} images are {want}")
    total = len(images)
    if total < n:
        raise UsageError(f"{name}: {path} holds {total} images; the board's protocol {protocol.hash} scores {n}")
    info: dict[str, Any] = {"source": str(Path(path).resolve()), "kind": kind, "images": total, "scored": n}
    if total > n:  # never the first files: a seeded draw over all of them, recorded in the row
        picked = torch.randperm(total, generator=torch.Generator().manual_seed(protocol.seed))[:n]
        images = images[picked]
        info["draw"] = FAKE_DRAW_RULE
    return ExternalSource(name, seed, path, images.contiguous(), info)


def load_entries(entries: Mapping[str, Sequence[Path]], dataset: ImageDataset, protocol: Protocol,
                 models: Iterable[str] = ()) -> list[ExternalSource]:
    """Every source of every entry, loaded and checked before anything is scored or written."""
    models = list(models)
    out = []
    for name, paths in entries.items():
        check_name(name, models)
        if not paths:
            raise UsageError(f"{name}: no samples source given")
        out += [load_source(name, seed, Path(p), dataset, protocol) for seed, p in enumerate(paths)]
    return out


def check_protocol(store: ResultsStore, protocol: Protocol) -> None:
    """``UsageError`` when the store holds boards of the protocol's dataset and none under this
    protocol: a row there would be ranked with nothing (say which protocols the boards use)."""
    boards = {r.protocol_hash: r.protocol for r in store.rows(dataset=protocol.dataset)}
    if boards and protocol.hash not in boards:
        known = "; ".join(f"{h}: {p.get('num_real')} real / {p.get('num_fake')} generated, "
                          f"{p.get('backbone')}, seed {p.get('seed')}" for h, p in sorted(boards.items())[:3])
        raise UsageError(f"protocol {protocol.hash} ({protocol.num_real} real / {protocol.num_fake} generated, "
                         f"{protocol.backbone}, seed {protocol.seed}) matches no board of {protocol.dataset} in "
                         f"{store.path} ({known}); pass --num-real, --num-fake, --backbone, --seed to match one")


def score_sources(sources: Sequence[ExternalSource], *, dataset: ImageDataset, protocol: Protocol,
                  store: ResultsStore, runs_dir: Path, floor: dict[str, Any] | None = None,
                  environment: dict[str, Any] | None = None, preset: str = "", grid_size: int = 64,
                  progress: Any = None) -> list[ResultRow]:
    """Score every source, write its sample grid and nearest-neighbour pairs under ``runs_dir``, and
    store one external row per source in one transaction (all or none). Returns the rows."""
    from zoo.metrics import compute_floor, evaluate, nearest_pairs
    from zoo.sampling import write_grid

    if floor is None:
        floor = compute_floor(dataset, protocol, progress=progress)
    rows = []
    for src in sources:
        evaluation = evaluate(src.images, dataset, protocol, progress=progress)
        folder = runs_dir / f"external-{slug(src.name, 40)}-{protocol.hash}-s{src.seed}"
        folder.mkdir(parents=True, exist_ok=True)
        grid = write_grid(src.images[:grid_size], folder / "samples.png")
        images: dict[str, str] = {}
        if evaluation.nearest:
            pairs = nearest_pairs(src.images, dataset, evaluation.nearest)
            images["nearest_neighbours"] = str(write_grid(pairs, folder / "nearest.png", nrow=2))
        rows.append(ResultRow(
            model=src.name, family=EXTERNAL, plugin=EXTERNAL, dataset=protocol.dataset,
            dataset_fingerprint=protocol.dataset_fingerprint, seed=src.seed, preset=preset,
            protocol_hash=protocol.hash, protocol=protocol.to_dict(), metrics=evaluation.metrics, floor=floor,
            environment=environment or {}, grid_path=str(grid), run_dir=str(folder), images=images,
            budget_kind="steps", external=src.info,
        ))
    store.add_many(rows)
    return rows


def store_source(path: Path, *, name: str, dataset: ImageDataset, protocol: Protocol, store: ResultsStore,
                 models: Iterable[str] = (), runs_dir: Path | None = None, progress: Any = None) -> ResultRow:
    """``zoo eval SOURCE --store``: score one source under ``protocol`` and store it as an external
    row of ``name``, after every check (name, protocol against the store's boards, images).

    Its seed is the one a row of ``name`` from the same source already has on this board (the row
    is replaced), else the next free one, so several calls build up an entry's seeds.
    """
    check_name(name, models)
    check_protocol(store, protocol)
    mine = [r for r in store.rows(dataset=protocol.dataset, protocol_hash=protocol.hash, model=name)]
    if any(r.plugin != EXTERNAL for r in mine):
        raise UsageError(f"{name!r} names a trained model's rows in {store.path}; pick another --name")
    where = str(Path(path).resolve())  # one file however its path is typed; two files of one name apart
    same = [r.seed for r in mine if r.external.get("source") == where]
    seed = same[0] if same else max((r.seed + 1 for r in mine), default=0)
    if mine and not same:  # by design an entry's seeds are its sources; say so, it may be a mistake
        others = sorted({str(r.external.get("source")) for r in mine})
        warnings.warn(f"{name!r} already has {len(mine)} seed(s) on this board (from {', '.join(others[:3])}"
                      f"{', ...' if len(others) > 3 else ''}); {where} becomes its seed {seed}. Another model's "
                      "samples need another --name", SeedAddedWarning, stacklevel=2)
    source = load_source(name, seed, path, dataset, protocol)
    return score_sources([source], dataset=dataset, protocol=protocol, store=store,
                         runs_dir=runs_dir or store.path.parent / "bench", progress=progress)[0]
