"""Speed without changing what is computed: sampling batch by measurement, bf16 inference, torch.compile.

Three helpers, each opt-in or identity-neutral:

* `sample_batch_size` chooses the batch [`zoo.sampling.generate`][zoo.sampling.generate] samples in, by timing a
  few candidates once per model, config, sampling options, device, thread count and torch version
  and caching the answer as JSON under ``$ZOO_CACHE_DIR/accel`` (the metrics cache's parent). On a
  CPU, DDPM sampling at batch 256 ran at 0.57-0.72x the images/s of batch 64-128 (activations
  outgrow the caches): measure, do not assume bigger is faster. Images do not depend on the batch
  (``tests/test_sampling_batch.py``), so the choice is not part of a result's identity. No
  candidate above `sample_batch_cap` is tried: the most images that fit in memory now
  (`zoo.memory`), from a memory probe cached beside the timing under the same key.
* bf16 inference is a *sampling option* of the models that allow it (``--option precision=bf16``,
  DDPM's U-Net), so it is recorded with every result row that used it; `bf16_inference_ok`
  says whether a model allows it (``GenerativeModel.bf16_inference``, default off) and the device
  runs bf16 natively (`zoo.device.native_precision`).
* `compile_for_inference` wraps a model's inference networks
  (``GenerativeModel.compile_targets``, names of submodules) with ``torch.compile`` (inductor, weights frozen into
  the graph) and compiles them for the batch shapes about to be used, returning the compile seconds
  so a caller can keep them out of its timed region. Compiling changes floating-point rounding,
  not the computation (images agree to a few 1e-3 after 50 DDIM steps; see tests/test_accel.py).
  Frozen weights are constants of the graph: call `release_compiled` before the weights
  change again (``generate(compile=True)`` does this itself).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from zoo.device import capabilities, native_precision, synchronize
from zoo.fileio import parse_json

if TYPE_CHECKING:
    from zoo.memory import BatchMemory
    from zoo.model import GenerativeModel

log = logging.getLogger(__name__)

#: Batch sizes `sample_batch_size` tries (capped by the number of images asked for).
CANDIDATE_BATCHES = (32, 64, 128, 256)
#: Below this many images, sampling runs in one batch and nothing is measured.
MEASURE_ABOVE = 64
#: Where `compile_for_inference` keeps the compiled networks on a model (a plain attribute).
COMPILED_ATTRIBUTE = "_zoo_compiled"


# -- the sampling batch -------------------------------------------------------------------------


def accel_cache_dir() -> Path:
    """``$ZOO_CACHE_DIR/accel`` (default ``~/.cache/genzoo/accel``)."""
    from zoo.metrics.stats_cache import cache_dir

    return cache_dir() / "accel"


def _batch_key(model: nn.Module, options: Mapping[str, Any]) -> str:
    from zoo import __version__

    device = next(iter(model.parameters()), torch.empty(0)).device
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else capabilities().cpu_name
    config = getattr(model, "config", None)
    fields = {
        "model": type(model).__module__ + "." + type(model).__qualname__,
        "config": repr(config),
        "image_shape": list(getattr(model, "image_shape", ())),
        "options": {k: repr(v) for k, v in sorted(options.items())},
        "device": str(device),
        "device_name": device_name,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "genzoo": __version__,
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def _probe_options(model: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options with the fewest denoising steps the model accepts (per-step cost decides the batch)."""
    declared = {o.name for o in getattr(model, "sample_options", ())}
    probe = dict(options)
    if "steps" in declared:
        probe["steps"] = 1
    return probe


def measure_sample_batch(
    model: Any, options: Mapping[str, Any], candidates: Sequence[int] = CANDIDATE_BATCHES, repeats: int = 1
) -> dict[int, float]:
    """Images/s of ``model.sample`` at each batch size in ``candidates`` (best of ``repeats`` runs,
    after one warm-up run), with the sampler's step count cut to 1 where the model has a ``steps``
    option: the per-step cost is what depends on the batch. Draws from a fixed-seed generator."""
    from zoo.randomness import ImageGenerators

    device = next(iter(model.parameters()), torch.empty(0)).device
    probe = _probe_options(model, options)
    rates: dict[int, float] = {}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for b in candidates:
                best = float("inf")
                for i in range(repeats + 1):
                    gens = ImageGenerators.for_range(0, 0, b, device=device)
                    synchronize(device)
                    start = time.perf_counter()
                    model.sample(b, generator=gens, **probe)
                    synchronize(device)
                    if i:  # the first run warms up allocators and kernels
                        best = min(best, time.perf_counter() - start)
                rates[b] = b / best
    finally:
        model.train(was_training)
    return rates


