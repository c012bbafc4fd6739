"""The ``vaegan`` model's config and registration (the class is `zoo_vaegan.model.VAEGAN`).

Free of torch: ``zoo list`` and ``zoo describe`` read this module, and the model module
(imported only when a model is built) takes these attributes from it (``spec=SPEC``).
"""

from __future__ import annotations

from dataclasses import dataclass

from zoo import ModelSpec
from zoo.config import ModelConfig
from zoo.search import Choice, Float

#: Start resolution of the DCGAN generator per image size (zoo.blocks.DCGAN_START_SIZE, kept
#: here free of torch; tests/test_blocks.py checks they agree).
START_SIZE = {28: 7, 32: 4, 64: 4}


@dataclass
class VAEGANConfig(ModelConfig):
    """Hyper-parameters of `VAEGAN`; the paper's values where it has one for these sizes."""

    latent_dim: int = 32  # size of z (paper, CelebA 64x64: 128; digits need fewer)
    width: int = 64  # channels of the decoder's last hidden layer and Dis's first (DCGAN's 28x28 width)
    enc_hidden: int = 512  # units of the encoder's fully connected layer (paper: 2048 at 64x64)
    # Weight of the feature-wise reconstruction L_llike against L_GAN in the decoder's objective
    # (paper: a hyper-parameter, "gamma"). L_llike is a sum over Dis_l's 128x7x7 features (28x28),
    # hundreds of nats, so a small gamma keeps the two terms comparable.
    gamma: float = 1e-2
    kl_weight: float = 1.0  # weight of L_prior in the encoder's objective (paper: 1, the ELBO)
    leaky_slope: float = 0.2  # LeakyReLU slope in Dis (DCGAN: 0.2)
    init_std: float = 0.02  # N(0, std) initialisation of convolutions (DCGAN: 0.02)
    lr: float = 5e-4  # Adam learning rate of all three optimizers (paper: RMSProp, 3e-4)
    beta1: float = 0.5  # Adam beta1 (DCGAN: 0.5)
    beta2: float = 0.999  # Adam beta2
    ema_decay: float = 0.999  # sample from an EMA of the decoder (not in the paper); 0: off
    #: What `zoo bench --tune` searches: gamma (the paper's one hyper-parameter), lr and beta1.
    search_space = {"gamma": Float(1e-3, 1e-1, log=True), "lr": Float(5e-5, 2e-3, log=True),
                    "beta1": Choice(0.0, 0.5, 0.9)}

    def validate(self) -> None:
        for name in ("latent_dim", "width", "enc_hidden"):
            self.require(getattr(self, name) >= 1, name, "must be at least 1")
        self.require(self.gamma >= 0.0, "gamma", "must be non-negative")
        self.require(self.kl_weight >= 0.0, "kl_weight", "must be non-negative")
        self.require(self.leaky_slope >= 0.0, "leaky_slope", "must be non-negative")
        self.require(self.init_std > 0, "init_std", "must be positive")
        self.require(self.lr > 0, "lr", "must be positive")
        for name in ("beta1", "beta2", "ema_decay"):
            self.require(0.0 <= getattr(self, name) < 1.0, name, "must be in [0, 1)")


SPEC = ModelSpec(
    name="vaegan",
    target="zoo_vaegan.model:VAEGAN",
    family="vae",
    summary="VAE-GAN: VAE with a discriminator-feature reconstruction loss, decoder trained as a GAN",
    paper="Larsen et al. 2016, Autoencoding beyond pixels using a learned similarity metric, arXiv:1512.09300",
    config=VAEGANConfig,
    sample_options=(),
    supported_sizes=tuple(START_SIZE),  # DCGAN's decoder
    supported_channels=(1, 3, 4),
    default_batch_size=64,  # the paper's minibatch size
    batches_per_step=1,
    tiny_config={"latent_dim": 4, "width": 4, "enc_hidden": 8},
    recipe=None,
    bench_sweep=None,
)
