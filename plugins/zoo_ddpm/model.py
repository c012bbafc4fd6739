"""DDPM: denoising diffusion probabilistic models (Ho et al. 2020, arXiv:2006.11239).

Training (Ho et al. algorithm 1): draw ``t`` uniformly from ``0 .. T-1`` and ``eps ~ N(0, I)``, noise
the batch with ``q(x_t | x_0)`` and regress the noise with a plain MSE (the paper's ``L_simple``).
An exponential moving average of the weights (``zoo.ema.EMA``, a submodule, so it is checkpointed)
is updated after every optimizer step and is what `DDPM.sample` uses.

Sampling runs one of three swappable schedulers (``schedulers.py``): ancestral DDPM (algorithm 2;
fewer than ``T`` steps respaces the betas), DDIM (Song et al. 2021, arXiv:2010.02502; any number
of steps, ``eta = 0`` deterministic) or DPM-Solver++(2M) (Lu et al. 2022, arXiv:2211.01095; a
second-order ODE solver, good at 10-20 steps). ``--option precision=bf16`` evaluates the U-Net
under bf16 autocast (recorded with the result, as every sampling option is). Each step clips the ``x_0`` prediction to ``[-1, 1]``, the
data range, as the paper's released sampler does; so the final image is in ``[-1, 1]``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from zoo import accel
from zoo.blocks import set_warmup_lr
from zoo.ema import EMA
from zoo.errors import ConfigError
from zoo.model import GenerativeModel, TrainStep
from zoo.nets.unet import UNet
from zoo_ddpm.schedulers import NoiseSchedule, make_scheduler
from zoo_ddpm.spec import (  # noqa: F401  (DDPMConfig and the step defaults: their old home)
    DEFAULT_DDIM_STEPS,
    DEFAULT_DPM_STEPS,
    SPEC,
    DDPMConfig,
    StepsOption,
)


class DDPM(GenerativeModel, spec=SPEC):
    # name, family, summary, Config, sizes, ...: from SPEC, declared once and free of torch in
    # the plugin's spec.py (zoo list and zoo describe read it without importing this module).
    # bf16 sampling is allowed (zoo.accel.bf16_inference_ok) and the EMA U-Net is what
    # zoo.accel.compile_for_inference compiles.
    bf16_inference = True
    compile_targets = ("ema",)

    config: DDPMConfig

    def __init__(self, config: DDPMConfig, image_shape: tuple[int, int, int]):
        super().__init__(config, image_shape)
        self.unet = UNet.from_config(config, self.image_shape[0])
        self.ema = EMA(self.unet, config.ema_decay)
        self.schedule = NoiseSchedule.linear(
            config.num_timesteps, config.beta_start, config.beta_end
        )

    # -- training ---------------------------------------------------------------------------

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"main": torch.optim.Adam(self.unet.parameters(), lr=self.config.lr)}

    def loss(self, x0: torch.Tensor) -> torch.Tensor:
        """``L_simple``: MSE between the true and the predicted noise at a uniform random ``t``.

        With ``snr_gamma`` set, each image's term is weighted by ``min(SNR_t, gamma) / SNR_t``.
        """
        t = torch.randint(0, self.config.num_timesteps, (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = self.schedule.q_sample(x0, t, noise)
        pred = self.unet(x_t, t).float()
        if self.config.snr_gamma is None:
            return F.mse_loss(pred, noise)
        per_image = (pred - noise).square().mean(dim=(1, 2, 3))
        snr = self.schedule.snr(t)
        return (snr.clamp(max=self.config.snr_gamma) / snr * per_image).mean()

    def train_step(self, batch: torch.Tensor, step: TrainStep) -> dict[str, torch.Tensor | float]:
        lr = set_warmup_lr(step.optimizers["main"], self.config.lr, self.config.warmup_steps, step.step)
        loss = self.loss(batch)  # the trainer runs this under its autocast context
        step.optimize("main", loss)
        return {"loss": loss.detach(), "lr": lr}

    def after_optimizer_step(self, step: int) -> None:
        self.ema.update(self.unet)

    @torch.no_grad()
    def validation_metrics(self, batch: torch.Tensor) -> dict[str, float]:
        """``L_simple`` of the EMA weights on a held-out batch.

        ``t`` and the noise come from a fixed-seed generator, so successive calls are comparable
        and the training RNG stream is left alone.
        """
        gen = torch.Generator(device=batch.device).manual_seed(0)
        t = torch.randint(
            0, self.config.num_timesteps, (batch.shape[0],), device=batch.device, generator=gen
        )
        noise = torch.randn(batch.shape, device=batch.device, dtype=batch.dtype, generator=gen)
        pred = self.ema(self.schedule.q_sample(batch, t, noise), t)
        return {"eps_mse": float(F.mse_loss(pred.float(), noise))}

    # -- sampling ---------------------------------------------------------------------------

    @classmethod
    def sample_nfe(cls, **options: Any) -> int:
        """U-Net evaluations per image of a sampling setting: ``steps`` for every sampler (DDIM,
        ancestral DDPM, and DPM-Solver++(2M), a multistep method with one evaluation per step);
        without ``steps``, the sampler's default for the default ``num_timesteps``."""
        opts = cls.parse_sample_options(options)
        if opts["steps"] is not None:
            return int(opts["steps"])
        full = cls.Config().num_timesteps
        return min({"ddim": DEFAULT_DDIM_STEPS, "dpmpp2m": DEFAULT_DPM_STEPS}.get(opts["sampler"], full), full)

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None, **options: Any
    ) -> torch.Tensor:
        """Draw ``n`` images with the EMA weights; all randomness comes from ``generator``.

        The starting noise and every ancestral / DDIM ``eta > 0`` step draw row ``j`` from image
        ``j``'s generator when ``generator`` is a `zoo.sampling.ImageGenerators`, so the
        images do not depend on the batch size.

        Options (see `sample_options`): ``sampler`` (``ddim``, ``ddpm`` or ``dpmpp2m``),
        ``steps``, ``eta`` (DDIM only), ``spacing`` and ``precision`` (``bf16``: the U-Net under
        bf16 autocast; the scheduler arithmetic stays float32). Returns ``n x C x H x W`` floats in ``[-1, 1]``.
        Memory grows with ``n``: call it in batches for thousands of images.
        """
        opts = self.parse_sample_options(options)
        if n < 0:
            raise ConfigError("n", f"must be >= 0, got {n}", "sample")
        steps = opts["steps"]
        if steps is None:  # the sampler's default, capped at T for short schedules (tiny configs)
            full = self.config.num_timesteps
            default = {"ddim": DEFAULT_DDIM_STEPS, "dpmpp2m": DEFAULT_DPM_STEPS}.get(opts["sampler"], full)
            steps = min(default, full)
        scheduler = make_scheduler(opts["sampler"], self.schedule, eta=opts["eta"])
        scheduler.set_timesteps(steps, opts["spacing"])

        x = self.randn(n, *self.image_shape, generator=generator)
        if n == 0:
            return x
        net = accel.compiled(self, "ema")  # the EMA U-Net, or its compiled form
        for t in scheduler.timesteps:
            t_batch = torch.full((n,), t, device=x.device, dtype=torch.long)
            with accel.inference_autocast(opts["precision"], x.device):
                eps = net(x, t_batch)
            x = scheduler.step(eps.float(), t, x, generator=generator).prev_sample
        return x.clamp(-1.0, 1.0)

    def export_spec(self) -> Any:
        """For ``zoo export``: the EMA noise predictor ``eps(x_t, t)`` and the DDIM schedule."""
        from zoo.export import denoiser_spec

        return denoiser_spec(
            self, self.ema.shadow, time_input=("t", "int64", f"timestep, 0 .. {self.config.num_timesteps - 1}"),
            output="predicted noise epsilon in x_t (Ho et al. 2020)",
            sampler={"type": "ddim", "eta": 0.0, "spacing": "uniform (trailing)",
                     "default_steps": min(DEFAULT_DDIM_STEPS, self.config.num_timesteps),
                     "alphas_cumprod": [float(a) for a in self.schedule.alphas_cumprod]},
        )
