"""``zoo export``: write a trained model's deployable network (ONNX or TorchScript) and its model.json."""

from __future__ import annotations

from pathlib import Path

import click

from zoo.cli.app import cli, echo_json, stdout
from zoo.cli.options import AliasedOption, output_option


@cli.command("export")
@click.argument("source", metavar="RUN_DIR|CHECKPOINT", type=click.Path(exists=True, path_type=Path))
@click.option("--to", "--format", "fmt", cls=AliasedOption, hidden_aliases=("--format",),
              type=click.Choice(["onnx", "torchscript"]), default="onnx", show_default=True,
              help="onnx: model.onnx for ONNX Runtime; torchscript: a traced model.pt for LibTorch.")
@output_option("Folder to write (empty or new; its parent must exist).", type=click.Path(path_type=Path),
               required=True)
@click.option("--quantize", type=click.Choice(["none", "int8"]), default="none", show_default=True,
              help="int8: ONNX Runtime dynamic quantisation (int8 weights); onnx only. Measure it with zoo eval OUT.")
@click.option("--opset", type=click.IntRange(min=13), default=17, show_default=True, help="ONNX opset version.")
@click.option("--force", is_flag=True, help="Overwrite the files in a non-empty --output folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the model.json written, for machines.")
def export_command(source: Path, fmt: str, output: Path, quantize: str, opset: int, force: bool, as_json: bool) -> None:
    """Export the generator (GANs, VAEs) or denoiser (DDPM, flow) of a trained run for deployment.

    Writes the network, model.json (input/output shapes, value ranges, the noise it expects, the
    sampler's constants, the model's config and genzoo version) and sample.py, a reference sampling
    loop that needs only NumPy and ONNX Runtime. `zoo eval OUT` scores the export under the same
    protocol as the run, with its size on disk and sampling throughput.
    """
    from zoo.export import export_run
    from zoo.outputs import check_output_folder

    out = check_output_folder(output)
    meta = export_run(source, out, fmt=fmt, quantize=quantize, opset=opset, overwrite=force)
    if as_json:
        echo_json(meta)
        return
    size = meta["size_bytes"] / 1e6
    q = f", {meta['quantize']}" if meta["quantize"] != "none" else ""
    stdout.print(f"{meta['model']} ({meta['kind']}, {meta['format']}{q}, {size:.2f} MB) -> {out}", highlight=False, markup=False)
