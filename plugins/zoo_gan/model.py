"""The original GAN: Goodfellow et al. 2014, "Generative Adversarial Nets", arXiv:1406.2661.

A generator G maps noise z to an image; a discriminator D outputs the logit of "this image is
real". They play the minimax game of the paper's equation (1), trained by alternating one D step and
one G step per minibatch (Algorithm 1 with k = 1, as in the paper's experiments). As the paper
recommends (section 3), G maximises log D(G(z)) instead of minimising log(1 - D(G(z))): the
*non-saturating* loss, which gives strong gradients early in training when D easily rejects fakes.

Both networks are multilayer perceptrons as in the paper's MNIST model: G has two ReLU layers, D
has two maxout layers (Goodfellow et al. 2013) with dropout. D sees pixels in [0, 1], as the paper's
did, so that input dropout blanks a pixel to black. Departures from the paper, each made so that a
few CPU minutes give recognisable digits:

* Adam (beta1 0.5 as in Radford et al. 2015, lr 1e-3) instead of SGD with momentum and a decaying
  learning rate;
* samples come from an exponential moving average of G's weights (Yazici et al. 2019,
  arXiv:1806.04498), which removes most of the speckle an MLP generator shows mid-training;
  ``ema_decay=0`` samples from G itself;
* Gaussian instead of uniform noise, and a tanh output (the data lives in [-1, 1]) instead of a
  sigmoid (data in [0, 1]): an affine change of the same model;
* PyTorch's default initialisation.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.ema import EMA
from zoo.model import GenerativeModel, TrainStep
from zoo_gan.spec import SPEC, GANConfig

# -- losses -----------------------------------------------------------------------------------


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``-[log D(x) + log(1 - D(G(z)))]`` averaged over the batch, from logits (stable form)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss ``-log D(G(z))`` averaged over the batch, from logits."""
    return F.softplus(-fake_logits).mean()


# -- networks ---------------------------------------------------------------------------------


class Maxout(nn.Module):
    """``max_j (W_j x + b_j)`` over ``pieces`` linear maps (Goodfellow et al. 2013, arXiv:1302.4389)."""

    def __init__(self, in_features: int, units: int, pieces: int):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(-1, self.units, self.pieces).amax(dim=-1)


class Generator(nn.Module):
    """z -> ReLU MLP -> tanh image."""

    def __init__(self, cfg: GANConfig, image_shape: tuple[int, int, int]):
        super().__init__()
        self.image_shape = image_shape
        out = image_shape[0] * image_shape[1] * image_shape[2]
        self.net = nn.Sequential(
            nn.Linear(cfg.latent_dim, cfg.g_hidden),
            nn.ReLU(),
            nn.Linear(cfg.g_hidden, cfg.g_hidden),
            nn.ReLU(),
            nn.Linear(cfg.g_hidden, out),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.image_shape)


class Discriminator(nn.Module):
    """image -> dropout/maxout MLP -> one real-vs-fake logit per image."""

    def __init__(self, cfg: GANConfig, image_shape: tuple[int, int, int]):
        super().__init__()
        inp = image_shape[0] * image_shape[1] * image_shape[2]
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(cfg.d_input_dropout),
            Maxout(inp, cfg.d_units, cfg.d_pieces),
            nn.Dropout(cfg.d_dropout),
            Maxout(cfg.d_units, cfg.d_units, cfg.d_pieces),
            nn.Dropout(cfg.d_dropout),
            nn.Linear(cfg.d_units, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Back to the paper's [0, 1] pixels, so that input dropout blanks a pixel to the black
        # background (0) rather than to mid-grey (0 in [-1, 1]), which no real digit contains.
        return self.net((x + 1) / 2).squeeze(1)


# -- the model --------------------------------------------------------------------------------


class LatentGeneratorSampling:
    """Sampling, EMA updates and export for a model whose ``self.generator`` maps
    ``z ~ N(0, I)`` of size ``config.latent_dim`` to an image, with an optional EMA copy
    ``self.generator_ema`` (GAN, DCGAN and WGAN-GP share it)."""

    generator: nn.Module
    generator_ema: EMA | None
    config: Any

    def after_optimizer_step(self, step: int) -> None:
        if self.generator_ema is not None:
            self.generator_ema.update(self.generator)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, **options: Any) -> torch.Tensor:
        self.parse_sample_options(options)  # this model has none: rejects unknown ones
        z = self.randn(n, self.config.latent_dim, generator=generator)
        if self.generator_ema is not None:
            return self.generator_ema(z).float()  # the EMA copy is always in eval mode
        was_training = self.generator.training
        self.generator.eval()
        try:
            return self.generator(z).float()
        finally:
            self.generator.train(was_training)

    def export_spec(self) -> Any:
        """For ``zoo export``: the generator :meth:`sample` runs (EMA copy if any), ``z ~ N(0, I)`` -> image."""
        from zoo.export import generator_spec

        net = self.generator_ema.shadow if self.generator_ema is not None else self.generator
        return generator_spec(self, net, self.config.latent_dim)


class GAN(LatentGeneratorSampling, GenerativeModel, spec=SPEC):
    """Goodfellow et al. 2014 (arXiv:1406.2661): MLP generator and maxout discriminator with the
    non-saturating generator loss."""

    # name, family, summary, Config, sizes, ...: from SPEC, declared once and free of torch in
    # the plugin's spec.py (zoo list and zoo describe read it without importing this module).

    config: GANConfig

    def __init__(self, config: GANConfig, image_shape: tuple[int, int, int]):
        super().__init__(config, image_shape)
        self.generator, self.discriminator = self.build_networks()
        # A slowly moving average of G's weights, used only for sampling: it smooths out the
        # step-to-step jitter of adversarial training (Yazici et al. 2019, arXiv:1806.04498).
        self.generator_ema = EMA(self.generator, config.ema_decay) if config.ema_decay > 0 else None

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        """G and D. Subclasses that keep this training procedure swap in other networks (DCGAN)."""
        return Generator(self.config, self.image_shape), Discriminator(self.config, self.image_shape)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config
        betas = (cfg.beta1, cfg.beta2)
        return {
            "d": torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr, betas=betas),
            "g": torch.optim.Adam(self.generator.parameters(), lr=cfg.lr, betas=betas),
        }

    def train_step(self, batch: torch.Tensor, step: TrainStep) -> dict[str, float]:
        n, latent = batch.shape[0], self.config.latent_dim

        # D step: fakes are made without a graph, so no gradient can reach G.
        with torch.no_grad():
            fake = self.generator(torch.randn(n, latent, device=batch.device))
        real_logits, fake_logits = self.discriminator(batch), self.discriminator(fake)
        d_loss = discriminator_loss(real_logits, fake_logits)
        step.optimize("d", d_loss)

        # G step on fresh noise (Algorithm 1). D is frozen so that no gradient is computed for, or
        # left behind on, its parameters: only the "g" optimizer zeroes its own gradients.
        self.discriminator.requires_grad_(False)
        try:
            g_logits = self.discriminator(self.generator(torch.randn(n, latent, device=batch.device)))
            g_loss = generator_loss(g_logits)
            step.optimize("g", g_loss)
        finally:
            self.discriminator.requires_grad_(True)

        return {
            "d_loss": float(d_loss.detach()),
            "g_loss": float(g_loss.detach()),
            "d_real": float(torch.sigmoid(real_logits.detach()).mean()),  # D's mean P(real) on data
            "d_fake": float(torch.sigmoid(fake_logits.detach()).mean()),  # ... and on fakes
        }
