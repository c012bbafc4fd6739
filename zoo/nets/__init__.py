"""Networks that several model plugins share (plugins import the core, never each other).

* `zoo.nets.unet`: the U-Net of Ho et al. 2020 with a sinusoidal time / noise-level
  embedding, used by ``ddpm``, ``flow`` and ``edm``.
"""
