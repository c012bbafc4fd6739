"""DDPM plugin: noise schedule, samplers (DDPM ancestral, DDIM) and the model's sampling contract.

Generic contract checks over every registered model live in the lead's contract tests; these
check the diffusion maths against closed forms (Ho et al. 2020; Song et al. 2021).
"""

from __future__ import annotations

import math

import pytest
import torch
from zoo_ddpm.model import DDPM
from zoo_ddpm.schedulers import DDIMScheduler, DDPMScheduler, NoiseSchedule, timestep_grid

from zoo.errors import ConfigError, UnknownNameError
from zoo.model import TrainStep
from zoo.nets.unet import UNet

T = 1000


@pytest.fixture(scope="module")
def schedule() -> NoiseSchedule:
    return NoiseSchedule.linear(T, 1e-4, 0.02)


def tiny_model(shape: tuple[int, int, int] = (1, 16, 16), **overrides: object) -> DDPM:
    torch.manual_seed(0)
    cfg = DDPM.Config.from_overrides({**DDPM.tiny_config, **overrides})
    return DDPM(cfg, shape)


def train_a_little(model: DDPM, steps: int = 3) -> None:
    opts = model.configure_optimizers()
    batch = torch.rand(8, *model.image_shape) * 2 - 1
    for i in range(steps):
        model.train_step(
            batch, TrainStep(step=i, optimizers=opts, grad_clip=model.config.grad_clip)
        )
        model.after_optimizer_step(i)


def perfect_eps(x0: torch.Tensor, schedule: NoiseSchedule):
    """An oracle epsilon predictor for a known ``x_0``: the noise that explains ``x_t`` exactly."""

    def eps(x_t: torch.Tensor, t: int) -> torch.Tensor:
        abar = schedule.alpha_bar(t)
        return (x_t - math.sqrt(abar) * x0) / math.sqrt(1 - abar)

    return eps


def noised(x0: torch.Tensor, t: int, schedule: NoiseSchedule, gen: torch.Generator) -> torch.Tensor:
    noise = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    return schedule.q_sample(x0, torch.full((x0.shape[0],), t), noise)


# -- the noise schedule -------------------------------------------------------------------------


def test_linear_schedule_endpoints_and_monotone_alpha_bar(schedule: NoiseSchedule) -> None:
    assert schedule.num_timesteps == T
    assert schedule.betas[0].item() == pytest.approx(1e-4)
    assert schedule.betas[-1].item() == pytest.approx(0.02)
    assert bool((schedule.betas[1:] > schedule.betas[:-1]).all())
    abar = schedule.alphas_cumprod
    assert bool((abar[1:] < abar[:-1]).all())
    assert 0 < abar[-1].item() < 1e-4 and abar[0].item() == pytest.approx(1 - 1e-4)
    assert schedule.alpha_bar(-1) == 1.0


def test_forward_noising_has_the_closed_form_mean_and_variance(schedule: NoiseSchedule) -> None:
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((200_000, 1), 0.6, dtype=torch.float64)
    for t in (0, 250, 999):
        x_t = noised(x0, t, schedule, gen)
        abar = schedule.alpha_bar(t)
        assert x_t.mean().item() == pytest.approx(math.sqrt(abar) * 0.6, abs=0.01)
        assert x_t.var().item() == pytest.approx(1 - abar, rel=0.02, abs=1e-6)


# -- timestep grids -----------------------------------------------------------------------------


@pytest.mark.parametrize("spacing", ["uniform", "quadratic"])
@pytest.mark.parametrize("n", [1, 2, 7, 50, 333, 999, 1000])
def test_timestep_grid_is_n_distinct_decreasing_values_in_range(spacing: str, n: int) -> None:
    grid = timestep_grid(T, n, spacing)
    assert len(grid) == n
    assert all(a > b for a, b in zip(grid, grid[1:], strict=False))
    assert grid[-1] >= 0 and grid[0] < T


