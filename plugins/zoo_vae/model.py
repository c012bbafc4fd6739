"""The variational autoencoder: Kingma & Welling 2014, "Auto-Encoding Variational Bayes",
arXiv:1312.6114.

An encoder q(z|x) = N(mu(x), diag sigma^2(x)) and a decoder p(x|z) are trained together by
maximising the evidence lower bound (ELBO, the paper's equation (10))

    log p(x) >= E_q[log p(x|z)] - KL(q(z|x) || N(0, I)),

with the reparameterisation z = mu + sigma * eps, eps ~ N(0, I) and the Gaussian KL in closed form
(the paper's appendix B).

Likelihood. Pixels are 8-bit, so p(x|z) is a *discrete* distribution over the 256 intensity bins:
a discretised logistic per pixel (Salimans et al. 2017, PixelCNN++, arXiv:1701.05517, with one
mixture component). The decoder outputs a location and a log-scale for every pixel; the probability
of a bin is the logistic's mass on it, and the two end bins take the tails, so the 256 probabilities
sum to one and the negative ELBO in bits per dimension is an honest upper bound on the data's
negative log-likelihood, comparable with other likelihood models. Data in [-1, 1] has bins 2/255
wide centred on k / 127.5 - 1.

Sampling draws z from the prior N(0, I) and returns the decoder's location (the mean of the
logistic before discretisation), clamped to [-1, 1], as the image: the usual "VAE sample", smooth
rather than speckled. ``output=sample`` instead draws every pixel from p(x|z), which is what the
likelihood actually models (noisier images). Channels are independent given z (no PixelCNN++-style
coupling between the red, green and blue values of a pixel).

Departures from the paper: convolutional encoder and decoder (the paper used one-hidden-layer MLPs)
with one fully connected layer of 500 units like the paper's, Adam (lr 1e-3) instead of Adagrad,
and the discretised logistic instead of a Bernoulli (which would need binarised data).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.model import GenerativeModel, TrainStep
from zoo_vae.spec import HALVINGS, SPEC, VAEConfig

#: Intensity levels of 8-bit data.
BINS = 256


# -- the discretised logistic likelihood ------------------------------------------------------


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Snap values in [-1, 1] to the nearest of the 256 bin centres ``k / 127.5 - 1``."""
    k = torch.round((x.clamp(-1, 1) + 1) * (BINS - 1) / 2)
    return k * 2 / (BINS - 1) - 1


