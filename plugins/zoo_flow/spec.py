"""The ``flow`` model's config and registration (the class is `zoo_flow.model.FlowMatching`).

Free of torch: ``zoo list`` and ``zoo describe`` read this module, and the model module
(imported only when a model is built) takes these attributes from it (``spec=SPEC``).
"""

from __future__ import annotations

from dataclasses import dataclass

from zoo import ModelSpec, Recipe, SampleOption
from zoo.config import ModelConfig
from zoo.search import Choice, Float

SAMPLERS = ("euler", "heun")


@dataclass
class FlowConfig(ModelConfig):
    """Settings of `FlowMatching`: DDPM's U-Net and optimiser defaults (see ``zoo_ddpm``)."""

    # -- network: the ddpm model's defaults (28x28 costs ~0.14 GFLOP per evaluation) --
    base_channels: int = 16  # width of the first U-Net level
    channel_mults: tuple[int, ...] = (1, 2, 4)  # one level per entry: 28 -> 14 -> 7
    num_res_blocks: int = 1  # residual blocks per level on the way down
    attention: bool = True  # self-attention at the lowest resolution
    dropout: float = 0.0
    norm_groups: int = 8
    # -- optimisation (as ddpm; Lipman et al. train CIFAR-10 with Adam 5e-4 / batch 128 on a larger net) --
    lr: float = 2e-3  # Adam learning rate
    warmup_steps: int = 100  # linear learning-rate warm-up
    grad_clip: float = 1.0  # global gradient-norm clip; the trainer passes it to TrainStep
    ema_decay: float = 0.999  # EMA of the weights used for sampling (see ddpm's note)
    #: What `zoo bench --tune` searches: step size and averaging horizon.
    search_space = {"lr": Float(2e-4, 5e-3, log=True), "ema_decay": Choice(0.99, 0.995, 0.999)}

    def validate(self) -> None:
        self.require(self.base_channels >= 1, "base_channels", "must be >= 1")
        ok_mults = len(self.channel_mults) >= 1 and min(self.channel_mults) >= 1
        self.require(ok_mults, "channel_mults", "needs one or more positive multipliers")
        self.require(self.num_res_blocks >= 1, "num_res_blocks", "must be >= 1")
        self.require(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        self.require(self.norm_groups >= 1, "norm_groups", "must be >= 1")
        self.require(self.lr > 0, "lr", "must be > 0")
        self.require(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        self.require(self.grad_clip >= 0, "grad_clip", "must be >= 0 (0 disables clipping)")
        self.require(0.0 <= self.ema_decay < 1.0, "ema_decay", "must be in [0, 1)")


SPEC = ModelSpec(
    name="flow",
    target="zoo_flow.model:FlowMatching",
    family="diffusion",  # compared with DDPM on the quality-versus-sampling-steps plot
    summary="Flow matching / rectified flow (straight paths, U-Net, EMA), Euler or Heun ODE sampling",
    paper="Lipman et al. 2023, Flow Matching, arXiv:2210.02747; Liu et al. 2023, Rectified Flow, arXiv:2209.03003",
    config=FlowConfig,
    sample_options=(
        SampleOption("sampler", str, "euler", "ODE solver: euler (NFE = steps) or heun (NFE = 2 steps - 1)",
                     choices=SAMPLERS),
        SampleOption("steps", int, 50, "solver steps on a uniform time grid from 0 to 1", min=1),
    ),
    supported_sizes=(16, 28, 32, 64),
    supported_channels=(1, 3),
    default_batch_size=128,
    batches_per_step=1,
    tiny_config={"base_channels": 8, "channel_mults": (1, 2), "warmup_steps": 0},
    # As DDPM's CPU recipe: bf16 autocast where the processor runs it natively (1.6x on the U-Net).
    recipe=Recipe(precision="bf16", batch_size=128),
    # zoo bench rows: Euler and Heun at about 10 and 50 network evaluations (Heun 5 and 25 steps:
    # NFE 9 and 49), beside DDPM's DDIM 10 and 50 on the quality-versus-steps plot; each row
    # records its NFE as the ``sample_nfe`` cost.
    bench_sweep=[
        {"sampler": "euler", "steps": 10}, {"sampler": "euler", "steps": 50},
        {"sampler": "heun", "steps": 5}, {"sampler": "heun", "steps": 25},
    ],
)
