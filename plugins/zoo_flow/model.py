"""Flow matching with the straight-line path: conditional flow matching (Lipman et al. 2023,
arXiv:2210.02747) with the optimal-transport path of ``sigma_min = 0``, which is the rectified-flow
objective (Liu et al. 2023, arXiv:2209.03003).

Training. Draw an image ``x_1`` from the data, noise ``x_0 ~ N(0, I)`` and a time ``t ~ U(0, 1)``,
put ``x_t = (1 - t) x_0 + t x_1`` on the straight line between them and regress the line's
velocity ``x_1 - x_0`` with a plain MSE:

    L(theta) = E || v_theta(x_t, t) - (x_1 - x_0) ||^2.

The minimiser is the marginal velocity field whose ODE ``dx/dt = v(x, t)`` carries ``N(0, I)`` at
``t = 0`` to the data at ``t = 1`` (Lipman et al. theorem 2; Liu et al. theorem 3.3).

Sampling solves that ODE from ``x_0 ~ N(0, I)`` (one draw per image, through ``self.randn``) with a
fixed step count on a uniform time grid: Euler (one network evaluation, NFE, per step) or Heun's
second-order method (two per step except the last, whose correction would evaluate ``v`` at
``t = 1``; NFE ``2 * steps - 1``, as in Karras et al. 2022, arXiv:2206.00364, algorithm 1). The
final image is clamped to ``[-1, 1]``. :meth:`FlowMatching.sample_nfe` gives the NFE of a setting,
so the benchmark can compare samplers per network evaluation.

Network: DDPM's U-Net (``zoo_ddpm.unet.UNet``, same widths and defaults as the ``ddpm`` model),
whose sinusoidal time embedding takes float times; ``t in [0, 1]`` is fed as ``1000 t``, the range
of DDPM's integer timesteps the embedding frequencies are laid out for. An EMA of the weights is
used for sampling, as in DDPM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from zoo_ddpm.unet import UNet

from zoo.ema import EMA
from zoo.errors import ConfigError
from zoo.model import GenerativeModel, ModelConfig, Recipe, SampleOption, TrainStep

SAMPLERS = ("euler", "heun")
#: The time embedding sees ``TIME_SCALE * t``: DDPM's timestep range, for which it was designed.
TIME_SCALE = 1000.0


@dataclass
class FlowConfig(ModelConfig):
    """Settings of :class:`FlowMatching`: DDPM's U-Net and optimiser defaults (see ``zoo_ddpm``)."""

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


class VelocityNet(nn.Module):
    """``v_theta(x, t)``: B x C x H x W images and B float times in ``[0, 1]`` -> B x C x H x W velocity."""

    def __init__(self, unet: UNet):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t * TIME_SCALE)


def nfe(sampler: str, steps: int) -> int:
    """Network evaluations of ``steps`` steps: ``steps`` for Euler, ``2 * steps - 1`` for Heun."""
    return steps if sampler == "euler" else 2 * steps - 1


