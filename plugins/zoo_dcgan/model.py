"""DCGAN: Radford, Metz & Chintala 2015, "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks", arXiv:1511.06434.

The paper's architecture guidelines (section 3), all followed here:

* no pooling: strided convolutions in D, fractionally-strided (transposed) convolutions in G;
* batch normalisation in both networks, except G's output layer and D's input layer;
* no fully connected hidden layers: z is projected to the first feature map (a transposed
  convolution of a 1x1 input, i.e. the paper's "project and reshape") and D's last convolution
  covers the whole final feature map;
* ReLU in G with a tanh output, LeakyReLU (slope 0.2) in D;
* weights from N(0, 0.02), Adam with beta1 0.5, minibatches of 128.

Departures, so that a few CPU minutes give recognisable digits: the learning rate is 5e-4 (the
paper's 2e-4 needs several times more steps), the default width is 64 (see below), and samples
come from an exponential moving average of G's weights (Yazici et al. 2019, arXiv:1806.04498;
``ema_decay=0`` samples from G itself).

Each upsampling step doubles the resolution with a 4x4 kernel, stride 2 (the paper's code used 5x5
kernels with "same" padding; 4x4 doubles exactly, and a kernel divisible by its stride limits
checkerboard artefacts, Odena et al. 2016). The path is chosen
from the image size: 7 -> 14 -> 28 for MNIST-sized images, 4 -> 8 -> 16 -> 32, and the paper's own
4 -> 8 -> 16 -> 32 -> 64. The channel count halves at every doubling, ending at ``width`` channels
before the output layer; the paper's 64x64 model used 1024 -> 512 -> 256 -> 128 (width 128), the
smaller images here use width 64 as the reference PyTorch port does.

The GAN objective is the non-saturating one of Goodfellow et al. 2014 (arXiv:1406.2661), with one D
step and one G step per minibatch; as in the paper's reference code, D sees the real and the fake
batch in separate forward passes, so each batch-norm layer normalises one kind of image at a time.

Sampling runs G in eval mode, so batch norm uses its running statistics: each image then depends on
its own z only, not on the other images drawn with it or on how many there are. In our MNIST runs
these samples were indistinguishable from (slightly cleaner than) those made with batch statistics,
which is what the reference code's train-mode sampling does.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from zoo.blocks import DCGANGenerator as Generator  # noqa: F401 - importable from here as before
from zoo.blocks import NonSaturatingGAN
from zoo.blocks import dcgan_init as init_weights
from zoo_dcgan.spec import SPEC, START_SIZE, DCGANConfig

# -- networks ---------------------------------------------------------------------------------


class Discriminator(nn.Module):
    """image -> strided convolutions (halvings) -> one logit per image; G mirrored."""

    def __init__(self, cfg: DCGANConfig, channels: int, size: int):
        super().__init__()
        start = START_SIZE[size]
        doublings = int(math.log2(size // start))
        ch = cfg.width
        slope = cfg.leaky_slope
        layers: list[nn.Module] = [  # no batch norm on the input layer
            nn.Conv2d(channels, ch, 4, 2, 1, bias=False),
            nn.LeakyReLU(slope, True),
        ]
        for _ in range(doublings - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(slope, True)]
            ch *= 2
        layers += [nn.Conv2d(ch, 1, start, 1, 0)]  # covers the whole start x start map
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


# -- the model --------------------------------------------------------------------------------


class DCGAN(NonSaturatingGAN, spec=SPEC):
    """Radford et al. 2015 (arXiv:1511.06434): all-convolutional GAN with batch norm.

    The training procedure (one D step, one non-saturating G step, EMA sampling) is the GAN's
    (`zoo.blocks.NonSaturatingGAN`); only the networks differ."""

    # name, family, summary, Config, sizes, ...: from SPEC, declared once and free of torch in
    # the plugin's spec.py (zoo list and zoo describe read it without importing this module).

    config: DCGANConfig

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        c, size, _ = self.image_shape
        generator, discriminator = Generator(self.config, c, size), Discriminator(self.config, c, size)
        for net in (generator, discriminator):
            net.apply(lambda m: init_weights(m, self.config.init_std))
        return generator, discriminator
