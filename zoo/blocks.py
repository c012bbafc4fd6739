"""Network blocks and losses that several model plugins share, so plugins import the core and not
each other (plugins stay independent: uninstalling one never breaks another).

* `discriminator_loss`, `generator_loss`: the non-saturating GAN objective
  (Goodfellow et al. 2014, arXiv:1406.2661), from logits;
* `LatentGeneratorSampling`: sampling, EMA updates and export for a model whose
  ``self.generator`` maps ``z ~ N(0, I)`` to an image (GAN, DCGAN, WGAN-GP);
* `NonSaturatingGAN`: the GAN training procedure (one D step, one non-saturating G step,
  Adam for both, sampling from an EMA of G); a model supplies its networks in ``build_networks``
  (GAN: MLPs; DCGAN: convolutions);
* `DCGANGenerator`, `DCGAN_START_SIZE`, `dcgan_init`: the DCGAN generator
  (Radford et al. 2015, arXiv:1511.06434) and its N(0, 0.02) initialisation (DCGAN, VAE-GAN);
* `set_warmup_lr`: a linear learning-rate warm-up that is a function of the step alone (the
  diffusion models: ddpm, flow, edm).

Moving these here changed no parameter name, creation order or initialisation: checkpoints and
seeded results of the models that use them are unchanged (``tests/test_blocks.py``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.ema import EMA
from zoo.model import GenerativeModel, TrainStep

__all__ = [
    "DCGAN_START_SIZE",
    "DCGANGenerator",
    "LatentGeneratorSampling",
    "NonSaturatingGAN",
    "dcgan_init",
    "discriminator_loss",
    "generator_loss",
]

# -- losses -----------------------------------------------------------------------------------


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``-[log D(x) + log(1 - D(G(z)))]`` averaged over the batch, from logits (stable form)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss ``-log D(G(z))`` averaged over the batch, from logits."""
    return F.softplus(-fake_logits).mean()


# -- sampling from a latent generator ---------------------------------------------------------


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
        """For ``zoo export``: the generator `sample` runs (EMA copy if any), ``z ~ N(0, I)`` -> image."""
        from zoo.export import generator_spec

        net = self.generator_ema.shadow if self.generator_ema is not None else self.generator
        return generator_spec(self, net, self.config.latent_dim)


class NonSaturatingGAN(LatentGeneratorSampling, GenerativeModel):
    """The GAN training procedure of Goodfellow et al. 2014 (Algorithm 1, one D step per G step)
    with the non-saturating generator loss, Adam for both networks and sampling from an EMA of G.

    Subclasses set the class attributes of [`GenerativeModel`][zoo.GenerativeModel] and implement
    `build_networks`; their ``Config`` has ``latent_dim``, ``lr``, ``beta1``, ``beta2`` and
    ``ema_decay``."""

    def __init__(self, config: Any, image_shape: tuple[int, int, int]):
        super().__init__(config, image_shape)
        self.generator, self.discriminator = self.build_networks()
        # A slowly moving average of G's weights, used only for sampling: it smooths out the
        # step-to-step jitter of adversarial training (Yazici et al. 2019, arXiv:1806.04498).
        self.generator_ema = EMA(self.generator, config.ema_decay) if config.ema_decay > 0 else None

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        """G (``B x latent_dim`` -> ``B x C x H x W`` in ``[-1, 1]``) and D (images -> ``B``
        logits)."""
        raise NotImplementedError

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


# -- the DCGAN generator ----------------------------------------------------------------------

#: First feature-map size for each supported image size (the image is reached by doublings).
DCGAN_START_SIZE = {28: 7, 32: 4, 64: 4}


class DCGANGenerator(nn.Module):
    """z (as a 1x1 map) -> project to start x start -> doublings -> tanh image.

    ``cfg`` has ``latent_dim`` and ``width`` (channels of the last hidden layer); ``size`` is one
    of `DCGAN_START_SIZE`. Input ``B x latent_dim``, output ``B x channels x size x size``.
    """

    def __init__(self, cfg: Any, channels: int, size: int):
        super().__init__()
        start = DCGAN_START_SIZE[size]
        doublings = int(math.log2(size // start))
        ch = cfg.width * 2 ** (doublings - 1)
        layers: list[nn.Module] = [  # "project and reshape"
            nn.ConvTranspose2d(cfg.latent_dim, ch, start, 1, 0, bias=False),
            nn.BatchNorm2d(ch),
            nn.ReLU(True),
        ]
        for _ in range(doublings - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]  # no batch norm on the output
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


def dcgan_init(module: nn.Module, std: float) -> None:
    """The paper's N(0, 0.02) initialisation (batch-norm scales N(1, 0.02), as in its code)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, std)
        nn.init.zeros_(module.bias)


def set_warmup_lr(optimizer: torch.optim.Optimizer, base_lr: float, warmup_steps: int, step: int) -> float:
    """Set every group of ``optimizer`` to ``base_lr * min(1, (step + 1) / warmup_steps)`` (just
    ``base_lr`` when ``warmup_steps`` is 0) and return that rate. A function of the step alone, so
    a resumed run continues the schedule exactly."""
    lr = base_lr * min(1.0, (step + 1) / warmup_steps) if warmup_steps else base_lr
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
