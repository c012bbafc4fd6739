"""Checks of an export folder before anything in it is run: ``model.json`` against a JSON schema,
the network file and every ONNX external-data file inside the folder (no symlink out of it, no
special file), and the ONNX graph's inputs against what ``model.json`` describes.

Each fault is one [`UsageError`][zoo.errors.UsageError] line naming the file and the field; a tampered
folder never reaches ONNX Runtime, TorchScript or NumPy with values it would fail on raw.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from zoo.errors import UsageError

#: Largest image side, latent width and DDPM table an export may declare (genzoo's own limits).
MAX_SIDE = 4096
MAX_LATENT = 65_536
MAX_TIMESTEPS = 100_000

_DIM = {"type": "integer", "minimum": 1, "maximum": MAX_SIDE}
_NAME = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$"}
_INPUT = {
    "type": "object",
    "required": ["name", "shape", "dtype"],
    "properties": {"name": _NAME, "dtype": {"enum": ["float32", "int64"]},
                   "shape": {"type": "array", "minItems": 1, "maxItems": 4, "prefixItems": [{"const": "n"}]}},
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["genzoo_export", "kind", "format", "file", "image_shape", "inputs"],
    "properties": {
        "genzoo_export": {"const": 1},
        "kind": {"enum": ["generator", "denoiser"]},
        "format": {"enum": ["onnx", "torchscript"]},
        "quantize": {"enum": ["none", "int8"]},
        # A plain file name in the folder: no separators, not hidden, not "." or "..".
        "file": {"type": "string", "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"},
        "image_shape": {"type": "array", "prefixItems": [{"enum": [1, 3, 4]}, {**_DIM, "minimum": 4},
                                                         {**_DIM, "minimum": 4}], "minItems": 3, "maxItems": 3},
        "inputs": {"type": "array", "minItems": 1, "maxItems": 2, "items": _INPUT},
    },
    "allOf": [
        {"if": {"properties": {"kind": {"const": "generator"}}},
         "then": {"properties": {"inputs": {"maxItems": 1, "items": {"properties": {
             "dtype": {"const": "float32"},
             "shape": {"minItems": 2, "maxItems": 2,
                       "prefixItems": [{"const": "n"}, {"type": "integer", "minimum": 1, "maximum": MAX_LATENT}]},
         }}}}}},
        {"if": {"properties": {"kind": {"const": "denoiser"}}},
         "then": {"required": ["sampler"], "properties": {
             "inputs": {"minItems": 2, "prefixItems": [
                 {"properties": {"dtype": {"const": "float32"},
                                 "shape": {"minItems": 4, "prefixItems": [{"const": "n"}, _DIM, _DIM, _DIM]}}},
                 {"properties": {"shape": {"minItems": 1, "maxItems": 1}}}]},
             "sampler": {"type": "object", "required": ["type", "default_steps"],
                         "properties": {"type": {"enum": ["ddim", "flow", "edm"]}}, "allOf": [
                 {"if": {"properties": {"type": {"const": "ddim"}}}, "then": {
                     "required": ["alphas_cumprod"],
                     "properties": {"alphas_cumprod": {"type": "array", "minItems": 1, "maxItems": MAX_TIMESTEPS,
                                                       "items": {"type": "number", "exclusiveMinimum": 0,
                                                                 "maximum": 1}},
                                    "default_steps": {"type": "integer", "minimum": 1, "maximum": MAX_TIMESTEPS}}}},
                 {"if": {"properties": {"type": {"const": "flow"}}}, "then": {
                     "required": ["default_solver", "solvers"],
                     "properties": {"default_steps": {"type": "integer", "minimum": 1, "maximum": 10_000},
                                    "default_solver": {"enum": ["euler", "heun"]},
                                    "solvers": {"type": "array", "minItems": 1,
                                                "items": {"enum": ["euler", "heun"]}}}}},
                 {"if": {"properties": {"type": {"const": "edm"}}}, "then": {
                     "required": ["default_solver", "solvers", "sigma_min", "sigma_max", "rho"],
                     "properties": {"default_steps": {"type": "integer", "minimum": 1, "maximum": 10_000},
                                    "default_solver": {"enum": ["euler", "heun"]},
                                    "solvers": {"type": "array", "minItems": 1,
                                                "items": {"enum": ["euler", "heun"]}},
                                    "sigma_min": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e6},
                                    "sigma_max": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e6},
                                    "rho": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e3}}}},
             ]},
         }}},
    ],
}


def check_meta(meta: Any, where: str) -> None:
    """Validate a ``model.json`` object against `SCHEMA` and its cross-field rules."""
    try:
        import jsonschema
    except ImportError:
        raise UsageError("running an export needs jsonschema: pip install 'genzoo[export]'") from None
    validator = jsonschema.Draft202012Validator(SCHEMA)
    error = jsonschema.exceptions.best_match(validator.iter_errors(meta))
    if error is not None:
        field = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        message = error.message if len(error.message) <= 120 else error.message[:117] + "..."
        raise UsageError(f"{where}: invalid model.json at {field}: {message}")
    shape = list(meta["image_shape"])
    if meta["kind"] == "denoiser" and list(meta["inputs"][0]["shape"][1:]) != shape:
        raise UsageError(f"{where}: invalid model.json: inputs/0/shape {meta['inputs'][0]['shape'][1:]} is not "
                         f"the image shape {shape}")
    sampler = meta.get("sampler") or {}
    if sampler.get("type") == "ddim" and sampler["default_steps"] > len(sampler["alphas_cumprod"]):
        raise UsageError(f"{where}: invalid model.json: sampler/default_steps exceeds the {len(sampler['alphas_cumprod'])} "
                         "timesteps of alphas_cumprod")
    if sampler.get("type") == "edm" and not sampler["sigma_min"] < sampler["sigma_max"]:
        raise UsageError(f"{where}: invalid model.json: sampler/sigma_min is not below sampler/sigma_max")


def inside(folder: Path, relative: str, where: str, what: str) -> Path:
    """``folder / relative`` if it is a regular file inside ``folder`` once symlinks are resolved."""
    if not relative or os.path.isabs(relative):
        raise UsageError(f"{where}: {what} {relative!r} is not a path inside the export folder")
    root = folder.resolve()
    target = Path(os.path.realpath(folder / relative))
    if target != root and root not in target.parents:
        raise UsageError(f"{where}: {what} {relative!r} points outside the export folder")
    try:
        mode = target.stat().st_mode
    except OSError:
        raise UsageError(f"{where}: {what} {relative!r} does not exist") from None
    if not stat.S_ISREG(mode):
        raise UsageError(f"{where}: {what} {relative!r} is not a regular file")
    return target


def _tensors(graph: Any) -> Any:
    """Every TensorProto of an ONNX graph, subgraphs (If / Loop bodies) included."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def check_onnx(folder: Path, path: Path, meta: dict[str, Any], where: str) -> None:
    """External data only from regular files inside ``folder``, within their size; graph inputs
    named and sized as ``model.json`` says."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # a protobuf DecodeError, or anything the parser raises on junk
        raise UsageError(f"{where}: {path.name} is not a readable ONNX model ({type(exc).__name__})") from None
    for tensor in _tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        target = inside(folder, entries.get("location", ""), where, f"external data of {tensor.name!r}")
        try:
            offset, length = int(entries.get("offset", 0)), int(entries.get("length", 0))
        except ValueError:
            raise UsageError(f"{where}: external data of {tensor.name!r} has a non-integer offset or length") from None
        if offset < 0 or length < 0 or offset + length > target.stat().st_size:
            raise UsageError(f"{where}: external data of {tensor.name!r} lies outside its file")
    declared = [i["name"] for i in meta["inputs"]]
    graph_inputs = {i.name: i for i in model.graph.input}
    if any(name not in graph_inputs for name in declared):
        raise UsageError(f"{where}: model.json's inputs {declared} are not the network's {list(graph_inputs)}")
    for spec in meta["inputs"]:
        dims = graph_inputs[spec["name"]].type.tensor_type.shape.dim
        fixed = [d.dim_value if d.HasField("dim_value") else None for d in dims][1:]
        if len(dims) != len(spec["shape"]) or any(f is not None and f != s for f, s in zip(fixed, spec["shape"][1:],
                                                                                           strict=False)):
            raise UsageError(f"{where}: model.json gives input {spec['name']!r} shape {spec['shape']}, the network "
                             f"takes {['n', *fixed]}")


def check_export(folder: str | os.PathLike[str], meta: Any) -> Path:
    """Run every check on an export folder and its parsed ``model.json``; returns the network file."""
    folder = Path(folder)
    where = str(folder)
    check_meta(meta, where)
    path = inside(folder, meta["file"], where, "file")
    if meta["format"] == "onnx":
        check_onnx(folder, path, meta, where)
    return path
