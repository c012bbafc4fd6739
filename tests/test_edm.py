"""Model-specific tests of the ``edm`` plugin (Karras et al. 2022, arXiv:2206.00364): Table 1's
preconditioning and loss weighting, the log-normal noise levels, Eq. 5's schedule and Algorithm 1's
Heun sampler. The generic contract (batch-size-independent noise, checkpoints, every optimizer
moves) is checked for every registered model in test_contract.py, exact resume in test_resume.py
and export against the runtime in test_export.py."""

from __future__ import annotations

import math

import pytest
import torch
from zoo_edm.model import (
    EDM,
    NOISE_EMBED_SCALE,
    heun_solve,
    loss_weight,
    nfe,
    preconditioning,
    sigma_schedule,
)
from zoo_edm.spec import EDMConfig

from tests.helpers import zoo_in_process
from zoo.errors import ConfigError
from zoo.model import TrainStep
from zoo.nets.unet import UNet
from zoo.sampling import generate


def tiny(**overrides: object) -> EDM:
    torch.manual_seed(0)
    return EDM(EDMConfig(**{**EDM.tiny_config, **overrides}), (1, 28, 28))


# Table 1 ("Ours") evaluated by hand at sigma_data = 0.5: (sigma, c_skip, c_out, c_in, c_noise).
TABLE_1 = [
    (0.002, 0.25 / 0.250004, 0.001 / math.sqrt(0.250004), 1 / math.sqrt(0.250004), math.log(0.002) / 4),
    (0.5, 0.5, 0.25 / math.sqrt(0.5), math.sqrt(2.0), math.log(0.5) / 4),
    (1.0, 0.2, 0.5 / math.sqrt(1.25), 1 / math.sqrt(1.25), 0.0),
    (80.0, 0.25 / 6400.25, 40.0 / math.sqrt(6400.25), 1 / math.sqrt(6400.25), math.log(80.0) / 4),
]


@pytest.mark.parametrize(("sigma", "c_skip", "c_out", "c_in", "c_noise"), TABLE_1)
def test_preconditioning_matches_table_1(sigma, c_skip, c_out, c_in, c_noise) -> None:  # noqa: ANN001
    got = preconditioning(torch.tensor([sigma], dtype=torch.float64), 0.5)
    for value, want in zip(got, (c_skip, c_out, c_in, c_noise), strict=True):
        assert float(value) == pytest.approx(want, rel=1e-12, abs=1e-15)
    # Table 1's loss weight is 1 / c_out^2: the effective target of F has unit weight (Eq. 8).
    weight = float(loss_weight(torch.tensor([sigma], dtype=torch.float64), 0.5))
    assert weight == pytest.approx((sigma**2 + 0.25) / (sigma * 0.5) ** 2, rel=1e-12)
    assert weight * c_out**2 == pytest.approx(1.0, rel=1e-12)
    # c_in scales noisy data of std sqrt(sigma^2 + sigma_data^2) to unit variance (Sec. 5).
    assert c_in**2 * (sigma**2 + 0.25) == pytest.approx(1.0, rel=1e-12)


def test_the_denoiser_is_eq_7_around_the_unet() -> None:
    model = tiny()
    seen = {}

    def fake_unet(x, t):  # noqa: ANN001, ANN202
        seen.update(x=x, t=t)
        return torch.full_like(x, 0.3)

    model.net.unet.forward = fake_unet  # type: ignore[method-assign]
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.1, 5.0])
    out = model.net(x, sigma)
    c_skip, c_out, c_in, c_noise = preconditioning(sigma.view(-1, 1, 1, 1), 0.5)
    assert torch.allclose(seen["x"], c_in * x)
    assert torch.allclose(seen["t"], NOISE_EMBED_SCALE * c_noise.flatten())
    assert torch.allclose(out, c_skip * x + c_out * 0.3)