def test_timestep_grid_shapes() -> None:
    assert timestep_grid(T, 10, "uniform") == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert timestep_grid(T, T, "uniform") == list(range(T - 1, -1, -1))
    quad = timestep_grid(T, 50, "quadratic")  # Song et al.: (linspace(0, sqrt(0.8 T), N))^2
    assert quad[0] == 800 and quad[-1] == 0
    assert quad[-2] - quad[-1] < quad[0] - quad[1]  # dense near t = 0
    with pytest.raises(ConfigError):
        timestep_grid(T, 0)
    with pytest.raises(ConfigError):
        timestep_grid(T, T + 1)
    with pytest.raises(UnknownNameError):
        timestep_grid(T, 10, "cubic")


# -- samplers against closed forms --------------------------------------------------------------


@pytest.mark.parametrize("spacing", ["uniform", "quadratic"])
def test_ddim_eta0_with_a_perfect_predictor_recovers_x0(
    schedule: NoiseSchedule, spacing: str
) -> None:
    gen = torch.Generator().manual_seed(1)
    x0 = torch.rand(4, 1, 8, 8, generator=gen, dtype=torch.float64) * 1.8 - 0.9
    eps = perfect_eps(x0, schedule)
    sched = DDIMScheduler(schedule, eta=0.0)
    sched.set_timesteps(20, spacing)
    x = noised(x0, sched.timesteps[0], schedule, gen)
    for t in sched.timesteps:
        x = sched.step(eps(x, t), t, x, generator=gen).prev_sample
    torch.testing.assert_close(x, x0, atol=1e-6, rtol=0)


def test_ddpm_posterior_matches_ho_et_al_eq7(schedule: NoiseSchedule) -> None:
    gen = torch.Generator().manual_seed(2)
    t = 500
    x0 = torch.rand(3, 1, 4, 4, generator=gen, dtype=torch.float64) * 2 - 1
    x_t = noised(x0, t, schedule, gen)
    beta, alpha = schedule.betas[t].item(), 1 - schedule.betas[t].item()
    abar, abar_prev = schedule.alpha_bar(t), schedule.alpha_bar(t - 1)
    mean = (
        math.sqrt(abar_prev) * beta / (1 - abar) * x0
        + math.sqrt(alpha) * (1 - abar_prev) / (1 - abar) * x_t
    )
    var = (1 - abar_prev) / (1 - abar) * beta

    sched = DDPMScheduler(schedule)
    sched.set_timesteps(T)
    got_mean, got_var = sched.posterior(x0, t, x_t)
    torch.testing.assert_close(got_mean, mean)
    assert got_var == pytest.approx(var, rel=1e-12)

    # step() with the oracle predictor draws from exactly that Gaussian.
    many_x0 = torch.full((100_000, 1), 0.3, dtype=torch.float64)
    many_xt = torch.full_like(many_x0, -0.2)
    out = sched.step(
        perfect_eps(many_x0, schedule)(many_xt, t), t, many_xt, generator=gen
    ).prev_sample
    expected_mean = (
        math.sqrt(abar_prev) * beta / (1 - abar) * 0.3
        + math.sqrt(alpha) * (1 - abar_prev) / (1 - abar) * -0.2
    )
    assert out.mean().item() == pytest.approx(expected_mean, abs=4 * math.sqrt(var / 100_000))
    assert out.var().item() == pytest.approx(var, rel=0.02)


def test_last_ancestral_step_returns_the_x0_prediction(schedule: NoiseSchedule) -> None:
    gen = torch.Generator().manual_seed(3)
    x0 = torch.rand(2, 1, 4, 4, generator=gen, dtype=torch.float64) * 2 - 1
    sched = DDPMScheduler(schedule)
    sched.set_timesteps(T)
    x_0 = noised(x0, 0, schedule, gen)
    state = gen.get_state()
    out = sched.step(perfect_eps(x0, schedule)(x_0, 0), 0, x_0, generator=gen)
    torch.testing.assert_close(out.prev_sample, x0)
    assert torch.equal(gen.get_state(), state)  # no noise is drawn at the last step


