"""The noise-prediction U-Net of Ho et al. 2020 (arXiv:2006.11239, appendix B), scaled down.

Same shape as the paper's (itself PixelCNN++'s backbone): a sinusoidal embedding of the timestep
fed to every residual block, group norm, SiLU, one more residual block per level on the way up than
on the way down (each consumes one skip connection), and self-attention in the middle, at the lowest
resolution. Widths, depth and the attention resolution are arguments so the same file serves a
seconds-long CPU test and a paper-sized CIFAR-10 model (``base_channels=128``,
``channel_mults=(1, 2, 2, 2)``, ``num_res_blocks=2``). The last convolution of every block and of
the network starts at zero, as in the paper's code, so each block starts as the identity.

Downsampling is a stride-2 convolution and upsampling is nearest-neighbour to the size of the
matching skip connection, so odd sizes work too (28 -> 14 -> 7 -> 14 -> 28, or 7 -> 4 -> 7).

Shared by ``ddpm``, ``flow`` and ``edm`` (it lived in ``zoo_ddpm.unet`` before genzoo 0.3.0; that
path is a deprecated alias). Moving it changed no parameter name, creation order or initialisation,
so DDPM checkpoints and seeded results are unchanged (``tests/test_ddpm.py``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (float) timesteps, as in the Transformer (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    )
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([args.sin(), args.cos()], dim=1)
    return F.pad(emb, (0, dim % 2))


def norm(channels: int, groups: int = 8) -> nn.GroupNorm:
    """Group norm with at most ``groups`` groups that divide ``channels`` (the paper uses 32)."""
    return nn.GroupNorm(math.gcd(groups, channels), channels)


def zero_init(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """Two 3x3 convolutions with the time embedding added in between (a per-channel bias)."""

    def __init__(self, in_ch: int, out_ch: int, time_dim: int, dropout: float, groups: int):
        super().__init__()
        self.norm1 = norm(in_ch, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time = nn.Linear(time_dim, out_ch)
        self.norm2 = norm(out_ch, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(temb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over all pixels, with a residual connection."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, size: torch.Size) -> torch.Tensor:
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


class UNet(nn.Module):
    """``eps_theta(x_t, t)``: predicts the noise in ``x_t`` at integer timesteps ``t`` (shape ``B``)."""

    def __init__(
        self,
        in_channels: int,
        base_channels: int = 128,
        channel_mults: tuple[int, ...] = (1, 2, 2, 2),
        num_res_blocks: int = 2,
        attention: bool = True,
        dropout: float = 0.1,
        norm_groups: int = 32,
    ):
        super().__init__()
        time_dim = 4 * base_channels
        self.base_channels = base_channels
        self.time_mlp = nn.Sequential(
            nn.Linear(base_channels, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim)
        )
        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)

        # Down path: remember the width of every tensor pushed as a skip connection.
        self.down = nn.ModuleList()
        skip_channels = [base_channels]
        ch = base_channels
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                self.down.append(ResBlock(ch, base_channels * mult, time_dim, dropout, norm_groups))
                ch = base_channels * mult
                skip_channels.append(ch)
            if level < len(channel_mults) - 1:
                self.down.append(Downsample(ch))
                skip_channels.append(ch)

        self.mid1 = ResBlock(ch, ch, time_dim, dropout, norm_groups)
        self.mid_attn = Attention(ch, norm_groups) if attention else nn.Identity()
        self.mid2 = ResBlock(ch, ch, time_dim, dropout, norm_groups)

        # Up path: one extra block per level, each eating one skip connection.
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            for _ in range(num_res_blocks + 1):
                in_ch, ch = ch + skip_channels.pop(), base_channels * mult
                self.up.append(ResBlock(in_ch, ch, time_dim, dropout, norm_groups))
            if level > 0:
                self.up.append(Upsample(ch))

        self.norm_out = norm(ch, norm_groups)
        self.conv_out = zero_init(nn.Conv2d(ch, in_channels, 3, padding=1))

    @classmethod
    def from_config(cls, config: Any, in_channels: int) -> UNet:
        """The U-Net a model config describes (its ``base_channels``, ``channel_mults``,
        ``num_res_blocks``, ``attention``, ``dropout`` and ``norm_groups`` fields): DDPM, flow, EDM."""
        return cls(in_channels=in_channels, base_channels=config.base_channels, channel_mults=config.channel_mults,
                   num_res_blocks=config.num_res_blocks, attention=config.attention, dropout=config.dropout,
                   norm_groups=config.norm_groups)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.time_mlp(timestep_embedding(t, self.base_channels))
        h = self.conv_in(x)
        skips = [h]
        for layer in self.down:
            h = layer(h, temb) if isinstance(layer, ResBlock) else layer(h)
            skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, skips.pop()], dim=1), temb)
            else:
                h = layer(h, skips[-1].shape[-2:])
        return self.conv_out(F.silu(self.norm_out(h)))
