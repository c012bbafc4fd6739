"""The one contract every generator implements.

A model family is one subclass of `GenerativeModel`. The core (``zoo.trainer``) owns the
device, mixed precision, gradient scaling, budgets, seeds, checkpoints and progress; the model owns
its networks, its losses and its sampler.

Conventions:

* training batches arrive as ``float32`` tensors of shape ``B x C x H x W`` in ``[-1, 1]``, on the
  model's device;
* `GenerativeModel.sample` returns ``n x C x H x W`` floats in ``[-1, 1]`` (the core checks them,
  and converts to ``uint8`` with `to_uint8`);
* every random draw in `sample` goes through the ``generator`` it is given,
  by way of `GenerativeModel.randn` / `GenerativeModel.rand` with the number of images
  as the first dimension, so the same seed gives the same images whatever the batch size (see
  "Sampling noise" below); training draws from the global RNG, which the core seeds and
  checkpoints.

Sampling noise
--------------

The core ([`zoo.sampling.generate`][zoo.sampling.generate]) draws ``n`` images in batches and gives each batch a
`zoo.sampling.ImageGenerators`: one `torch.Generator` per image, seeded from the run's
seed and the image's index in the whole run. ``self.randn(k, *shape, generator=generator)`` takes
row ``j`` from image ``j``'s generator, so image ``i`` gets the same noise alone, in a batch of 3 or
in a batch of 256. Rules for ``sample``:

* draw every random number with ``self.randn(n, ...)`` or ``self.rand(n, ...)`` (or
  `zoo.sampling.randn` / `rand` in code without the model, such as a
  sampler's ``step``), the first dimension always the ``n`` images of this call; several draws per
  image are several calls or extra dimensions (``self.randn(n, 2, d)``), never ``randn(2 * n, d)``;
* keep the images independent in the network too: no batch statistics (run batch norm in eval
  mode) and no attention or pooling across images;
* ``generator`` may also be a plain `torch.Generator` (a caller's own, or an older core) or
  ``None`` (the global RNG); the helpers then draw exactly as ``torch.randn`` would.

An `ImageGenerators` is itself a `torch.Generator`, so a plugin that
still calls ``torch.randn(..., generator=generator)`` keeps working: it draws from one stream per
batch, reproducible for a given batch size but not across batch sizes. ``generate`` then warns
(`zoo.sampling.BatchDependentSamplingWarning`) and `zoo.testing.check_model` fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from zoo import randomness
from zoo.config import ModelConfig
from zoo.errors import ConfigError, DataError, TrainingError

# Torch-free declarations, re-exported here where plugins have always imported them.
from zoo.modelspec import (
    FAMILIES,
    ModelSpec,
    Recipe,
    SampleOption,
    check_config_class,
    check_declarations,
    check_model_name,
    parse_sample_options,
)

if TYPE_CHECKING:
    from zoo.export import ExportSpec

__all__ = [
    "FAMILIES",
    "Recipe",
    "GenerativeModel",
    "ModelConfig",
    "SampleOption",
    "TrainStep",
    "to_uint8",
]


def _no_scaling() -> torch.amp.GradScaler:
    return torch.amp.GradScaler("cpu", enabled=False)


@dataclass
class TrainStep:
    """What the core hands to `GenerativeModel.train_step` for one step.

    One *step* is one update of the whole model: a GAN's D and G update, or a WGAN-GP's
    ``n_critic`` critic updates and its one generator update. ``--steps`` and every budget count
    these steps; ``step`` is the number of steps finished before this one (it starts at 0).

    * `optimize` ``(name, loss)``: once per optimizer update. It runs backward through the
      core's gradient scaler (outside autocast), clips if ``grad_clip`` is set, steps the optimizer
      and zeroes its gradients, so no plugin reimplements mixed precision. The same optimizer may be
      stepped several times in one step (a critic's ``n_critic`` updates): the scaler is then
      updated between two steps of one optimizer, as ``torch.amp.GradScaler`` requires
      (one ``update()`` after all ``step()`` calls of an iteration).
    * `next_batch`: the next training batch, for a model whose class declares
      ``batches_per_step = k > 1``; ``train_step`` receives the first and asks for the other
      ``k - 1`` (exactly ``k`` per step, or the step is a [`TrainingError`][zoo.errors.TrainingError]).
    * `grad` and `gradient_penalty`: input gradients inside the loss (a WGAN-GP or R1
      penalty), computed as PyTorch's AMP guide prescribes, so they work under fp16 loss scaling.
    * ``total_steps`` (``None`` under a time-only budget, or a FLOP budget before its first step is
      counted) and ``progress``, the fraction of the budget used before this step, in ``[0, 1]``,
      known under every budget kind: anneal a schedule with ``progress``.

    Non-finite losses: under fp32 and bf16 (a disabled scaler) a non-finite loss passed to
    `optimize` stops the run ([`TrainingError`][zoo.errors.TrainingError]). Under fp16 (an enabled
    scaler) it skips that optimizer's update and lowers the scale by the scaler's backoff factor,
    as ``GradScaler`` does for an overflowed gradient; the skipped optimizer names are in
    ``skipped``, and the trainer stops the run after ``zoo.trainer.MAX_SKIPPED_STEPS`` steps in a
    row with a skip.

    ``scaler`` is always a ``torch.amp.GradScaler``: the core's (enabled only for fp16), or a
    disabled one by default, which passes the loss and the optimizer step straight through.
    """

    step: int
    optimizers: Mapping[str, torch.optim.Optimizer]
    scaler: torch.amp.GradScaler = field(default_factory=_no_scaling)
    grad_clip: float | None = None
    total_steps: int | None = None
    progress: float = 0.0
    #: Where `next_batch` takes batches from (the core passes its minibatcher).
    batches: Callable[[], torch.Tensor] | None = None
    batches_per_step: int = 1
    batches_used: int = 1  # the batch passed to train_step is the first
    skipped: list[str] = field(default_factory=list)
    _stepped: set[str] = field(default_factory=set, repr=False)
    #: Called with the optimizer after its backward and before clipping and its step; data-parallel
    #: training (zoo.distributed) sets it to average that optimizer's gradients over the ranks.
    before_step: Callable[[torch.optim.Optimizer], None] | None = field(default=None, repr=False)

    def next_batch(self) -> torch.Tensor:
        """The next ``B x C x H x W`` float32 training batch in ``[-1, 1]`` (on the model's device)."""
        if self.batches_used >= self.batches_per_step:
            raise TrainingError(
                f"train_step asked for batch {self.batches_used + 1} of a step, but the model declares "
                f"batches_per_step = {self.batches_per_step}; raise it on the model class")
        if self.batches is None:
            raise TrainingError("this TrainStep has no batch source: pass batches=... (the trainer does)")
        self.batches_used += 1
        return self.batches()

    def optimize(self, name: str, loss: torch.Tensor, *, retain_graph: bool = False) -> None:
        """Backward ``loss`` (a scalar) and step optimizer ``name``; see the class docstring."""
        if name not in self.optimizers:
            raise KeyError(f"no optimizer named {name!r}; configure_optimizers returned {list(self.optimizers)}")
        opt = self.optimizers[name]
        if name in self._stepped:  # a second update of this optimizer: close the scaler's iteration
            self.update_scaler()
        if not bool(torch.isfinite(loss.detach()).all()):
            if not self.scaler.is_enabled():
                raise TrainingError(f"non-finite loss at step {self.step} (optimizer {name!r})")
            # fp16: skip this update and back off, as GradScaler does when it finds inf gradients.
            opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss.detach())  # initialises the scale on a run's first call
            self.update_scaler(new_scale=self.scaler.get_scale() * self.scaler.get_backoff_factor())
            self.skipped.append(name)
            return
        # Backward runs outside autocast, as PyTorch recommends; the forward already chose dtypes.
        with torch.autocast(loss.device.type, enabled=False):
            self.scaler.scale(loss).backward(retain_graph=retain_graph)
        if self.before_step is not None:
            self.before_step(opt)
        if self.grad_clip:
            self.scaler.unscale_(opt)  # clip the true gradients (a no-op unless fp16)
            params = [p for group in opt.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.scaler.step(opt)
        self._stepped.add(name)
        opt.zero_grad(set_to_none=True)

    def update_scaler(self, new_scale: float | None = None) -> None:
        """``scaler.update()`` once the optimizers stepped since the last one (the core calls it at
        the end of every step; `optimize` between two updates of one optimizer)."""
        if new_scale is not None:
            self.scaler.update(new_scale)
        elif self._stepped:
            self.scaler.update()
        self._stepped.clear()

    def grad(self, outputs: torch.Tensor, inputs: torch.Tensor, *, create_graph: bool = True) -> torch.Tensor:
        """``d outputs.sum() / d inputs`` (the shape of ``inputs``, float32), kept in the graph.

        Under fp16 the outputs are scaled by the loss scale before ``torch.autograd.grad`` and the
        gradients unscaled after, the recipe of PyTorch's AMP guide ("Gradient penalty"), so small
        gradients do not underflow; an overflow gives inf gradients, hence a non-finite penalty,
        which `optimize` turns into a skipped update and a lower scale.
        """
        with torch.autocast(outputs.device.type, enabled=False):
            scaled = self.scaler.scale(outputs.float().sum())
            (g,) = torch.autograd.grad(scaled, inputs, create_graph=create_graph)
        if self.scaler.is_enabled():
            g = g / self.scaler.get_scale()
        return g.float()

    def gradient_penalty(self, critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                         fake: torch.Tensor, *, target: float = 1.0) -> torch.Tensor:
        """The WGAN-GP penalty ``E[(||grad_x D(x)||_2 - target)^2]`` (Gulrajani et al. 2017,
        arXiv:1704.00028, eq. 3), a float32 scalar to be weighted (the paper's lambda is 10).

        ``x`` is drawn uniformly on the segments between ``real`` and ``fake`` (both ``B x ...``;
        ``fake`` is detached). The norm is computed under the ambient autocast (train_step runs
        under it), from gradients taken by `grad`.
        """
        fake = fake.detach().to(real.dtype)
        alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
        # A non-leaf x: FlopCounterMode's module hooks (the trainer counts the first step's FLOPs)
        # refuse autograd.grad with respect to a leaf tensor.
        x = (alpha * real + (1 - alpha) * fake).requires_grad_(True) * 1.0
        g = self.grad(critic(x), x)
        norm = g.flatten(1).norm(2, dim=1)
        return ((norm - target) ** 2).mean()


class GenerativeModel(nn.Module):
    """Base class of every generator in the zoo.

    Set the class attributes, define a ``Config`` dataclass (a `ModelConfig`), and implement
    `configure_optimizers`, `train_step` and `sample`. EMA copies and other state
    kept as submodules or buffers are checkpointed automatically through ``state_dict``.
    """

    #: Registry name, lowercase, unique across all plugins (``"ddpm"``).
    name: ClassVar[str] = ""
    #: One of `FAMILIES`.
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
    #: ``None``: the paper's defaults in fp32. See `Recipe`.
    recipe: ClassVar[Recipe | None] = None
    #: Training batches one `train_step` consumes: the first is its ``batch`` argument, the
    #: others come from ``step.next_batch()`` (WGAN-GP: 5, one per critic update). Budgets count
    #: steps; kimg counts every image consumed (``steps * batch_size * batches_per_step / 1000``).
    batches_per_step: ClassVar[int] = 1
    #: Under data-parallel training (torchrun), convert BatchNorm layers to SyncBatchNorm so batch
    #: statistics cover the global batch (``zoo.distributed``); ``False``: each rank's own shard.
    sync_batchnorm: ClassVar[bool] = False
    #: The sampling settings ``zoo bench`` evaluates for this model, one row each, instead of its
    #: preset's family sweep (``[{"sampler": "euler", "steps": 10}, ...]``); ``None``: the preset's.
    bench_sweep: ClassVar[Sequence[Mapping[str, Any]] | None] = None
    #: Whether sampling may run its network evaluations in bf16 autocast where the device computes
    #: bf16 natively (`zoo.accel.bf16_inference_ok`); rows record the precision used.
    #: Default ``False``: sampling runs in fp32.
    bf16_inference: ClassVar[bool] = False
    #: Names of the submodules `zoo.accel.compile_for_inference` compiles for sampling (the
    #: sampler reaches them through `zoo.accel.compiled`); default ``()``: nothing compiled.
    compile_targets: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, spec: ModelSpec | None = None, **kwargs: Any) -> None:
        """``class DDPM(GenerativeModel, spec=SPEC)`` takes every attribute ``SPEC`` (a
        `ModelSpec`, the model's torch-free registration) declares, so the
        two cannot drift; the class body may repeat one only with the same value (else
        ``TypeError``)."""
        super().__init_subclass__(**kwargs)
        if spec is None:
            return
        declared = spec.declared()
        differ = spec.disagreements(cls, [k for k in declared if k in vars(cls)])
        if differ:
            raise TypeError(f"{cls.__name__}: " + "; ".join(differ))
        for key, value in declared.items():
            setattr(cls, key, value)

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
        """One optimisation step on ``batch``; call ``step.optimize(name, loss)``; return losses to log.

        Runs under the run's autocast (bf16/fp16 forward passes; ``step.optimize`` does backward
        outside it). ``batch`` is ``B x C x H x W`` float32 in ``[-1, 1]``; a model declaring
        ``batches_per_step = k`` gets the others from ``step.next_batch()``. Return the same loss
        names on every step (floats or 0-d tensors): they are the columns of ``losses.csv``.
        """
        raise NotImplementedError

    def after_optimizer_step(self, step: int) -> None:
        """Called after every training step, outside autocast (EMA updates go here).

        ``step`` is an ``int``: the index of the step just finished (0 after the first step)."""

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, **options: Any) -> torch.Tensor:
        """Draw ``n`` images, ``n x C x H x W`` floats in ``[-1, 1]``, using only ``generator``.

        ``generator`` is usually a `zoo.sampling.ImageGenerators` holding one generator per
        image; draw through `randn` / `rand` with ``n`` as the first dimension so that
        image ``j`` uses only generator ``j`` (see "Sampling noise" in `zoo.model`).
        """
        raise NotImplementedError

    @classmethod
    def sample_nfe(cls, **options: Any) -> int | None:
        """Network evaluations per image of a sampling setting, for quality-per-NFE comparisons
        (flow's Heun costs ``2 * steps - 1``); ``None`` when the model does not say."""
        return None

    @torch.no_grad()
    def validation_metrics(self, batch: torch.Tensor) -> dict[str, float]:
        """Optional family-specific validation numbers on a held-out batch (VAE: ``bpd``)."""
        return {}

    def export_spec(self) -> ExportSpec | None:
        """For ``zoo export``: the network and sampling recipe to write out, an
        `zoo.export.ExportSpec` (build it with `zoo.export.generator_spec` or
        `zoo.export.denoiser_spec`). Default ``None``: the model does not support export, and
        ``zoo export`` says so (exit code 2)."""
        return None

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
        """Validate ``options`` against `sample_options`, filling in defaults."""
        return parse_sample_options(cls.name, cls.sample_options, options)

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

        With a `zoo.sampling.ImageGenerators` (what [`zoo.sampling.generate`][zoo.sampling.generate] passes),
        ``shape[0]`` must be its number of images and row ``j`` is drawn from image ``j``'s
        generator, so an image's noise does not depend on the batch it is drawn in. With a plain
        `torch.Generator` it is ``torch.randn`` on the generator's device; with ``None``, the
        global RNG. Either way the result is moved to the model's device.
        """
        return randomness.randn(*shape, generator=generator, device=self.device, dtype=dtype)

    def rand(self, *shape: int, generator: torch.Generator | None = None,
             dtype: torch.dtype | None = None) -> torch.Tensor:
        """Uniform ``[0, 1)`` noise of ``shape`` on the model's device, drawn like `randn`."""
        return randomness.rand(*shape, generator=generator, device=self.device, dtype=dtype)


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
    check_model_name(cls.name, f"{cls.__name__}.name")
    check_declarations(cls.__name__, {"family": cls.family})
    check_config_class(cls.Config, f"{cls.__name__}.Config")
    check_declarations(cls.__name__, {
        "name": cls.name, "family": cls.family, "sample_options": tuple(cls.sample_options),
        "batches_per_step": cls.batches_per_step, "bench_sweep": cls.bench_sweep})
    if not isinstance(cls.bf16_inference, bool):
        raise TypeError(f"{cls.__name__}.bf16_inference must be True or False, got {cls.bf16_inference!r}")
    targets = cls.compile_targets
    if not isinstance(targets, tuple) or not all(isinstance(t, str) and t for t in targets):
        raise TypeError(f"{cls.__name__}.compile_targets must be a tuple of submodule names, got {targets!r}")