@pytest.mark.parametrize(
    ("make", "steps", "t"),
    [
        (lambda s: DDPMScheduler(s), T, 400),  # full chain
        (lambda s: DDPMScheduler(s), 10, 599),  # respaced betas
        (lambda s: DDIMScheduler(s, eta=0.0), 10, 599),
        (lambda s: DDIMScheduler(s, eta=0.5), 25, 559),
        (lambda s: DDIMScheduler(s, eta=1.0), 10, 599),
    ],
)
def test_one_step_keeps_the_forward_marginals(
    schedule: NoiseSchedule, make, steps: int, t: int
) -> None:
    """With the oracle predictor, x_t ~ q(x_t | x0) maps to x_prev ~ q(x_prev | x0) (DDIM eq. 7).

    For ancestral sampling on a respaced grid this holds only if the betas are respaced correctly.
    """
    gen = torch.Generator().manual_seed(4)
    sched = make(schedule)
    sched.set_timesteps(steps)
    assert t in sched.timesteps
    t_prev = sched.prev_timestep(t)
    assert t_prev == sched.timesteps[sched.timesteps.index(t) + 1]
    x0 = torch.full((200_000, 1), 0.5, dtype=torch.float64)
    x_t = noised(x0, t, schedule, gen)
    out = sched.step(perfect_eps(x0, schedule)(x_t, t), t, x_t, generator=gen).prev_sample
    abar_prev = schedule.alpha_bar(t_prev)
    assert out.mean().item() == pytest.approx(math.sqrt(abar_prev) * 0.5, abs=0.01)
    assert out.var().item() == pytest.approx(1 - abar_prev, rel=0.02)


def test_ddim_eta0_step_draws_no_noise(schedule: NoiseSchedule) -> None:
    sched = DDIMScheduler(schedule, eta=0.0)
    sched.set_timesteps(10)
    x, eps = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(99)
    state = g1.get_state()
    a = sched.step(eps, 599, x, generator=g1).prev_sample
    b = sched.step(eps, 599, x, generator=g2).prev_sample
    assert torch.equal(a, b)
    assert torch.equal(g1.get_state(), state)


# -- the model's sampling contract ----------------------------------------------------------------


def test_sample_is_reproducible_from_the_generator() -> None:
    model = tiny_model()
    train_a_little(model)

    def draw(seed: int, **options: object) -> torch.Tensor:
        return model.sample(3, generator=torch.Generator().manual_seed(seed), **options)

    for options in ({}, {"sampler": "ddpm"}, {"sampler": "ddim", "eta": 1.0, "steps": 5}):
        a, b = draw(0, **options), draw(0, **options)
        assert torch.equal(a, b), options
        assert not torch.equal(a, draw(1, **options)), options
        assert a.shape == (3, 1, 16, 16)
        assert a.min() >= -1 and a.max() <= 1
    # eta = 0: the images are a function of the initial noise only; eta > 0 adds fresh noise.
    assert not torch.equal(draw(0, eta=0.0, steps=5), draw(0, eta=1.0, steps=5))


def test_sample_uses_the_ema_weights() -> None:
    model = tiny_model()
    train_a_little(model)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    before = model.sample(2, generator=gen(), steps=5)
    with torch.no_grad():
        for p in model.unet.parameters():
            p.zero_()
    torch.testing.assert_close(model.sample(2, generator=gen(), steps=5), before, rtol=0, atol=0)
    with torch.no_grad():
        for p in model.ema.shadow.parameters():
            p.mul_(0.5)
    assert not torch.allclose(model.sample(2, generator=gen(), steps=5), before)


