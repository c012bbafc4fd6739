"""Contract checks for plugin authors: ``from zoo.testing import check_model``.

Run them in a plugin's own test suite (genzoo runs them over every registered model):

    from zoo.testing import check_model

    def test_contract():
        check_model("my-model")

Each check builds the model with its ``tiny_config`` on a small synthetic dataset, so the whole
contract runs in about a second on a CPU.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import torch

from zoo.model import GenerativeModel, validate_model_class

__all__ = ["check_model", "synthetic_images", "tiny_model"]


def synthetic_images(n: int, shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    """``uint8`` images with structure (blobs on a dark background), not pure noise."""
    g = torch.Generator().manual_seed(seed)
    c, h, w = shape
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    centres = torch.rand(n, 2, generator=g) * 1.2 - 0.6
    radius = 0.2 + 0.3 * torch.rand(n, 1, 1, generator=g)
    d2 = (xx - centres[:, 0, None, None]) ** 2 + (yy - centres[:, 1, None, None]) ** 2
    blob = torch.exp(-d2 / radius**2)
    tint = 0.5 + 0.5 * torch.rand(n, c, 1, 1, generator=g)
    return (blob[:, None] * tint * 255).round().clamp(0, 255).to(torch.uint8)


def tiny_model(model: str | type[GenerativeModel], image_shape: tuple[int, int, int] | None = None,
               **overrides: Any) -> GenerativeModel:
    """Build ``model`` with its ``tiny_config`` (plus ``overrides``) at a supported small size."""
    from zoo.factory import create_model, resolve

    cls, variant = resolve(model)
    shape = image_shape or default_test_shape(cls)
    return create_model(model, shape, {**variant, **cls.tiny_config, **overrides})


def default_test_shape(cls: type[GenerativeModel]) -> tuple[int, int, int]:
    channels = 1 if 1 in cls.supported_channels else cls.supported_channels[0]
    sizes = cls.supported_sizes
    size = 28 if sizes is None or 28 in sizes else min(sizes)
    return (channels, size, size)


def check_model(model: str | type[GenerativeModel], image_shape: tuple[int, int, int] | None = None,
                steps: int = 2, device: str = "cpu", precision: str = "fp32") -> None:
    """Assert that ``model`` honours the genzoo contract; raises ``AssertionError`` naming the breach.

    Checks: class metadata; a few training steps through the core's [`zoo.trainer.Trainer`][zoo.trainer.Trainer]
    change the parameters, give finite losses with the same names on every step, and move the
    parameters of every optimizer ``configure_optimizers`` returns (a GAN whose G is never updated
    fails); ``sample`` returns ``n x C x H x W`` finite floats
    in ``[-1, 1]``, is reproducible with the same generator and differs across seeds; every declared
    sampling option's default is accepted; [`zoo.sampling.generate`][zoo.sampling.generate] gives the same images in
    one batch of 6 as in batches of 2 (the noise of image ``i`` depends only on the seed and ``i``);
    a checkpoint save/load round trip restores the weights and the samples exactly.

    ``device`` (``cpu``, ``cuda``, ``cuda:N``) and ``precision`` (``fp32``, ``bf16``, ``fp16``: the
    training autocast, fp16 with the gradient scaler) are checked up front like ``zoo train``'s
    ([`zoo.errors.UsageError`][zoo.errors.UsageError] if unusable here). Sampling stays in the model's own precision.
    """
    from zoo.checkpoint import load_model
    from zoo.data import ImageDataset
    from zoo.trainer import Trainer, TrainSettings, seed_everything

    cls = _resolve(model)
    try:
        validate_model_class(cls)
    except TypeError as exc:
        raise AssertionError(str(exc)) from None
    assert cls.summary, f"{cls.__name__}.summary is empty"
    assert cls.paper, f"{cls.__name__}.paper is empty"

    from zoo.device import check_precision, resolve_device

    target = resolve_device(device)
    check_precision(precision, target)
    seed_everything(0)
    shape = image_shape or default_test_shape(cls)
    net = tiny_model(cls, shape)
    images = synthetic_images(40, shape)
    data = ImageDataset("synthetic", images[:32], images[32:])
    before = copy.deepcopy(net.state_dict())

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        settings = TrainSettings(steps=steps, batch_size=8, device=str(target), precision=precision,
                                 checkpoint_every=steps, sample_grid=0)
        keys_per_step: list[tuple[int, list[str]]] = []
        trainer = Trainer(net, data, settings, run_dir,
                          progress=lambda p: keys_per_step.append((p.step, sorted(p.losses))))
        params_before = {name: [p.detach().clone() for g in opt.param_groups for p in g["params"]]
                         for name, opt in trainer.optimizers.items()}
        result = trainer.fit()
        assert result.steps == steps, f"trained {result.steps} steps, expected {steps}"
        assert result.last_losses, f"{cls.name}.train_step returned no losses to log"
        changed = [k for k, v in net.state_dict().items()
                   if v.is_floating_point() and not torch.equal(v.cpu(), before[k].cpu())]
        assert changed, f"{cls.name}: {steps} training steps changed no parameter"
        for name, opt in trainer.optimizers.items():
            now = [p for g in opt.param_groups for p in g["params"]]
            assert any(not torch.equal(a, b.detach()) for a, b in zip(params_before[name], now, strict=True)), (
                f"{cls.name}: optimizer {name!r} did not change any of its parameters in {steps} steps: call "
                f"step.optimize({name!r}, loss) in train_step with a loss that depends on them")
        first_step, first_keys = keys_per_step[0]
        for at, keys in keys_per_step[1:]:
            assert keys == first_keys, (
                f"{cls.name}.train_step returned losses {keys} at step {at} but {first_keys} at step {first_step}: "
                "return the same loss names on every step (they are the columns of losses.csv)")

        net.eval()
        n = 5
        out = net.sample(n, generator=torch.Generator().manual_seed(1))
        assert isinstance(out, torch.Tensor), f"sample returned {type(out).__name__}, not a tensor"
        assert tuple(out.shape) == (n, *shape), f"sample shape {tuple(out.shape)} != {(n, *shape)}"
        assert out.is_floating_point(), f"sample dtype {out.dtype} is not floating point"
        assert torch.isfinite(out).all(), "sample returned non-finite values"
        assert out.min() >= -1 - 1e-5 and out.max() <= 1 + 1e-5, f"sample range [{out.min():.3f}, {out.max():.3f}] outside [-1, 1]"
        again = net.sample(n, generator=torch.Generator().manual_seed(1))
        assert torch.equal(out, again), "sample is not reproducible with the same generator seed"
        other = net.sample(n, generator=torch.Generator().manual_seed(2))
        assert not torch.equal(out, other), "sample ignores the generator (same images for different seeds)"
        defaults = cls.parse_sample_options({})
        net.sample(2, generator=torch.Generator().manual_seed(0), **defaults)
        _check_batch_size_independence(net, defaults)

        restored, meta = load_model(run_dir, map_location=target, model_cls=cls)
        assert meta["step"] == steps, f"checkpoint step {meta['step']} != {steps}"
        for key, value in net.state_dict().items():
            assert torch.equal(value, restored.state_dict()[key]), f"checkpoint round trip changed {key!r}"
        replay = restored.sample(n, generator=torch.Generator().manual_seed(1))
        assert torch.equal(out, replay), "a reloaded checkpoint samples different images"


def _check_batch_size_independence(net: GenerativeModel, options: dict[str, Any]) -> None:
    """``generate`` 6 images in one batch and in batches of 2: they must be the same images.

    Exact in practice; one level on a pixel or two is tolerated, because a network's own float
    arithmetic may round differently for different batch shapes (a CPU linear layer with one row
    takes another BLAS kernel), which a sampler cannot help. Noise drawn per batch changes far more.
    """
    import warnings

    from zoo.sampling import BatchDependentSamplingWarning, generate

    how = (
        "Image i's noise must depend only on (seed, i): in sample(), draw every random number with "
        "self.randn(n, ...) / self.rand(n, ...) (first dimension n, row j is image j's; "
        "zoo.sampling.randn in code without the model), never torch.randn(..., generator=generator), "
        "and keep the images independent in the network (batch norm in eval mode, nothing across images)."
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", BatchDependentSamplingWarning)
        try:
            whole = generate(net, 6, seed=3, batch_size=6, options=options)
            split = generate(net, 6, seed=3, batch_size=2, options=options)
        except BatchDependentSamplingWarning:
            raise AssertionError(
                f"{net.name}: sampling depends on the batch size: sample() drew noise from `generator` as "
                f"one plain torch.Generator, so zoo sample/eval give other images for another --batch-size. {how}"
            ) from None
    diff = (whole.int() - split.int()).abs()
    changed = int((diff > 0).sum())
    if changed and (int(diff.max()) > 1 or changed > 2):
        images = sorted(set(torch.nonzero(diff)[:, 0].tolist()))
        raise AssertionError(
            f"{net.name}: sampling depends on the batch size: zoo.sampling.generate(n=6, seed=3) gave "
            f"different images with batch_size=6 and batch_size=2 (images {images}; {changed} pixels, up to "
            f"{int(diff.max())} levels). {how}"
        )
    other = generate(net, 6, seed=4, batch_size=6, options=options)
    assert not torch.equal(whole, other), (
        f"{net.name}: zoo.sampling.generate gives the same images for seeds 3 and 4: sample() ignores the "
        "per-image generators it is given"
    )


def _resolve(model: str | type[GenerativeModel]) -> type[GenerativeModel]:
    from zoo.factory import resolve

    return resolve(model)[0]
