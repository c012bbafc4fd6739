"""Noise schedule and samplers for DDPM, in the spirit of diffusers' schedulers.

A sampler is a small object with ``set_timesteps(num_steps, spacing)`` and
``step(model_output, t, sample, generator=...)``, so the denoising loop is the same for every
sampler and the sampler is swappable (``generator`` is a plain `torch.Generator` or a
`zoo.sampling.ImageGenerators`, whose row ``j`` of noise belongs to image ``j``):

    scheduler = DDIMScheduler(schedule, eta=0.0)
    scheduler.set_timesteps(50)
    x = noise
    for t in scheduler.timesteps:
        x = scheduler.step(eps_model(x, t), t, x, generator=g).prev_sample

Both samplers take an epsilon prediction, turn it into an ``x_0`` prediction, clip that to
``[-1, 1]`` (the data range; Ho et al.'s released code does the same) and move to the previous
timestep of their grid. Timesteps are the training ones (``0 .. T-1``), so a sampler with fewer
steps runs the same network on a subset of them.

* `DDPMScheduler`: ancestral sampling, Ho et al. 2020 (arXiv:2006.11239) eq. 6-7, with the
  posterior variance ``beta~_t``. With fewer than ``T`` steps the betas are respaced as in
  Nichol & Dhariwal 2021 (arXiv:2102.09672, sec. 4): ``beta_i = 1 - alpha_bar_{s_i} / alpha_bar_{s_{i-1}}``
  on the chosen subsequence ``s``, which is the exact Markov chain with those marginals.
* `DDIMScheduler`: Song et al. 2021 (arXiv:2010.02502) eq. 12; ``eta = 0`` is deterministic,
  ``eta = 1`` has the ancestral variance. Song et al.'s code does not clip; on a briefly trained
  model some unclipped deterministic trajectories blow up into noise, so ``x_0`` is clipped here
  too, while the "direction to x_t" term keeps the model's own noise prediction (diffusers'
  default; re-deriving it from the clipped ``x_0`` left salt-and-pepper specks).
* `DPMSolverPP2MScheduler`: DPM-Solver++(2M), Lu et al. 2022 (arXiv:2211.01095, algorithm 2):
  a second-order multistep solver of the diffusion ODE in the data-prediction (``x_0``) form, so
  10-20 network evaluations reach the quality DDIM needs 50 or more for. Each step is exact for the
  linear part in ``lambda = log(alpha / sigma)`` and extrapolates ``x_0`` linearly from the previous
  step's prediction; the first step and the last (to ``alpha_bar = 1``) are first order, which is
  DDIM with ``eta = 0``. It equals diffusers' ``DPMSolverMultistepScheduler(algorithm_type=
  "dpmsolver++", solver_order=2, timestep_spacing="trailing", thresholding=True,
  sample_max_value=1.0)`` (``tests/test_dpm_solver.py``): thresholding at 1 is this module's clip.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from zoo.errors import ConfigError, UnknownNameError
from zoo.sampling import randn
from zoo_ddpm.spec import SPACINGS  # noqa: F401  (declared torch-free, beside the options)


class NoiseSchedule:
    """The forward process ``q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)``.

    Coefficients are kept in float64 on the CPU (they are read as Python floats by the samplers);
    `q_sample` keeps a float32 copy per device for training.
    """

    def __init__(self, betas: torch.Tensor):
        betas = betas.detach().to(torch.float64).cpu()
        if betas.ndim != 1 or len(betas) == 0 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must be a non-empty 1-D tensor with values in (0, 1)")
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self._per_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def linear(
        cls, num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
    ) -> NoiseSchedule:
        """Ho et al. 2020, sec. 4: betas linear from 1e-4 to 0.02 over T = 1000 steps."""
        # Computed on the CPU whatever the default device (a model built on "meta" to check a
        # checkpoint still needs the schedule's values).
        return cls(torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64, device="cpu"))

    @property
    def num_timesteps(self) -> int:
        return len(self.betas)

    def alpha_bar(self, t: int) -> float:
        """``alpha_bar_t``; ``alpha_bar_{-1} = 1`` (the clean image), which the last step lands on."""
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def _on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 ``alpha_bar`` and SNR tables on ``device`` (SNR divided in float64: ``1 - alpha_bar_0``
        is 1e-4, where float32 loses digits)."""
        if device not in self._per_device:
            snr = self.alphas_cumprod / (1.0 - self.alphas_cumprod)
            self._per_device[device] = (
                self.alphas_cumprod.to(device, torch.float32),
                snr.to(device, torch.float32),
            )
        return self._per_device[device]

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Draw ``x_t`` from ``q(x_t | x_0)`` for a batch of timesteps ``t`` (Ho et al. eq. 4)."""
        abar = self._on(x0.device)[0][t].view(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
        return abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio ``alpha_bar_t / (1 - alpha_bar_t)`` for a batch of timesteps (float32)."""
        return self._on(t.device)[1][t]


