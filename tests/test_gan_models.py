"""Model-specific tests of the ``gan`` and ``dcgan`` plugins (the generic contract is tested elsewhere)."""

from __future__ import annotations

import math

import pytest
import torch
import zoo_gan.model as gan_module
from torch import nn
from zoo_dcgan.model import DCGAN, DCGANConfig
from zoo_gan.model import GAN, GANConfig

import zoo.blocks
from zoo.errors import ConfigError, DataError
from zoo.model import TrainStep

MODELS = [GAN, DCGAN]
LOSS_MODULES = [zoo.blocks, zoo.blocks]  # GAN and DCGAN train with the shared objective


def tiny(cls: type, shape: tuple[int, int, int] = (1, 28, 28), **overrides: object):  # noqa: ANN201
    torch.manual_seed(0)
    return cls(cls.Config(**{**cls.tiny_config, **overrides}), shape)


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in module.named_parameters()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


# -- losses -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mod", LOSS_MODULES, ids=["gan", "dcgan"])
def test_generator_loss_is_non_saturating(mod) -> None:  # noqa: ANN001
    logits = torch.tensor([-10.0, -2.0, 0.0, 3.0], requires_grad=True)
    # -log D(G(z)) with D = sigmoid(logit), by hand: log(1 + exp(-l)).
    expected = sum(math.log1p(math.exp(-v)) for v in (-10.0, -2.0, 0.0, 3.0)) / 4
    loss = mod.generator_loss(logits)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # The point of the non-saturating form: a confidently rejected fake (logit -10) still gets a
    # strong gradient (about -1/4 after the mean), where log(1 - D) would give about 4.5e-5 / 4.
    loss.backward()
    assert logits.grad[0].item() == pytest.approx(-(1 / (1 + math.exp(-10))) / 4, rel=1e-5)
    assert abs(logits.grad[0].item()) > 0.2


@pytest.mark.parametrize("mod", LOSS_MODULES, ids=["gan", "dcgan"])
def test_discriminator_loss_matches_hand_computation(mod) -> None:  # noqa: ANN001
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    expected = -(math.log(sig(2.0)) + math.log(sig(-1.0))) / 2 - (math.log(1 - sig(0.5)) + math.log(1 - sig(-3.0))) / 2
    assert mod.discriminator_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("cls,mod", list(zip(MODELS, LOSS_MODULES, strict=True)), ids=["gan", "dcgan"])
def test_train_step_uses_the_non_saturating_generator_loss(cls, mod, monkeypatch) -> None:  # noqa: ANN001
    calls: list[torch.Tensor] = []
    original = mod.generator_loss

    def spy(logits: torch.Tensor) -> torch.Tensor:
        calls.append(logits.detach().clone())
        return original(logits)

    monkeypatch.setattr(mod, "generator_loss", spy)
    model = tiny(cls)
    logs = model.train_step(torch.rand(6, 1, 28, 28) * 2 - 1, TrainStep(0, model.configure_optimizers()))
    assert len(calls) == 1 and calls[0].shape == (6,)
    assert logs["g_loss"] == pytest.approx(torch.nn.functional.softplus(-calls[0]).mean().item(), rel=1e-6)


# -- the alternating updates ------------------------------------------------------------------


