"""VAE-GAN: Larsen, Sønderby, Larochelle & Winther 2016, "Autoencoding beyond pixels using a learned
similarity metric", arXiv:1512.09300.

A VAE whose decoder is also a GAN's generator. The three networks and what each one learns
(the paper's section 2 and Algorithm 1):

* the encoder ``Enc`` maps an image ``x`` to ``q(z|x) = N(mu, diag sigma^2)``;
* the decoder ``Dec`` (the generator) maps a code ``z`` to an image: ``x~ = Dec(z)`` for
  ``z ~ q(z|x)`` (a reconstruction) and ``x_p = Dec(z_p)`` for ``z_p ~ N(0, I)`` (a sample);
* the discriminator ``Dis`` tells real images from ``x~`` and ``x_p``; its ``l``-th hidden layer
  ``Dis_l`` is the *learned similarity metric*: the VAE's likelihood is Gaussian in that feature
  space, ``p(Dis_l(x) | z) = N(Dis_l(x~), I)``, so the reconstruction loss is
  ``L_llike = 1/2 ||Dis_l(x) - Dis_l(x~)||^2`` (summed over the features) instead of a pixel loss.

The losses are ``L_prior = KL(q(z|x) || N(0, I))`` and the GAN loss
``L_GAN = log Dis(x) + log(1 - Dis(x~)) + log(1 - Dis(x_p))``, and each network has its own
optimizer and its own objective (Algorithm 1):

* ``Enc`` minimises ``L_prior + L_llike``;
* ``Dec`` minimises ``gamma * L_llike - L_GAN``: ``gamma`` weighs content (reconstruction) against
  style (fooling ``Dis``); the paper's "limiting error signals" keeps ``L_GAN`` out of the encoder;
* ``Dis`` maximises ``L_GAN`` (minimises the usual cross-entropy).

Networks: the paper's CelebA networks are 5x5 convolutions with batch norm; here the decoder is
the DCGAN generator (``zoo_dcgan``: 4x4 transposed convolutions, batch norm, ReLU, tanh), the
discriminator its mirror with ``Dis_l`` the last convolutional feature map before the logit (the
paper also takes a late convolutional layer), and the encoder the same convolutions ending in a
fully connected layer that outputs ``(mu, log sigma^2)``.

Departures, so that a few CPU minutes give recognisable digits: Adam (lr 5e-4, beta1 0.5, as
DCGAN) instead of RMSProp with lr 3e-4; the decoder's ``-L_GAN`` is the non-saturating
``-log Dis(.)`` (the paper's code does the same); the three updates run one after another on the
same minibatch (encoder and decoder on the discriminator just updated), not on gradients all taken
before any update; samples come from an exponential moving average of the decoder's weights
(``ema_decay=0``: from the decoder itself), run in eval mode so that batch norm uses running
statistics and each image depends on its own ``z`` only.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.blocks import DCGANGenerator, discriminator_loss, generator_loss
from zoo.blocks import dcgan_init as init_weights
from zoo.ema import EMA
from zoo.model import GenerativeModel, TrainStep
from zoo_vaegan.spec import SPEC, START_SIZE, VAEGANConfig

# -- networks ---------------------------------------------------------------------------------


def _halvings(size: int) -> int:
    return int(math.log2(size // START_SIZE[size]))


def _conv_stack(channels: int, width: int, size: int, slope: float) -> tuple[nn.Sequential, int]:
    """Stride-2 4x4 convolutions from ``size`` down to DCGAN's start size; returns (net, channels)."""
    layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(slope, True)]
    ch = width
    for _ in range(_halvings(size) - 1):
        layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(slope, True)]
        ch *= 2
    return nn.Sequential(*layers), ch


class Encoder(nn.Module):
    """image (B x C x H x W in [-1, 1]) -> (mu, logvar), each B x latent_dim."""

    def __init__(self, cfg: VAEGANConfig, channels: int, size: int):
        super().__init__()
        self.conv, ch = _conv_stack(channels, cfg.width, size, cfg.leaky_slope)
        start = START_SIZE[size]
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(ch * start * start, cfg.enc_hidden),
            nn.BatchNorm1d(cfg.enc_hidden),
            nn.ReLU(True),
            nn.Linear(cfg.enc_hidden, 2 * cfg.latent_dim),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.conv(x)).chunk(2, dim=1)
        return mu, logvar


class Discriminator(nn.Module):
    """image -> (logit B, Dis_l features B x F): the features are the last convolutional map."""

    def __init__(self, cfg: VAEGANConfig, channels: int, size: int):
        super().__init__()
        self.features, ch = _conv_stack(channels, cfg.width, size, cfg.leaky_slope)
        start = START_SIZE[size]
        self.logit = nn.Conv2d(ch, 1, start, 1, 0)  # covers the whole start x start map

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.logit(h).flatten(), h.flatten(1)


