"""DDPM: denoising diffusion probabilistic models (Ho et al. 2020, arXiv:2006.11239).

Training (Ho et al. algorithm 1): draw ``t`` uniformly from ``0 .. T-1`` and ``eps ~ N(0, I)``, noise
the batch with ``q(x_t | x_0)`` and regress the noise with a plain MSE (the paper's ``L_simple``).
An exponential moving average of the weights (``zoo.ema.EMA``, a submodule, so it is checkpointed)
is updated after every optimizer step and is what :meth:`DDPM.sample` uses.

Sampling runs one of three swappable schedulers (``schedulers.py``): ancestral DDPM (algorithm 2;
fewer than ``T`` steps respaces the betas), DDIM (Song et al. 2021, arXiv:2010.02502; any number
of steps, ``eta = 0`` deterministic) or DPM-Solver++(2M) (Lu et al. 2022, arXiv:2211.01095; a
second-order ODE solver, good at 10-20 steps). ``--option precision=bf16`` evaluates the U-Net
under bf16 autocast (recorded with the result, as every sampling option is). Each step clips the ``x_0`` prediction to ``[-1, 1]``, the
data range, as the paper's released sampler does; so the final image is in ``[-1, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from zoo import accel
from zoo.ema import EMA
from zoo.errors import ConfigError
from zoo.model import GenerativeModel, ModelConfig, Recipe, SampleOption, TrainStep
from zoo_ddpm.schedulers import SCHEDULERS, SPACINGS, NoiseSchedule, make_scheduler
from zoo_ddpm.unet import UNet


@dataclass
class DDPMConfig(ModelConfig):
    """Ho et al.'s diffusion settings, with the U-Net scaled down for 28x28 / 32x32 images on a CPU.

    The paper's CIFAR-10 model (``base_channels=128, channel_mults=(1, 2, 2, 2), num_res_blocks=2,
    dropout=0.1``, 35.7M parameters, batch 128, 800k steps, EMA 0.9999) is these fields away.
    The defaults (0.64M parameters) were tuned on ``mnist-5k`` for runs of a few thousand steps.
    On a CPU, ``--precision bf16 --set snr_gamma=5`` gives recognisable digits in 1,000 steps
    (about five minutes on two cores; docs/samples.md).
    """

    # -- network (paper, CIFAR-10: 128 / (1, 2, 2, 2) / 2 / attention at 16x16 / dropout 0.1) --
    base_channels: int = 16  # width of the first level; 28x28 costs ~0.14 GFLOP per forward
    channel_mults: tuple[int, ...] = (1, 2, 4)  # one level per entry: 28 -> 14 -> 7, 16/32/64 wide
    num_res_blocks: int = 1  # residual blocks per level on the way down (one more on the way up)
    attention: bool = True  # one self-attention block at the lowest resolution
    # The paper regularises 800k steps with 0.1; a few thousand steps do not overfit, and dropout
    # costs ~7% of a CPU step.
    dropout: float = 0.0
    norm_groups: int = 8  # group-norm groups (paper: 32, with 128+ channels)
    # -- diffusion (paper) --
    num_timesteps: int = 1000  # T
    beta_start: float = 1e-4  # linear beta schedule, beta_1
    beta_end: float = 0.02  # beta_T
    # -- optimisation --
    lr: float = 2e-3  # Adam; paper: 2e-4 for 35.7M parameters (this small net is stable at 2e-3)
    warmup_steps: int = 100  # linear lr warm-up (paper: 5000 of 800k steps)
    grad_clip: float = 1.0  # global grad-norm clip, paper; the trainer passes it to TrainStep
    # Paper: 0.9999, an averaging horizon of ~10k steps, about 1% of its run. Runs here are 1k-50k
    # steps, so 0.999 (~1k steps). zoo.ema.EMA's warm-up caps the decay at (1+n)/(10+n), so below
    # ~9k steps the two give the same average (roughly the last 10% of training).
    ema_decay: float = 0.999
    # -- loss weighting (not in the paper; off by default) --
    # Min-SNR-gamma (Hang et al. 2023, arXiv:2303.09556): weight each timestep's L_simple term by
    # min(SNR_t, gamma) / SNR_t, which turns down the easy low-noise steps whose gradients fight
    # the rest. None is the paper's unweighted L_simple; 5 is Hang et al.'s choice and lowered
    # FID_lenet at 1,000 CPU steps from 94 to 71 (docs/samples.md).
    snr_gamma: float | None = None

    def validate(self) -> None:
        self.require(self.base_channels >= 1, "base_channels", "must be >= 1")
        ok_mults = len(self.channel_mults) >= 1 and min(self.channel_mults) >= 1
        self.require(ok_mults, "channel_mults", "needs one or more positive multipliers")
        self.require(self.num_res_blocks >= 1, "num_res_blocks", "must be >= 1")
        self.require(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        self.require(self.norm_groups >= 1, "norm_groups", "must be >= 1")
        self.require(self.num_timesteps >= 2, "num_timesteps", "must be >= 2")
        ok_betas = 0.0 < self.beta_start <= self.beta_end < 1.0
        self.require(ok_betas, "beta_end", "needs 0 < beta_start <= beta_end < 1")
        self.require(self.lr > 0, "lr", "must be > 0")
        self.require(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        self.require(self.grad_clip >= 0, "grad_clip", "must be >= 0 (0 disables clipping)")
        self.require(0.0 <= self.ema_decay < 1.0, "ema_decay", "must be in [0, 1)")
        ok_gamma = self.snr_gamma is None or self.snr_gamma > 0
        self.require(ok_gamma, "snr_gamma", "must be > 0, or none for the paper's L_simple")


DEFAULT_DDIM_STEPS = 50
DEFAULT_DPM_STEPS = 20  # Lu et al. 2022: DPM-Solver++(2M) converges in 15-20 steps


class StepsOption(SampleOption):
    """``steps``: an int, or ``None`` / ``"auto"`` for the sampler's default (which depends on T)."""

    def parse(self, value: Any) -> Any:
        if value is None or (
            isinstance(value, str) and value.strip().lower() in {"auto", "none", ""}
        ):
            return None
        return super().parse(value)


