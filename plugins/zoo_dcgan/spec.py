"""The ``dcgan`` model's config and registration (the class is `zoo_dcgan.model.DCGAN`).

Free of torch: ``zoo list`` and ``zoo describe`` read this module, and the model module
(imported only when a model is built) takes these attributes from it (``spec=SPEC``).
"""

from __future__ import annotations

from dataclasses import dataclass

from zoo import ModelSpec
from zoo.config import ModelConfig
from zoo.search import Choice, Float

#: First feature-map size for each supported image size (the image is reached by doublings).
START_SIZE = {28: 7, 32: 4, 64: 4}


@dataclass
class DCGANConfig(ModelConfig):
    """Hyper-parameters of `DCGAN`; defaults are the paper's except where noted."""

    latent_dim: int = 100  # size of z (paper: 100)
    width: int = 64  # channels of G's last hidden and D's first layer (paper, at 64x64: 128)
    leaky_slope: float = 0.2  # LeakyReLU slope in D (paper: 0.2)
    init_std: float = 0.02  # std of the N(0, std) weight initialisation (paper: 0.02)
    lr: float = 5e-4  # Adam learning rate for G and D (paper: 2e-4; 5e-4 converges in minutes on CPU)
    beta1: float = 0.5  # Adam beta1 (paper: 0.5, down from 0.9, which oscillated)
    beta2: float = 0.999  # Adam beta2 (paper: the default 0.999)
    ema_decay: float = 0.999  # sample from an EMA of G (not in the paper; Yazici et al. 2019); 0: off
    #: What `zoo bench --tune` searches (Lucic et al. 2018 tune lr, beta1, beta2 of every GAN).
    search_space = {"lr": Float(5e-5, 2e-3, log=True), "beta1": Choice(0.0, 0.5, 0.9),
                    "beta2": Choice(0.9, 0.999)}

    def validate(self) -> None:
        self.require(self.latent_dim >= 1, "latent_dim", "must be at least 1")
        self.require(self.width >= 1, "width", "must be at least 1")
        self.require(self.leaky_slope >= 0.0, "leaky_slope", "must be non-negative")
        self.require(self.init_std > 0, "init_std", "must be positive")
        self.require(self.lr > 0, "lr", "must be positive")
        for name in ("beta1", "beta2", "ema_decay"):
            self.require(0.0 <= getattr(self, name) < 1.0, name, "must be in [0, 1)")


SPEC = ModelSpec(
    name="dcgan",
    target="zoo_dcgan.model:DCGAN",
    family="gan",
    summary="Deep convolutional GAN: strided convolutions, batch norm, ReLU/LeakyReLU",
    paper="Radford et al. 2015, Unsupervised Representation Learning with DCGANs, arXiv:1511.06434",
    config=DCGANConfig,
    sample_options=(),
    supported_sizes=tuple(START_SIZE),
    supported_channels=(1, 3, 4),
    default_batch_size=128,  # the paper's minibatch size
    batches_per_step=1,
    tiny_config={"latent_dim": 8, "width": 4},
    recipe=None,
    bench_sweep=None,
)
