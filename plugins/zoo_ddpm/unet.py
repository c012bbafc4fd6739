"""Deprecated home of the diffusion U-Net: it moved to `zoo.nets.unet` (shared by ``ddpm``,
``flow`` and ``edm``). Reading a name here warns with a ``DeprecationWarning`` naming the new place.
"""

from zoo.deprecation import moved_names

__getattr__ = moved_names(__name__, {name: "zoo.nets.unet" for name in (
    "UNet", "ResBlock", "Attention", "Downsample", "Upsample", "timestep_embedding", "norm", "zero_init",
)}, since="0.3.0")
