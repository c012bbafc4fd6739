"""``zoo sample``: draw images from a trained run or checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from zoo.cli.app import cli, stdout
from zoo.cli.options import device_option


@cli.command("sample")
@click.argument("source", metavar="RUN_DIR|CHECKPOINT", type=click.Path())
@click.option("-n", "--num", "n", type=click.IntRange(min=1), default=64, show_default=True, help="Number of images.")
@click.option("--out", "out", type=click.Path(), default="samples.png", show_default=True,
              help="A .png grid, an .npz array (key 'images'), or a folder for one PNG per image.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Sampling option, e.g. steps=50 (see zoo list --json).")
@click.option("--nrow", type=click.IntRange(min=1), help="Images per grid row (default: square).")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@device_option
def sample_command(source, n, out, seed, options, nrow, batch_size, device) -> None:
    """Sample images from a run directory or checkpoint file."""
    import numpy as np

    from zoo.checkpoint import load_model
    from zoo.config import parse_assignments
    from zoo.device import resolve_device
    from zoo.fileio import atomic_write
    from zoo.sampling import generate, write_folder, write_grid

    target = resolve_device(device)
    model, meta = load_model(source, map_location=target)
    parsed = model.parse_sample_options(parse_assignments(options, "--option"))
    images = generate(model, n, seed=seed, batch_size=batch_size, options=parsed)
    out_path = Path(out)
    if out_path.suffix.lower() == ".png":
        write_grid(images, out_path, nrow=nrow)
    elif out_path.suffix.lower() == ".npz":
        atomic_write(out_path, lambda f: np.savez_compressed(f, images=images.numpy()))
    else:
        write_folder(images, out_path)
    opts = ", ".join(f"{k}={v}" for k, v in parsed.items())
    stdout.print(f"{n} samples from {meta['model']} (step {meta['step']}{', ' + opts if opts else ''}) -> {out_path}")

