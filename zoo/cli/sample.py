"""``zoo sample``: draw images from a trained run or checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from zoo.cli.app import cli, echo_json, stdout
from zoo.cli.options import device_option


@cli.command("sample")
@click.argument("source", metavar="RUN_DIR|CHECKPOINT", type=click.Path())
@click.option("-n", "--num", "n", type=click.IntRange(min=1), default=64, show_default=True, help="Number of images.")
@click.option("--out", "out", type=click.Path(), default="samples.png", show_default=True,
              help="A .png grid, an .npz array (key 'images'), or a folder for one PNG per image.")
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=0, show_default=True)
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Sampling option, e.g. steps=50 (see zoo list --json).")
@click.option("--nrow", type=click.IntRange(min=1), help="Images per grid row (default: square).")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written (path, count, model, step, options, seconds) as JSON.")
@device_option
def sample_command(source, n, out, seed, options, nrow, batch_size, force, as_json, device) -> None:
    """Sample images from a run directory or checkpoint file.

    The same seed gives the same images for any --batch-size. An existing --out is never
    overwritten without --force.
    """
    import time

    import numpy as np

    from zoo.checkpoint import load_model
    from zoo.config import parse_assignments
    from zoo.device import resolve_device
    from zoo.errors import UsageError
    from zoo.fileio import atomic_write
    from zoo.sampling import generate, write_folder, write_grid

    out_path = Path(out)
    kind = "grid" if out_path.suffix.lower() == ".png" else "npz" if out_path.suffix.lower() == ".npz" else "folder"
    if not force and (out_path.is_file() or (out_path.is_dir() and any(out_path.iterdir()))):
        raise UsageError(f"{out_path} already exists; pass --force to overwrite it or choose another --out")
    if kind != "folder" and out_path.is_dir():
        raise UsageError(f"{out_path} is a folder; a {kind} output needs a file name")
    target = resolve_device(device)
    model, meta = load_model(source, map_location=target)
    parsed = model.parse_sample_options(parse_assignments(options, "--option"))
    start = time.perf_counter()
    images = generate(model, n, seed=seed, batch_size=batch_size, options=parsed)
    seconds = time.perf_counter() - start
    if kind == "grid":
        write_grid(images, out_path, nrow=nrow)
    elif kind == "npz":
        atomic_write(out_path, lambda f: np.savez_compressed(f, images=images.numpy()))
    else:
        write_folder(images, out_path)
    if as_json:
        echo_json({"path": str(out_path), "kind": kind, "num": n, "seed": seed, "model": meta["model"],
                   "step": meta["step"], "options": parsed, "shape": list(images.shape), "seconds": seconds,
                   "images_per_s": n / seconds if seconds > 0 else None, "source": str(source)})
        return
    opts = ", ".join(f"{k}={v}" for k, v in parsed.items())
    stdout.print(f"{n} samples from {meta['model']} (step {meta['step']}{', ' + opts if opts else ''}) -> {out_path}",
                 highlight=False, markup=False)
