"""Model-specific tests of the ``vaegan`` plugin (Larsen et al. 2016); the generic contract is
tested for every registered model in test_contract.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from zoo_vaegan.model import VAEGAN, VAEGANConfig, feature_nll, gaussian_kl

from zoo.errors import ConfigError
from zoo.model import TrainStep
from zoo.sampling import generate


def tiny(shape: tuple[int, int, int] = (1, 28, 28), **overrides: object) -> VAEGAN:
    torch.manual_seed(0)
    return VAEGAN(VAEGANConfig(**{**VAEGAN.tiny_config, **overrides}), shape)


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in module.named_parameters()}


def changed(before: dict[str, torch.Tensor], module: nn.Module) -> bool:
    return any(not torch.equal(before[k], p) for k, p in module.named_parameters())


def test_feature_loss_is_half_the_squared_feature_distance() -> None:
    a = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    b = torch.tensor([[1.0, 0.0, 3.0], [1.0, 1.0, 1.0]])
    assert torch.allclose(feature_nll(a, b), torch.tensor([2.0, 1.5]))


def test_kl_is_zero_at_the_prior_and_matches_the_closed_form() -> None:
    assert torch.allclose(gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))
    mu, logvar = torch.tensor([[1.0]]), torch.tensor([[0.5]])
    expected = 0.5 * (1.0 + torch.exp(torch.tensor(0.5)) - 1.0 - 0.5)
    assert torch.allclose(gaussian_kl(mu, logvar), expected.reshape(1))


def test_three_optimizers_each_own_one_network() -> None:
    model = tiny()
    opts = model.configure_optimizers()
    assert set(opts) == {"enc", "dec", "dis"}
    owners = {"enc": model.encoder, "dec": model.decoder, "dis": model.discriminator}
    for name, opt in opts.items():
        params = {id(p) for group in opt.param_groups for p in group["params"]}
        assert params == {id(p) for p in owners[name].parameters()}, name


def test_a_step_updates_all_three_networks_and_reports_the_paper_losses() -> None:
    model = tiny()
    step = TrainStep(0, model.configure_optimizers())
    before = {n: snapshot(getattr(model, n)) for n in ("encoder", "decoder", "discriminator")}
    logs = model.train_step(torch.rand(8, 1, 28, 28) * 2 - 1, step)
    for name in before:
        assert changed(before[name], getattr(model, name)), name
    assert {"dis_loss", "dec_gan", "llike", "kl"} <= set(logs)
    assert all(torch.isfinite(torch.tensor(float(v))) for v in logs.values())
    # No gradient is left behind on any network (each optimizer zeroes its own).
    assert all(p.grad is None for p in model.parameters())


def test_gamma_zero_leaves_the_reconstruction_out_of_the_decoder_update(monkeypatch) -> None:
    """With gamma = 0 the decoder's objective is the GAN loss alone: scaling L_llike changes nothing."""
    import zoo_vaegan.model as module

    results = []
    for scale in (1.0, 1000.0):
        model = tiny(gamma=0.0)
        monkeypatch.setattr(module, "feature_nll", lambda a, b, s=scale: s * 0.5 * (a - b).square().sum(1))
        torch.manual_seed(1)
        model.train_step(torch.rand(8, 1, 28, 28) * 2 - 1, TrainStep(0, model.configure_optimizers()))
        results.append(snapshot(model.decoder))
    assert all(torch.allclose(results[0][k], results[1][k]) for k in results[0])


def test_samples_come_from_the_decoder_ema_in_eval_mode_and_keep_the_mode() -> None:
    model = tiny()
    model.train()
    x = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert float(x.abs().max()) <= 1.0
    assert model.decoder.training  # sampling leaves the training mode alone
    assert model.sampling_decoder() is model.decoder_ema.shadow
    assert tiny(ema_decay=0.0).sampling_decoder() is not None


def test_images_do_not_depend_on_the_batch_size() -> None:
    model = tiny().eval()
    a = generate(model, 6, seed=3, batch_size=6)
    b = generate(model, 6, seed=3, batch_size=2)
    assert (a.int() - b.int()).abs().max() <= 1


@pytest.mark.parametrize("field,value", [("gamma", -1.0), ("latent_dim", 0), ("beta1", 1.0), ("lr", 0.0)])
def test_bad_config_values_are_config_errors(field, value) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match=field):
        VAEGANConfig(**{field: value})


@pytest.mark.parametrize("size", [28, 32, 64])
def test_supported_sizes_build_and_sample(size) -> None:  # noqa: ANN001
    model = tiny((3, size, size))
    assert model.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 3, size, size)


def test_validation_metrics_are_finite() -> None:
    metrics = tiny().validation_metrics(torch.rand(4, 1, 28, 28) * 2 - 1)
    assert set(metrics) == {"kl", "recon_mse"} and all(v == v and v >= 0 for v in metrics.values())
