"""A resumed run equals an uninterrupted one, bit for bit on CPU, for every built-in model."""

from __future__ import annotations

import pytest
import torch

import zoo.trainer as trainer_module
from zoo.checkpoint import list_checkpoints, load_checkpoint
from zoo.data import ImageDataset
from zoo.testing import synthetic_images, tiny_model
from zoo.trainer import Trainer, TrainSettings, seed_everything

BUILTINS = ["dcgan", "ddpm", "edm", "gan", "vae"]


def _data():
    images = synthetic_images(48, (1, 28, 28))
    return ImageDataset("synthetic", images[:40], images[40:])


def _train(name, run_dir, steps, resume_from=None, settings_kw=None):
    seed_everything(0)
    model = tiny_model(name)
    settings = TrainSettings(steps=steps, batch_size=8, device="cpu", checkpoint_every=2, sample_grid=0, **(settings_kw or {}))
    trainer = Trainer(model, _data(), settings, run_dir, progress=False)
    if resume_from is not None:
        trainer.load_state_dict(load_checkpoint(resume_from))
    trainer.fit()
    return model.state_dict()


def _assert_same(a, b):
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume"


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize("interrupt_at", [2, 4])
def test_resume_is_exact(tmp_path, name, interrupt_at):
    full = _train(name, tmp_path / "full", steps=6)
    _train(name, tmp_path / "part", steps=interrupt_at)
    ckpt = list_checkpoints(tmp_path / "part")[-1]
    resumed = _train(name, tmp_path / "part", steps=6, resume_from=ckpt)
    _assert_same(full, resumed)


@pytest.mark.parametrize("dropped", ["rng", "optimizers", "batcher", "ema"])
def test_the_resume_test_fails_when_state_is_left_out(tmp_path, monkeypatch, dropped):
    """Prove the check above can fail: drop one piece of state from the checkpoint."""
    name = "ddpm"  # uses every kind of state: RNG (noise, timesteps), Adam moments, data order, EMA
    full = _train(name, tmp_path / "full", steps=6)
    original = trainer_module.Trainer.state_dict

    def lossy_state_dict(self):
        state = original(self)
        if dropped == "rng":
            state["rng"]["torch"] = torch.Generator().manual_seed(123).get_state()
        elif dropped == "optimizers":  # keep the hyper-parameters, lose Adam's moments
            state["optimizers"] = {k: {"state": {}, "param_groups": o.state_dict()["param_groups"]}
                                   for k, o in self.optimizers.items()}
        elif dropped == "batcher":
            state["batcher"] = trainer_module.Batcher(self.batcher.images, self.batcher.batch_size, seed=99).state_dict()
        elif dropped == "ema":
            state["model_state"] = {k: torch.zeros_like(v) if "shadow" in k else v for k, v in state["model_state"].items()}
        return state

    monkeypatch.setattr(trainer_module.Trainer, "state_dict", lossy_state_dict)
    _train(name, tmp_path / "part", steps=2)
    monkeypatch.setattr(trainer_module.Trainer, "state_dict", original)
    resumed = _train(name, tmp_path / "part", steps=6, resume_from=list_checkpoints(tmp_path / "part")[-1])
    with pytest.raises(AssertionError, match="differs after resume"):
        _assert_same(full, resumed)