class RecordingStep(TrainStep):
    """A TrainStep that snapshots both networks after each optimizer step."""

    def __init__(self, model: nn.Module, optimizers: dict[str, torch.optim.Optimizer]):
        super().__init__(step=0, optimizers=optimizers)
        self.model = model
        self.after: dict[str, tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = {}
        self.grads_on_g_after_d: list[bool] = []

    def optimize(self, name: str, loss: torch.Tensor, *, retain_graph: bool = False) -> None:
        super().optimize(name, loss, retain_graph=retain_graph)
        if name == "d":
            self.grads_on_g_after_d = [p.grad is not None for p in self.model.generator.parameters()]
        self.after[name] = (snapshot(self.model.generator), snapshot(self.model.discriminator))


@pytest.mark.parametrize("cls", MODELS, ids=["gan", "dcgan"])
def test_d_step_leaves_g_alone_and_g_step_leaves_d_alone(cls) -> None:
    model = tiny(cls)
    g0, d0 = snapshot(model.generator), snapshot(model.discriminator)
    step = RecordingStep(model, model.configure_optimizers())
    model.train_step(torch.rand(8, 1, 28, 28) * 2 - 1, step)

    assert list(step.after) == ["d", "g"], "D must be updated first, then G"
    g_after_d, d_after_d = step.after["d"]
    g_after_g, d_after_g = step.after["g"]
    assert same(g_after_d, g0), "the D step changed G's parameters"
    assert not same(d_after_d, d0), "the D step did not change D"
    assert not any(step.grads_on_g_after_d), "the D step left gradients on G (fakes not detached)"
    assert same(d_after_g, d_after_d), "the G step changed D's parameters"
    assert not same(g_after_g, g_after_d), "the G step did not change G"
    # Nothing is left behind for the next step to accumulate into, and D is trainable again.
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.discriminator.parameters())


@pytest.mark.parametrize("cls", MODELS, ids=["gan", "dcgan"])
def test_optimizers_cover_each_network_exactly(cls) -> None:
    model = tiny(cls)
    opts = model.configure_optimizers()
    assert set(opts) == {"d", "g"}
    ids = lambda opt: {id(p) for g in opt.param_groups for p in g["params"]}  # noqa: E731
    assert ids(opts["d"]) == {id(p) for p in model.discriminator.parameters()}
    assert ids(opts["g"]) == {id(p) for p in model.generator.parameters()}


# -- shapes and sizes -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(size: int, channels: int) -> None:
    model = tiny(DCGAN, (channels, size, size))
    x = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1
    assert model.discriminator(x).shape == (5,)


def test_dcgan_upsampling_paths_follow_the_image_size() -> None:
    def spatial_sizes(size: int) -> list[int]:
        model = tiny(DCGAN, (1, size, size))
        sizes, h = [], torch.randn(2, model.config.latent_dim)[:, :, None, None]
        for layer in model.generator.net:
            h = layer(h)
            if isinstance(layer, nn.ConvTranspose2d):
                sizes.append(h.shape[-1])
        return sizes

    assert spatial_sizes(28) == [7, 14, 28]
    assert spatial_sizes(32) == [4, 8, 16, 32]
    assert spatial_sizes(64) == [4, 8, 16, 32, 64]


@pytest.mark.parametrize("size", [16, 30, 48])
def test_dcgan_refuses_unsupported_sizes_naming_the_supported_ones(size: int) -> None:
    with pytest.raises(DataError, match="28x28, 32x32, 64x64"):
        DCGAN(DCGANConfig(**DCGAN.tiny_config), (1, size, size))


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 20, 20)])
def test_gan_mlp_takes_any_square_size(shape: tuple[int, int, int]) -> None:
    model = tiny(GAN, shape)
    x = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, *shape)
    assert model.discriminator(x).shape == (4,)


# -- the paper's architecture and initialisation ----------------------------------------------


