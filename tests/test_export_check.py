"""Exports (issue 27 items 4 and 6): non-finite output is refused, and a tampered export folder
(model.json, ONNX external data) is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.helpers import zoo_in_process

# -- exports: non-finite output and hostile folders ------------------------------------------------


def _gan_export(tmp_path: Path, fmt: str = "onnx") -> Path:
    from zoo.export import export_model
    from zoo.testing import tiny_model

    out = tmp_path / f"export-{fmt}"
    export_model(tiny_model("gan", (1, 28, 28)).eval(), out, fmt=fmt, info={"dataset": "mnist-5k"})
    return out


def test_export_refuses_a_network_with_non_finite_weights_and_writes_nothing(tmp_path):
    from zoo.errors import SampleError
    from zoo.export import export_model
    from zoo.testing import tiny_model

    model = tiny_model("gan", (1, 28, 28))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    with pytest.raises(SampleError, match="non-finite"):
        export_model(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_eval_of_an_export_with_nan_output_is_one_line(tmp_path, capsys):
    pytest.importorskip("onnxruntime")

    class Nan(torch.nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return (z.sum(1) * float("nan"))[:, None, None, None].expand(-1, 1, 28, 28)

    out = _gan_export(tmp_path, "torchscript")
    with pytest.warns(FutureWarning):  # torch.jit is deprecated, still loads
        latent = json.loads((out / "model.json").read_text())["inputs"][0]["shape"][1]
        torch.jit.trace(Nan(), torch.zeros(2, latent)).save(str(out / "model.pt"))
    code, stdout, err = zoo_in_process(capsys, "eval", str(out), "--num-fake", "20", "--num-real", "100")
    assert code == 1 and stdout == ""
    assert err.count("\n") == 1 and "non-finite" in err and "Traceback" not in err, err


def _tamper(out: Path, change) -> None:  # noqa: ANN001
    meta = json.loads((out / "model.json").read_text())
    change(meta)
    (out / "model.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("case", ["no latent", "huge latent", "negative latent", "wrong latent", "unknown format",
                                  "no kind", "file outside", "file absolute", "file is a folder",
                                  "string shape", "denoiser without sampler"])
def test_hostile_model_json_is_one_line(tmp_path, capsys, case):
    pytest.importorskip("onnxruntime")
    out = _gan_export(tmp_path)
    (tmp_path / "elsewhere.onnx").write_bytes((out / "model.onnx").read_bytes())
    changes = {
        "no latent": lambda m: m["inputs"][0]["shape"].pop(),
        "huge latent": lambda m: m["inputs"][0]["shape"].__setitem__(1, 10**12),
        "negative latent": lambda m: m["inputs"][0]["shape"].__setitem__(1, -5),
        "wrong latent": lambda m: m["inputs"][0]["shape"].__setitem__(1, m["inputs"][0]["shape"][1] + 3),
        "unknown format": lambda m: m.__setitem__("format", "tflite"),
        "no kind": lambda m: m.pop("kind"),
        "file outside": lambda m: m.__setitem__("file", "../elsewhere.onnx"),
        "file absolute": lambda m: m.__setitem__("file", str(tmp_path / "elsewhere.onnx")),
        "file is a folder": lambda m: m.__setitem__("file", "sub"),
        "string shape": lambda m: m.__setitem__("image_shape", "1x28x28"),
        "denoiser without sampler": lambda m: m.__setitem__("kind", "denoiser"),
    }
    (out / "sub").mkdir()
    _tamper(out, changes[case])
    code, stdout, err = zoo_in_process(capsys, "eval", str(out), "--num-fake", "20", "--num-real", "100")
    assert code == 2 and stdout == "", (code, err)
    assert err.count("\n") == 1 and err.startswith("zoo: error:") and "Traceback" not in err, err


@pytest.mark.parametrize("where", ["outside", "symlink out", "proc", "fifo", "past its end"])
def test_onnx_external_data_must_be_a_regular_file_inside_the_folder(tmp_path, capsys, where):
    import os

    onnx = pytest.importorskip("onnx")
    from onnx.external_data_helper import convert_model_to_external_data

    out = _gan_export(tmp_path)
    model = onnx.load(str(out / "model.onnx"))
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    onnx.save_model(model, str(out / "model.onnx"))
    assert (out / "weights.bin").is_file()
    secret = tmp_path / "secret.bin"
    secret.write_bytes((out / "weights.bin").read_bytes())
    model = onnx.load(str(out / "model.onnx"), load_external_data=False)
    tensor = next(t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL)
    entry = next(e for e in tensor.external_data if e.key == "location")
    if where == "outside":
        entry.value = "../secret.bin"
    elif where == "symlink out":
        os.symlink(secret, out / "link.bin")
        entry.value = "link.bin"
    elif where == "proc":
        entry.value = "../" * 40 + "proc/self/environ"
    elif where == "fifo":
        os.mkfifo(out / "pipe.bin")
        entry.value = "pipe.bin"
    else:
        next(e for e in tensor.external_data if e.key == "offset").value = str(10**9)
    onnx.save_model(model, str(out / "model.onnx"))
    code, stdout, err = zoo_in_process(capsys, "eval", str(out), "--num-fake", "20", "--num-real", "100")
    assert code == 2 and stdout == "", (code, err)
    assert err.count("\n") == 1 and "external data" in err, err
