"""``zoo export``: ONNX Runtime (and TorchScript) give PyTorch's images for every built-in model;
model.json documents the network; int8 quantisation; the standalone sampler; ``zoo eval`` of an export.

Tolerances: one network call agrees with PyTorch to 1e-4 (absolute, on outputs of order 1; the
two runtimes order float32 sums differently), and whole images sampled through the reference
loop agree to one 8-bit level per pixel (a 1e-4 difference can round a pixel the other way).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.helpers import zoo_in_process
from zoo.errors import UsageError
from zoo.export import export_model, generate_from_export, is_export_dir, load_export
from zoo.sampling import generate
from zoo.testing import tiny_model

pytest.importorskip("onnxruntime", reason="the export tests need the export extra: pip install 'genzoo[export]'")

BUILTIN = ["gan", "dcgan", "vae", "ddpm", "vaegan", "flow", "edm"]
NET_TOL = 1e-4
SHAPE = (1, 28, 28)


def random_model(name: str):  # noqa: ANN201
    """A tiny model with random weights everywhere: untrained nets start with zero output layers
    (DDPM's U-Net) or near-constant outputs, which would make the comparison trivial."""
    model = tiny_model(name, SHAPE)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 1.0 if p.ndim == 1 and name.endswith("weight") else 0.0  # norm layers' gains near 1
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3 + scale)
    return model.eval()


def network_inputs(meta: dict, n: int = 5) -> dict[str, np.ndarray]:
    gen = np.random.default_rng(0)
    inputs = {}
    for spec in meta["inputs"]:
        shape = (n, *spec["shape"][1:])
        if spec["dtype"] == "int64":
            inputs[spec["name"]] = gen.integers(0, len(meta["sampler"]["alphas_cumprod"]), size=shape).astype(np.int64)
        elif spec["name"] == "t":
            inputs[spec["name"]] = gen.uniform(0, 1, size=shape).astype(np.float32)
        elif spec["name"] == "sigma":  # EDM's noise levels, log-uniform over its schedule's range
            inputs[spec["name"]] = np.exp(gen.uniform(np.log(0.002), np.log(80.0), size=shape)).astype(np.float32)
        else:
            inputs[spec["name"]] = gen.standard_normal(shape).astype(np.float32)
    return inputs


def sampling_options(name: str) -> tuple[dict, dict]:
    """(export options, model options) that sample the same way."""
    if name == "ddpm":
        return {"steps": 4}, {"sampler": "ddim", "steps": 4, "eta": 0.0}
    if name in ("flow", "edm"):
        return {"steps": 3, "sampler": "heun"}, {"steps": 3, "sampler": "heun"}
    return {}, {}


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", BUILTIN)
def test_exported_network_and_images_match_pytorch(name, fmt, tmp_path) -> None:  # noqa: ANN001
    model = random_model(name)
    meta = export_model(model, tmp_path / "export", fmt=fmt)
    run, loaded = load_export(tmp_path / "export")
    assert loaded == meta

    # One network call, batch size 5 (the trace used 2: the batch axis is dynamic).
    inputs = network_inputs(meta)
    spec = model.export_spec()
    with torch.no_grad():
        expected = spec.module(*(torch.from_numpy(v) for v in inputs.values())).numpy()
    got = run(inputs)
    assert got.shape == expected.shape == (5, *meta["outputs"][0]["shape"][1:])
    assert float(np.abs(expected).max()) > 1e-2, "the comparison would be trivial"
    assert np.abs(got - expected).max() <= NET_TOL

    # Whole images: the reference sampling loop on the runtime against the model's own sampler.
    export_opts, model_opts = sampling_options(name)
    images, info = generate_from_export(tmp_path / "export", 6, seed=2, batch_size=4, options=export_opts)
    reference = generate(model, 6, seed=2, options=model_opts)
    assert images.dtype == torch.uint8 and images.shape == reference.shape == (6, *SHAPE)
    assert int((images.int() - reference.int()).abs().max()) <= 1
    assert float(images.float().std()) > 0  # not a blank image
    assert info["nfe"] == {"ddpm": 4, "flow": 5, "edm": 5}.get(name, 1)
    assert info["images_per_s"] > 0 and info["size_bytes"] == meta["size_bytes"]


def test_model_json_documents_the_network(tmp_path) -> None:
    import zoo

    model = random_model("vaegan")
    export_model(model, tmp_path / "g", info={"dataset": "mnist-5k"})
    meta = json.loads((tmp_path / "g" / "model.json").read_text())
    assert meta["genzoo_version"] == zoo.__version__ and meta["model"] == "vaegan" and meta["kind"] == "generator"
    assert meta["inputs"] == [{"name": "z", "shape": ["n", model.config.latent_dim], "dtype": "float32",
                               "description": "latent code, standard normal N(0, I), one row per image"}]
    assert meta["outputs"][0]["shape"] == ["n", *SHAPE] and meta["outputs"][0]["range"] == [-1.0, 1.0]
    assert meta["value_range"] == [-1.0, 1.0] and "N(0, I)" in meta["noise"]
    assert meta["config"]["latent_dim"] == model.config.latent_dim and meta["dataset"] == "mnist-5k"
    assert (tmp_path / "g" / meta["file"]).stat().st_size == meta["size_bytes"]

    ddpm = random_model("ddpm")
    meta = export_model(ddpm, tmp_path / "d")
    assert meta["kind"] == "denoiser" and meta["sampler"]["type"] == "ddim"
    assert [i["dtype"] for i in meta["inputs"]] == ["float32", "int64"]
    assert len(meta["sampler"]["alphas_cumprod"]) == ddpm.config.num_timesteps