def test_training_noise_levels_are_log_normal_and_the_loss_is_weighted() -> None:
    model = tiny()
    seen = {}

    def spy(x, sigma):  # noqa: ANN001, ANN202 - a denoiser that is off by 0.1 everywhere
        seen.update(x=x, sigma=sigma)
        return y + 0.1

    y = torch.zeros(20_000, 1, 2, 2).uniform_(-1, 1)
    loss = model.loss(y, generator=torch.Generator().manual_seed(0), net=spy)
    log_sigma = seen["sigma"].log()
    assert float(log_sigma.mean()) == pytest.approx(-1.2, abs=0.03)  # P_mean
    assert float(log_sigma.std()) == pytest.approx(1.2, abs=0.03)  # P_std
    n = (seen["x"] - y) / seen["sigma"].view(-1, 1, 1, 1)  # the noise is N(0, sigma^2 I)
    assert float(n.std()) == pytest.approx(1.0, abs=0.02)
    assert float(loss) == pytest.approx(float(loss_weight(seen["sigma"], 0.5).mean()) * 0.01, rel=1e-5)


def test_the_rho_schedule_of_eq_5() -> None:
    config = EDMConfig()
    assert (config.sigma_min, config.sigma_max, config.rho, config.sigma_data) == (0.002, 80.0, 7.0, 0.5)
    sigmas = sigma_schedule(18, 0.002, 80.0, 7.0)
    assert len(sigmas) == 19 and sigmas[-1] == 0.0
    assert sigmas[0] == pytest.approx(80.0, rel=1e-12) and sigmas[-2] == pytest.approx(0.002, rel=1e-12)
    assert all(a > b for a, b in zip(sigmas, sigmas[1:], strict=False))
    # rho = 7 spends the steps at low noise: the middle level (i = 9 of 0 .. 17) is
    # (80^(1/7) + 9/17 (0.002^(1/7) - 80^(1/7)))^7 = 1.93, where uniform spacing would put 37.9.
    assert sigmas[9] == pytest.approx(1.93, abs=0.01)
    # rho = 1 is uniform spacing; one step is sigma_max alone (Eq. 5 divides by N - 1).
    assert sigma_schedule(5, 1.0, 5.0, 1.0) == pytest.approx([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    assert sigma_schedule(1, 0.002, 80.0, 7.0) == [80.0, 0.0]
    with pytest.raises(ValueError, match="steps"):
        sigma_schedule(0, 0.002, 80.0, 7.0)


@pytest.mark.parametrize("steps", [1, 2, 5, 18])
def test_heun_costs_2n_minus_1_evaluations_and_euler_n(steps) -> None:  # noqa: ANN001
    model = tiny().eval()
    calls = []
    real = model.ema.forward
    model.ema.forward = lambda x, s: calls.append(s) or real(x, s)  # type: ignore[method-assign]
    for sampler, want in (("heun", 2 * steps - 1), ("euler", steps)):
        calls.clear()
        model.sample(2, generator=torch.Generator().manual_seed(0), sampler=sampler, steps=steps)
        assert len(calls) == want == nfe(sampler, steps) == EDM.sample_nfe(sampler=sampler, steps=steps)
    assert EDM.sample_nfe() == 35  # the paper's default, N = 18


def test_heun_solves_the_probability_flow_ode_of_gaussian_data_to_second_order() -> None:
    """For data N(0, s^2 I) the ideal denoiser is D(x; sigma) = s^2 / (sigma^2 + s^2) x, and the
    ODE dx/dsigma = (x - D) / sigma carries x(sigma_max) to x(sigma_max) s / sqrt(sigma_max^2 + s^2)
    at sigma = 0. Doubling N divides Heun's error by about 4 (second order; Euler's by 2)."""
    s2 = 0.25
    x = torch.randn(64, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 80.0
    exact = x * math.sqrt(s2) / math.sqrt(80.0**2 + s2)

    def ideal(x, sigma):  # noqa: ANN001, ANN202
        return s2 / (sigma.view(-1, 1, 1, 1).double() ** 2 + s2) * x

    def error(sampler: str, steps: int) -> float:
        return float((heun_solve(ideal, x, sigma_schedule(steps, 0.002, 80.0, 7.0), sampler) - exact).abs().max())

    assert error("heun", 36) / error("heun", 18) < 0.3 and error("heun", 72) / error("heun", 36) < 0.3
    assert 0.4 < error("euler", 36) / error("euler", 18) < 0.6
    assert error("heun", 72) < 0.005 * float(exact.abs().max()) and error("heun", 18) < error("euler", 18) / 2
    with pytest.raises(ConfigError, match="sampler"):
        heun_solve(ideal, x, sigma_schedule(2, 0.002, 80.0, 7.0), "ddim")


def test_sampling_is_deterministic_and_independent_of_the_batch_size() -> None:
    model = tiny().eval()
    opts = {"sampler": "heun", "steps": 3}
    a = generate(model, 5, seed=1, batch_size=5, options=opts)
    assert torch.equal(a, generate(model, 5, seed=1, batch_size=5, options=opts))
    assert (a.int() - generate(model, 5, seed=1, batch_size=2, options=opts).int()).abs().max() <= 1
    assert not torch.equal(a, generate(model, 5, seed=2, batch_size=5, options=opts))
    with pytest.raises(ConfigError):
        model.sample(1, steps=0)


def test_training_lowers_the_loss_and_updates_the_ema() -> None:
    model = tiny()
    opts = model.configure_optimizers()
    data = torch.rand(16, 1, 28, 28).round() * 2 - 1
    with torch.no_grad():
        first = float(model.loss(data, generator=torch.Generator().manual_seed(0)))
    ema_before = [p.clone() for p in model.ema.parameters()]
    for i in range(20):
        model.train_step(data, TrainStep(i, opts))
        model.after_optimizer_step(i)
    with torch.no_grad():
        assert float(model.loss(data, generator=torch.Generator().manual_seed(0))) < first
    assert any(not torch.equal(a, b) for a, b in zip(ema_before, model.ema.parameters(), strict=True))
    assert isinstance(model.net.unet, UNet) and EDM.family == "diffusion"


def test_config_defaults_are_the_paper_s_and_the_recipe_shifts_p_mean() -> None:
    """Table 1's training distribution is the default; the short-budget recipe (bench presets,
    measured in docs/benchmarks.md) trains at higher noise levels, in both of its precisions."""
    config = EDMConfig()
    assert (config.p_mean, config.p_std) == (-1.2, 1.2)
    recipe = EDM.recipe
    assert recipe.overrides["p_mean"] == recipe.fallback.overrides["p_mean"] == 0.4
    assert recipe.fallback.overrides["base_channels"] == 12  # ddpm's fallback width: equal FLOPs


def test_bad_settings_name_the_field() -> None:
    for overrides, field in (({"sigma_max": 0.001}, "sigma_max"), ({"sigma_data": 0}, "sigma_data"),
                             ({"rho": -1}, "rho"), ({"p_std": 0}, "p_std")):
        with pytest.raises(ConfigError, match=field):
            EDMConfig.from_overrides(overrides)


def test_cli_trains_samples_and_exports_edm(tmp_path, capsys) -> None:  # noqa: ANN001
    pytest.importorskip("onnxruntime")
    run = tmp_path / "run"
    code, _, err = zoo_in_process(capsys, "train", "edm", "--steps", "2", "--set", "base_channels=8",
                                  "--set", "channel_mults=1,2", "--batch-size", "8", "--run-dir", str(run),
                                  "--no-progress")
    assert code == 0, err
    code, _, err = zoo_in_process(capsys, "sample", str(run), "-n", "4", "--out", str(tmp_path / "g.png"),
                                  "--option", "steps=2")
    assert code == 0, err and (tmp_path / "g.png").stat().st_size > 0
    code, out, err = zoo_in_process(capsys, "export", str(run), "--out", str(tmp_path / "e"))
    assert code == 0, err
    assert "edm (denoiser, onnx" in out
    import json

    meta = json.loads((tmp_path / "e" / "model.json").read_text())
    assert meta["sampler"]["type"] == "edm" and meta["sampler"]["sigma_max"] == 80.0
    assert [i["name"] for i in meta["inputs"]] == ["x", "sigma"]