def feature_nll(real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
    """``L_llike^Dis_l``: ``-log N(Dis_l(x) | Dis_l(x~), I)`` up to a constant, per image (B), i.e.
    half the squared distance between the two feature vectors, summed over the features."""
    return 0.5 * (real_features.float() - fake_features.float()).square().sum(dim=1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``L_prior = KL(N(mu, exp(logvar)) || N(0, I))`` per image (B), summed over latent dimensions."""
    mu, logvar = mu.float(), logvar.float()
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(dim=1)


# -- the model --------------------------------------------------------------------------------


class VAEGAN(GenerativeModel, spec=SPEC):
    """Larsen et al. 2016 (arXiv:1512.09300): a VAE whose reconstruction error is measured in a GAN
    discriminator's feature space, and whose decoder is also the GAN's generator."""

    # name, family, summary, Config, sizes, ...: from SPEC, declared once and free of torch in
    # the plugin's spec.py (zoo list and zoo describe read it without importing this module).

    config: VAEGANConfig

    def __init__(self, config: VAEGANConfig, image_shape: tuple[int, int, int]):
        super().__init__(config, image_shape)
        c, size, _ = self.image_shape
        self.encoder = Encoder(config, c, size)
        # DCGAN's generator reads cfg.latent_dim and cfg.width, which this config has too.
        self.decoder = DCGANGenerator(config, c, size)  # type: ignore[arg-type]
        self.discriminator = Discriminator(config, c, size)
        for net in (self.encoder, self.decoder, self.discriminator):
            net.apply(lambda m: init_weights(m, config.init_std))
        self.decoder_ema = EMA(self.decoder, config.ema_decay) if config.ema_decay > 0 else None

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The paper's three optimizers, one per network."""
        cfg = self.config
        betas = (cfg.beta1, cfg.beta2)
        return {
            "dis": torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr, betas=betas),
            "dec": torch.optim.Adam(self.decoder.parameters(), lr=cfg.lr, betas=betas),
            "enc": torch.optim.Adam(self.encoder.parameters(), lr=cfg.lr, betas=betas),
        }

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(z, mu, logvar)`` with ``z = mu + sigma * eps`` (the reparameterisation; global RNG)."""
        mu, logvar = self.encoder(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return z, mu, logvar

    def train_step(self, batch: torch.Tensor, step: TrainStep) -> dict[str, float]:
        cfg = self.config
        n = batch.shape[0]
        z, mu, logvar = self.encode(batch)
        z_p = torch.randn(n, cfg.latent_dim, device=batch.device)

        # Dis: real images against reconstructions and prior samples (no graph into Enc/Dec).
        with torch.no_grad():
            recon, prior = self.decoder(z.detach()), self.decoder(z_p)
        real_logits, _ = self.discriminator(batch)
        recon_logits, _ = self.discriminator(recon)
        prior_logits, _ = self.discriminator(prior)
        dis_loss = 0.5 * (discriminator_loss(real_logits, recon_logits) + discriminator_loss(real_logits, prior_logits))
        step.optimize("dis", dis_loss)

        self.discriminator.requires_grad_(False)  # Dis is the fixed metric for Enc and Dec
        try:
            with torch.no_grad():
                _, real_features = self.discriminator(batch)  # the target Dis_l(x)

            # Dec: gamma * L_llike - L_GAN, with z fixed (no signal into Enc from this update).
            recon_logits, recon_features = self.discriminator(self.decoder(z.detach()))
            prior_logits, _ = self.discriminator(self.decoder(z_p))
            llike = feature_nll(real_features, recon_features).mean()
            gan = 0.5 * (generator_loss(recon_logits) + generator_loss(prior_logits))
            dec_loss = cfg.gamma * llike + gan
            step.optimize("dec", dec_loss)

            # Enc: L_prior + L_llike, through the (just updated, now frozen) decoder.
            self.decoder.requires_grad_(False)
            try:
                _, enc_features = self.discriminator(self.decoder(z))
                kl = gaussian_kl(mu, logvar).mean()
                enc_llike = feature_nll(real_features, enc_features).mean()
                enc_loss = cfg.kl_weight * kl + enc_llike
                step.optimize("enc", enc_loss)
            finally:
                self.decoder.requires_grad_(True)
        finally:
            self.discriminator.requires_grad_(True)

        return {
            "dis_loss": float(dis_loss.detach()),
            "dec_gan": float(gan.detach()),
            "llike": float(enc_llike.detach()),
            "kl": float(kl.detach()),
            "d_real": float(torch.sigmoid(real_logits.detach()).mean()),  # Dis's mean P(real) on data
            "d_prior": float(torch.sigmoid(prior_logits.detach()).mean()),  # ... on prior samples
        }

    def after_optimizer_step(self, step: int) -> None:
        if self.decoder_ema is not None:
            self.decoder_ema.update(self.decoder)

    def sampling_decoder(self) -> nn.Module:
        """The network `sample` runs: the decoder's EMA copy (eval mode), else the decoder."""
        return self.decoder_ema.shadow if self.decoder_ema is not None else self.decoder

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, **options: Any) -> torch.Tensor:
        """``Dec(z_p)`` for ``z_p ~ N(0, I)`` drawn per image: ``n x C x H x W`` floats in ``[-1, 1]``."""
        self.parse_sample_options(options)  # none: rejects unknown ones
        z = self.randn(n, self.config.latent_dim, generator=generator)
        decoder = self.sampling_decoder()
        was_training = decoder.training
        decoder.eval()
        try:
            return decoder(z).float()
        finally:
            decoder.train(was_training)

    @torch.no_grad()
    def validation_metrics(self, batch: torch.Tensor) -> dict[str, float]:
        """``kl`` (nats per image) and the pixel ``recon_mse`` of ``Dec(mu(x))`` on a held-out batch."""
        was_training = self.training
        self.eval()
        try:
            mu, logvar = self.encoder(batch)
            recon = self.sampling_decoder()(mu).float()
            return {"kl": float(gaussian_kl(mu, logvar).mean()), "recon_mse": float(F.mse_loss(recon, batch.float()))}
        finally:
            self.train(was_training)

    def export_spec(self) -> Any:
        """For ``zoo export``: the decoder, ``z ~ N(0, I)`` (n x latent_dim) -> image in [-1, 1]."""
        from zoo.export import generator_spec

        return generator_spec(self, self.sampling_decoder(), self.config.latent_dim)
