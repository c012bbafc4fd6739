"""``sample(request)``: draw images from a trained run or checkpoint (``zoo sample`` wraps it).

The output's kind follows its name: ``.png`` a grid, ``.npz`` an array (key ``images``), a name
with no suffix (or ending in ``/``, or an existing folder) one PNG per image. Any other suffix is
refused, never written as a folder of that name.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import UsageError
from zoo.outputs import check_output_folder

if TYPE_CHECKING:
    from zoo.bench.runner import BenchProgress

__all__ = ["MAX_GRID_BYTES", "MAX_GRID_IMAGES", "MAX_SAMPLE_BATCH", "SampleRequest", "SampleResult", "output_kind",
           "sample"]

#: A .png grid holds all its images in memory at once: at most this many, and this many bytes of pixels.
MAX_GRID_IMAGES = 4096
MAX_GRID_BYTES = 2**30
#: The most images one sampling batch may hold whatever memory allows (`zoo.memory.MAX_BATCH`,
#: kept here so importing this module does not import torch); below it the cap is measured.
MAX_SAMPLE_BATCH = 4096


@dataclass
class SampleRequest:
    """What to sample: ``num`` (>= 1) images of the run or checkpoint ``source`` into ``output``.

    ``options`` are the model's sampling options (``{"steps": 50}``, parsed by the model);
    ``batch_size`` (>= 1, default: the fastest, measured once and cached; lowered, with one
    `zoo.memory.BatchCapWarning`, to the most that fits in memory) never changes the images;
    ``nrow`` is images per grid row (default: square). An existing ``output`` is refused unless
    ``force``.
    """

    source: str | Path
    num: int = 64
    output: str | Path = "samples.png"
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)
    nrow: int | None = None
    batch_size: int | None = None
    compile: bool = False
    force: bool = False
    device: str = "auto"


@dataclass
class SampleResult:
    """What `sample` wrote: ``path`` (a grid, .npz or folder: ``kind``) and how it was made."""

    path: Path
    kind: str  # "grid", "npz" or "folder"
    num: int
    seed: int
    model: str
    step: int
    options: dict[str, Any]
    shape: list[int]  # (num, channels, height, width)
    seconds: float  # sampling, the compile excluded
    source: str
    batch_size: int
    compiled: bool
    compile_seconds: float | None

    @property
    def images_per_s(self) -> float | None:
        return self.num / self.seconds if self.seconds > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """What ``zoo sample --json`` prints."""
        out = asdict(self)
        out["path"] = str(self.path)
        keys = ["path", "kind", "num", "seed", "model", "step", "options", "shape", "seconds", "images_per_s"]
        return {**{k: out.get(k, self.images_per_s) for k in keys}, **out}


def output_kind(output: str | Path, option: str = "--output") -> str:
    """``"grid"`` (.png), ``"npz"`` (.npz) or ``"folder"`` (no suffix, a trailing ``/`` or an
    existing folder). Raises [`UsageError`][zoo.errors.UsageError] for any other suffix (``g.jpg``)."""
    path = Path(output)
    suffix = path.suffix.lower()
    if suffix == ".png":
        return "grid"
    if suffix == ".npz":
        return "npz"
    if not suffix or str(output).endswith(("/", "\\")) or path.is_dir():
        return "folder"
    raise UsageError(f"{option} {output}: cannot write {suffix} files; use a .png grid, an .npz array "
                     "or a folder (a name without suffix, or ending in /)")


def sample(request: SampleRequest, *, reporter: BenchProgress | None = None) -> SampleResult:
    """Sample ``request.num`` images and write them; returns what was written.

    The same seed gives the same images for any batch size (``compile`` rounds differently). A
    folder or .npz is written batch by batch (memory holds one batch); an interrupted run leaves no
    half file under a final name. Raises [`UsageError`][zoo.errors.UsageError] for a bad request, before
    anything is loaded, and [`CheckpointError`][zoo.errors.CheckpointError] for a source that does not load.
    """
    import contextlib

    from zoo import accel
    from zoo.checkpoint import load_model
    from zoo.device import resolve_device, warn_if_emulated
    from zoo.memory import lower_to_cap
    from zoo.sampling import generate, generate_batches, stream_folder, stream_npz, write_grid

    n, out_path = request.num, Path(request.output)
    kind, batch_size = _check_request(request)  # before anything is loaded
    target = resolve_device(request.device)
    model, meta = load_model(request.source, map_location=target)
    parsed = model.parse_sample_options(dict(request.options))
    warn_if_emulated(str(parsed.get("precision", "fp32")), target, "sampling")
    shape = (n, *(int(s) for s in model.image_shape))
    if kind == "grid" and n * shape[1] * shape[2] * shape[3] > MAX_GRID_BYTES:
        raise UsageError(f"-n {n:,} images of {shape[1]}x{shape[2]}x{shape[3]} make a grid over the limit of "
                         f"{MAX_GRID_BYTES // 2**30} GiB (held in memory at once); write a folder or an .npz "
                         "--output, which are streamed")
    if batch_size is None:
        batch_size = accel.sample_batch_size(model, n, parsed)
    else:  # the images do not depend on the batch: lowering it is safe, refusing would only annoy
        cap = accel.sample_batch_cap(model, parsed, batch_size)
        if batch_size > cap:  # the warning names the number asked for, not its cut to -n
            batch_size = lower_to_cap(int(request.batch_size or 0), cap)
    compile_seconds = None
    if request.compile:  # before the clock starts: the compile is reported apart
        compile_seconds = accel.compile_for_inference(model, {batch_size, n % batch_size or batch_size}, parsed)
    start = time.perf_counter()
    tasks = reporter.tasks() if reporter is not None else contextlib.nullcontext()
    with tasks as bars:
        done = 0

        def progress(k: int) -> None:
            nonlocal done
            done += k
            if bars is not None:
                bars("sampling", done, n)

        options = {"seed": request.seed, "batch_size": batch_size, "options": parsed, "progress": progress}
        if kind == "grid":
            write_grid(generate(model, n, **options), out_path, nrow=request.nrow)
        else:
            batches = generate_batches(model, n, **options)
            if kind == "npz":
                stream_npz(batches, out_path, shape)
            else:
                stream_folder(batches, out_path)
    seconds = time.perf_counter() - start
    accel.release_compiled(model)
    return SampleResult(path=out_path, kind=kind, num=n, seed=request.seed, model=meta["model"], step=meta["step"],
                        options=parsed, shape=list(shape), seconds=seconds, source=str(request.source),
                        batch_size=batch_size, compiled=request.compile, compile_seconds=compile_seconds)


def _check_request(request: SampleRequest) -> tuple[str, int | None]:
    """The output's kind and the batch size (capped at ``num``; `sample` caps it by memory once the
    model is loaded), or a UsageError naming the option."""
    from zoo.fileio import remove_dead_temp_files_of

    n, out_path, batch_size = request.num, Path(request.output), request.batch_size
    if batch_size is not None:
        batch_size = min(batch_size, n)  # a larger batch only costs memory: noise depends on (seed, index)
    kind = output_kind(request.output)
    if kind == "grid" and n > MAX_GRID_IMAGES:
        raise UsageError(f"-n {n:,} is over the limit of {MAX_GRID_IMAGES:,} images for a .png grid (held in memory "
                         "at once); write a folder or an .npz --output, which are streamed")
    if not request.force and (out_path.is_file() or (out_path.is_dir() and any(out_path.iterdir()))):
        raise UsageError(f"{out_path} already exists; pass --force to overwrite it or choose another --output")
    if kind != "folder" and out_path.is_dir():
        raise UsageError(f"{out_path} is a folder; a {kind} output needs a file name")
    check_output_folder(out_path)
    if kind == "folder" and request.force and out_path.is_dir():
        _clear_previous_samples(out_path)
    if kind == "npz":  # the temp file a killed `zoo sample -o` of this name left behind
        remove_dead_temp_files_of(out_path)
    return kind, batch_size


def _clear_previous_samples(folder: Path) -> None:
    """``--force`` into a folder: only one that `zoo sample` wrote (``000000.png`` onwards, no
    gap) is replaced, and all its old images go, so the folder never mixes two runs' samples (a scorer
    would read them as one model). Anything else in it is a UsageError, and nothing is removed."""
    ours = re.compile(r"\.?\d{6}\.png(\.tmp)?")
    others = sorted(p.name for p in folder.iterdir() if not (p.is_file() and ours.fullmatch(p.name)))
    images = sorted(p.name for p in folder.iterdir() if p.name.endswith(".png") and not p.name.startswith("."))
    if not others and images != [f"{i:06d}.png" for i in range(len(images))]:  # ours run 000000.png on, unbroken
        others = [name for i, name in enumerate(images) if name != f"{i:06d}.png"][:1]
    if others:
        raise UsageError(f"{folder} holds files zoo sample did not write ({', '.join(others[:3])}"
                         f"{', ...' if len(others) > 3 else ''}); --force replaces only an earlier zoo sample "
                         "folder: choose an empty or new folder")
    for path in folder.iterdir():
        path.unlink()
