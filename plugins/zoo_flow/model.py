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
final image is clamped to ``[-1, 1]``. `FlowMatching.sample_nfe` gives the NFE of a setting,
so the benchmark can compare samplers per network evaluation.

Network: DDPM's U-Net (``zoo.nets.unet.UNet``, same widths and defaults as the ``ddpm`` model),
whose sinusoidal time embedding takes float times; ``t in [0, 1]`` is fed as ``1000 t``, the range
of DDPM's integer timesteps the embedding frequencies are laid out for. An EMA of the weights is
used for sampling, as in DDPM.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.blocks import set_warmup_lr
from zoo.ema import EMA
from zoo.errors import ConfigError
from zoo.model import GenerativeModel, TrainStep
from zoo.nets.unet import UNet
from zoo_flow.spec import SAMPLERS, SPEC, FlowConfig

#: The time embedding sees ``TIME_SCALE * t``: DDPM's timestep range, for which it was designed.
TIME_SCALE = 1000.0


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


class FlowMatching(GenerativeModel, spec=SPEC):
    """Conditional flow matching with straight-line paths (rectified flow) on DDPM's U-Net,
    sampled with an Euler or Heun ODE solver."""

    # name, family, summary, Config, sizes, ...: from SPEC, declared once and free of torch in
    # the plugin's spec.py (zoo list and zoo describe read it without importing this module).

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
        lr = set_warmup_lr(step.optimizers["main"], self.config.lr, self.config.warmup_steps, step.step)
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
