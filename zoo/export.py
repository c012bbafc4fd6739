"""Export a trained model for deployment: ONNX or TorchScript, optionally int8, with a ``model.json``.

What is exported is what a user deploys:

* GANs and VAEs (``kind = "generator"``): the noise-to-image network, ``image = net(z)`` with
  ``z ~ N(0, I)`` of shape ``n x latent_dim`` and images ``n x C x H x W`` in ``[-1, 1]``;
* DDPM, flow matching and EDM (``kind = "denoiser"``): the network called at every sampling step, plus
  what its sampler needs (DDPM's ``alpha_bar`` table; the flow's solvers; EDM's noise levels) in
  ``model.json`` and a small reference sampling loop, ``sample.py`` (`zoo.export_sampler`), that runs on ONNX
  Runtime and NumPy without genzoo.

A model opts in by overriding `zoo.GenerativeModel.export_spec` to return an ``ExportSpec``
(built with `generator_spec` or `denoiser_spec`, or by hand for other kinds of
network); a model whose ``export_spec`` returns ``None`` (the default) cannot be exported and
`export_model` says so in one line. The batch dimension of every input and
output is dynamic (``n``); the image size is fixed at the model's.

``quantize="int8"`` applies ONNX Runtime's dynamic quantisation (``quantize_dynamic``: int8
weights, activations quantised per call from their observed range) to the exported ONNX graph;
``zoo eval EXPORT_DIR`` measures what it costs in FID next to the fp32 export (docs/export.md).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.errors import SampleError, UsageError
from zoo.fileio import parse_json
from zoo.model import GenerativeModel
from zoo.text import one_line

__all__ = [
    "EXPORT_FORMATS",
    "META_FILE",
    "QUANTIZATIONS",
    "ExportSpec",
    "ImageHead",
    "denoiser_spec",
    "export_model",
    "export_run",
    "generate_from_export",
    "generator_spec",
    "is_export_dir",
    "load_export",
]

EXPORT_FORMATS = ("onnx", "torchscript")
QUANTIZATIONS = ("none", "int8")
META_FILE = "model.json"
SAMPLER_FILE = "sample.py"
#: Version of the ``model.json`` layout; bump on an incompatible change.
EXPORT_SCHEMA = 1
#: ONNX opset: 17 has every operator these networks use (LayerNorm-free; GroupNorm decomposes).
DEFAULT_OPSET = 17


@dataclass
class ExportSpec:
    """What to export from a model and how to describe it.

    ``module`` is traced with ``example_inputs`` (batch first; the batch size is made dynamic).
    ``inputs`` and ``outputs`` describe each tensor for ``model.json``: ``name``, ``shape`` (with
    ``"n"`` for the batch), ``dtype``, and a ``description`` of its values and range. ``kind`` is
    ``"generator"`` (one call from noise to image) or ``"denoiser"`` (called by a sampling loop,
    described by ``sampler``; see `zoo.export_sampler`).
    """

    kind: str
    module: nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    noise: str
    sampler: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ImageHead(nn.Module):
    """Wraps a network so its output is one image tensor in ``[-1, 1]``: takes element ``index``
    of a tuple output (a VAE decoder's ``(location, log_scale)``) and clamps."""

    def __init__(self, net: nn.Module, index: int | None = None):
        super().__init__()
        self.net, self.index = net, index

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = self.net(*inputs)
        if self.index is not None:
            out = out[self.index]
        return out.float().clamp(-1.0, 1.0)


def generator_spec(model: GenerativeModel, module: nn.Module, latent_dim: int, *, index: int | None = None,
                   noise: str = "standard normal N(0, I)") -> ExportSpec:
    """Spec of a noise-to-image network ``module`` (``n x latent_dim`` -> ``n x C x H x W``).

    ``index`` picks one element of a tuple output; the output is clamped to ``[-1, 1]``.
    """
    c, h, w = model.image_shape
    return ExportSpec(
        kind="generator",
        module=ImageHead(module, index),
        example_inputs=(torch.zeros(2, latent_dim, device=model.device),),
        inputs=[{"name": "z", "shape": ["n", latent_dim], "dtype": "float32",
                 "description": f"latent code, {noise}, one row per image"}],
        outputs=[{"name": "image", "shape": ["n", c, h, w], "dtype": "float32",
                  "description": "image in [-1, 1] (pixel = round((x + 1) * 127.5))", "range": [-1.0, 1.0]}],
        noise=f"z: {noise}, shape n x {latent_dim}",
    )


def denoiser_spec(model: GenerativeModel, module: nn.Module, *, time_input: tuple[str, str, str], output: str,
                  sampler: dict[str, Any]) -> ExportSpec:
    """Spec of a network ``module(x, t)`` called by a sampling loop (DDPM's U-Net, a velocity field,
    EDM's denoiser).

    ``time_input`` is ``(name, dtype, description)`` of the per-image time (``"int64"`` or
    ``"float32"``); ``output`` describes what the network predicts; ``sampler`` is stored in
    ``model.json`` for the reference loop (``type`` ``"ddim"``, ``"flow"`` or ``"edm"`` and its
    constants).
    """
    c, h, w = model.image_shape
    t_name, t_dtype, t_desc = time_input
    t_example = torch.zeros(2, dtype=torch.long if t_dtype == "int64" else torch.float32, device=model.device)
    if t_dtype != "int64":
        t_example += 0.5
    return ExportSpec(
        kind="denoiser",
        module=module,
        example_inputs=(torch.zeros(2, c, h, w, device=model.device), t_example),
        inputs=[
            {"name": "x", "shape": ["n", c, h, w], "dtype": "float32", "description": "noisy image x_t"},
            {"name": t_name, "shape": ["n"], "dtype": t_dtype, "description": t_desc},
        ],
        outputs=[{"name": "out", "shape": ["n", c, h, w], "dtype": "float32", "description": output}],
        noise=f"x at the start of sampling: standard normal N(0, I), shape n x {c} x {h} x {w}",
        sampler=sampler,
    )


def _spec_of(model: GenerativeModel) -> ExportSpec:
    spec = model.export_spec()
    if spec is None:
        raise UsageError(f"model {model.name!r} does not support export (its export_spec() returns None; see zoo.export)")
    if not isinstance(spec, ExportSpec):
        raise UsageError(f"{model.name}.export_spec() returned {type(spec).__name__}, not a zoo.export.ExportSpec")
    return spec


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _export_onnx(spec: ExportSpec, path: Path, opset: int) -> None:
    try:
        import onnx  # noqa: F401  (the legacy exporter needs it to write the file)
    except ImportError:
        raise UsageError("ONNX export needs the onnx package: pip install 'genzoo[export]'") from None
    names_in = [i["name"] for i in spec.inputs]
    names_out = [o["name"] for o in spec.outputs]
    axes = {name: {0: "n"} for name in names_in + names_out}
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of the torch.export one, which
        # needs onnxscript; it is stable for these convolutional networks and has no extra dependency.
        warnings.simplefilter("ignore")
        torch.onnx.export(spec.module, spec.example_inputs, str(path), input_names=names_in, output_names=names_out,
                          dynamic_axes=axes, opset_version=opset, dynamo=False)


def _export_torchscript(spec: ExportSpec, path: Path) -> None:
    with warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.export, but a traced .pt is still what
        # LibTorch (C++) deployments load; the trace of these fixed-size networks is exact.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(spec.module, spec.example_inputs, check_trace=False)
    traced.save(str(path))


def _quantize_int8(src: Path, dst: Path) -> None:
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise UsageError("--quantize int8 needs onnxruntime: pip install 'genzoo[export]'") from None
    pre = dst.with_suffix(".pre.onnx")
    try:
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        # Dynamic quantisation: int8 weights, activations scaled per call. QUInt8 activations with
        # QInt8 weights is ONNX Runtime's recommended CPU combination (ConvInteger/MatMulInteger).
        quantize_dynamic(str(pre), str(dst), weight_type=QuantType.QInt8)
    finally:
        pre.unlink(missing_ok=True)


def _check_finite(model: GenerativeModel, spec: ExportSpec) -> None:
    """Refuse a network whose weights, or whose output on seeded noise, are not finite: an export
    of a NaN checkpoint would be scored as black images (``to_uint8`` maps NaN to -1)."""
    for name, tensor in spec.module.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise SampleError(f"{model.name}: {name} holds non-finite values (NaN or inf); not exporting it")
    generator = torch.Generator().manual_seed(0)
    # Noise for the first input (latent or image); the others (a time, a noise level) keep their
    # example values, which lie in their domain (EDM's log(sigma) is NaN for a negative draw).
    first, *rest = spec.example_inputs
    probe = (torch.randn(first.shape, generator=generator).to(first.device), *rest)
    out = spec.module(*probe)
    out = out[0] if isinstance(out, (tuple, list)) else out
    if not isinstance(out, torch.Tensor) or not bool(torch.isfinite(out).all()):
        raise SampleError(f"{model.name}: the network's output on seeded noise is not finite (NaN or inf); "
                          "not exporting it")


def export_model(model: GenerativeModel, out_dir: str | Path, *, fmt: str = "onnx", quantize: str = "none",
                 opset: int = DEFAULT_OPSET, info: dict[str, Any] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Export ``model`` into ``out_dir``; returns the ``model.json`` written beside the network.

    ``fmt`` is ``"onnx"`` (``model.onnx``) or ``"torchscript"`` (``model.pt``, traced);
    ``quantize="int8"`` (ONNX only) stores ONNX Runtime's dynamically quantised graph instead.
    ``info`` (the run's dataset, step, ...) is recorded in ``model.json``. The folder must be empty
    or absent unless ``overwrite``. Raises [`UsageError`][zoo.errors.UsageError] for a model without
    ``export_spec`` (it returns ``None``), an unknown format or quantisation, or a non-empty folder, and
    [`SampleError`][zoo.errors.SampleError] (nothing written) when the network's weights or its output on
    seeded noise are not finite.
    """
    import zoo

    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format {fmt!r} (available: {', '.join(EXPORT_FORMATS)})")
    if quantize not in QUANTIZATIONS:
        raise UsageError(f"unknown quantisation {quantize!r} (available: {', '.join(QUANTIZATIONS)})")
    if quantize != "none" and fmt != "onnx":
        raise UsageError("--quantize int8 applies to --to onnx only")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"{out} is not empty (pass --force to overwrite)")
    spec = _spec_of(model)
    was_training = model.training
    model.eval()
    spec.module.eval()
    file = "model.onnx" if fmt == "onnx" else "model.pt"
    try:
        with torch.no_grad():
            _check_finite(model, spec)  # before the folder is made: a refusal writes nothing
            out.mkdir(parents=True, exist_ok=True)
            if fmt == "onnx":
                if quantize == "int8":
                    with tempfile.TemporaryDirectory() as tmp:
                        fp32 = Path(tmp) / "fp32.onnx"
                        _export_onnx(spec, fp32, opset)
                        _quantize_int8(fp32, out / file)
                else:
                    _export_onnx(spec, out / file, opset)
            else:
                _export_torchscript(spec, out / file)
    finally:
        model.train(was_training)
    config = model.config.to_dict() if hasattr(model.config, "to_dict") else vars(model.config)
    meta: dict[str, Any] = {
        "genzoo_export": EXPORT_SCHEMA,
        "genzoo_version": zoo.__version__,
        "torch_version": torch.__version__,
        "model": model.name,
        "family": model.family,
        "paper": model.paper,
        "kind": spec.kind,
        "format": fmt,
        "opset": opset if fmt == "onnx" else None,
        "quantize": quantize,
        "file": file,
        "size_bytes": (out / file).stat().st_size,
        "image_shape": list(model.image_shape),
        "inputs": spec.inputs,
        "outputs": spec.outputs,
        "value_range": [-1.0, 1.0],
        "noise": spec.noise,
        "sampler": spec.sampler,
        "reference_sampler": SAMPLER_FILE,
        "config": _jsonable(config),
        **_jsonable(spec.extra),
        **_jsonable(info or {}),
    }
    shutil.copyfile(Path(__file__).with_name("export_sampler.py"), out / SAMPLER_FILE)
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def export_run(source: str | Path, out_dir: str | Path, *, fmt: str = "onnx", quantize: str = "none",
               opset: int = DEFAULT_OPSET, overwrite: bool = False) -> dict[str, Any]:
    """Export the latest checkpoint of a run directory (or a checkpoint file); see `export_model`."""
    from zoo.checkpoint import load_model

    run = Path(source).resolve()
    run = run if run.is_dir() else run.parent
    target = Path(out_dir).resolve()
    if target == run or run in target.parents:
        # --force would overwrite the run's own files (or its checkpoints' folder)
        raise UsageError(f"the export folder {out_dir} is the run {source} or inside it; export to a folder of its own")
    model, meta = load_model(source, map_location="cpu")
    info = {"source": {"path": str(source), "checkpoint": meta.get("path"), "step": meta.get("step")},
            "dataset": meta.get("dataset")}
    return export_model(model, out_dir, fmt=fmt, quantize=quantize, opset=opset, info=info, overwrite=overwrite)


def is_export_dir(path: str | Path) -> bool:
    """Whether ``path`` is a folder written by `export_model` (it holds a genzoo ``model.json``)."""
    meta = Path(path) / META_FILE
    if not meta.is_file():
        return False
    try:
        return "genzoo_export" in parse_json(meta.read_text())
    except (OSError, ValueError):  # unreadable, not JSON, or nested too deeply
        return False


def load_export(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """``(runner, meta)`` of an export folder: ``runner(inputs) -> ndarray`` is one network call on
    ONNX Runtime (or TorchScript), ``meta`` its ``model.json``."""
    from zoo import export_sampler
    from zoo.export_check import check_export

    if not is_export_dir(path):
        raise UsageError(f"{path} is not a genzoo export folder (no {META_FILE} written by zoo export)")
    meta = parse_json((Path(path) / META_FILE).read_text())
    network = check_export(path, meta)  # schema, files inside the folder, ONNX inputs: one line each
    try:
        if meta["format"] == "onnx":
            return export_sampler.onnx_runner(network), meta
        return export_sampler.torchscript_runner(network), meta
    except ImportError as exc:
        raise UsageError(f"running an export needs {exc.name}: pip install 'genzoo[export]'") from None
    except Exception as exc:  # the runtime refused the file: corrupt or not what model.json says
        raise UsageError(f"{path}: the runtime cannot load {meta['file']} ({one_line(exc, limit=200)})") from None


def _call(path: str | Path, sample: Any) -> Any:
    """Run one sampling call of an export; the runtime's own error becomes one line."""
    try:
        return sample()
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise SampleError(f"{path}: the exported network failed on the inputs model.json describes "
                          f"({one_line(exc, limit=200)})") from None


def generate_from_export(path: str | Path, n: int, *, seed: int = 0, batch_size: int = 256,
                         options: dict[str, Any] | None = None, progress: Any = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """``n`` images (``uint8 n x C x H x W``) sampled from an export, and what it cost.

    Image ``i`` starts from the noise [`zoo.sampling.generate`][zoo.sampling.generate] gives image ``i`` of the same
    seed (CPU generators), so an export is scored on the same draws as the model it came from.
    Returns ``(images, info)`` with ``info`` = ``{"meta", "options", "nfe", "images_per_s",
    "size_bytes"}``; the throughput covers the network calls and the sampling loop, not the noise.
    """
    import numpy as np

    from zoo import export_sampler
    from zoo.randomness import ImageGenerators, randn

    if n < 1:
        raise UsageError(f"number of samples must be >= 1, got {n}")
    if batch_size < 1:
        raise UsageError(f"batch size must be >= 1, got {batch_size}")
    run, meta = load_export(path)
    try:
        opts = export_sampler.sampling_options(meta, options)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    shape = export_sampler.noise_shape(meta, 1)[1:]
    out, seconds, done = [], 0.0, 0
    _call(path, lambda: export_sampler.sample(run, meta, np.zeros((1, *shape), np.float32), opts))  # warm-up
    while done < n:
        k = min(batch_size, n - done)
        noise = randn(k, *shape, generator=ImageGenerators.for_range(seed, done, k, device="cpu")).numpy()
        start = time.perf_counter()
        images = _call(path, lambda: export_sampler.sample(run, meta, noise, opts))  # noqa: B023 - called at once
        seconds += time.perf_counter() - start
        finite = np.isfinite(images)
        if not finite.all():  # to_uint8 would make them black images, scored without a word
            raise SampleError(f"{path}: the exported network returned {int((~finite).sum()):,} non-finite values "
                              f"(NaN or inf) of {images.size:,} for images {done}-{done + k - 1}")
        out.append(torch.from_numpy(export_sampler.to_uint8(images)))
        done += k
        if progress is not None:
            progress(k)
    info = {"meta": meta, "options": opts, "nfe": export_sampler.network_evaluations(meta, opts),
            "images_per_s": n / seconds if seconds > 0 else float("inf"),
            "size_bytes": (Path(path) / meta["file"]).stat().st_size}
    return torch.cat(out), info
