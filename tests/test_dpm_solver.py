"""DPM-Solver++(2M) (Lu et al. 2022, arXiv:2211.01095) against diffusers and against closed forms.

diffusers' ``DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2)`` is the
reference implementation; with ``timestep_spacing="trailing"`` (genzoo's uniform grid),
``final_sigmas_type="zero"`` (the last step lands on ``alpha_bar = 1``) and ``thresholding=True,
sample_max_value=1.0`` (which is plain clipping of ``x_0`` to ``[-1, 1]``, genzoo's convention) it
computes the same trajectory. Those tests skip only when diffusers is absent (it is in the
``test`` extra).
"""

from __future__ import annotations

import math

import pytest
import torch
from zoo_ddpm.model import DDPM
from zoo_ddpm.schedulers import (
    DDIMScheduler,
    DPMSolverPP2MScheduler,
    NoiseSchedule,
    make_scheduler,
)

T = 1000


@pytest.fixture(scope="module")
def schedule() -> NoiseSchedule:
    return NoiseSchedule.linear(T, 1e-4, 0.02)


def toy_eps(x: torch.Tensor, t: int) -> torch.Tensor:
    """A fixed, nonlinear noise predictor (depends on x and t), so the two solvers' histories matter."""
    return torch.tanh(1.3 * x + 0.2 * torch.roll(x, 1, dims=-1)) * (0.5 + t / (2 * T))


def diffusers_dpm(schedule: NoiseSchedule, steps: int):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=T,
        trained_betas=schedule.betas.numpy(),
        algorithm_type="dpmsolver++",
        solver_order=2,
        solver_type="midpoint",
        timestep_spacing="trailing",
        final_sigmas_type="zero",
        lower_order_final=True,
        thresholding=True,
        sample_max_value=1.0,
        prediction_type="epsilon",
    )
    sched.set_timesteps(steps)
    return sched


@pytest.mark.parametrize("steps", [1, 2, 5, 10, 20, 25])
def test_matches_diffusers_dpmsolver_multistep(schedule, steps):
    ref = diffusers_dpm(schedule, steps)
    ours = DPMSolverPP2MScheduler(schedule)
    ours.set_timesteps(steps)
    assert [int(t) for t in ref.timesteps] == ours.timesteps
    x0 = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(steps)) * 1.5
    x_ref, x_ours = x0.clone(), x0.clone()
    for t_ref, t in zip(ref.timesteps, ours.timesteps, strict=True):
        x_ref = ref.step(toy_eps(x_ref, t), t_ref, x_ref).prev_sample
        x_ours = ours.step(toy_eps(x_ours, t), t, x_ours).prev_sample
    # diffusers keeps its sigmas in float32, genzoo its coefficients in float64: float precision
    torch.testing.assert_close(x_ours, x_ref, atol=2e-5, rtol=1e-4)
    assert float(x_ours.abs().max()) <= 1.0  # the last step returns the clipped x0 prediction


def test_ddpm_model_matches_diffusers_with_its_unet(schedule):
    """The whole DDPM.sample loop with sampler=dpmpp2m against diffusers driving the same EMA U-Net."""
    from zoo.sampling import ImageGenerators

    torch.manual_seed(0)
    cfg = DDPM.Config.from_overrides({**DDPM.tiny_config, "num_timesteps": T})
    model = DDPM(cfg, (1, 16, 16)).eval()
    for p in model.ema.parameters():  # the zero-initialised last convolutions would predict eps = 0
        p.data.add_(0.05 * torch.randn_like(p))
    gens = ImageGenerators.for_range(3, 0, 4)
    ours = model.sample(4, generator=gens, sampler="dpmpp2m", steps=10)
    ref = diffusers_dpm(model.schedule, 10)
    x = model.randn(4, 1, 16, 16, generator=ImageGenerators.for_range(3, 0, 4))
    with torch.no_grad():
        for t in ref.timesteps:
            eps = model.ema(x, torch.full((4,), int(t), dtype=torch.long))
            x = ref.step(eps, t, x).prev_sample
    torch.testing.assert_close(ours, x.clamp(-1, 1), atol=5e-5, rtol=1e-4)


def test_first_and_last_steps_are_ddim(schedule):
    """Step one has no history and the last lands on alpha_bar = 1: both are DDIM (eta = 0) steps."""
    dpm, ddim = DPMSolverPP2MScheduler(schedule), DDIMScheduler(schedule, eta=0.0)
    dpm.set_timesteps(10)
    ddim.set_timesteps(10)
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 0.3
    target = torch.linspace(-0.5, 0.5, 96).view(2, 3, 4, 4)

    def eps(x: torch.Tensor, t: int) -> torch.Tensor:  # x0 predictions stay inside [-1, 1]: no clipping
        a = schedule.alpha_bar(t)
        return (x - math.sqrt(a) * target) / math.sqrt(1 - a) + 1e-3 * torch.tanh(x)

    t0 = dpm.timesteps[0]
    torch.testing.assert_close(dpm.step(eps(x, t0), t0, x).prev_sample,
                               ddim.step(eps(x, t0), t0, x).prev_sample, atol=1e-5, rtol=1e-5)
    t_last = dpm.timesteps[-1]
    eps = eps(x, t_last)
    out = dpm.step(eps, t_last, x)
    torch.testing.assert_close(out.prev_sample, ddim.step(eps, t_last, x).prev_sample)
    torch.testing.assert_close(out.prev_sample, out.pred_original_sample)