def test_ema_is_updated_after_each_step_and_checkpointed() -> None:
    model = tiny_model()
    assert int(model.ema.num_updates) == 0
    train_a_little(model, steps=2)
    assert int(model.ema.num_updates) == 2
    assert any(k.startswith("ema.shadow.") for k in model.state_dict())
    optimised = {
        id(p) for g in model.configure_optimizers()["main"].param_groups for p in g["params"]
    }
    assert optimised == {id(p) for p in model.unet.parameters()}

    clone = tiny_model()
    clone.load_state_dict(model.state_dict())
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    torch.testing.assert_close(clone.sample(2, generator=gen()), model.sample(2, generator=gen()))


def test_sampling_options_are_validated() -> None:
    model = tiny_model()
    with pytest.raises(UnknownNameError):
        model.sample(1, sampler="euler")
    with pytest.raises(UnknownNameError):
        model.sample(1, spacing="cubic")
    with pytest.raises(UnknownNameError):
        model.sample(1, temperature=1.0)
    with pytest.raises(ConfigError):
        model.sample(1, steps=0)
    with pytest.raises(ConfigError):
        model.sample(1, steps=model.config.num_timesteps + 1)
    with pytest.raises(ConfigError):
        model.sample(1, eta=-0.1)
    with pytest.raises(ConfigError):
        model.sample(1, steps="many")
    # CLI strings parse; "auto" picks the sampler's default; parsing is idempotent.
    parsed = DDPM.parse_sample_options({"sampler": "ddpm", "steps": "auto", "eta": "0.5"})
    assert parsed == {"sampler": "ddpm", "steps": None, "eta": 0.5, "spacing": "uniform",
                      "precision": "fp32"}
    assert DDPM.parse_sample_options(parsed) == parsed
    assert model.sample(2, **parsed).shape == (2, 1, 16, 16)


def test_default_steps_per_sampler() -> None:
    model = tiny_model(num_timesteps=60)
    calls: list[int] = []
    real_forward = model.ema.forward
    model.ema.forward = lambda x, t: calls.append(int(t[0])) or real_forward(x, t)  # type: ignore[method-assign]
    model.sample(1, generator=torch.Generator().manual_seed(0))
    assert len(calls) == 50  # ddim default
    calls.clear()
    model.sample(1, sampler="ddpm", generator=torch.Generator().manual_seed(0))
    assert calls == list(range(59, -1, -1))  # every timestep, from T-1 down to 0
    calls.clear()
    model.sample(1, sampler="ddpm", steps=6, generator=torch.Generator().manual_seed(0))
    assert calls == [59, 49, 39, 29, 19, 9]


def test_warmup_sets_the_learning_rate_from_the_step() -> None:
    model = tiny_model(warmup_steps=10, lr=1e-3)
    opts = model.configure_optimizers()
    batch = torch.rand(4, 1, 16, 16) * 2 - 1
    out = model.train_step(batch, TrainStep(step=4, optimizers=opts))
    assert out["lr"] == pytest.approx(5e-4)
    assert opts["main"].param_groups[0]["lr"] == pytest.approx(5e-4)
    assert model.train_step(batch, TrainStep(step=50, optimizers=opts))["lr"] == pytest.approx(1e-3)


@pytest.mark.parametrize("size", [7, 16, 28, 32])
def test_unet_keeps_the_shape_and_starts_at_zero(size: int) -> None:
    net = UNet(3, base_channels=8, channel_mults=(1, 2, 2), num_res_blocks=1)
    x = torch.randn(2, 3, size, size)
    out = net(x, torch.tensor([0, 999]))
    assert out.shape == x.shape
    assert torch.count_nonzero(out) == 0  # zero-initialised output convolution, as in the paper


def test_snr_is_alpha_bar_over_its_complement(schedule: NoiseSchedule) -> None:
    t = torch.tensor([0, 10, 500, T - 1])
    expected = [schedule.alpha_bar(i) / (1 - schedule.alpha_bar(i)) for i in t.tolist()]
    assert schedule.snr(t).tolist() == pytest.approx(expected, rel=1e-4)