def _read_cache(path: Path) -> Any:
    """The JSON in ``path``, or None: a missing, damaged (or crafted, deeply nested) cache file only
    costs a new measurement."""
    try:
        return parse_json(path.read_text())
    except (OSError, ValueError):
        return None


def _write_cache(path: Path, data: Mapping[str, Any], what: str) -> None:
    try:
        from zoo.fileio import atomic_write_text

        atomic_write_text(path, json.dumps({**data, "torch": torch.__version__}, indent=1))
    except OSError as exc:  # a read-only cache only costs the measurement next time
        from zoo.metrics.stats_cache import CacheWarning

        # a warning, not logging: the CLI shows genzoo's warnings as one "zoo: warning:" line
        warnings.warn(f"could not cache {what} in {path}: {exc.strerror or exc}", CacheWarning, stacklevel=3)


def sample_batch_size(model: Any, n: int, options: Mapping[str, Any] | None = None, *, measure: bool = True) -> int:
    """The batch to sample ``n`` images of ``model`` in.

    ``n <= MEASURE_ABOVE`` images: ``n`` (one batch, nothing measured). Otherwise the candidate
    (`CANDIDATE_BATCHES`, capped at ``n`` and at `sample_batch_cap`, the most that fits in memory)
    with the most images/s, measured once (per step: one answer serves every step count) with
    `measure_sample_batch` and cached on disk (JSON, atomic write) under
    `accel_cache_dir` keyed by model class, config, image shape, options, device, CPU/GPU name,
    thread count, torch and genzoo versions. ``measure=False`` (or ``ZOO_SAMPLE_BATCH=N``, a fixed
    batch, lowered to the memory cap with a `zoo.memory.BatchCapWarning`) skips the speed
    measurement; without a cached answer it then returns 128 (at most the cap).
    """
    from zoo.memory import lower_to_cap

    options = dict(options or {})
    fixed = os.environ.get("ZOO_SAMPLE_BATCH", "").strip()
    if fixed:  # empty: unset
        if not (fixed.isdigit() and int(fixed) > 0):
            from zoo.errors import UsageError

            raise UsageError(f"ZOO_SAMPLE_BATCH={fixed[:20]!r}: give a whole number of images >= 1, or unset it")
        batch = min(int(fixed), n)
        return lower_to_cap(batch, sample_batch_cap(model, options, batch), "ZOO_SAMPLE_BATCH")
    if n <= MEASURE_ABOVE:
        return max(n, 1)
    cap = sample_batch_cap(model, options, min(n, max(CANDIDATE_BATCHES)), measure=measure)
    candidates = [b for b in CANDIDATE_BATCHES if b <= min(n, cap)] or [min(n, cap)]
    path = accel_cache_dir() / f"sample-batch-{_batch_key(model, _probe_options(model, options))}.json"
    try:
        cached = _read_cache(path)
        rates = {int(k): float(v) for k, v in cached["images_per_s"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        rates = {}
    missing = [b for b in candidates if b not in rates]
    if missing and measure:
        rates.update(measure_sample_batch(model, options, missing))
        _write_cache(path, {"images_per_s": {str(k): v for k, v in sorted(rates.items())}}, "the sampling batch")
    usable = {b: r for b, r in rates.items() if b in candidates}
    if not usable:
        return min(128, n, cap)
    return max(usable, key=lambda b: usable[b])


def sample_memory(model: Any, options: Mapping[str, Any] | None = None, *, measure: bool = True) -> BatchMemory | None:
    """What sampling a batch of ``model`` takes in memory (`zoo.memory.BatchMemory`: fixed bytes
    plus bytes per image), probed with `zoo.memory.measure_batch_memory` at the sampler's
    fewest steps (as `measure_sample_batch`) and cached beside the sampling batch, under the same
    key. ``measure=False``: the cached answer or None."""
    from zoo.memory import BatchMemory, measure_batch_memory
    from zoo.randomness import ImageGenerators

    probe = _probe_options(model, dict(options or {}))
    path = accel_cache_dir() / f"sample-memory-{_batch_key(model, probe)}.json"
    try:
        return BatchMemory.from_dict(_read_cache(path))
    except (ValueError, KeyError, TypeError):
        pass
    if not measure:
        return None
    device = next(iter(model.parameters()), torch.empty(0)).device
    output_bytes = 4 * math.prod(int(s) for s in getattr(model, "image_shape", ()))  # float32 images

    def run(b: int) -> None:
        model.sample(b, generator=ImageGenerators.for_range(0, 0, b, device=device), **probe)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            memory = measure_batch_memory(run, device, output_bytes)
    finally:
        model.train(was_training)
    _write_cache(path, memory.to_dict(), "the sampling memory")
    return memory


def sample_batch_cap(model: Any, options: Mapping[str, Any] | None = None, batch: int | None = None, *,
                     measure: bool = True) -> int:
    """The most images per batch `zoo.memory.batch_cap` lets ``model`` sample with ``options``
    now (1..`zoo.memory.MAX_BATCH`), from `sample_memory`. A ``batch`` no larger than the
    bigger memory probe (``2 * PROBE_BATCH``) is returned as it is, with nothing measured: the
    probe would take as much. Without a measurement (``measure=False``, nothing cached):
    `zoo.memory.MAX_BATCH`."""
    from zoo.memory import MAX_BATCH, PROBE_BATCH, batch_cap

    if batch is not None and batch <= 2 * PROBE_BATCH:
        return batch
    memory = sample_memory(model, options, measure=measure)
    if memory is None:
        return MAX_BATCH
    device = next(iter(model.parameters()), torch.empty(0)).device
    return batch_cap(memory, device)


# -- bf16 inference -----------------------------------------------------------------------------


def bf16_inference_ok(model: GenerativeModel, device: torch.device | None = None) -> bool:
    """Whether ``model`` allows bf16 inference (``GenerativeModel.bf16_inference``, default off) and
    ``device`` (default: the model's) computes bf16 natively (`zoo.device.native_precision`)."""
    if not type(model).bf16_inference:
        return False
    if device is None:
        device = next(iter(model.parameters()), torch.empty(0)).device
    return native_precision("bf16", torch.device(device))


def inference_autocast(precision: str, device: torch.device) -> Any:
    """An autocast context for a network evaluation in ``precision`` (``fp32``: none)."""
    import contextlib

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=device.type, dtype=dtype)


# -- torch.compile ------------------------------------------------------------------------------


def compiled(model: Any, name: str) -> Any:
    """The compiled form of ``model``'s submodule ``name`` if `compile_for_inference` made one,
    else the submodule itself (what a model's sampler calls)."""
    table = model.__dict__.get(COMPILED_ATTRIBUTE) or {}
    found = table.get(name)
    return found if found is not None else getattr(model, name)


def compile_for_inference(
    model: GenerativeModel, warmup: Iterable[int] = (), options: Mapping[str, Any] | None = None, *, freeze: bool = True,
    mode: str | None = None,
) -> float:
    """Compile ``model``'s inference networks (its ``compile_targets``) with inductor; returns the
    seconds spent, including warm-up sampling calls at each batch size in ``warmup`` (with 1 step
    where the model has a ``steps`` option), so the compile stays out of any timing that follows.

    ``freeze=True`` folds the (frozen) weights into the graph, inductor's inference mode
    (``torch._inductor.config.freezing``). Nothing happens for a model without ``compile_targets``
    (0.0 is returned). Undo with `release_compiled`.
    """
    targets = type(model).compile_targets
    if not targets:
        return 0.0
    import torch._inductor.config as inductor_config

    start = time.perf_counter()
    table = {name: torch.compile(getattr(model, name), backend="inductor", mode=mode) for name in targets}
    object.__setattr__(model, COMPILED_ATTRIBUTE, table)  # not a submodule: state_dict keys are unchanged
    probe = _probe_options(model, options or {})
    from zoo.randomness import ImageGenerators

    device = next(iter(model.parameters()), torch.empty(0)).device
    was_training = model.training
    model.eval()
    try:
        with inductor_config.patch(freezing=freeze), torch.no_grad():
            for b in dict.fromkeys(warmup):
                model.sample(b, generator=ImageGenerators.for_range(0, 0, b, device=device), **probe)
        synchronize(device)
    finally:
        model.train(was_training)
    return time.perf_counter() - start


def compile_networks(model: nn.Module, *, mode: str | None = None) -> list[str]:
    """Compile, in place, every direct submodule of ``model`` that has trainable parameters (a
    DDPM's U-Net, a GAN's generator and discriminator; frozen EMA copies are left alone) with
    ``nn.Module.compile`` (inductor), which keeps parameter names and ``state_dict`` keys, so
    checkpoints and resumes are unchanged. The first step(s) after this pay the compile time.
    Returns the names compiled. ``zoo train --compile`` (``TrainSettings.compile``) calls it.
    """
    names = []
    for name, child in model.named_children():
        if any(p.requires_grad for p in child.parameters()):
            child.compile(backend="inductor", mode=mode)
            names.append(name)
    return names


def release_compiled(model: Any) -> None:
    """Drop the compiled networks, so the model runs (and trains) eagerly again."""
    model.__dict__.pop(COMPILED_ATTRIBUTE, None)
