"""EDM: Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models"
(arXiv:2206.00364). Equation and table numbers below are the paper's.

Denoiser (Eq. 7). The network ``F_theta`` is wrapped so that its input and target have unit
variance at every noise level ``sigma``:

    D_theta(x; sigma) = c_skip(sigma) x + c_out(sigma) F_theta(c_in(sigma) x; c_noise(sigma)),

with (Table 1, "Ours")

    c_skip = sigma_data^2 / (sigma^2 + sigma_data^2),   c_out = sigma sigma_data / sqrt(sigma^2 + sigma_data^2),
    c_in = 1 / sqrt(sigma^2 + sigma_data^2),             c_noise = ln(sigma) / 4.

Training (Eq. 2 with Eq. 8's weighting). Draw ``ln(sigma) ~ N(P_mean, P_std^2)`` (Table 1:
``P_mean = -1.2, P_std = 1.2``), noise ``n ~ N(0, sigma^2 I)`` and minimise

    E[ lambda(sigma) || D_theta(y + n; sigma) - y ||^2 ],   lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2,

which is ``1 / c_out^2``: the effective target of ``F_theta`` has unit weight at every sigma.

Sampling (Algorithm 1, deterministic): the probability-flow ODE with ``sigma(t) = t, s(t) = 1``,
``dx/dsigma = (x - D(x; sigma)) / sigma`` (Eq. 3 with Table 1's choices), from
``x_0 ~ N(0, sigma_max^2 I)`` through the noise levels of Eq. 5,

    sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,  i < N;  sigma_N = 0,

with Heun's second-order method (the correction is skipped on the last step, to ``sigma = 0``:
NFE ``2N - 1``) or Euler's (NFE ``N``). The EMA weights sample; the final image is clamped to
``[-1, 1]``.

The U-Net (`zoo.nets.unet`, shared with ``ddpm`` and ``flow``) embeds its noise input with
DDPM's sinusoidal timestep embedding, whose frequencies are laid out for integers ``0 .. 999``;
it is fed ``NOISE_EMBED_SCALE * c_noise``, which maps the schedule's ``c_noise`` range
(``ln(0.002) / 4 = -1.55`` to ``ln(80) / 4 = 1.10``) onto a span of that size (as ``flow`` feeds
``1000 t``). A constant scale of ``c_noise`` changes nothing else of Table 1.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.blocks import set_warmup_lr
from zoo.ema import EMA
from zoo.errors import ConfigError
from zoo.model import GenerativeModel, TrainStep
from zoo.nets.unet import UNet
from zoo_edm.spec import SAMPLERS, SPEC, EDMConfig

#: The U-Net's sinusoidal embedding sees ``NOISE_EMBED_SCALE * c_noise`` (module docstring).
NOISE_EMBED_SCALE = 250.0


def preconditioning(sigma: torch.Tensor, sigma_data: float) -> tuple[torch.Tensor, ...]:
    """``(c_skip, c_out, c_in, c_noise)`` of Karras et al. Table 1 at noise levels ``sigma``
    (a float tensor of any shape, all > 0); each result has ``sigma``'s shape and dtype."""
    var = sigma.square() + sigma_data**2
    c_skip = sigma_data**2 / var
    c_out = sigma * sigma_data / var.sqrt()
    c_in = var.rsqrt()
    c_noise = sigma.log() / 4.0
    return c_skip, c_out, c_in, c_noise


def loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """``lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2`` (Table 1), ``= 1 / c_out^2``."""
    return (sigma.square() + sigma_data**2) / (sigma * sigma_data).square()


