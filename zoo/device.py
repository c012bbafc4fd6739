"""Device and precision choices, made once by the core and validated up front."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from zoo.errors import UsageError
from zoo.vocabulary import PRECISIONS


def resolve_device(name: str | None = "auto") -> torch.device:
    """``auto`` means CUDA when present, else CPU; an unavailable device is a usage error."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {name!r} requested but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"device {name!r} does not exist ({torch.cuda.device_count()} CUDA devices)")
    elif device.type not in ("cpu", "mps"):
        raise UsageError(f"unsupported device {name!r} (use auto, cpu, cuda or cuda:N)")
    return device


def check_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UsageError("bf16 is not supported on this GPU; use fp16 or fp32")
    return precision


def resolve_precision(precision: str, device: torch.device, recommended: str | None = None) -> str:
    """``auto`` becomes ``recommended`` (a model recipe's precision) when ``device`` runs it natively
    (:func:`native_precision`), else ``fp32``; any other name is checked with :func:`check_precision`."""
    if (precision or "").strip().lower() == "auto":
        if recommended is None or not native_precision(recommended, device):
            return "fp32"
        return check_precision(recommended, device)
    return check_precision(precision, device)


def native_precision(precision: str, device: torch.device) -> bool:
    """Whether ``device`` computes in ``precision`` natively (so autocast speeds training up).

    CUDA: bf16 where ``torch.cuda.is_bf16_supported()``, fp16 always. CPU: bf16 with the
    ``avx512_bf16`` or ``amx_bf16`` instructions (read from ``/proc/cpuinfo``; elsewhere no), where
    bf16 autocast trained the DDPM U-Net 1.6x faster than fp32; without them bf16 is emulated and
    slower. fp16 on a CPU: no.
    """
    if precision == "fp32":
        return True
    if device.type == "cuda":
        return precision == "fp16" or torch.cuda.is_bf16_supported()
    return precision == "bf16" and bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags Linux reports (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@dataclass(frozen=True)
class Precision:
    """The precision of one run, built once: the autocast context factory and the gradient scaler.

    ``fp32`` autocasts nothing; ``bf16`` and ``fp16`` autocast the forward pass. Only ``fp16`` needs
    loss scaling, but :meth:`make_scaler` always returns a ``torch.amp.GradScaler`` (disabled unless
    fp16), so callers never branch on ``scaler is None``: a disabled scaler's ``scale`` returns the
    loss unchanged, ``unscale_`` and ``update`` do nothing and ``step`` calls ``optimizer.step()``.
    """

    name: str
    device: torch.device

    @classmethod
    def create(cls, name: str, device: torch.device | str) -> Precision:
        """Validate ``name`` for ``device`` (a :class:`UsageError` if unusable) and build it."""
        device = torch.device(device)
        return cls(check_precision(name, device), device)

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype (``None`` for fp32)."""
        return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.name]

    @property
    def needs_scaler(self) -> bool:
        return self.name == "fp16"

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """A fresh context manager for one forward pass (a no-op for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def make_scaler(self) -> torch.amp.GradScaler:
        """A new gradient scaler, enabled only for fp16 (one per run: it carries the loss scale).

        It starts at :data:`INITIAL_LOSS_SCALE`, not torch's 2**16: a loss above 1 times 2**16
        overflows fp16 (largest 65504), so every run's first updates were skipped while the scale
        backed off (the first critic update of every WGAN-GP run, 10 of tiny vaegan's first 45).
        """
        return torch.amp.GradScaler(self.device.type, init_scale=INITIAL_LOSS_SCALE, enabled=self.needs_scaler)


#: The fp16 loss scale a run starts at (fairseq's default); the scaler still doubles it after
#: each 2000 steps without an overflow and halves it at each overflow.
INITIAL_LOSS_SCALE = 2.0**7


def autocast_factory(precision: str, device: torch.device) -> Callable[[], Any]:
    """A zero-argument context-manager factory for the forward pass (``Precision.autocast``)."""
    return Precision.create(precision, device).autocast


def make_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for fp16; never ``None`` (see :meth:`Precision.make_scaler`)."""
    return Precision.create(precision, device).make_scaler()


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so wall-clock timings measure the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and hardware, recorded with every run and result row."""
    import platform

    from zoo import __version__

    env: dict[str, Any] = {
        "genzoo": __version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "device": str(device),
        "device_name": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
    return env
