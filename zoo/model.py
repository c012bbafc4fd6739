"""The one contract every generator implements.

A model family is one subclass of :class:`GenerativeModel`. The core (``zoo.trainer``) owns the
device, mixed precision, gradient scaling, budgets, seeds, checkpoints and progress; the model owns
its networks, its losses and its sampler.

Conventions:

* training batches arrive as ``float32`` tensors of shape ``B x C x H x W`` in ``[-1, 1]``, on the
  model's device;
* :meth:`GenerativeModel.sample` returns ``n x C x H x W`` floats in ``[-1, 1]`` (the core clamps
  and converts to ``uint8`` with :func:`to_uint8`);
* every random draw in :meth:`~GenerativeModel.sample` goes through the ``generator`` it is given,
  by way of :meth:`GenerativeModel.randn` / :meth:`GenerativeModel.rand` with the number of images
  as the first dimension, so the same seed gives the same images whatever the batch size (see
  "Sampling noise" below); training draws from the global RNG, which the core seeds and
  checkpoints.

Sampling noise
--------------

The core (:func:`zoo.sampling.generate`) draws ``n`` images in batches and gives each batch a
:class:`zoo.sampling.ImageGenerators`: one :class:`torch.Generator` per image, seeded from the run's
seed and the image's index in the whole run. ``self.randn(k, *shape, generator=generator)`` takes
row ``j`` from image ``j``'s generator, so image ``i`` gets the same noise alone, in a batch of 3 or
in a batch of 256. Rules for ``sample``:

* draw every random number with ``self.randn(n, ...)`` or ``self.rand(n, ...)`` (or
  :func:`zoo.sampling.randn` / :func:`~zoo.sampling.rand` in code without the model, such as a
  sampler's ``step``), the first dimension always the ``n`` images of this call; several draws per
  image are several calls or extra dimensions (``self.randn(n, 2, d)``), never ``randn(2 * n, d)``;
* keep the images independent in the network too: no batch statistics (run batch norm in eval
  mode) and no attention or pooling across images;
* ``generator`` may also be a plain :class:`torch.Generator` (a caller's own, or an older core) or
  ``None`` (the global RNG); the helpers then draw exactly as ``torch.randn`` would.

An :class:`~zoo.sampling.ImageGenerators` is itself a :class:`torch.Generator`, so a plugin that
still calls ``torch.randn(..., generator=generator)`` keeps working: it draws from one stream per
batch, reproducible for a given batch size but not across batch sizes. ``generate`` then warns
(:class:`zoo.sampling.BatchDependentSamplingWarning`) and :func:`zoo.testing.check_model` fails.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from zoo.config import ModelConfig
from zoo.errors import ConfigError, DataError, TrainingError, UnknownNameError
from zoo.registry import FAMILIES  # defined beside the registry, free of torch

__all__ = [
    "FAMILIES",
    "Recipe",
    "GenerativeModel",
    "ModelConfig",
    "SampleOption",
    "TrainStep",
    "to_uint8",
]


@dataclass(frozen=True)
class SampleOption:
    """A family-specific sampling option the CLI and the benchmark can set (``--option k=v``)."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[Any, ...] = ()
    min: float | None = None

    def parse(self, value: Any) -> Any:
        try:
            if self.type is bool and isinstance(value, str):
                parsed: Any = value.strip().lower() in {"1", "true", "yes", "on"}
            else:
                parsed = self.type(value)
        except (TypeError, ValueError):
            raise ConfigError(self.name, f"expected {self.type.__name__}, got {value!r}", "option") from None
        if self.choices and parsed not in self.choices:
            raise UnknownNameError(f"value for option {self.name!r}", str(parsed), [str(c) for c in self.choices])
        if self.min is not None and parsed < self.min:
            raise ConfigError(self.name, f"must be >= {self.min}, got {parsed!r}", "option")
        return parsed


def _no_scaling() -> torch.amp.GradScaler:
    return torch.amp.GradScaler("cpu", enabled=False)


@dataclass(frozen=True)
class Recipe:
    """How a model family trains best, declared by the model and applied by genzoo.

    ``zoo bench``'s presets apply ``overrides`` (loss weighting, say) and ``batch_size``;
    ``--precision auto`` uses ``precision`` where the hardware runs it natively (bf16 on CPUs with
    avx512_bf16 or AMX and on GPUs that support it) and fp32 elsewhere. Rows record the resolved
    config and precision, so a recipe never changes a number silently.
    """

    precision: str = "fp32"
    overrides: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int | None = None


