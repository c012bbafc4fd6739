"""The ``ddpm`` model's config, sampling options and registration, with its two named variants
(the class is `zoo_ddpm.model.DDPM`).

Free of torch: ``zoo list`` and ``zoo describe`` read this module, and the model module
(imported only when a model is built) takes these attributes from it (``spec=SPEC``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zoo import ModelSpec, Recipe, SampleOption
from zoo.config import ModelConfig
from zoo.search import Choice, Float

#: Sampler names (``zoo_ddpm.schedulers.SCHEDULERS`` implements each; a test keeps them equal).
SAMPLERS = ("ddpm", "ddim", "dpmpp2m")
#: Timestep spacings of a sampler with fewer steps than T.
SPACINGS = ("uniform", "quadratic")
DEFAULT_DDIM_STEPS = 50
DEFAULT_DPM_STEPS = 20  # Lu et al. 2022: DPM-Solver++(2M) converges in 15-20 steps


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
    #: What `zoo bench --tune` searches: step size, averaging horizon, Min-SNR weighting.
    search_space = {"lr": Float(2e-4, 5e-3, log=True), "ema_decay": Choice(0.99, 0.995, 0.999),
                    "snr_gamma": Choice(None, 5.0)}

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


class StepsOption(SampleOption):
    """``steps``: an int, or ``None`` / ``"auto"`` for the sampler's default (which depends on T)."""

    def parse(self, value: Any) -> Any:
        if value is None or (
            isinstance(value, str) and value.strip().lower() in {"auto", "none", ""}
        ):
            return None
        return super().parse(value)


SPEC = ModelSpec(
    name="ddpm",
    target="zoo_ddpm.model:DDPM",
    family="diffusion",
    summary="DDPM (epsilon prediction, U-Net, EMA) with ancestral DDPM or DDIM sampling",
    paper="Ho et al. 2020, arXiv:2006.11239; DDIM: Song et al. 2021, arXiv:2010.02502",
    config=DDPMConfig,
    sample_options=(
        SampleOption(
            "sampler",
            str,
            "ddim",
            "ddim (fast; deterministic at eta=0), ddpm (ancestral) or dpmpp2m (DPM-Solver++(2M))",
            choices=SAMPLERS,
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
    ),
    # Sizes the three-level default U-Net is built and tested for (odd sizes work: 28 -> 14 -> 7).
    supported_sizes=(16, 28, 32, 64),
    supported_channels=(1, 3),
    default_batch_size=128,  # paper; also the most images/s on a 2-core CPU (64: -16%)
    batches_per_step=1,
    tiny_config={
        "base_channels": 8,
        "channel_mults": (1, 2),
        "num_timesteps": 20,
        "warmup_steps": 0,
    },
    # The short-budget recipe (docs/samples.md, "DDPM on a CPU"): bf16 autocast trains the U-Net
    # 1.6x faster where the processor has native bf16, and Min-SNR-5 weighting took FID_lenet at
    # 1,000 steps from 94 to 71. Applied by `zoo bench` presets and `--precision auto`. Where bf16
    # is only emulated, presets train in fp32 a U-Net of 12/24/24 channels instead of 16/32/64
    # (0.38x the FLOPs, 1.6x the images/s on an AVX2 CPU), so the quick preset's 128 kimg fit
    # the main job's 10 minutes there (docs/benchmarks.md, "Machine classes").
    recipe=Recipe(
        precision="bf16", overrides={"snr_gamma": 5.0}, batch_size=128,
        fallback=Recipe(precision="fp32", batch_size=128,
                        overrides={"snr_gamma": 5.0, "base_channels": 12, "channel_mults": (1, 2, 2)}),
    ),
    bench_sweep=None,
)