class DDPM(GenerativeModel):
    name = "ddpm"
    family = "diffusion"
    summary = "DDPM (epsilon prediction, U-Net, EMA) with ancestral DDPM or DDIM sampling"
    paper = "Ho et al. 2020, arXiv:2006.11239; DDIM: Song et al. 2021, arXiv:2010.02502"
    Config = DDPMConfig
    sample_options = (
        SampleOption(
            "sampler",
            str,
            "ddim",
            "ddim (fast; deterministic at eta=0), ddpm (ancestral) or dpmpp2m (DPM-Solver++(2M))",
            choices=tuple(SCHEDULERS),
        ),
        StepsOption(
            "steps",
            int,
            None,
            f"denoising steps, 1..T; auto: {DEFAULT_DDIM_STEPS} for ddim, {DEFAULT_DPM_STEPS} for dpmpp2m, "
            "T for ddpm (fewer respaces the betas)",
            min=1,
        ),
        SampleOption(
            "eta",
            float,
            0.0,
            "DDIM noise: 0 deterministic (paper), 1 ancestral-like; ddim only",
            min=0.0,
        ),
        SampleOption(
            "spacing",
            str,
            "uniform",
            "timesteps when steps < T: uniform, or quadratic (DDIM's CIFAR-10 choice)",
            choices=SPACINGS,
        ),
        SampleOption(
            "precision",
            str,
            "fp32",
            "U-Net arithmetic while sampling: fp32, or bf16 (autocast; ~2x faster where the "
            "processor has native bf16, images change slightly)",
            choices=("fp32", "bf16"),
        ),
    )
    # bf16 sampling is allowed (zoo.accel.bf16_inference_ok) and the EMA U-Net is what
    # zoo.accel.compile_for_inference compiles.
    bf16_inference = True
    compile_targets = ("ema",)
    # Sizes the three-level default U-Net is built and tested for (odd sizes work: 28 -> 14 -> 7).
    supported_sizes = (16, 28, 32, 64)
    supported_channels = (1, 3)
    default_batch_size = 128  # paper; also the most images/s on a 2-core CPU (64: -16%)
    # The short-budget recipe (docs/samples.md, "DDPM on a CPU"): bf16 autocast trains the U-Net
    # 1.6x faster where the processor has native bf16, and Min-SNR-5 weighting took FID_lenet at
    # 1,000 steps from 94 to 71. Applied by `zoo bench` presets and `--precision auto`. Where bf16
    # is only emulated, presets train in fp32 a U-Net of 12/24/24 channels instead of 16/32/64
    # (0.38x the FLOPs, 1.7x the images/s on an AVX2 CPU), so the quick preset's 128 kimg fit
    # the main job's 10 minutes there (docs/benchmarks.md, "Machine classes").
    recipe = Recipe(
        precision="bf16", overrides={"snr_gamma": 5.0}, batch_size=128,
        fallback=Recipe(precision="fp32", batch_size=128,
                        overrides={"snr_gamma": 5.0, "base_channels": 12, "channel_mults": (1, 2, 2)}),
    )
    tiny_config: ClassVar[dict[str, Any]] = {
        "base_channels": 8,
        "channel_mults": (1, 2),
        "num_timesteps": 20,
        "warmup_steps": 0,
    }

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
        opt = step.optimizers["main"]
        warmup = self.config.warmup_steps
        lr = self.config.lr * min(1.0, (step.step + 1) / warmup) if warmup else self.config.lr
        for group in opt.param_groups:  # a function of the step alone, so resuming is exact
            group["lr"] = lr
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
        ``j``'s generator when ``generator`` is a :class:`zoo.sampling.ImageGenerators`, so the
        images do not depend on the batch size.

        Options (see :attr:`sample_options`): ``sampler`` (``ddim``, ``ddpm`` or ``dpmpp2m``),
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
