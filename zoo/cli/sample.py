"""``zoo sample``: parse the options, call `zoo.api.sample`, print what it wrote."""

from __future__ import annotations

import click

from zoo.cli.app import announce, cli, echo_json, stdout
from zoo.cli.options import device_option, output_option


@cli.command("sample")
@click.argument("source", metavar="RUN_DIR|CHECKPOINT", type=click.Path())
@click.option("-n", "--num", "n", type=click.IntRange(min=1), default=64, show_default=True, help="Number of images.")
@output_option("A .png grid, an .npz array (key 'images'), or a folder (no suffix, or ending in /) for one PNG "
               "per image.", type=click.Path(), default="samples.png", show_default=True)
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=0, show_default=True)
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Sampling option, e.g. steps=50 (see zoo list --json).")
@click.option("--nrow", type=click.IntRange(min=1), help="Images per grid row (default: square).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Images per batch (default: the fastest of 32-256, measured once per model and device, cached). "
                   "A batch over what fits in half the free memory (measured, at most 4,096) is lowered to it, "
                   "with one warning: the images do not depend on the batch.")
@click.option("--compile", "compile_networks", is_flag=True,
              help="torch.compile the sampling networks first (inductor, frozen weights): minutes of compile on a "
                   "CPU that pay off for long jobs; the compile time is reported apart.")
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written (path, count, model, step, options, seconds) as JSON.")
@device_option
def sample_command(source, n, output, seed, options, nrow, batch_size, force, as_json, device, compile_networks) -> None:
    """Sample images from a run directory or checkpoint file.

    The same seed gives the same images for any --batch-size (--compile rounds differently). An existing --output is
    never overwritten without --force. A folder or .npz --output is written batch by batch as the images
    are made (memory holds one batch, any -n; a progress bar on a terminal), and an interrupted
    run leaves no half file under a final name; a .png grid holds every image at once, so it is
    refused up front above 4,096 images or 1 GiB of pixels (write a folder or .npz instead).
    """
    announce(f"sampling {n} image{'s' if n != 1 else ''} from {source}: loading torch...")
    from zoo import api
    from zoo.cli.progress import progress_mode, verb_reporter
    from zoo.config import parse_assignments

    request = api.SampleRequest(source=source, num=n, output=output, seed=seed, nrow=nrow, batch_size=batch_size,
                                compile=compile_networks, force=force, device=device,
                                options=parse_assignments(options, "--option"))
    result = api.sample(request, reporter=verb_reporter(progress_mode(None)))
    if as_json:
        echo_json(result.to_dict())
        return
    opts = ", ".join(f"{k}={'auto' if v is None else v}" for k, v in result.options.items())  # None: the default
    stdout.print(f"{n} samples from {result.model} (step {result.step}{', ' + opts if opts else ''}) -> {result.path}",
                 highlight=False, markup=False)
    if result.compile_seconds is not None:
        stdout.print(f"compiled in {result.compile_seconds:.0f} s, then sampled {result.images_per_s:.3g} images/s",
                     highlight=False)