@dataclass
class TrainStep:
    """What the core hands to :meth:`GenerativeModel.train_step` for one step.

    Call :meth:`optimize` once per optimizer the step updates (a GAN calls it for ``"d"`` then
    ``"g"``). It runs backward through the core's gradient scaler, clips if configured, steps the
    optimizer and zeroes its gradients, so no plugin reimplements mixed precision.

    ``scaler`` is always a ``torch.amp.GradScaler``: the core's (enabled only for fp16), or a
    disabled one by default, which passes the loss and the optimizer step straight through.
    """

    step: int
    optimizers: Mapping[str, torch.optim.Optimizer]
    scaler: torch.amp.GradScaler = field(default_factory=_no_scaling)
    grad_clip: float | None = None

    def optimize(self, name: str, loss: torch.Tensor, *, retain_graph: bool = False) -> None:
        if name not in self.optimizers:
            raise KeyError(f"no optimizer named {name!r}; configure_optimizers returned {list(self.optimizers)}")
        if not bool(torch.isfinite(loss.detach()).all()):
            raise TrainingError(f"non-finite loss at step {self.step} (optimizer {name!r})")
        opt = self.optimizers[name]
        # Backward runs outside autocast, as PyTorch recommends; the forward already chose dtypes.
        with torch.autocast(loss.device.type, enabled=False):
            self.scaler.scale(loss).backward(retain_graph=retain_graph)
        if self.grad_clip:
            self.scaler.unscale_(opt)  # clip the true gradients (a no-op unless fp16)
            params = [p for group in opt.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.scaler.step(opt)
        opt.zero_grad(set_to_none=True)


class GenerativeModel(nn.Module):
    """Base class of every generator in the zoo.

    Set the class attributes, define a ``Config`` dataclass (a :class:`ModelConfig`), and implement
    :meth:`configure_optimizers`, :meth:`train_step` and :meth:`sample`. EMA copies and other state
    kept as submodules or buffers are checkpointed automatically through ``state_dict``.
    """

    #: Registry name, lowercase, unique across all plugins (``"ddpm"``).
    name: ClassVar[str] = ""
    #: One of :data:`FAMILIES`.
    family: ClassVar[str] = "other"
    #: One line for ``zoo list``.
    summary: ClassVar[str] = ""
    #: Paper reference, e.g. ``"Ho et al. 2020, arXiv:2006.11239"``.
    paper: ClassVar[str] = ""
    #: The config dataclass; defaults are the paper's.
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    #: Sampling options this family accepts (``sampler``, ``steps``...).
    sample_options: ClassVar[tuple[SampleOption, ...]] = ()
    #: Image sizes (height == width) this model supports; ``None`` means any.
    supported_sizes: ClassVar[tuple[int, ...] | None] = None
    #: Channel counts this model supports.
    supported_channels: ClassVar[tuple[int, ...]] = (1, 3)
    #: Batch size the paper trains with (``zoo train --batch-size`` overrides it).
    default_batch_size: ClassVar[int] = 64
    #: Config overrides that make the model tiny and fast, for contract tests (not for quality).
    tiny_config: ClassVar[Mapping[str, Any]] = {}
    #: How this family trains best on a CPU or GPU (precision, config overrides, batch size);
    #: ``None``: the paper's defaults in fp32. See :class:`Recipe`.
    recipe: ClassVar[Recipe | None] = None

    def __init__(self, config: ModelConfig, image_shape: tuple[int, int, int]):
        super().__init__()
        if not isinstance(config, self.Config):
            raise ConfigError("config", f"expected {self.Config.__name__}, got {type(config).__name__}", self.name)
        self.check_image_shape(image_shape)
        self.config = config
        self.image_shape = tuple(int(s) for s in image_shape)

    # -- the contract -------------------------------------------------------------------------

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Return the optimizers by name (``{"g": ..., "d": ...}`` or ``{"main": ...}``)."""
        raise NotImplementedError

    def train_step(self, batch: torch.Tensor, step: TrainStep) -> Mapping[str, torch.Tensor | float]:
        """One optimisation step on ``batch``; call ``step.optimize(name, loss)``; return losses to log."""
        raise NotImplementedError

    def after_optimizer_step(self, step: int) -> None:
        """Called after every training step, outside autocast (EMA updates go here)."""

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, **options: Any) -> torch.Tensor:
        """Draw ``n`` images, ``n x C x H x W`` floats in ``[-1, 1]``, using only ``generator``.

        ``generator`` is usually a :class:`zoo.sampling.ImageGenerators` holding one generator per
        image; draw through :meth:`randn` / :meth:`rand` with ``n`` as the first dimension so that
        image ``j`` uses only generator ``j`` (see "Sampling noise" in :mod:`zoo.model`).
        """
        raise NotImplementedError

    @torch.no_grad()
    def validation_metrics(self, batch: torch.Tensor) -> dict[str, float]:
        """Optional family-specific validation numbers on a held-out batch (VAE: ``bpd``)."""
        return {}

    # -- helpers for implementers ------------------------------------------------------------

    @classmethod
    def check_image_shape(cls, shape: tuple[int, ...]) -> None:
        if len(shape) != 3:
            raise DataError(f"{cls.name}: expected an image shape C x H x W, got {tuple(shape)}")
        c, h, w = shape
        if c not in cls.supported_channels:
            raise DataError(f"{cls.name} supports {cls.supported_channels} channels, not {c}")
        if h != w:
            raise DataError(f"{cls.name} needs square images, got {h}x{w}")
        if cls.supported_sizes is not None and h not in cls.supported_sizes:
            sizes = ", ".join(f"{s}x{s}" for s in cls.supported_sizes)
            raise DataError(f"{cls.name} supports image sizes {sizes}, not {h}x{w}")

    @classmethod
    def parse_sample_options(cls, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validate ``options`` against :attr:`sample_options`, filling in defaults."""
        declared = {o.name: o for o in cls.sample_options}
        parsed = {name: o.default for name, o in declared.items()}
        for key, value in (options or {}).items():
            if key not in declared:
                raise UnknownNameError(f"sampling option for {cls.name}", key, list(declared))
            parsed[key] = declared[key].parse(value)
        return parsed

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @property
    def num_pixels(self) -> int:
        return math.prod(self.image_shape)

    def randn(self, *shape: int, generator: torch.Generator | None = None,
              dtype: torch.dtype | None = None) -> torch.Tensor:
        """Standard normal noise of ``shape`` on the model's device, drawn from ``generator``.

        With a :class:`zoo.sampling.ImageGenerators` (what :func:`zoo.sampling.generate` passes),
        ``shape[0]`` must be its number of images and row ``j`` is drawn from image ``j``'s
        generator, so an image's noise does not depend on the batch it is drawn in. With a plain
        :class:`torch.Generator` it is ``torch.randn`` on the generator's device; with ``None``, the
        global RNG. Either way the result is moved to the model's device.
        """
        from zoo.sampling import randn

        return randn(*shape, generator=generator, device=self.device, dtype=dtype)

    def rand(self, *shape: int, generator: torch.Generator | None = None,
             dtype: torch.dtype | None = None) -> torch.Tensor:
        """Uniform ``[0, 1)`` noise of ``shape`` on the model's device, drawn like :meth:`randn`."""
        from zoo.sampling import rand

        return rand(*shape, generator=generator, device=self.device, dtype=dtype)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Map model output in ``[-1, 1]`` to ``uint8`` in ``[0, 255]`` (NaN becomes 0)."""
    images = torch.nan_to_num(images.detach().float(), nan=-1.0)
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def validate_model_class(cls: Any) -> None:
    """Raise ``TypeError`` with a clear reason if ``cls`` is not a usable model class."""
    if not isinstance(cls, type) or not issubclass(cls, GenerativeModel):
        raise TypeError(f"{cls!r} is not a subclass of zoo.GenerativeModel")
    if not cls.name or not isinstance(cls.name, str) or cls.name != cls.name.strip().lower():
        raise TypeError(f"{cls.__name__}.name must be a non-empty lowercase string, got {cls.name!r}")
    if any(ch in cls.name for ch in ",= /"):
        raise TypeError(f"{cls.__name__}.name {cls.name!r} must not contain ',', '=', ' ' or '/'")
    if cls.family not in FAMILIES:
        raise TypeError(f"{cls.__name__}.family must be one of {FAMILIES}, got {cls.family!r}")
    if not (isinstance(cls.Config, type) and issubclass(cls.Config, ModelConfig)):
        raise TypeError(f"{cls.__name__}.Config must subclass zoo.ModelConfig")
    try:
        cls.Config()
    except Exception as exc:
        raise TypeError(f"{cls.__name__}.Config() with defaults fails: {exc}") from exc
    for opt in cls.sample_options:
        if not isinstance(opt, SampleOption):
            raise TypeError(f"{cls.__name__}.sample_options must hold zoo.SampleOption, got {opt!r}")