def sigma_schedule(steps: int, sigma_min: float, sigma_max: float, rho: float) -> list[float]:
    """The ``steps + 1`` noise levels of Eq. 5, from ``sigma_max`` down to ``sigma_min``, then 0.

    ``steps = 1`` has the single level ``sigma_max`` (Eq. 5 divides by ``N - 1``). Raises
    ``ValueError`` when ``steps < 1``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if steps == 1:
        return [float(sigma_max), 0.0]
    hi, lo = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)
    return [(hi + i / (steps - 1) * (lo - hi)) ** rho for i in range(steps)] + [0.0]


def nfe(sampler: str, steps: int) -> int:
    """Network evaluations per image: ``2 steps - 1`` for Heun (Algorithm 1), ``steps`` for Euler."""
    return 2 * steps - 1 if sampler == "heun" else steps


class Denoiser(nn.Module):
    """``D_theta(x; sigma)`` of Eq. 7: B x C x H x W images and B float noise levels (> 0) ->
    B x C x H x W denoised images, float32 whatever the autocast dtype of the U-Net."""

    def __init__(self, unet: UNet, sigma_data: float):
        super().__init__()
        self.unet = unet
        self.sigma_data = sigma_data

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = sigma.float().reshape(-1, 1, 1, 1)
        c_skip, c_out, c_in, c_noise = preconditioning(sigma, self.sigma_data)
        f = self.unet(c_in * x, NOISE_EMBED_SCALE * c_noise.flatten()).float()
        return c_skip * x.float() + c_out * f


class EDM(GenerativeModel, spec=SPEC):
    """EDM's preconditioned denoiser on ddpm's U-Net, trained with log-normal noise levels and
    Karras et al.'s loss weighting, sampled with the deterministic Heun (or Euler) ODE solver."""

    # name, family, summary, Config, sizes, ...: from SPEC, declared once and free of torch in
    # the plugin's spec.py (zoo list and zoo describe read it without importing this module).

    config: EDMConfig

    def __init__(self, config: EDMConfig, image_shape: tuple[int, int, int]):
        super().__init__(config, image_shape)
        self.net = Denoiser(UNet.from_config(config, self.image_shape[0]), config.sigma_data)
        self.ema = EMA(self.net, config.ema_decay)

    # -- training ---------------------------------------------------------------------------

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"main": torch.optim.Adam(self.net.parameters(), lr=self.config.lr)}

    def loss(self, y: torch.Tensor, generator: torch.Generator | None = None,
             net: nn.Module | None = None) -> torch.Tensor:
        """Eq. 2 on data ``y`` (B x C x H x W in [-1, 1]) with ``ln(sigma) ~ N(P_mean, P_std^2)``
        and ``lambda(sigma)`` (Table 1); a float32 scalar. Noise from the global RNG unless
        ``generator`` is given; ``net`` defaults to the trained denoiser."""
        cfg, b = self.config, y.shape[0]
        ln_sigma = torch.randn(b, device=y.device, generator=generator) * cfg.p_std + cfg.p_mean
        sigma = ln_sigma.exp()
        n = torch.randn(y.shape, device=y.device, dtype=y.dtype, generator=generator)
        denoised = (net or self.net)(y + sigma.view(-1, 1, 1, 1).to(y.dtype) * n, sigma)
        weight = loss_weight(sigma, cfg.sigma_data).view(-1, 1, 1, 1)
        return (weight * (denoised - y.float()).square()).mean()

    def train_step(self, batch: torch.Tensor, step: TrainStep) -> dict[str, torch.Tensor | float]:
        lr = set_warmup_lr(step.optimizers["main"], self.config.lr, self.config.warmup_steps, step.step)
        loss = self.loss(batch)  # the trainer runs this under its autocast context
        step.optimize("main", loss)
        return {"loss": loss.detach(), "lr": lr}

    def after_optimizer_step(self, step: int) -> None:
        self.ema.update(self.net)

    @torch.no_grad()
    def validation_metrics(self, batch: torch.Tensor) -> dict[str, float]:
        """The weighted denoising loss (Eq. 2) of the EMA weights on a held-out batch, with
        fixed-seed noise levels and noise (the training RNG stream is left alone)."""
        gen = torch.Generator(device=batch.device).manual_seed(0)
        return {"edm_loss": float(self.loss(batch, generator=gen, net=self.ema))}

    # -- sampling ---------------------------------------------------------------------------

    @classmethod
    def sample_nfe(cls, **options: Any) -> int:
        """Network evaluations per image of a sampling setting (``sampler``, ``steps``)."""
        opts = cls.parse_sample_options(options)
        return nfe(opts["sampler"], opts["steps"])

    def sigmas(self, steps: int) -> list[float]:
        """This model's Eq. 5 schedule of ``steps`` levels, then 0 (`sigma_schedule`)."""
        cfg = self.config
        return sigma_schedule(steps, cfg.sigma_min, cfg.sigma_max, cfg.rho)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, **options: Any) -> torch.Tensor:
        """Algorithm 1 with the EMA weights from ``x_0 = sigma_max * N(0, I)`` (drawn per image
        through ``self.randn``, so images do not depend on the batch size; nothing else is random).
        Options: ``sampler`` (heun, euler) and ``steps`` (N). Returns ``n x C x H x W`` float32
        in ``[-1, 1]``."""
        opts = self.parse_sample_options(options)
        if n < 0:
            raise ConfigError("n", f"must be >= 0, got {n}", "sample")
        sigmas = self.sigmas(opts["steps"])
        x = self.randn(n, *self.image_shape, generator=generator) * sigmas[0]
        if n == 0:
            return x
        return heun_solve(lambda x, s: self.ema(x, s), x, sigmas, opts["sampler"]).clamp(-1.0, 1.0)

    def export_spec(self) -> Any:
        """For ``zoo export``: the EMA denoiser ``D(x; sigma)`` (Eq. 7) and the schedule of Eq. 5."""
        from zoo.export import denoiser_spec

        cfg = self.config
        return denoiser_spec(
            self, self.ema.shadow, time_input=("sigma", "float32", "noise level sigma > 0"),
            output="denoised image D(x; sigma) (Karras et al. 2022, Eq. 7)",
            sampler={"type": "edm", "solvers": list(SAMPLERS), "default_solver": "heun",
                     "default_steps": SPEC.sample_options[1].default, "sigma_min": cfg.sigma_min,
                     "sigma_max": cfg.sigma_max, "rho": cfg.rho},
        )


def heun_solve(denoise: Any, x: torch.Tensor, sigmas: list[float], sampler: str) -> torch.Tensor:
    """Karras et al. Algorithm 1: integrate ``dx/dsigma = (x - D(x; sigma)) / sigma`` through
    ``sigmas`` (decreasing, ending at 0) with ``sampler`` ``heun`` (second order, no correction on
    the step to 0) or ``euler``. ``denoise(x, sigma_batch)`` is ``D``; returns the final ``x``."""
    if sampler not in SAMPLERS:
        raise ConfigError("sampler", f"must be one of {SAMPLERS}, got {sampler!r}", "sample")
    b = x.shape[0]
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = (x - denoise(x, torch.full((b,), s, device=x.device))) / s  # Algorithm 1, line 4
        x_next = x + (s_next - s) * d  # line 5: Euler step
        if sampler == "heun" and s_next != 0:  # lines 6-8: the second-order correction
            d_next = (x_next - denoise(x_next, torch.full((b,), s_next, device=x.device))) / s_next
            x_next = x + (s_next - s) * 0.5 * (d + d_next)
        x = x_next
    return x

