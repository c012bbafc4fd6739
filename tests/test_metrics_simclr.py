"""The label-free ``simclr`` backbone, backbone training's announcements and ETA, and one set of
backbone options for ``zoo eval`` and ``zoo bench`` (issue 26, own data offline)."""

from __future__ import annotations

import json
import re
import warnings

import pytest
import torch
from PIL import Image

from zoo.cli.app import run
from zoo.data import ImageDataset
from zoo.metrics import backbones, make_protocol
from zoo.metrics import simclr as simclr_mod
from zoo.metrics.floors import floor_means
from zoo.metrics.training_notice import BackboneTraining, TrainingClock, duration_text, remaining

TINY = simclr_mod.Recipe(steps=4, batch_size=16)  # the suite trains in seconds


def shapes(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """``n`` uint8 RGB images: a circle, square or diamond of one colour on another."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    out = torch.empty(n, 3, size, size, dtype=torch.uint8)
    for i in range(n):
        bg, fg = torch.randint(0, 256, (3,), generator=g), torch.randint(0, 256, (3,), generator=g)
        cx, cy = torch.randint(size // 4, 3 * size // 4, (2,), generator=g)
        r = int(torch.randint(size // 10, size // 4, (1,), generator=g))
        kind = int(torch.randint(0, 3, (1,), generator=g))
        dx, dy = (xx - cx).abs(), (yy - cy).abs()
        mask = [dx**2 + dy**2 < r * r, (dx < r) & (dy < r), dx + dy < r][kind]
        out[i] = torch.where(mask, fg[:, None, None], bg[:, None, None])
    return out


def write_folder(folder, images: torch.Tensor) -> None:
    folder.mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / f"{i:04d}.png")


@pytest.fixture
def tiny_recipe(monkeypatch):
    monkeypatch.setattr(backbones, "SIMCLR_RECIPE", TINY)


def test_an_unlabelled_rgb_folder_is_evaluated_offline_with_one_command(tmp_path, capsys, monkeypatch, tiny_recipe):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no Inception weights anywhere
    write_folder(tmp_path / "mine", shapes(200))
    write_folder(tmp_path / "samples", shapes(40, seed=1))
    args = ["eval", str(tmp_path / "samples"), "--dataset", f"folder:{tmp_path / 'mine'}", "--json"]
    # auto keeps Inception for RGB data; offline, its one-line error names the label-free backbone.
    assert run(args) != 0
    err = capsys.readouterr().err
    assert err.startswith("zoo: error: Inception weights not available offline") and "--backbone simclr" in err
    assert err.count("\n") == 1
    assert run([*args, "--backbone", "simclr"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    protocol, metrics = result["protocol"], result["metrics"]
    assert (protocol["backbone"], protocol["feature_extractor"], protocol["feature_dim"]) == ("simclr", "genzoo-simclr", 64)
    assert protocol["primary_metric"] == "fd_simclr" and not any("inception" in k for k in metrics)
    assert set(metrics) == set(floor_means(result["floor"])) == {
        "fd_simclr", "kid_simclr", "kid_simclr_std", "precision_simclr", "recall_simclr", "density_simclr",
        "coverage_simclr", "memorised_simclr", "vendi_simclr", "gap_simclr",
    }
    assert all(v == v for v in metrics.values())
    # Said up front: how long, and where the weights are cached.
    assert "training the simclr backbone on folder:" in err and "once: about" in err and "cached in" in err
    cached = list((tmp_path / "zoo-cache" / "backbones").glob("simclr-*.safetensors")) or \
        list(backbones.cache_dir().glob("backbones/simclr-*.safetensors"))
    assert cached
    # Second run: the cached encoder, no training, the same protocol.
    assert run([*args, "--backbone", "simclr"]) == 0
    out, err = capsys.readouterr()
    assert "training the simclr" not in err and json.loads(out)["protocol"]["hash"] == protocol["hash"]


def test_simclr_training_is_deterministic_cached_by_content_and_recipe(tmp_path, monkeypatch, tiny_recipe):
    images = shapes(60)
    data = ImageDataset("mine", images[:50], images[50:])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = make_protocol(data, backbone="simclr")
    assert [w for w in caught if issubclass(w.category, BackboneTraining)]
    calls, real_train = [], backbones.train_simclr_for
    monkeypatch.setattr(backbones, "train_simclr_for", lambda *a, **k: calls.append(a))
    assert make_protocol(data, backbone="simclr").hash == first.hash and not calls  # from the cache
    monkeypatch.setattr(backbones, "train_simclr_for", real_train)
    # Retrained from scratch elsewhere: bit-identical weights, so the same protocol.
    again = backbones.train_simclr_for(data, tmp_path / "again.safetensors", TINY)
    assert simclr_mod.weights_digest(again) == first.weights_sha256
    # Other content or another recipe: another encoder, another protocol.
    other = ImageDataset("mine", images[:50].flip(3), images[50:])
    assert make_protocol(other, backbone="simclr").weights_sha256 != first.weights_sha256
    monkeypatch.setattr(backbones, "SIMCLR_RECIPE", simclr_mod.Recipe(steps=5, batch_size=16))
    assert make_protocol(data, backbone="simclr").hash != first.hash


def test_a_corrupt_cached_encoder_is_retrained(tmp_path, tiny_recipe):
    data = ImageDataset("mine", shapes(40)[:30], shapes(40)[30:])
    first = make_protocol(data, backbone="simclr")
    path = backbones.simclr_cache_path(data, TINY)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match="corrupt cached simclr weights"):
        assert make_protocol(data, backbone="simclr").weights_sha256 == first.weights_sha256


def test_training_announces_its_estimate_once_and_the_eta_is_the_average_rate(tmp_path):
    now = [0.0]
    seen = []
    clock = TrainingClock("the x backbone", tmp_path / "w.safetensors", "training x",
                          lambda task, done, total: seen.append((task, done, total)), clock=lambda: now[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(1, 101):
            now[0] = 2.0 + step * 0.5  # half a second a step, after two seconds of start-up
            clock(step, 100)
    notes = [str(w.message) for w in caught if issubclass(w.category, BackboneTraining)]
    assert len(notes) == 1 and "about 52 s" in notes[0] and "48 s left" in notes[0]
    assert str(tmp_path / "w.safetensors") in notes[0] and len(seen) == 100
    assert remaining(30.0, 10, 100) == pytest.approx(270.0) and remaining(5.0, 0, 100) is None
    assert duration_text(130) == "2 min 10 s" and duration_text(4000) == "1 h 06 min"
    from zoo.cli.progress import task_clock

    assert task_clock(30.0, 10, 100) == "0:00:30 eta 0:04:30"  # one update is enough for an ETA


def test_lenet_training_reports_often_enough_for_an_eta(monkeypatch):
    from zoo.metrics import lenet

    seen = []
    images = shapes(64, size=28)[:, :1]
    lenet.train_lenet(images, torch.arange(64) % 2, 2, lenet.Recipe(steps=30, batch_size=16),
                      progress=lambda done, total: seen.append(done))
    assert seen == [10, 20, 30]


def _backbone_params(command) -> dict[str, dict]:
    out = {}
    for p in command.params:
        if p.name in ("backbone", "backbone_weights", "inception_weights"):
            choices = list(getattr(p.type, "choices", []) or [])
            out[p.name] = {"opts": p.opts, "choices": choices, "help": p.help, "default": p.default}
    return out


def test_eval_and_bench_take_and_name_the_same_backbones(capsys):
    from zoo.cli.bench import bench_command
    from zoo.cli.eval import eval_command
    from zoo.metric_names import BACKBONES

    assert _backbone_params(eval_command) == _backbone_params(bench_command)
    assert set(_backbone_params(bench_command)) == {"backbone", "backbone_weights", "inception_weights"}
    assert _backbone_params(bench_command)["backbone"]["choices"] == ["auto", *BACKBONES]
    for name in ("eval", "bench"):
        assert run([name, "--help"]) == 0
        text = re.sub(r"-\s+", "-", capsys.readouterr().out)  # click wraps lines at hyphens
        assert all(b in text for b in BACKBONES), name  # --help names every backbone either accepts


def test_bench_passes_backbone_weights_and_refuses_an_unknown_backbone(tmp_path, capsys):
    base = ["bench", "--models", "gan", "--preset", "smoke", "--results", str(tmp_path / "r.sqlite")]
    assert run([*base, "--backbone", "simclr", "--backbone-weights", str(tmp_path / "none.safetensors")]) == 1
    assert "simclr weights file" in capsys.readouterr().err
    assert run([*base, "--backbone", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
