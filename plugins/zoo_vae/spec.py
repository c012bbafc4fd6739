"""The ``vae`` model's config and registration (the class is `zoo_vae.model.VAE`).

Free of torch: ``zoo list`` and ``zoo describe`` read this module, and the model module
(imported only when a model is built) takes these attributes from it (``spec=SPEC``).
"""

from __future__ import annotations

from dataclasses import dataclass

from zoo import ModelSpec, SampleOption
from zoo.config import ModelConfig
from zoo.search import Choice, Float

#: Number of stride-2 halvings of the encoder for each supported size (7x7 or 8x8 at the bottom).
HALVINGS = {28: 2, 32: 2, 64: 3}


@dataclass
class VAEConfig(ModelConfig):
    """Hyper-parameters of `VAE`; the paper's values where it has one."""

    latent_dim: int = 20  # size of z (the paper's MNIST figures use up to 20 for samples)
    hidden: int = 500  # units of the fully connected layer in encoder and decoder (paper: 500)
    width: int = 32  # channels of the first convolution; doubled at every halving
    lr: float = 1e-3  # Adam learning rate (paper: Adagrad with step sizes 0.01-0.1)
    min_log_scale: float = -7.0  # floor of the pixel log-scale, as in PixelCNN++
    #: What `zoo bench --tune` searches: the step size and the size of the code.
    search_space = {"latent_dim": Choice(8, 16, 20, 32), "lr": Float(1e-4, 1e-2, log=True)}

    def validate(self) -> None:
        for name in ("latent_dim", "hidden", "width"):
            self.require(getattr(self, name) >= 1, name, "must be at least 1")
        self.require(self.lr > 0, "lr", "must be positive")
        self.require(self.min_log_scale < 0, "min_log_scale", "must be negative")


SPEC = ModelSpec(
    name="vae",
    target="zoo_vae.model:VAE",
    family="vae",
    summary="Variational autoencoder, convolutional, discretised-logistic likelihood (bits/dim)",
    paper="Kingma & Welling 2014, Auto-Encoding Variational Bayes, arXiv:1312.6114",
    config=VAEConfig,
    sample_options=(
        SampleOption(
            "output",
            str,
            "mean",
            "mean: the decoder's location for z ~ N(0, I); sample: also draw each pixel from p(x|z)",
            choices=("mean", "sample"),
        ),
    ),
    supported_sizes=tuple(HALVINGS),
    supported_channels=(1, 3, 4),
    default_batch_size=100,  # the paper's minibatch size M = 100
    batches_per_step=1,
    tiny_config={"latent_dim": 4, "hidden": 16, "width": 4},
    recipe=None,
    bench_sweep=None,
)