@pytest.mark.parametrize("name", ["ddpm", "flow", "edm"])
def test_the_reference_sampler_runs_without_genzoo(name, tmp_path) -> None:  # noqa: ANN001
    export_model(random_model(name), tmp_path / "e")
    code = ("import sys, runpy; sys.modules['zoo'] = None; sys.argv = ['sample.py', '--num', '3', '--out', 'x.npy', "
            "'--option', 'steps=2']; runpy.run_path('sample.py', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "e", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    images = np.load(tmp_path / "e" / "x.npy")
    assert images.dtype == np.uint8 and images.shape == (3, *SHAPE)


@pytest.mark.parametrize(("args", "message"), [
    (["--option", "steps"], "--option takes KEY=VALUE, got 'steps'"),
    (["--option", "guidance=2"], "unknown sampling option 'guidance'"),
    (["--option", "steps=100000"], "steps must be between 1 and T"),
    (["--num", "0"], "--num must be at least 1"),
    (["--out", "no-such-folder/x.npy"], "the folder of --out no-such-folder/x.npy does not exist"),
    (["--seed", "-1"], "--seed must be 0 or more"),
    (["--out", "x.txt"], "--out must name an .npy file"),
    (["--option", "steps=x"], "sampling option steps must be int, got 'x'"),
])
def test_the_reference_sampler_refuses_bad_arguments_in_one_line(args, message, tmp_path) -> None:  # noqa: ANN001
    export_model(random_model("ddpm"), tmp_path / "e")
    code = (f"import sys, runpy; sys.modules['zoo'] = None; sys.argv = ['sample.py', *{args!r}]; "
            "runpy.run_path('sample.py', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "e", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert message in proc.stderr.splitlines()[-1]
    assert not (tmp_path / "e" / "samples.npy").exists()


def test_int8_quantisation_shrinks_the_file_and_stays_close(tmp_path) -> None:
    model = tiny_model("gan", SHAPE, g_hidden=256).eval()  # enough weights for int8 to matter
    fp32 = export_model(model, tmp_path / "fp32")
    int8 = export_model(model, tmp_path / "int8", quantize="int8")
    assert int8["quantize"] == "int8" and int8["size_bytes"] < 0.5 * fp32["size_bytes"]
    a, _ = generate_from_export(tmp_path / "fp32", 8, seed=0)
    b, _ = generate_from_export(tmp_path / "int8", 8, seed=0)
    assert float((a.float() - b.float()).abs().mean()) < 8.0  # within a few 8-bit levels on average


def test_bad_requests_are_one_line_usage_errors(tmp_path) -> None:
    from zoo.model import GenerativeModel

    class NoExport(GenerativeModel):
        name = "noexport"

    model = NoExport(NoExport.Config(), SHAPE)
    with pytest.raises(UsageError, match="does not support export"):
        export_model(model, tmp_path / "x")
    gan = tiny_model("gan", SHAPE)
    with pytest.raises(UsageError, match="onnx only"):
        export_model(gan, tmp_path / "x", fmt="torchscript", quantize="int8")
    with pytest.raises(UsageError, match="unknown export format"):
        export_model(gan, tmp_path / "x", fmt="tflite")
    export_model(gan, tmp_path / "y")
    with pytest.raises(UsageError, match="not empty"):
        export_model(gan, tmp_path / "y")
    export_model(gan, tmp_path / "y", overwrite=True)
    with pytest.raises(UsageError, match="unknown sampling option"):
        generate_from_export(tmp_path / "y", 2, options={"steps": 3})
    assert not is_export_dir(tmp_path) and is_export_dir(tmp_path / "y")
    with pytest.raises(UsageError, match="not a genzoo export"):
        load_export(tmp_path)


def test_cli_export_then_eval_reports_quality_size_and_throughput(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    code, _, err = zoo_in_process(capsys, "train", "gan", "--steps", "2", "--set", "g_hidden=32", "--set", "d_units=16",
                                  "--set", "latent_dim=8", "--run-dir", str(run), "--no-progress")
    assert code == 0, err
    for q in ("none", "int8"):
        code, out, err = zoo_in_process(capsys, "export", str(run), "--out", str(tmp_path / q), "--quantize", q)
        assert code == 0, err
        assert "gan (generator, onnx" in out
    code, out, err = zoo_in_process(capsys, "eval", str(tmp_path / "int8"), "--num-fake", "50", "--num-real", "100", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["source"]["kind"] == "export" and result["source"]["model"] == "gan"
    assert result["export"]["quantize"] == "int8" and result["export"]["size_bytes"] > 0
    assert result["export"]["images_per_s"] > 0 and result["metrics"]["fid_lenet"] > 0
    code, out, _ = zoo_in_process(capsys, "eval", str(tmp_path / "none"), "--num-fake", "50", "--num-real", "100")
    assert code == 0 and "MB on disk" in out and "images/s" in out

    code, _, err = zoo_in_process(capsys, "export", str(run), "--out", str(tmp_path / "none"))
    assert code == 2 and "not empty" in err and "Traceback" not in err
    code, _, err = zoo_in_process(capsys, "export", str(run), "--out", str(tmp_path / "ts"), "--format", "torchscript",
                                  "--quantize", "int8")
    assert code == 2 and err.count("\n") == 1
    code, _, err = zoo_in_process(capsys, "eval", str(tmp_path / "none"), "--option", "steps=3", "--num-fake", "50",
                                  "--num-real", "100")
    assert code == 2 and "unknown sampling option" in err