def timestep_grid(num_train_steps: int, num_steps: int, spacing: str = "uniform") -> list[int]:
    """``num_steps`` distinct training timesteps in ``[0, T)``, in decreasing order (sampling order).

    * ``uniform``: ``floor((i + 1) T / N) - 1``, the "trailing" spacing (Lin et al. 2024,
      arXiv:2305.08891, table 2): the first step starts from ``t = T - 1``, pure noise, which
      Song et al.'s ``range(0, T, T / N)`` misses by ``T / N - 1`` steps.
    * ``quadratic``: ``floor((i sqrt(0.8 T) / (N - 1))^2)``, Song et al.'s CIFAR-10 choice (dense
      near ``t = 0``, top at ``0.8 T``), nudged up where rounding makes two values collide.

    With ``N = T`` both give every timestep.
    """
    if spacing not in SPACINGS:
        raise UnknownNameError("timestep spacing", spacing, SPACINGS)
    if not 1 <= num_steps <= num_train_steps:
        raise ConfigError(
            "steps", f"must be between 1 and T = {num_train_steps}, got {num_steps}", "sample"
        )
    if spacing == "uniform":
        grid = [(i + 1) * num_train_steps // num_steps - 1 for i in range(num_steps)]
    elif num_steps == 1:
        grid = [int(0.8 * num_train_steps)]
    else:
        top = math.sqrt(0.8 * num_train_steps)
        grid = [int((i * top / (num_steps - 1)) ** 2) for i in range(num_steps)]
        for i in range(1, num_steps):  # keep the values distinct; stays < T because N <= T
            grid[i] = max(grid[i], grid[i - 1] + 1)
    return grid[::-1]


class SchedulerOutput(NamedTuple):
    prev_sample: torch.Tensor
    """``x_{t_prev}``: the input to the next step (the image after the last step)."""
    pred_original_sample: torch.Tensor
    """The clipped ``x_0`` prediction at this step."""


class Scheduler:
    """Shared machinery: the timestep grid and the clipped ``x_0`` prediction."""

    name = ""

    def __init__(self, schedule: NoiseSchedule):
        self.schedule = schedule
        self.timesteps: list[int] = []
        self._prev: dict[int, int] = {}

    def set_timesteps(self, num_steps: int, spacing: str = "uniform") -> None:
        """Choose the ``num_steps`` timesteps `step` walks through (see `timestep_grid`)."""
        self.timesteps = timestep_grid(self.schedule.num_timesteps, num_steps, spacing)
        self._prev = dict(zip(self.timesteps, [*self.timesteps[1:], -1], strict=True))

    def prev_timestep(self, t: int) -> int:
        if t not in self._prev:
            raise ValueError(
                f"timestep {t} is not on this scheduler's grid; call set_timesteps first"
            )
        return self._prev[t]

    def posterior_variance(self, t: int) -> float:
        """``beta~_t = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)``
        on this grid: the ancestral step's variance, and DDIM's ``sigma_t^2`` at ``eta = 1``."""
        abar_t = self.schedule.alpha_bar(t)
        abar_prev = self.schedule.alpha_bar(self.prev_timestep(t))
        return (1.0 - abar_prev) / (1.0 - abar_t) * (1.0 - abar_t / abar_prev)

    def predict_x0(self, model_output: torch.Tensor, t: int, sample: torch.Tensor) -> torch.Tensor:
        """Invert Ho et al. eq. 4 for ``x_0`` given the predicted noise, clipped to ``[-1, 1]``."""
        abar = self.schedule.alpha_bar(t)
        x0 = (sample - math.sqrt(1.0 - abar) * model_output) / math.sqrt(abar)
        return x0.clamp(-1.0, 1.0)

    def step(
        self,
        model_output: torch.Tensor,
        t: int,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> SchedulerOutput:
        raise NotImplementedError


def _noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, drawn from ``generator`` on its own device.

    With a `zoo.sampling.ImageGenerators` (one generator per image, what
    [`zoo.sampling.generate`][zoo.sampling.generate] passes) row ``j`` comes from image ``j``'s generator, so an
    image's trajectory does not depend on the batch it is sampled in.
    """
    return randn(*x.shape, generator=generator, device=x.device, dtype=x.dtype)


class DDPMScheduler(Scheduler):
    """Ancestral sampling: ``x_{t_prev} ~ q(x_{t_prev} | x_t, x_0 = x0_hat)`` (Ho et al. eq. 6-7)."""

    name = "ddpm"

    def posterior(
        self, x0: torch.Tensor, t: int, sample: torch.Tensor
    ) -> tuple[torch.Tensor, float]:
        """Mean and variance of ``q(x_{t_prev} | x_t, x_0)`` on this grid (Ho et al. eq. 7).

        With the full grid ``t_prev = t - 1``; on a respaced grid ``alpha_t`` and ``beta_t`` are
        the respaced ones, ``alpha_bar_t / alpha_bar_{t_prev}`` and ``1`` minus that.
        """
        abar_t = self.schedule.alpha_bar(t)
        abar_prev = self.schedule.alpha_bar(self.prev_timestep(t))
        alpha_t = abar_t / abar_prev
        beta_t = 1.0 - alpha_t
        coef_x0 = math.sqrt(abar_prev) * beta_t / (1.0 - abar_t)
        coef_xt = math.sqrt(alpha_t) * (1.0 - abar_prev) / (1.0 - abar_t)
        return coef_x0 * x0 + coef_xt * sample, self.posterior_variance(t)

    def step(
        self,
        model_output: torch.Tensor,
        t: int,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> SchedulerOutput:
        x0 = self.predict_x0(model_output, t, sample)
        mean, variance = self.posterior(x0, t, sample)
        if variance > 0:  # zero at the last step (t_prev = -1): return the mean, draw nothing
            mean = mean + math.sqrt(variance) * _noise_like(sample, generator)
        return SchedulerOutput(mean, x0)


class DDIMScheduler(Scheduler):
    """Song et al. 2021 eq. 12 with ``sigma_t = eta * sqrt(beta~_t)`` (their eq. 16)."""

    name = "ddim"

    def __init__(self, schedule: NoiseSchedule, eta: float = 0.0):
        super().__init__(schedule)
        if eta < 0:
            raise ConfigError("eta", f"must be >= 0, got {eta}", "sample")
        self.eta = eta

    def step(
        self,
        model_output: torch.Tensor,
        t: int,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> SchedulerOutput:
        abar_prev = self.schedule.alpha_bar(self.prev_timestep(t))
        x0 = self.predict_x0(model_output, t, sample)
        # The direction term keeps the model's noise prediction (see the module docstring).
        sigma = self.eta * math.sqrt(self.posterior_variance(t))
        direction = math.sqrt(max(1.0 - abar_prev - sigma**2, 0.0)) * model_output
        prev = math.sqrt(abar_prev) * x0 + direction
        if sigma > 0:
            prev = prev + sigma * _noise_like(sample, generator)
        return SchedulerOutput(prev, x0)


class DPMSolverPP2MScheduler(Scheduler):
    """DPM-Solver++(2M) (Lu et al. 2022, arXiv:2211.01095, algorithm 2), deterministic.

    With ``alpha_t = sqrt(alpha_bar_t)``, ``sigma_t = sqrt(1 - alpha_bar_t)``,
    ``lambda_t = log(alpha_t / sigma_t)``, ``h = lambda_prev - lambda_t`` and ``D`` the clipped
    ``x_0`` prediction, one step is:

        x_prev = sigma_prev / sigma_t * x_t - alpha_prev * (exp(-h) - 1) * D

    where ``D = x0_t`` on the first step and on the last (``alpha_bar = 1``, where the step returns
    ``x0_t`` itself), and ``D = x0_t + (x0_t - x0_last) / (2 r)`` otherwise, ``r = h_last / h``
    (the paper's midpoint form, diffusers' ``solver_type="midpoint"``). The scheduler keeps the last
    step's ``x_0`` prediction, so `set_timesteps` must be called before each trajectory and
    the timesteps visited in order. No noise is drawn; ``generator`` is ignored.
    """

    name = "dpmpp2m"

    def __init__(self, schedule: NoiseSchedule):
        super().__init__(schedule)
        self._last: tuple[int, torch.Tensor] | None = None  # (timestep, x0 prediction) of the last step

    def set_timesteps(self, num_steps: int, spacing: str = "uniform") -> None:
        super().set_timesteps(num_steps, spacing)
        self._last = None

    def _lambda(self, t: int) -> float:
        abar = self.schedule.alpha_bar(t)
        return 0.5 * math.log(abar / (1.0 - abar))

    def step(
        self,
        model_output: torch.Tensor,
        t: int,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> SchedulerOutput:
        prev = self.prev_timestep(t)
        x0 = self.predict_x0(model_output, t, sample)
        last, self._last = self._last, (t, x0)
        if prev < 0:  # alpha_bar = 1, sigma = 0: the ODE's end point is the x_0 prediction
            return SchedulerOutput(x0, x0)
        if last is not None and self._prev.get(last[0]) != t:
            raise ValueError(f"timestep {t} does not follow {last[0]}; call set_timesteps first")
        abar_t, abar_prev = self.schedule.alpha_bar(t), self.schedule.alpha_bar(prev)
        lam_t, lam_prev = self._lambda(t), self._lambda(prev)
        h = lam_prev - lam_t
        d = x0
        if last is not None:
            r = (lam_t - self._lambda(last[0])) / h
            d = x0 + (0.5 / r) * (x0 - last[1])
        ratio = math.sqrt((1.0 - abar_prev) / (1.0 - abar_t))
        coef = -math.sqrt(abar_prev) * math.expm1(-h)
        return SchedulerOutput(ratio * sample + coef * d, x0)


SCHEDULERS: dict[str, type[Scheduler]] = {
    "ddpm": DDPMScheduler,
    "ddim": DDIMScheduler,
    "dpmpp2m": DPMSolverPP2MScheduler,
}


def make_scheduler(name: str, schedule: NoiseSchedule, eta: float = 0.0) -> Scheduler:
    """The scheduler called ``name`` (``"ddpm"``, ``"ddim"`` or ``"dpmpp2m"``); ``eta`` applies to
    DDIM only. An unknown name is an `UnknownNameError` listing the known ones."""
    if name not in SCHEDULERS:
        raise UnknownNameError("sampler", name, list(SCHEDULERS))
    if name == "ddim":
        return DDIMScheduler(schedule, eta)
    return SCHEDULERS[name](schedule)
