"""``zoo sample``: draw images from a trained run or checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from zoo.cli.app import announce, cli, echo_json, stderr, stdout
from zoo.cli.options import device_option

#: A .png grid holds all its images in memory at once: at most this many, and this many bytes of pixels.
MAX_GRID_IMAGES = 4096
MAX_GRID_BYTES = 2**30
#: The most images one sampling batch may hold (``--batch-size 1000000`` peaked at 5.2 GB).
MAX_SAMPLE_BATCH = 4096


@cli.command("sample")
@click.argument("source", metavar="RUN_DIR|CHECKPOINT", type=click.Path())
@click.option("-n", "--num", "n", type=click.IntRange(min=1), default=64, show_default=True, help="Number of images.")
@click.option("--out", "out", type=click.Path(), default="samples.png", show_default=True,
              help="A .png grid, an .npz array (key 'images'), or a folder for one PNG per image.")
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=0, show_default=True)
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Sampling option, e.g. steps=50 (see zoo list --json).")
@click.option("--nrow", type=click.IntRange(min=1), help="Images per grid row (default: square).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Images per batch (default: the fastest of 32-256, measured once per model and device, cached).")
@click.option("--compile", "compile_networks", is_flag=True,
              help="torch.compile the sampling networks first (inductor, frozen weights): minutes of compile on a "
                   "CPU that pay off for long jobs; the compile time is reported apart.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written (path, count, model, step, options, seconds) as JSON.")
@device_option
def sample_command(source, n, out, seed, options, nrow, batch_size, force, as_json, device, compile_networks) -> None:
    """Sample images from a run directory or checkpoint file.

    The same seed gives the same images for any --batch-size (--compile rounds differently). An existing --out is never
    overwritten without --force. A folder or .npz --out is written batch by batch as the images
    are made (memory holds one batch, any -n; a progress bar on a terminal), and an interrupted
    run leaves no half file under a final name; a .png grid holds every image at once, so it is
    refused up front above 4,096 images or 1 GiB of pixels (write a folder or .npz instead).
    """
    announce(f"sampling {n} image{'s' if n != 1 else ''} from {source}: loading torch...")
    import time

    from zoo import accel
    from zoo.checkpoint import load_model
    from zoo.cli.progress import task_bars
    from zoo.config import parse_assignments
    from zoo.device import resolve_device, warn_if_emulated
    from zoo.errors import UsageError
    from zoo.fileio import remove_dead_temp_files_of
    from zoo.sampling import generate, generate_batches, stream_folder, stream_npz, write_grid

    out_path = Path(out)
    if batch_size is not None and batch_size > MAX_SAMPLE_BATCH:
        raise UsageError(f"--batch-size {batch_size:,} is over the limit of {MAX_SAMPLE_BATCH:,} images per batch "
                         "(a batch's activations are held at once; the images do not depend on it)")
    if batch_size is not None:
        batch_size = min(batch_size, n)  # a larger batch only costs memory: noise depends on (seed, index)
    kind = "grid" if out_path.suffix.lower() == ".png" else "npz" if out_path.suffix.lower() == ".npz" else "folder"
    if kind == "grid" and n > MAX_GRID_IMAGES:
        raise UsageError(f"-n {n:,} is over the limit of {MAX_GRID_IMAGES:,} images for a .png grid (held in memory "
                         "at once); write a folder or an .npz --out, which are streamed")
    if not force and (out_path.is_file() or (out_path.is_dir() and any(out_path.iterdir()))):
        raise UsageError(f"{out_path} already exists; pass --force to overwrite it or choose another --out")
    if kind != "folder" and out_path.is_dir():
        raise UsageError(f"{out_path} is a folder; a {kind} output needs a file name")
    if kind == "npz":  # the temp file a killed `zoo sample --out` of this name left behind
        remove_dead_temp_files_of(out_path)
    target = resolve_device(device)
    model, meta = load_model(source, map_location=target)
    parsed = model.parse_sample_options(parse_assignments(options, "--option"))
    warn_if_emulated(str(parsed.get("precision", "fp32")), target, "sampling")
    shape = (n, *(int(s) for s in model.image_shape))
    if kind == "grid" and n * shape[1] * shape[2] * shape[3] > MAX_GRID_BYTES:
        raise UsageError(f"-n {n:,} images of {shape[1]}x{shape[2]}x{shape[3]} make a grid over the limit of "
                         f"{MAX_GRID_BYTES // 2**30} GiB (held in memory at once); write a folder or an .npz --out, "
                         "which are streamed")
    if batch_size is None:
        batch_size = accel.sample_batch_size(model, n, parsed)
    compile_seconds = None
    if compile_networks:  # before the clock starts: the compile is reported apart
        compile_seconds = accel.compile_for_inference(model, {batch_size, n % batch_size or batch_size}, parsed)
    start = time.perf_counter()
    with task_bars(stderr.is_terminal) as bars:
        done = 0

        def progress(k: int) -> None:
            nonlocal done
            done += k
            if bars is not None:
                bars("sampling", done, n)

        if kind == "grid":
            write_grid(generate(model, n, seed=seed, batch_size=batch_size, options=parsed, progress=progress),
                       out_path, nrow=nrow)
        else:
            batches = generate_batches(model, n, seed=seed, batch_size=batch_size, options=parsed, progress=progress)
            if kind == "npz":
                stream_npz(batches, out_path, shape)
            else:
                stream_folder(batches, out_path)
    seconds = time.perf_counter() - start
    accel.release_compiled(model)
    if as_json:
        echo_json({"path": str(out_path), "kind": kind, "num": n, "seed": seed, "model": meta["model"],
                   "step": meta["step"], "options": parsed, "shape": list(shape), "seconds": seconds,
                   "images_per_s": n / seconds if seconds > 0 else None, "source": str(source),
                   "batch_size": batch_size, "compiled": compile_networks, "compile_seconds": compile_seconds})
        return
    opts = ", ".join(f"{k}={'auto' if v is None else v}" for k, v in parsed.items())  # None: the model's default
    stdout.print(f"{n} samples from {meta['model']} (step {meta['step']}{', ' + opts if opts else ''}) -> {out_path}",
                 highlight=False, markup=False)
    if compile_seconds is not None:
        stdout.print(f"compiled in {compile_seconds:.0f} s, then sampled {n / seconds:.3g} images/s", highlight=False)
