"""Model-specific tests of the ``flow`` plugin (flow matching / rectified flow); the generic
contract is tested for every registered model in test_contract.py."""

from __future__ import annotations

import pytest
import torch
from zoo_flow.model import TIME_SCALE, FlowConfig, FlowMatching, nfe, ode_solve

from zoo.errors import ConfigError, UnknownNameError
from zoo.model import TrainStep
from zoo.sampling import generate


def tiny(**overrides: object) -> FlowMatching:
    torch.manual_seed(0)
    return FlowMatching(FlowConfig(**{**FlowMatching.tiny_config, **overrides}), (1, 28, 28))


def test_the_solvers_are_exact_on_a_constant_velocity_and_heun_is_second_order() -> None:
    x0 = torch.randn(3, 1, 2, 2)
    for sampler in ("euler", "heun"):
        out = ode_solve(lambda x, t: torch.ones_like(x), x0, sampler, 7)
        assert torch.allclose(out, x0 + 1.0, atol=1e-6)
    # dx/dt = 2t: exact x(1) = x(0) + 1. Euler's error is O(h); Heun's (trapezoid) is exact except
    # for its last, uncorrected Euler step.
    v = lambda x, t: 2 * t.view(-1, 1, 1, 1) * torch.ones_like(x)  # noqa: E731
    err_euler = float((ode_solve(v, x0, "euler", 10) - (x0 + 1)).abs().max())
    err_heun = float((ode_solve(v, x0, "heun", 10) - (x0 + 1)).abs().max())
    assert err_euler == pytest.approx(0.1, abs=1e-5)  # sum of 2 t_i h = 1 - h
    assert err_heun == pytest.approx(0.01, abs=1e-5)  # only the last step's h^2 term
    with pytest.raises(ConfigError):
        ode_solve(v, x0, "rk4", 3)


def test_nfe_counts_network_evaluations() -> None:
    assert nfe("euler", 10) == 10 and nfe("heun", 10) == 19 and nfe("heun", 1) == 1
    calls = []
    model = tiny()
    real = model.ema.forward
    model.ema.forward = lambda *a: calls.append(1) or real(*a)  # type: ignore[method-assign]
    model.sample(2, generator=torch.Generator().manual_seed(0), sampler="heun", steps=4)
    assert len(calls) == FlowMatching.sample_nfe(sampler="heun", steps=4) == 7


def test_loss_is_the_straight_line_velocity_regression() -> None:
    model = tiny()
    x1 = torch.rand(4, 1, 28, 28) * 2 - 1
    seen = {}

    def net(xt, t):  # noqa: ANN001, ANN202
        seen["xt"], seen["t"] = xt, t
        return torch.zeros_like(xt)

    model.net.forward = net  # type: ignore[method-assign]
    gen = torch.Generator().manual_seed(5)
    loss = model.loss(x1, generator=gen)
    gen = torch.Generator().manual_seed(5)
    x0 = torch.randn(x1.shape, generator=gen)
    t = torch.rand(4, generator=gen)
    assert torch.allclose(seen["t"], t)
    assert torch.allclose(seen["xt"], (1 - t.view(-1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1) * x1)
    assert torch.allclose(loss, (x1 - x0).square().mean())


def test_the_unet_sees_times_on_ddpm_s_timestep_scale() -> None:
    model = tiny()
    seen = {}
    unet = model.net.unet
    real = unet.forward
    unet.forward = lambda x, t: seen.setdefault("t", t) is not None and real(x, t)  # type: ignore[method-assign]
    model.net(torch.zeros(2, 1, 28, 28), torch.tensor([0.25, 1.0]))
    assert torch.allclose(seen["t"], torch.tensor([0.25, 1.0]) * TIME_SCALE)


def test_training_lowers_the_loss_and_updates_the_ema() -> None:
    model = tiny()
    opts = model.configure_optimizers()
    data = torch.rand(16, 1, 28, 28).round() * 2 - 1
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        first = float(model.loss(data, generator=gen))
    ema_before = [p.clone() for p in model.ema.parameters()]
    for i in range(30):
        model.train_step(data, TrainStep(i, opts))
        model.after_optimizer_step(i)
    with torch.no_grad():
        assert float(model.loss(data, generator=torch.Generator().manual_seed(0))) < first
    assert any(not torch.equal(a, b) for a, b in zip(ema_before, model.ema.parameters(), strict=True))


def test_sampling_options_and_batch_independence() -> None:
    model = tiny().eval()
    for opts in ({"sampler": "euler", "steps": 3}, {"sampler": "heun", "steps": 2}):
        a = generate(model, 5, seed=1, batch_size=5, options=opts)
        b = generate(model, 5, seed=1, batch_size=2, options=opts)
        assert (a.int() - b.int()).abs().max() <= 1
    with pytest.raises(UnknownNameError):
        model.sample(1, sampler="ddim")
    with pytest.raises(ConfigError):
        model.sample(1, steps=0)


def test_flow_is_in_the_diffusion_family_with_the_ddpm_unet() -> None:
    from zoo.nets.unet import UNet

    assert FlowMatching.family == "diffusion"
    assert isinstance(tiny().net.unet, UNet)
