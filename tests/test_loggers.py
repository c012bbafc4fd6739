"""Training loggers: csv by default, TensorBoard scalars and sample grids, loggers from plugins."""

from __future__ import annotations

import csv
import sys
import types

import pytest

import zoo
from zoo.data import ImageDataset
from zoo.errors import UnknownNameError, UsageError
from zoo.factory import create_model
from zoo.loggers import LoggerSpec, open_loggers
from zoo.registry import build_registry
from zoo.testing import synthetic_images
from zoo.trainer import Trainer, TrainSettings, seed_everything


def dataset() -> ImageDataset:
    return ImageDataset("synthetic", synthetic_images(64, (1, 8, 8), seed=0), synthetic_images(32, (1, 8, 8), seed=1))


def train(run_dir, loggers=("csv",), steps=4):
    seed_everything(0)
    model = create_model("gan", (1, 8, 8), {"g_hidden": 16})
    settings = TrainSettings(steps=steps, batch_size=8, checkpoint_every=2, sample_grid=0, loggers=tuple(loggers))
    return Trainer(model, dataset(), settings, run_dir).fit()


def plugin_module(name: str, hook) -> types.ModuleType:
    module = types.ModuleType(name)

    @zoo.hookimpl
    def zoo_register_loggers(register):
        hook(register)

    module.zoo_register_loggers = zoo_register_loggers
    return module


def rows(path):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(path.open())]


def test_tensorboard_writes_losses_lr_throughput_and_grids_without_changing_training(tmp_path):
    pytest.importorskip("tensorboard", reason="needs the tensorboard extra (pip install 'genzoo[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(tmp_path / "plain")
    train(tmp_path / "tb", loggers=("csv", "tensorboard"))
    # The grids are drawn with the clock paused and the random state restored: the same training.
    assert rows(tmp_path / "tb" / "losses.csv") == rows(tmp_path / "plain" / "losses.csv")
    assert not (tmp_path / "plain" / "tensorboard").exists()

    events = EventAccumulator(str(tmp_path / "tb" / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    losses = next(csv.reader((tmp_path / "tb" / "losses.csv").open()))[2:]
    assert {f"loss/{k}" for k in losses} <= scalars
    assert {"throughput/img_per_s", "time/train_seconds"} <= scalars
    assert any(t.startswith("lr/") for t in scalars)
    assert [e.step for e in events.Scalars(f"loss/{losses[0]}")] == [1, 2, 3, 4]
    lr = events.Scalars(sorted(t for t in scalars if t.startswith("lr/"))[0])
    assert lr[0].value > 0
    grids = events.Images("samples")
    assert [g.step for g in grids] == [1, 2, 4] and grids[0].width > 8  # 16 images in a 4 x 4 grid


def test_tensorboard_missing_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    with pytest.raises(UsageError, match=r"pip install 'genzoo\[tensorboard\]'"):
        train(tmp_path / "run", loggers=("tensorboard",))


def test_unknown_logger_names_close_matches(tmp_path):
    with pytest.raises(UnknownNameError, match="tensorboard"):
        open_loggers(["tensorbord"], tmp_path, trainer=None)


def test_a_plugin_adds_a_logger_through_the_hook(tmp_path):
    written = []

    class Memory:
        def __init__(self, context):
            self.context = context

        def write(self, step, seconds, losses):
            written.append((step, sorted(losses)))

        def close(self):
            written.append("closed")

    plugin = plugin_module("memory_logger", lambda register: register(LoggerSpec("memory", "keeps steps in a list", Memory)))
    registry = build_registry(extra_plugins=[("memory-logger", plugin)])
    assert "memory" in registry.loggers and registry.plugins["memory-logger"].loggers == ["memory"]

    import zoo.registry as registry_module

    registry_module._REGISTRY = registry
    train(tmp_path / "run", loggers=("memory",), steps=3)
    assert [w[0] for w in written[:-1]] == [1, 2, 3] and written[-1] == "closed"
    assert not (tmp_path / "run" / "losses.csv").exists()  # only the loggers asked for


def test_invalid_logger_registration_is_reported_against_its_plugin():
    plugin = plugin_module("bad_logger", lambda register: register(object()))
    registry = build_registry(extra_plugins=[("bad-logger", plugin)])
    assert "invalid logger registration" in (registry.plugins["bad-logger"].error or "")
