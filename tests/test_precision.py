"""Mixed precision runs on the CPU too, so the CUDA code path is exercised by the default suite."""

from __future__ import annotations

import pytest
import torch

from zoo.data import ImageDataset
from zoo.errors import UsageError
from zoo.registry import build_registry
from zoo.testing import synthetic_images, tiny_model
from zoo.trainer import Trainer, TrainSettings, seed_everything

MODELS = sorted(build_registry().models)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("name", MODELS)
def test_training_under_autocast(name, precision):
    seed_everything(0)
    model = tiny_model(name)
    images = synthetic_images(24, (1, 28, 28))
    trainer = Trainer(model, ImageDataset("s", images[:16], images[16:]),
                      TrainSettings(steps=2, batch_size=8, device="cpu", precision=precision, sample_grid=0), progress=False)
    assert trainer.scaler.is_enabled() == (precision == "fp16")  # only fp16 needs loss scaling
    assert trainer.precision.needs_scaler == (precision == "fp16")
    result = trainer.fit()
    assert result.steps == 2 and all(torch.isfinite(torch.tensor(v)) for v in result.last_losses.values())
    assert all(torch.isfinite(p).all() and p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32


def test_unknown_precision_and_missing_cuda_are_usage_errors(no_cuda):
    from zoo.device import check_precision, resolve_device

    with pytest.raises(UsageError, match="precision"):
        check_precision("fp8", torch.device("cpu"))
    with pytest.raises(UsageError, match="CUDA is not available"):  # on every machine (no_cuda)
        resolve_device("cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("name", MODELS)
def test_contract_on_cuda(name):
    """On a GPU machine: a few bf16 steps on CUDA, data held on the device, and sampling there."""
    seed_everything(0)
    model = tiny_model(name)
    images = synthetic_images(24, (1, 28, 28))
    trainer = Trainer(model, ImageDataset("s", images[:16], images[16:]),
                      TrainSettings(steps=2, batch_size=8, device="cuda", precision="bf16", sample_grid=0), progress=False)
    assert trainer.dataset.train.is_cuda
    trainer.fit()
    out = model.sample(4, generator=torch.Generator(device="cuda").manual_seed(0))
    assert out.is_cuda and torch.isfinite(out).all()