class FlowMatching(GenerativeModel):
    """Conditional flow matching with straight-line paths (rectified flow) on DDPM's U-Net,
    sampled with an Euler or Heun ODE solver."""

    name = "flow"
    family = "diffusion"  # compared with DDPM on the quality-versus-sampling-steps plot
    summary = "Flow matching / rectified flow (straight paths, U-Net, EMA), Euler or Heun ODE sampling"
    paper = "Lipman et al. 2023, Flow Matching, arXiv:2210.02747; Liu et al. 2023, Rectified Flow, arXiv:2209.03003"
    Config = FlowConfig
    sample_options = (
        SampleOption("sampler", str, "euler", "ODE solver: euler (NFE = steps) or heun (NFE = 2 steps - 1)",
                     choices=SAMPLERS),
        SampleOption("steps", int, 50, "solver steps on a uniform time grid from 0 to 1", min=1),
    )
    supported_sizes = (16, 28, 32, 64)
    supported_channels = (1, 3)
    default_batch_size = 128
    # zoo bench rows: Euler and Heun at about 10 and 50 network evaluations (Heun 5 and 25 steps:
    # NFE 9 and 49), beside DDPM's DDIM 10 and 50 on the quality-versus-steps plot; each row
    # records its NFE as the ``sample_nfe`` cost.
    bench_sweep: ClassVar[list[dict[str, Any]]] = [
        {"sampler": "euler", "steps": 10}, {"sampler": "euler", "steps": 50},
        {"sampler": "heun", "steps": 5}, {"sampler": "heun", "steps": 25},
    ]
    # As DDPM's CPU recipe: bf16 autocast where the processor runs it natively (1.6x on the U-Net).
    recipe = Recipe(precision="bf16", batch_size=128)
    tiny_config: ClassVar[dict[str, Any]] = {"base_channels": 8, "channel_mults": (1, 2), "warmup_steps": 0}

    config: FlowConfig

    def __init__(self, config: FlowConfig, image_shape: tuple[int, int, int]):
        super().__init__(config, image_shape)
        self.net = VelocityNet(UNet.from_config(config, self.image_shape[0]))
        self.ema = EMA(self.net, config.ema_decay)

    # -- training ---------------------------------------------------------------------------

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"main": torch.optim.Adam(self.net.parameters(), lr=self.config.lr)}

    def loss(self, x1: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The conditional flow-matching loss on data ``x1`` (B x C x H x W in [-1, 1]): MSE between
        ``v(x_t, t)`` and ``x1 - x0`` for ``x0 ~ N(0, I)``, ``t ~ U(0, 1)`` (global RNG unless given)."""
        b = x1.shape[0]
        x0 = torch.randn(x1.shape, device=x1.device, dtype=x1.dtype, generator=generator)
        t = torch.rand(b, device=x1.device, generator=generator)
        tt = t.view(b, 1, 1, 1).to(x1.dtype)
        xt = (1.0 - tt) * x0 + tt * x1
        return F.mse_loss(self.net(xt, t).float(), (x1 - x0).float())

    def train_step(self, batch: torch.Tensor, step: TrainStep) -> dict[str, torch.Tensor | float]:
        opt = step.optimizers["main"]
        warmup = self.config.warmup_steps
        lr = self.config.lr * min(1.0, (step.step + 1) / warmup) if warmup else self.config.lr
        for group in opt.param_groups:  # a function of the step alone, so resuming is exact
            group["lr"] = lr
        loss = self.loss(batch)
        step.optimize("main", loss)
        return {"loss": loss.detach(), "lr": lr}

    def after_optimizer_step(self, step: int) -> None:
        self.ema.update(self.net)

    @torch.no_grad()
    def validation_metrics(self, batch: torch.Tensor) -> dict[str, float]:
        """The flow-matching MSE of the EMA weights on a held-out batch (fixed-seed noise and times)."""
        gen = torch.Generator(device=batch.device).manual_seed(0)
        x0 = torch.randn(batch.shape, device=batch.device, dtype=batch.dtype, generator=gen)
        t = torch.rand(batch.shape[0], device=batch.device, generator=gen)
        tt = t.view(-1, 1, 1, 1)
        pred = self.ema((1.0 - tt) * x0 + tt * batch, t)
        return {"fm_mse": float(F.mse_loss(pred.float(), batch - x0))}

    # -- sampling ---------------------------------------------------------------------------

    @classmethod
    def sample_nfe(cls, **options: Any) -> int:
        """Network evaluations per image of a sampling setting (``sampler``, ``steps``)."""
        opts = cls.parse_sample_options(options)
        return nfe(opts["sampler"], opts["steps"])

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, **options: Any) -> torch.Tensor:
        """Solve ``dx/dt = v(x, t)`` from ``x_0 ~ N(0, I)`` (drawn per image) to ``t = 1`` with the
        EMA weights. Options: ``sampler`` (euler, heun) and ``steps``. Returns ``n x C x H x W``
        floats in ``[-1, 1]``."""
        opts = self.parse_sample_options(options)
        if n < 0:
            raise ConfigError("n", f"must be >= 0, got {n}", "sample")
        x = self.randn(n, *self.image_shape, generator=generator)
        if n == 0:
            return x
        return ode_solve(lambda x, t: self.ema(x, t).float(), x, opts["sampler"], opts["steps"]).clamp(-1.0, 1.0)

    def export_spec(self) -> Any:
        """For ``zoo export``: the velocity network (EMA weights) and the ODE sampler settings."""
        from zoo.export import denoiser_spec

        return denoiser_spec(
            self, self.ema.shadow, time_input=("t", "float32", "time in [0, 1] (0: noise, 1: data)"),
            output="velocity dx/dt of the straight-line flow",
            sampler={"type": "flow", "solvers": list(SAMPLERS), "default_solver": "euler", "default_steps": 50},
        )


def ode_solve(velocity: Any, x: torch.Tensor, sampler: str, steps: int) -> torch.Tensor:
    """Integrate ``dx/dt = velocity(x, t)`` from ``t = 0`` to ``1`` in ``steps`` uniform steps with
    ``sampler`` ``euler`` or ``heun`` (no correction on the last step); ``velocity`` takes ``x`` and a
    batch of float times."""
    if sampler not in SAMPLERS:
        raise ConfigError("sampler", f"must be one of {SAMPLERS}, got {sampler!r}", "sample")
    n = x.shape[0]
    times = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64).tolist()
    for i in range(steps):
        t, t_next = times[i], times[i + 1]
        h = t_next - t
        v = velocity(x, torch.full((n,), t, device=x.device))
        x_euler = x + h * v
        if sampler == "heun" and i < steps - 1:
            v_next = velocity(x_euler, torch.full((n,), t_next, device=x.device))
            x = x + h * 0.5 * (v + v_next)
        else:
            x = x_euler
    return x