def test_oracle_noise_recovers_the_image(schedule):
    """With the true noise every x0 prediction is x0, so the extrapolation term vanishes."""
    x0 = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(1)) * 1.6 - 0.8
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2))
    sched = DPMSolverPP2MScheduler(schedule)
    sched.set_timesteps(7)
    x = schedule.q_sample(x0, torch.full((2,), sched.timesteps[0]), noise)
    for t in sched.timesteps:
        abar = schedule.alpha_bar(t)
        eps = (x - math.sqrt(abar) * x0) / math.sqrt(1 - abar)
        x = sched.step(eps, t, x).prev_sample
    torch.testing.assert_close(x, x0, atol=1e-5, rtol=1e-5)


def test_second_order_beats_ddim_on_a_gaussian(schedule):
    """Data N(0, s^2): the exact eps is x_t sqrt(1 - a) / (a s^2 + 1 - a) and the probability-flow
    ODE maps x_T to x_t = x_T sqrt(a_t s^2 + 1 - a_t) / sqrt(a_T s^2 + 1 - a_T). After the first
    9 of 10 steps (the last one jumps to the x0 prediction) DPM-Solver++(2M) lands more than twice
    as close to that as DDIM does (second against first order)."""
    s = 0.25

    def eps(x: torch.Tensor, t: int) -> torch.Tensor:
        a = schedule.alpha_bar(t)
        return x * math.sqrt(1 - a) / (a * s * s + 1 - a)

    x_T = torch.randn(4096, generator=torch.Generator().manual_seed(0)).clamp(-3, 3).double()
    a_T = schedule.alpha_bar(T - 1)
    errors = {}
    for name in ("ddim", "dpmpp2m"):
        sched = make_scheduler(name, schedule)
        sched.set_timesteps(10)
        a_end = schedule.alpha_bar(sched.timesteps[-1])
        exact = x_T * math.sqrt(a_end * s * s + 1 - a_end) / math.sqrt(a_T * s * s + 1 - a_T)
        x = x_T.clone()
        for t in sched.timesteps[:-1]:
            x = sched.step(eps(x, t), t, x).prev_sample
        errors[name] = float((x - exact).abs().max())
    assert errors["dpmpp2m"] < errors["ddim"] / 2, errors  # measured: 0.026 against 0.070


def test_out_of_order_steps_are_refused(schedule):
    sched = DPMSolverPP2MScheduler(schedule)
    sched.set_timesteps(5)
    x = torch.zeros(1, 1, 2, 2)
    t0, _, t2 = sched.timesteps[:3]
    sched.step(x, t0, x)
    with pytest.raises(ValueError, match="does not follow"):
        sched.step(x, t2, x)


def test_sampler_option_and_default_steps():
    from zoo.errors import UnknownNameError

    torch.manual_seed(0)
    model = DDPM(DDPM.Config.from_overrides(DDPM.tiny_config), (1, 16, 16)).eval()
    from zoo.sampling import ImageGenerators

    out = model.sample(3, generator=ImageGenerators.for_range(0, 0, 3), sampler="dpmpp2m")
    assert out.shape == (3, 1, 16, 16) and float(out.abs().max()) <= 1.0
    with pytest.raises(UnknownNameError):
        model.sample(1, sampler="dpm")


def test_network_evaluations_per_sampler_setting():
    """sample_nfe counts U-Net calls: the bench's quality-per-NFE comparisons rest on it."""
    torch.manual_seed(0)
    model = DDPM(DDPM.Config.from_overrides(DDPM.tiny_config), (1, 16, 16)).eval()
    calls = []
    model.ema.register_forward_hook(lambda *_: calls.append(1))
    from zoo.sampling import ImageGenerators

    for sampler, steps in (("ddim", 3), ("dpmpp2m", 4), ("ddpm", 5)):
        calls.clear()
        model.sample(2, generator=ImageGenerators.for_range(0, 0, 2), sampler=sampler, steps=steps)
        assert len(calls) == steps == DDPM.sample_nfe(sampler=sampler, steps=steps, precision="bf16")
    assert DDPM.sample_nfe() == 50 and DDPM.sample_nfe(sampler="dpmpp2m") == 20
    assert DDPM.sample_nfe(sampler="ddpm") == DDPM.Config().num_timesteps
