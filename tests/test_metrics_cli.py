"""``zoo eval`` on image arrays, image folders and run directories; errors are one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.functional import gaussian_blur

from zoo.cli.app import run
from zoo.factory import load_dataset
from zoo.metrics import make_protocol
from zoo.metrics.floors import floor_means
from zoo.model import GenerativeModel, ModelConfig, SampleOption

ARGS = ["--num-real", "500"]


@pytest.fixture(scope="module")
def ds():
    return load_dataset("mnist-5k")


def zoo_eval(capsys, *args: str) -> tuple[int, str, str]:
    code = run(["eval", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_eval_an_image_array_prints_json_with_protocol_and_floor(ds, tmp_path, capsys):
    np.savez(tmp_path / "digits.npz", images=ds.test[:200].numpy())
    code, out, err = zoo_eval(capsys, str(tmp_path / "digits.npz"), *ARGS, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {"source", "metrics", "floor", "protocol", "warnings", "memorisation_threshold", "nearest"}
    assert result["protocol"]["hash"] == make_protocol(ds, num_real=500, num_fake=200).hash
    assert result["protocol"]["num_fake"] == 200 and result["source"]["kind"] == "array"
    metrics, floor = result["metrics"], result["floor"]
    assert set(metrics) == set(floor_means(floor)) == set(floor["spread"]) | {"gap_lenet"} == {
        "fid_lenet", "is_lenet", "is_lenet_std", "kid_lenet", "kid_lenet_std", "precision_lenet", "recall_lenet",
        "density_lenet", "coverage_lenet", "memorised_lenet", "classes_lenet", "kl_classes_lenet",
        "vendi_lenet", "gap_lenet",
    }  # the gap's floor is one draw: no spread
    # 200 images in 10 IS splits: the warning says so and what to change.
    assert any(w.startswith("is_lenet on 200 images") for w in result["warnings"])
    # Held-out real digits score like the floor (which is also held-out real digits).
    assert metrics["fid_lenet"] < 2 * floor["fid_lenet"]


def test_eval_a_folder_of_pngs_prints_a_table(ds, tmp_path, capsys):
    folder = tmp_path / "samples"
    folder.mkdir()
    for i, img in enumerate(gaussian_blur(ds.test[:200], kernel_size=7, sigma=1.5)):
        # Saved as RGB on purpose: gray content in three equal channels is read back as gray.
        Image.fromarray(img[0].numpy()).convert("RGB").save(folder / f"{i:04d}.png")
    code, out, err = zoo_eval(capsys, str(folder), *ARGS)
    assert code == 0, err
    proto = make_protocol(ds, num_real=500, num_fake=200)
    for text in ("fid_lenet", "precision_lenet", "floor (real vs real)", proto.hash, "weights_sha256", "torch_fidelity_version"):
        assert text in out


class NoiseModel(GenerativeModel):
    """A stand-in for a trained run: uniform noise scaled by a sampling option."""

    name = "noise-stub"
    family = "other"
    sample_options = (SampleOption("scale", float, 1.0, "noise amplitude"),)
    calls: list[dict] = []

    @torch.no_grad()
    def sample(self, n, *, generator=None, **options):
        NoiseModel.calls.append({"n": n, **options})
        return (torch.rand(n, *self.image_shape, generator=generator) * 2 - 1) * options["scale"]


def test_eval_a_run_directory_samples_the_model_with_seed_and_options(ds, tmp_path, capsys, monkeypatch):
    import zoo.checkpoint

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)

    def load_model(source, map_location="cpu"):
        assert Path(source) == run_dir
        meta = {"model": "noise-stub", "dataset": "mnist-5k", "image_shape": [1, 28, 28], "step": 7, "path": "x.pt"}
        return NoiseModel(ModelConfig(), (1, 28, 28)), meta

    monkeypatch.setattr(zoo.checkpoint, "load_model", load_model)
    monkeypatch.setattr("zoo.accel.sample_memory", lambda *a, **k: None)  # its probe's calls are not counted
    args = [str(run_dir), *ARGS, "--num-fake", "200", "--option", "scale=0.5", "--batch-size", "64", "--json"]
    code, out, err = zoo_eval(capsys, *args)
    assert code == 0, err
    result = json.loads(out)
    assert result["source"]["kind"] == "run" and result["source"]["step"] == 7
    assert result["source"]["sample_options"] == {"scale": 0.5}
    assert sum(c["n"] for c in NoiseModel.calls) == 200 and all(c["scale"] == 0.5 for c in NoiseModel.calls)
    assert result["metrics"]["fid_lenet"] > 10 * result["floor"]["fid_lenet"]  # noise is far from digits
    code, again, _ = zoo_eval(capsys, *args)
    assert json.loads(again)["metrics"] == result["metrics"]  # the seed fixes the samples


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (lambda d: d.test[:200], ["--num-fake", "300"], "holds only 200 images"),
        (lambda d: torch.zeros(200, 1, 32, 32, dtype=torch.uint8), [], "1x32x32"),
        (lambda d: d.test[:200], ["--option", "steps=10"], "--option applies to run directories"),
        (lambda d: d.test[:5], [], "holds 5 images; scoring needs at least 10"),
        (lambda d: d.test[:200], ["--num-fake", "5"], "--num-fake must be between 10"),
    ],
)
def test_eval_errors_are_one_line(ds, tmp_path, capsys, make, extra, message):
    np.save(tmp_path / "x.npy", make(ds).numpy())
    code, out, err = zoo_eval(capsys, str(tmp_path / "x.npy"), *ARGS, *extra)
    assert code != 0 and out == ""
    assert err.startswith("zoo: error: ") and message in err and err.count("\n") == 1


def test_cli_backbone_choices_match_the_metrics_package():
    from zoo.cli import eval as eval_cli
    from zoo.metrics import BACKBONES

    assert eval_cli.BACKBONES == BACKBONES
