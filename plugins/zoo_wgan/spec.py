"""The ``wgan-gp`` model's config and registration (the class is `zoo_wgan.model.WGANGP`).

Free of torch: ``zoo list`` and ``zoo describe`` read this module, and the model module
(imported only when a model is built) takes these attributes from it (``spec=SPEC``).
"""

from __future__ import annotations

from dataclasses import dataclass

from zoo import ModelSpec, Recipe
from zoo.config import ModelConfig
from zoo.search import Choice, Float

#: First feature-map size for each supported image size (the image is reached by doublings).
START_SIZE = {28: 7, 32: 4}


@dataclass
class WGANGPConfig(ModelConfig):
    """Hyper-parameters of `WGANGP`; defaults are the paper's (Algorithm 1) except ``ema_decay``."""

    latent_dim: int = 128  # size of z (paper's code: 128)
    width: int = 64  # channels of G's last hidden and D's first layer (paper's code: DIM = 64)
    n_critic: int = 5  # critic updates per generator update (paper: 5)
    gp_weight: float = 10.0  # lambda, the gradient penalty's weight (paper: 10)
    lr: float = 1e-4  # Adam learning rate of both networks (paper: 1e-4)
    beta1: float = 0.0  # Adam beta1 (paper: 0)
    beta2: float = 0.9  # Adam beta2 (paper: 0.9)
    critic_norm: str = "none"  # "none" (paper's MNIST code) or "layer" (layer norm, the paper's advice)
    leaky_slope: float = 0.2  # LeakyReLU slope in the critic (paper's code: 0.2)
    ema_decay: float = 0.999  # sample from an EMA of G (not in the paper; Yazici et al. 2019); 0: off
    #: What `zoo bench --tune` searches (Lucic et al. 2018: lr, betas; and lambda, the penalty weight).
    search_space = {"gp_weight": Float(1.0, 30.0, log=True), "lr": Float(2e-5, 1e-3, log=True),
                    "beta1": Choice(0.0, 0.5), "beta2": Choice(0.9, 0.999)}

    def validate(self) -> None:
        for name in ("latent_dim", "width", "n_critic"):
            self.require(getattr(self, name) >= 1, name, "must be at least 1")
        self.require(self.gp_weight >= 0, "gp_weight", "must be non-negative")
        self.require(self.lr > 0, "lr", "must be positive")
        for name in ("beta1", "beta2", "ema_decay"):
            self.require(0.0 <= getattr(self, name) < 1.0, name, "must be in [0, 1)")
        self.require(self.critic_norm in ("none", "layer"), "critic_norm", "must be 'none' or 'layer'")
        self.require(self.leaky_slope >= 0, "leaky_slope", "must be non-negative")


SPEC = ModelSpec(
    name="wgan-gp",
    target="zoo_wgan.model:WGANGP",
    family="gan",
    summary="Wasserstein GAN with gradient penalty: 5 critic updates per G update, no batch norm in the critic",
    paper="Gulrajani et al. 2017, Improved Training of Wasserstein GANs, arXiv:1704.00028",
    config=WGANGPConfig,
    sample_options=(),
    supported_sizes=tuple(START_SIZE),
    supported_channels=(1, 3, 4),
    default_batch_size=64,  # the paper's batch size
    batches_per_step=5,  # the default n_critic; an instance follows its config
    tiny_config={"latent_dim": 8, "width": 4},
    recipe=Recipe(precision="bf16"),
    bench_sweep=None,
)
