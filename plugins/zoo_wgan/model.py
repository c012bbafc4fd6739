"""WGAN-GP: Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville 2017, "Improved Training of
Wasserstein GANs", arXiv:1704.00028.

A critic D (no sigmoid: a real-valued score) estimates the Wasserstein-1 distance between the data
and G's samples, ``E[D(x)] - E[D(G(z))]``; G minimises it. Instead of clipping D's weights (the
original WGAN), D is kept near 1-Lipschitz by a *gradient penalty* on points ``x_hat`` drawn
uniformly on segments between real and fake images (the paper's eq. 3):

    L_D = E[D(G(z))] - E[D(x)] + lambda * E[(||grad D(x_hat)||_2 - 1)^2]
    L_G = -E[D(G(z))]

Algorithm 1 of the paper, followed here: ``n_critic = 5`` critic updates, each on a fresh real
batch, per generator update; Adam with lr 1e-4 and betas (0, 0.9); lambda 10. One genzoo training
step is the whole of it, so the model declares ``batches_per_step = n_critic`` (set from the config)
and takes the other real batches from ``step.next_batch()``; budgets count generator steps and kimg
counts every real image the critic saw. The penalty is ``step.gradient_penalty``, which takes the
input gradient the way PyTorch's AMP guide prescribes, so training works in fp32, bf16 and fp16.

Networks: DCGAN-like (Radford et al. 2015) transposed-convolution generator with batch norm, and a
convolutional critic *without* batch norm, which the paper rules out because the penalty is taken
per input and batch norm couples the images of a batch; ``critic_norm="layer"`` adds the layer
normalisation the paper recommends as a drop-in (section 4), ``"none"`` (default) is its MNIST
code. Sizes 28x28 (7 -> 14 -> 28) and 32x32 (4 -> 8 -> 16 -> 32), 4x4 kernels of stride 2.

Departure: samples come from an exponential moving average of G's weights (Yazici et al. 2019,
arXiv:1806.04498), as for genzoo's other GANs; ``ema_decay=0`` samples from G itself.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from zoo.blocks import LatentGeneratorSampling
from zoo.ema import EMA
from zoo.model import GenerativeModel, TrainStep
from zoo_wgan.spec import SPEC, START_SIZE, WGANGPConfig

# -- networks ---------------------------------------------------------------------------------


class Generator(nn.Module):
    """z -> linear projection to ``start x start`` -> transposed-conv doublings -> tanh image."""

    def __init__(self, cfg: WGANGPConfig, channels: int, size: int):
        super().__init__()
        self.start = START_SIZE[size]
        doublings = int(math.log2(size // self.start))
        self.ch = cfg.width * 2 ** (doublings - 1)
        self.project = nn.Sequential(
            nn.Linear(cfg.latent_dim, self.ch * self.start**2), nn.BatchNorm1d(self.ch * self.start**2), nn.ReLU(True))
        layers: list[nn.Module] = []
        ch = self.ch
        for _ in range(doublings - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(z).view(-1, self.ch, self.start, self.start))


class Critic(nn.Module):
    """image -> strided convolutions (no batch norm) -> one real-valued score per image."""

    def __init__(self, cfg: WGANGPConfig, channels: int, size: int):
        super().__init__()
        start = START_SIZE[size]
        doublings = int(math.log2(size // start))
        ch, side = cfg.width, size // 2
        layers: list[nn.Module] = [nn.Conv2d(channels, ch, 4, 2, 1), nn.LeakyReLU(cfg.leaky_slope, True)]
        for _ in range(doublings - 1):
            side //= 2
            layers.append(nn.Conv2d(ch, ch * 2, 4, 2, 1))
            ch *= 2
            if cfg.critic_norm == "layer":  # per image over (C, H, W): no coupling across the batch
                layers.append(nn.LayerNorm([ch, side, side]))
            layers.append(nn.LeakyReLU(cfg.leaky_slope, True))
        layers += [nn.Flatten(), nn.Linear(ch * start * start, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def _finite_mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")


# -- the model --------------------------------------------------------------------------------


class WGANGP(LatentGeneratorSampling, GenerativeModel, spec=SPEC):
    """Gulrajani et al. 2017 (arXiv:1704.00028): Wasserstein GAN with a gradient penalty,
    ``n_critic`` critic updates per generator update, all in one training step."""

    # name, family, summary, Config, sizes, ...: from SPEC, declared once and free of torch in
    # the plugin's spec.py (zoo list and zoo describe read it without importing this module).

    config: WGANGPConfig

    def __init__(self, config: WGANGPConfig, image_shape: tuple[int, int, int]):
        super().__init__(config, image_shape)
        c, size, _ = self.image_shape
        self.batches_per_step = config.n_critic  # type: ignore[misc]  # one real batch per critic update
        self.generator, self.critic = Generator(config, c, size), Critic(config, c, size)
        self.generator_ema = EMA(self.generator, config.ema_decay) if config.ema_decay > 0 else None

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config
        betas = (cfg.beta1, cfg.beta2)
        return {
            "d": torch.optim.Adam(self.critic.parameters(), lr=cfg.lr, betas=betas),
            "g": torch.optim.Adam(self.generator.parameters(), lr=cfg.lr, betas=betas),
        }

    def train_step(self, batch: torch.Tensor, step: TrainStep) -> dict[str, float]:
        cfg, n = self.config, batch.shape[0]
        d_losses, penalties, distances = [], [], []
        real = batch
        for i in range(cfg.n_critic):  # Algorithm 1, lines 2-9
            if i:
                real = step.next_batch()
            with torch.no_grad():
                fake = self.generator(torch.randn(n, cfg.latent_dim, device=real.device))
            real_score, fake_score = self.critic(real).float().mean(), self.critic(fake).float().mean()
            penalty = step.gradient_penalty(self.critic, real, fake)
            d_loss = fake_score - real_score + cfg.gp_weight * penalty
            step.optimize("d", d_loss)
            d_losses.append(float(d_loss.detach()))
            penalties.append(float(penalty.detach()))
            distances.append(float((real_score - fake_score).detach()))

        # Lines 10-11: the generator update; the critic is frozen so no gradient is left on it.
        self.critic.requires_grad_(False)
        try:
            g_loss = -self.critic(self.generator(torch.randn(n, cfg.latent_dim, device=batch.device))).float().mean()
            step.optimize("g", g_loss)
        finally:
            self.critic.requires_grad_(True)
        # Means over the critic updates of this step that were applied (under fp16 an update whose
        # loss overflowed is skipped by the core and its scale lowered; NaN only if all were).
        return {
            "d_loss": _finite_mean(d_losses),
            "g_loss": float(g_loss.detach()),
            "gp": _finite_mean(penalties),
            "w_distance": _finite_mean(distances),  # the critic's estimate of W(P_r, P_g)
        }
