"""Exponential moving average of a module's weights, kept as a submodule so it is checkpointed."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """``shadow = decay * shadow + (1 - decay) * live`` after each step, with a warm-up.

    The warm-up (decay ``min(decay, (1 + n) / (10 + n))``) keeps early samples from being dominated
    by the random initial weights. Buffers (batch-norm statistics) are copied, not averaged.
    """

    def __init__(self, module: nn.Module, decay: float = 0.9999):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = copy.deepcopy(module).eval().requires_grad_(False)
        self.num_updates: torch.Tensor
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.num_updates += 1
        n = float(self.num_updates)
        decay = min(self.decay, (1.0 + n) / (10.0 + n))
        live = dict(module.named_parameters())
        for name, shadow_p in self.shadow.named_parameters():
            shadow_p.lerp_(live[name].detach(), 1.0 - decay)
        live_buffers = dict(module.named_buffers())
        for name, shadow_b in self.shadow.named_buffers():
            shadow_b.copy_(live_buffers[name])

    def forward(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return self.shadow(*args, **kwargs)

    def train(self, mode: bool = True) -> EMA:
        # The shadow copy is only ever evaluated.
        super().train(mode)
        self.shadow.eval()
        return self