@torch.no_grad()
def test_min_snr_weighting_scales_each_image_by_min_snr_gamma_over_snr() -> None:
    torch.manual_seed(1)
    batch = torch.rand(16, 1, 16, 16) * 2 - 1
    paper, weighted = tiny_model(), tiny_model(snr_gamma=20.0)
    for model in (paper, weighted):  # a non-zero output, so every image's error differs
        torch.manual_seed(2)
        torch.nn.init.normal_(model.unet.conv_out.weight, std=0.1)

    torch.manual_seed(3)
    t = torch.randint(0, weighted.config.num_timesteps, (16,))
    noise = torch.randn_like(batch)
    per_image = weighted.unet(weighted.schedule.q_sample(batch, t, noise), t) - noise
    per_image = per_image.square().mean(dim=(1, 2, 3))
    snr = weighted.schedule.snr(t)
    assert (snr > 20).any() and (snr < 20).any()  # both branches of the min are exercised
    expected = (snr.clamp(max=20.0) / snr * per_image).mean()

    torch.manual_seed(3)
    assert float(weighted.loss(batch)) == pytest.approx(float(expected), rel=1e-5)
    torch.manual_seed(3)
    assert float(paper.loss(batch)) == pytest.approx(float(per_image.mean()), rel=1e-5)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError):
        DDPM.Config(beta_start=0.03, beta_end=0.02)
    with pytest.raises(ConfigError):
        DDPM.Config(ema_decay=1.0)
    with pytest.raises(ConfigError):
        DDPM.Config(channel_mults=())
    with pytest.raises(ConfigError, match="snr_gamma"):
        DDPM.Config(snr_gamma=0.0)
    assert DDPM.Config.from_overrides({"snr_gamma": "none"}).snr_gamma is None
    assert DDPM.Config.from_overrides({"snr_gamma": "5"}).snr_gamma == 5.0


def test_validation_metric_is_repeatable_and_leaves_the_global_rng_alone() -> None:
    model = tiny_model()
    batch = torch.rand(4, 1, 16, 16) * 2 - 1
    state = torch.get_rng_state()
    first = model.validation_metrics(batch)
    assert torch.equal(torch.get_rng_state(), state)
    assert model.validation_metrics(batch) == first
    assert first["eps_mse"] == pytest.approx(1.0, abs=0.5)  # the zero-initialised net predicts 0


@pytest.mark.parametrize("make", [lambda s: DDPMScheduler(s), lambda s: DDIMScheduler(s, eta=0.0)])
def test_x0_predictions_are_clipped_to_the_data_range(schedule: NoiseSchedule, make) -> None:
    sched = make(schedule)
    sched.set_timesteps(10)
    x, eps = torch.randn(4, 1, 8, 8) * 3, torch.randn(4, 1, 8, 8)
    out = sched.step(eps, 999, x, generator=torch.Generator().manual_seed(0))
    x0 = out.pred_original_sample
    assert x0.min() == -1 and x0.max() == 1  # noise amplified by 1/sqrt(alpha_bar) hits both ends
    final = sched.step(eps, 99, x, generator=torch.Generator().manual_seed(0)).prev_sample
    assert final.abs().max() <= 1  # the last step lands on the clipped prediction


def test_unet_moved_to_the_core_keeps_ddpm_checkpoints_and_seeded_weights() -> None:
    """The U-Net moved from zoo_ddpm.unet to zoo.nets.unet (shared with flow and edm): the same
    parameter names, shapes and seeded initial values as before the move (measured on the commit
    before it), so DDPM checkpoints load and seeded results do not change."""
    import hashlib

    torch.manual_seed(0)
    from zoo.factory import create_model

    state = create_model("ddpm", (1, 28, 28), {}).state_dict()
    names = ";".join(f"{k}:{tuple(v.shape)}" for k, v in state.items())
    assert len(state) == 301
    assert hashlib.sha256(names.encode()).hexdigest()[:16] == "1039e2b1780d7df2"
    total = sum(float(v.double().abs().sum()) for v in state.values() if v.is_floating_point())
    assert total == pytest.approx(24980.4422, abs=1e-3)