def test_dcgan_follows_the_papers_guidelines() -> None:
    model = DCGAN(DCGANConfig(), (1, 32, 32))
    g, d = list(model.generator.net), list(model.discriminator.net)
    assert not any(isinstance(m, (nn.Linear, nn.MaxPool2d, nn.AvgPool2d)) for m in g + d)
    assert isinstance(g[-1], nn.Tanh) and isinstance(g[-2], nn.ConvTranspose2d)  # no BN on G's output
    assert isinstance(d[0], nn.Conv2d) and isinstance(d[1], nn.LeakyReLU)  # no BN on D's input
    assert all(m.negative_slope == 0.2 for m in d if isinstance(m, nn.LeakyReLU))
    assert any(isinstance(m, nn.ReLU) for m in g) and not any(isinstance(m, nn.LeakyReLU) for m in g)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g) == 3 and sum(isinstance(m, nn.BatchNorm2d) for m in d) == 2
    weights = torch.cat([m.weight.flatten() for m in g + d if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert weights.mean().abs() < 1e-3 and weights.std().item() == pytest.approx(0.02, rel=0.05)
    opt = model.configure_optimizers()["g"]
    assert opt.defaults["lr"] == model.config.lr and opt.defaults["betas"] == (0.5, 0.999)
    assert DCGAN.default_batch_size == 128


def test_gan_discriminator_uses_maxout() -> None:
    model = GAN(GANConfig(), (1, 28, 28))
    maxouts = [m for m in model.discriminator.modules() if isinstance(m, gan_module.Maxout)]
    assert [(m.units, m.pieces) for m in maxouts] == [(240, 5), (240, 5)]
    layer = gan_module.Maxout(3, units=2, pieces=4)
    x = torch.randn(5, 3)
    by_hand = layer.linear(x).view(5, 2, 4).max(dim=-1).values
    assert torch.equal(layer(x), by_hand)


def test_dcgan_sampling_uses_running_statistics_and_restores_train_mode() -> None:
    model = tiny(DCGAN, ema_decay=0.0)  # sample from the live generator
    model.train()
    model.train_step(torch.rand(8, 1, 28, 28) * 2 - 1, TrainStep(0, model.configure_optimizers()))
    buffers = {k: b.clone() for k, b in model.named_buffers()}
    images = model.sample(6, generator=torch.Generator().manual_seed(3))

    assert model.training and model.generator.training, "sample() did not restore train mode"
    assert all(torch.equal(buffers[k], b) for k, b in model.named_buffers()), "sampling changed BN statistics"
    # Eval-mode batch norm: each image depends on its own z only, not on the rest of the batch.
    z = model.randn(6, model.config.latent_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        one_by_one = torch.cat([model.generator.eval()(z[i : i + 1]) for i in range(6)])
    torch.testing.assert_close(images, one_by_one)


@pytest.mark.parametrize("cls", MODELS, ids=["gan", "dcgan"])
def test_samples_come_from_the_ema_generator_updated_after_each_step(cls) -> None:
    model = tiny(cls, ema_decay=0.9)
    opts = model.configure_optimizers()
    assert not any(p.requires_grad for p in model.generator_ema.parameters())
    assert {id(p) for p in model.generator_ema.parameters()}.isdisjoint({id(p) for g in opts["g"].param_groups for p in g["params"]})
    start = snapshot(model.generator_ema)
    x = torch.rand(8, 1, 28, 28) * 2 - 1
    model.train_step(x, TrainStep(0, opts))
    assert same(snapshot(model.generator_ema), start), "the EMA moved before after_optimizer_step"
    for i in range(3):
        model.after_optimizer_step(i)
        model.train_step(x, TrainStep(i + 1, opts))
    assert not same(snapshot(model.generator_ema), start)

    z = model.randn(5, model.config.latent_dim, generator=torch.Generator().manual_seed(1))
    images = model.sample(5, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(images, model.generator_ema.shadow(z))
        assert not torch.allclose(images, model.generator.eval()(z))
    assert tiny(cls, ema_decay=0.0).generator_ema is None


# -- config validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config_cls,field,value",
    [
        (GANConfig, "latent_dim", 0),
        (GANConfig, "d_pieces", 0),
        (GANConfig, "d_dropout", 1.0),
        (GANConfig, "lr", -1e-3),
        (DCGANConfig, "width", 0),
        (DCGANConfig, "beta1", 1.0),
        (DCGANConfig, "init_std", 0.0),
        (DCGANConfig, "ema_decay", 1.0),
    ],
)
def test_config_errors_name_the_field(config_cls, field: str, value: object) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match=rf"{config_cls.__name__}\.{field}"):
        config_cls(**{field: value})
    with pytest.raises(ConfigError, match=field):
        config_cls.from_overrides({field: str(value)})