def discretized_logistic_log_prob(x: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Elementwise ``log P(x)`` of the bin holding ``x`` under a logistic(loc, exp(log_scale)).

    ``x`` must be bin centres in [-1, 1] (see `quantize`). The middle bins get the logistic's
    mass on ``[x - 1/255, x + 1/255]``; the first bin also gets the left tail and the last bin the
    right tail. Computed in log space as
    ``log(sigmoid(a) - sigmoid(b)) = logsigmoid(a) + logsigmoid(-b) + log(1 - exp(b - a))``,
    which stays accurate when both CDF values are close to 0 or to 1.
    """
    x, loc, log_scale = x.float(), loc.float(), log_scale.float()
    half_bin = 1.0 / (BINS - 1)
    inv_scale = torch.exp(-log_scale)
    upper = inv_scale * (x - loc + half_bin)  # standardised right edge of the bin
    lower = inv_scale * (x - loc - half_bin)  # ... and its left edge
    log_cdf_upper = F.logsigmoid(upper)  # log P(X < right edge): the first bin
    log_sf_lower = F.logsigmoid(-lower)  # log P(X > left edge): the last bin
    log_mass = log_cdf_upper + log_sf_lower + torch.log(-torch.expm1(lower - upper))
    first, last = x < -1 + half_bin, x > 1 - half_bin
    return torch.where(first, log_cdf_upper, torch.where(last, log_sf_lower, log_mass))


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` summed over the latent dimensions (paper, appendix B)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


# -- networks ---------------------------------------------------------------------------------


class Encoder(nn.Module):
    """image -> stride-2 convolutions -> fully connected -> (mu, logvar) of q(z|x)."""

    def __init__(self, cfg: VAEConfig, channels: int, size: int):
        super().__init__()
        layers: list[nn.Module] = []
        ch_in, ch = channels, cfg.width
        for _ in range(HALVINGS[size]):
            layers += [nn.Conv2d(ch_in, ch, 4, 2, 1), nn.ReLU()]
            ch_in, ch = ch, ch * 2
        bottom = size >> HALVINGS[size]
        self.net = nn.Sequential(
            *layers,
            nn.Flatten(),
            nn.Linear(ch_in * bottom * bottom, cfg.hidden),
            nn.ReLU(),
            nn.Linear(cfg.hidden, 2 * cfg.latent_dim),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.net(x).chunk(2, dim=1)
        return mu, logvar


class Decoder(nn.Module):
    """z -> fully connected -> transposed convolutions -> per-pixel (location, log-scale)."""

    def __init__(self, cfg: VAEConfig, channels: int, size: int):
        super().__init__()
        halvings = HALVINGS[size]
        bottom = size >> halvings
        ch = cfg.width * 2 ** (halvings - 1)
        layers: list[nn.Module] = [
            nn.Linear(cfg.latent_dim, cfg.hidden),
            nn.ReLU(),
            nn.Linear(cfg.hidden, ch * bottom * bottom),
            nn.ReLU(),
            nn.Unflatten(1, (ch, bottom, bottom)),
        ]
        for _ in range(halvings - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1), nn.ReLU()]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, 2 * channels, 4, 2, 1)]  # location and log-scale
        self.net = nn.Sequential(*layers)
        self.min_log_scale = cfg.min_log_scale

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, log_scale = self.net(z).chunk(2, dim=1)
        return loc, log_scale.clamp(min=self.min_log_scale)


# -- the model --------------------------------------------------------------------------------


class VAE(GenerativeModel, spec=SPEC):
    """Kingma & Welling 2014 (arXiv:1312.6114): convolutional VAE with a discretised logistic
    likelihood over the 256 pixel bins (Salimans et al. 2017, arXiv:1701.05517)."""

    # name, family, summary, Config, sizes, ...: from SPEC, declared once and free of torch in
    # the plugin's spec.py (zoo list and zoo describe read it without importing this module).

    config: VAEConfig

    def __init__(self, config: VAEConfig, image_shape: tuple[int, int, int]):
        super().__init__(config, image_shape)
        c, size, _ = self.image_shape
        self.encoder = Encoder(config, c, size)
        self.decoder = Decoder(config, c, size)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"main": torch.optim.Adam(self.parameters(), lr=self.config.lr)}

    def negative_elbo_terms(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image ``(recon, kl)`` in nats, ``-ELBO = recon + kl``, with one z drawn from q(z|x)."""
        mu, logvar = self.encoder(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps  # the reparameterisation trick
        loc, log_scale = self.decoder(z)
        recon = -discretized_logistic_log_prob(quantize(x), loc, log_scale).flatten(1).sum(dim=1)
        return recon, gaussian_kl(mu.float(), logvar.float())

    def train_step(self, batch: torch.Tensor, step: TrainStep) -> dict[str, float]:
        recon, kl = self.negative_elbo_terms(batch)
        # Nats per dimension: the same optimum as the per-image ELBO, at a batch- and size-free scale.
        loss = (recon + kl).mean() / self.num_pixels
        step.optimize("main", loss)
        return {
            "loss": float(loss.detach()),
            "bpd": float(loss.detach()) / math.log(2),
            "recon": float(recon.detach().mean()),
            "kl": float(kl.detach().mean()),
        }

    @torch.no_grad()
    def validation_metrics(self, batch: torch.Tensor) -> dict[str, float]:
        """Negative ELBO in bits per dimension (``bpd``), ELBO, KL and reconstruction term (nats per
        image), averaged over ``batch`` (floats in [-1, 1]); ``psnr`` and ``ssim`` of the mean
        reconstructions (`reconstruction_quality`). The z draw comes from a private
        generator with a fixed seed: the numbers are repeatable and the global RNG (which the core
        checkpoints for exact resume) is left untouched."""
        generator = torch.Generator(device=batch.device).manual_seed(0)
        with _eval_mode(self):
            recon, kl = self.negative_elbo_terms(batch, generator)
        neg_elbo = float((recon + kl).mean())
        return {
            "bpd": neg_elbo / (self.num_pixels * math.log(2)),
            "elbo_nats": -neg_elbo,
            "kl": float(kl.mean()),
            "recon": float(recon.mean()),
            **self.reconstruction_quality(batch),
        }

    @torch.no_grad()
    def reconstruct(self, batch: torch.Tensor) -> torch.Tensor:
        """The mean reconstruction of ``batch`` (floats in [-1, 1]): decoder location at z = mu(x), clamped."""
        with _eval_mode(self):
            mu, _ = self.encoder(batch)
            loc, _ = self.decoder(mu)
        return loc.float().clamp(-1, 1)

    @torch.no_grad()
    def reconstruction_quality(self, batch: torch.Tensor) -> dict[str, float]:
        """PSNR (dB) and SSIM of the mean reconstructions of ``batch``, as images in [0, 1].

        PSNR is averaged over images (each image's own MSE); SSIM is Wang et al. 2004's with its
        defaults (Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03), both from `zoo.image_quality`
        (torchmetrics' numbers) with data range 1. Deterministic (no z draw), so a reconstruction
        score is repeatable.
        """
        from zoo.image_quality import psnr, ssim

        target = (batch.float().clamp(-1, 1) + 1) / 2
        recon = (self.reconstruct(batch) + 1) / 2
        return {"psnr": float(psnr(recon, target).mean()), "ssim": float(ssim(recon, target))}

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, **options: Any) -> torch.Tensor:
        output = self.parse_sample_options(options)["output"]
        with _eval_mode(self):
            loc, log_scale = self.decoder(self.randn(n, self.config.latent_dim, generator=generator))
        loc, log_scale = loc.float(), log_scale.float()
        if output == "mean":
            return loc.clamp(-1, 1)
        # Inverse-CDF draw from each pixel's logistic, then snap to its bin (tails fold into the ends).
        # One uniform per pixel, row j from image j's generator (see zoo.sampling).
        u = self.rand(*loc.shape, generator=generator)
        u = u.clamp(1e-6, 1 - 1e-6)
        return quantize(loc + log_scale.exp() * (torch.log(u) - torch.log1p(-u)))

    def export_spec(self) -> Any:
        """For ``zoo export``: the decoder's location (``output=mean`` sampling) for ``z ~ N(0, I)``."""
        from zoo.export import generator_spec

        return generator_spec(self, self.decoder, self.config.latent_dim, index=0)


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Run a block in eval mode and restore the module's previous mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)
