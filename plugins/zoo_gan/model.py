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

import torch
from torch import nn

# The objective, latent sampling and training procedure are shared with DCGAN (zoo.blocks).
from zoo.blocks import (  # noqa: F401 - the shared names stay importable from here
    LatentGeneratorSampling,
    NonSaturatingGAN,
    discriminator_loss,
    generator_loss,
)
from zoo_gan.spec import SPEC, GANConfig

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


class GAN(NonSaturatingGAN, spec=SPEC):
    """Goodfellow et al. 2014 (arXiv:1406.2661): MLP generator and maxout discriminator with the
    non-saturating generator loss."""

    # name, family, summary, Config, sizes, ...: from SPEC, declared once and free of torch in
    # the plugin's spec.py (zoo list and zoo describe read it without importing this module).

    config: GANConfig

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        """G and D: the paper's MLPs."""
        return Generator(self.config, self.image_shape), Discriminator(self.config, self.image_shape)
