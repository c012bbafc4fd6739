"""The ``gan`` model's config and registration (the class is `zoo_gan.model.GAN`).

Free of torch: ``zoo list`` and ``zoo describe`` read this module, and the model module
(imported only when a model is built) takes these attributes from it (``spec=SPEC``).
"""

from __future__ import annotations

from dataclasses import dataclass

from zoo import ModelSpec
from zoo.config import ModelConfig
from zoo.search import Choice, Float


@dataclass
class GANConfig(ModelConfig):
    """Hyper-parameters of `GAN`: the paper's MNIST network, optimiser tuned for short runs."""

    latent_dim: int = 100  # size of the noise vector z (paper's code: 100)
    g_hidden: int = 1200  # units in each of G's two ReLU layers (paper's code: 1200)
    d_units: int = 240  # maxout units in each of D's two hidden layers (paper's code: 240)
    d_pieces: int = 5  # linear pieces per maxout unit (paper's code: 5)
    d_input_dropout: float = 0.2  # dropout on D's input (paper's code keeps 80% of inputs)
    d_dropout: float = 0.5  # dropout on D's hidden layers (paper's code: 0.5)
    lr: float = 1e-3  # Adam learning rate for G and D (paper: SGD + momentum; see module docstring)
    beta1: float = 0.5  # Adam beta1, lowered from 0.9 for stability (Radford et al. 2015)
    beta2: float = 0.999  # Adam beta2
    ema_decay: float = 0.999  # sample from an EMA of G (not in the paper; Yazici et al. 2019); 0: off
    #: What `zoo bench --tune` searches (Lucic et al. 2018 tune lr, beta1, beta2 of every GAN).
    search_space = {"lr": Float(1e-4, 3e-3, log=True), "beta1": Choice(0.0, 0.5, 0.9),
                    "beta2": Choice(0.9, 0.999), "d_dropout": Float(0.0, 0.7)}

    def validate(self) -> None:
        for name in ("latent_dim", "g_hidden", "d_units", "d_pieces"):
            self.require(getattr(self, name) >= 1, name, "must be at least 1")
        for name in ("d_input_dropout", "d_dropout"):
            self.require(0.0 <= getattr(self, name) < 1.0, name, "must be in [0, 1)")
        self.require(self.lr > 0, "lr", "must be positive")
        for name in ("beta1", "beta2", "ema_decay"):
            self.require(0.0 <= getattr(self, name) < 1.0, name, "must be in [0, 1)")


SPEC = ModelSpec(
    name="gan",
    target="zoo_gan.model:GAN",
    family="gan",
    summary="Original GAN: MLP generator, maxout discriminator, non-saturating loss",
    paper="Goodfellow et al. 2014, Generative Adversarial Nets, arXiv:1406.2661",
    config=GANConfig,
    sample_options=(),
    supported_sizes=None,  # an MLP takes any image size
    supported_channels=(1, 3, 4),
    default_batch_size=100,  # the paper's code trains with minibatches of 100
    batches_per_step=1,
    tiny_config={"latent_dim": 8, "g_hidden": 32, "d_units": 16, "d_pieces": 2},
    recipe=None,
    bench_sweep=None,
)
