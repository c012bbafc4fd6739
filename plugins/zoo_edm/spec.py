"""The ``edm`` model's config, sampling options and registration (the class is
`zoo_edm.model.EDM`).

Free of torch: ``zoo list`` and ``zoo describe`` read this module, and the model module (imported
only when a model is built) takes these attributes from it (``spec=SPEC``).
"""

from __future__ import annotations

from dataclasses import dataclass

from zoo import ModelSpec, Recipe, SampleOption
from zoo.config import ModelConfig
from zoo.search import Choice, Float

#: ODE solvers of the sampler: Heun (Karras et al. algorithm 1, NFE 2N - 1) and Euler (NFE N).
SAMPLERS = ("heun", "euler")
DEFAULT_STEPS = 18  # the paper's CIFAR-10 setting: N = 18, NFE 35 (Table 2)


@dataclass
class EDMConfig(ModelConfig):
    """Karras et al.'s EDM settings (Table 1; the CIFAR-10 column of their Table 7 for training),
    on ddpm's U-Net scaled down for 28x28 / 32x32 images on a CPU (same widths as ``ddpm``, so the
    two cost the same FLOPs per training image)."""

    # -- network: the ddpm model's U-Net defaults (28x28 costs ~0.14 GFLOP per evaluation) --
    base_channels: int = 16  # width of the first U-Net level
    channel_mults: tuple[int, ...] = (1, 2, 4)  # one level per entry: 28 -> 14 -> 7
    num_res_blocks: int = 1  # residual blocks per level on the way down
    attention: bool = True  # self-attention at the lowest resolution
    dropout: float = 0.0  # paper, CIFAR-10: 0.13 over 200 Mimg; a few thousand steps do not overfit
    norm_groups: int = 8  # group-norm groups
    # -- preconditioning and training noise levels (paper, Table 1) --
    sigma_data: float = 0.5  # standard deviation of the data; 0.5 for images in [-1, 1] (paper)
    p_mean: float = -1.2  # ln(sigma) ~ N(P_mean, P_std^2) during training (paper)
    p_std: float = 1.2  # (paper)
    # -- sampling schedule (paper, Eq. 5 and Table 1) --
    sigma_min: float = 0.002  # lowest noise level of the schedule (paper)
    # 80 (paper) exceeds the largest distance between two 28x28 or 32x32 images in [-1, 1]
    # (at most 2 sqrt(784) = 56 and 2 sqrt(3072) = 111, in practice far less), the criterion of
    # Song & Ermon 2020 the paper follows, so x_0 = 80 n hides the data at 28 and 32 px alike.
    sigma_max: float = 80.0  # highest noise level; sampling starts from N(0, sigma_max^2 I)
    rho: float = 7.0  # schedule exponent: rho = 7 spends more steps at low noise (paper, Eq. 5)
    # -- optimisation (paper, CIFAR-10: Adam 1e-3, batch 512, ramp-up 10 Mimg, EMA half-life 0.5 Mimg) --
    lr: float = 2e-3  # Adam learning rate; ddpm's for the same small U-Net
    warmup_steps: int = 100  # linear learning-rate warm-up
    grad_clip: float = 1.0  # global gradient-norm clip; the trainer passes it to TrainStep
    ema_decay: float = 0.999  # EMA of the weights used for sampling (see ddpm's note)
    #: What `zoo bench --tune` searches: step size, averaging horizon, and where training puts its
    #: noise levels (the paper's P_mean suits long runs; short CPU budgets train better higher).
    search_space = {"lr": Float(2e-4, 5e-3, log=True), "ema_decay": Choice(0.99, 0.995, 0.999),
                    "p_mean": Float(-1.2, 0.8)}

    def validate(self) -> None:
        self.require(self.base_channels >= 1, "base_channels", "must be >= 1")
        ok_mults = len(self.channel_mults) >= 1 and min(self.channel_mults) >= 1
        self.require(ok_mults, "channel_mults", "needs one or more positive multipliers")
        self.require(self.num_res_blocks >= 1, "num_res_blocks", "must be >= 1")
        self.require(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        self.require(self.norm_groups >= 1, "norm_groups", "must be >= 1")
        self.require(self.sigma_data > 0, "sigma_data", "must be > 0")
        self.require(self.p_std > 0, "p_std", "must be > 0")
        self.require(self.sigma_min > 0, "sigma_min", "must be > 0")
        self.require(self.sigma_max > self.sigma_min, "sigma_max", "must be > sigma_min")
        self.require(self.rho > 0, "rho", "must be > 0")
        self.require(self.lr > 0, "lr", "must be > 0")
        self.require(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        self.require(self.grad_clip >= 0, "grad_clip", "must be >= 0 (0 disables clipping)")
        self.require(0.0 <= self.ema_decay < 1.0, "ema_decay", "must be in [0, 1)")


SPEC = ModelSpec(
    name="edm",
    target="zoo_edm.model:EDM",
    family="diffusion",
    summary="EDM (preconditioned denoiser, log-normal sigmas, U-Net, EMA) with Heun sampling",
    paper="Karras et al. 2022, Elucidating the Design Space of Diffusion-Based Generative Models, "
          "arXiv:2206.00364",
    config=EDMConfig,
    sample_options=(
        SampleOption("sampler", str, "heun",
                     "ODE solver: heun (paper, NFE = 2 steps - 1) or euler (NFE = steps)", choices=SAMPLERS),
        SampleOption("steps", int, DEFAULT_STEPS,
                     "N noise levels of the rho-spaced schedule, sigma_max .. sigma_min (paper: 18)", min=1),
    ),
    supported_sizes=(16, 28, 32, 64),
    supported_channels=(1, 3),
    default_batch_size=128,
    batches_per_step=1,
    tiny_config={"base_channels": 8, "channel_mults": (1, 2), "warmup_steps": 0},
    # The short-budget recipe, applied by `zoo bench` presets and `--precision auto`. As ddpm's,
    # for equal training compute (benchmarks/edm_vs_ddpm.py): bf16 autocast where the processor
    # has it natively; where bf16 is only emulated (an AVX2 CPU), fp32 and ddpm's fallback U-Net of
    # 12/24/24 channels, so both cost the same FLOPs per training image. P_mean = 0.4 instead of
    # the paper's -1.2 (median training sigma 1.5, not 0.3): the few-step sampler leans on D at
    # high noise, which the paper's levels rarely train. On mnist-5k (seed 0, fp32, 32 kimg, Heun
    # 5 steps) FID_lenet went 260 (-1.2) -> 189 (-0.4) -> 178 (0.4); sigma_data = 0.94 (the data's
    # RMS) gave 289, so sigma_data stays at the paper's 0.5 (docs/benchmarks.md, "EDM against DDPM").
    recipe=Recipe(
        precision="bf16", batch_size=128, overrides={"p_mean": 0.4},
        fallback=Recipe(precision="fp32", batch_size=128,
                        overrides={"p_mean": 0.4, "base_channels": 12, "channel_mults": (1, 2, 2)}),
    ),
    # zoo bench rows: Heun at 5 steps (NFE 9, at most ddpm's 10-step rows; the learning-curve
    # points use it, the cheapest), Euler at 10 (NFE 10) and the paper's Heun 18 (NFE 35).
    bench_sweep=[
        {"sampler": "heun", "steps": 5}, {"sampler": "euler", "steps": 10},
        {"sampler": "heun", "steps": 18},
    ],
)
