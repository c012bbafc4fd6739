"""Probabilistic PCA: Tipping & Bishop, "Probabilistic Principal Component Analysis", JRSS-B 1999.

The data are modelled as ``x = W z + mu + sigma * eps`` with ``z ~ N(0, I_q)`` and
``eps ~ N(0, I_D)``, so ``x ~ N(mu, C)`` with ``C = W W^T + sigma^2 I``. We fit ``W``, ``mu`` and
``sigma`` by gradient descent on the exact negative log-likelihood, using the Woodbury identity so
that only a ``q x q`` matrix is ever inverted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from zoo import GenerativeModel, ModelConfig, SampleOption


@dataclass
class PPCAConfig(ModelConfig):
    latent_dim: int = 32  # q, the number of principal directions kept
    lr: float = 1e-2  # Adam learning rate
    init_log_sigma: float = -1.0  # log of the initial isotropic noise scale (images in [-1, 1])

    def validate(self) -> None:
        self.require(self.latent_dim >= 1, "latent_dim", "must be >= 1")
        self.require(self.lr > 0, "lr", "must be > 0")


class PPCA(GenerativeModel):
    """Probabilistic PCA fitted by maximum likelihood."""

    name = "ppca"
    family = "other"
    summary = "Probabilistic PCA (a linear-Gaussian baseline; example plugin)"
    paper = "Tipping & Bishop 1999, doi:10.1111/1467-9868.00196"
    Config = PPCAConfig
    supported_channels = (1, 3)
    default_batch_size = 128
    tiny_config = {"latent_dim": 4}
    sample_options = (SampleOption("noise", bool, False, "add the isotropic noise term (usually off: it only adds grain)"),)

    def __init__(self, config: PPCAConfig, image_shape: tuple[int, int, int]):
        super().__init__(config, image_shape)
        d = math.prod(image_shape)
        self.mu = nn.Parameter(torch.zeros(d))
        self.W = nn.Parameter(torch.randn(d, config.latent_dim) * 0.01)
        self.log_sigma = nn.Parameter(torch.tensor(config.init_log_sigma))

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"main": torch.optim.Adam(self.parameters(), lr=self.config.lr)}

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood per image, in nats."""
        x = x.flatten(1) - self.mu
        d, q = self.W.shape
        s2 = torch.exp(2 * self.log_sigma)
        m = self.W.T @ self.W + s2 * torch.eye(q, device=x.device)  # q x q
        chol = torch.linalg.cholesky(m)
        logdet = (d - q) * torch.log(s2) + 2 * torch.log(torch.diagonal(chol)).sum()
        proj = torch.cholesky_solve((x @ self.W).T, chol).T  # M^-1 W^T x
        quad = ((x * x).sum(1) - ((x @ self.W) * proj).sum(1)) / s2
        return 0.5 * (quad + logdet + d * math.log(2 * math.pi)).mean()

    def train_step(self, batch, step):
        loss = self.nll(batch.float())
        step.optimize("main", loss)
        return {"nll": loss.detach()}

    @torch.no_grad()
    def validation_metrics(self, batch):
        return {"nll": float(self.nll(batch.float()))}

    @torch.no_grad()
    def sample(self, n, *, generator=None, **options):
        opts = self.parse_sample_options(options)
        # self.randn with n first, not torch.randn: row j comes from image j's own generator, so an
        # image does not change with the batch size it is drawn in (see zoo.model, "Sampling noise").
        z = self.randn(n, self.W.shape[1], generator=generator)
        x = z @ self.W.T + self.mu
        if opts["noise"]:
            x = x + torch.exp(self.log_sigma) * self.randn(*x.shape, generator=generator)
        return x.view(n, *self.image_shape).clamp(-1, 1)
