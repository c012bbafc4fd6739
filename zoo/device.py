"""Device and precision choices, made once by the core and validated up front."""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from zoo.cpuprofile import CPU_PROFILE_ENV, CPU_PROFILES, cpu_profile  # noqa: F401 - public here too
from zoo.errors import UsageError
from zoo.vocabulary import PRECISIONS


def resolve_device(name: str | None = "auto") -> torch.device:
    """``auto`` means CUDA when present, else CPU; an unavailable device is a usage error."""
    name = (name or "auto").strip().lower()
    caps = capabilities()
    if name == "auto":
        return torch.device("cuda" if caps.cuda else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not caps.cuda:
            raise UsageError(f"device {name!r} requested but CUDA is not available on this machine")
        if device.index is not None and device.index >= caps.cuda_devices:
            raise UsageError(f"device {name!r} does not exist ({caps.cuda_devices} CUDA devices)")
    elif device.type not in ("cpu", "mps"):
        raise UsageError(f"unsupported device {name!r} (use auto, cpu, cuda or cuda:N)")
    return device


def check_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
    if precision == "bf16" and device.type == "cuda" and not capabilities().cuda_bf16:
        raise UsageError("bf16 is not supported on this GPU; use fp16 or fp32")
    return precision


def resolve_precision(precision: str, device: torch.device, recommended: str | None = None) -> str:
    """``auto`` becomes ``recommended`` (a model recipe's precision) when ``device`` runs it natively
    (`native_precision`), else ``fp32``; any other name is checked with `check_precision`."""
    if (precision or "").strip().lower() == "auto":
        if recommended is None or not native_precision(recommended, device):
            return "fp32"
        return check_precision(recommended, device)
    return check_precision(precision, device)


def native_precision(precision: str, device: torch.device) -> bool:
    """Whether ``device`` computes in ``precision`` natively (so autocast speeds training up).

    CUDA: bf16 where the GPU supports it, fp16 always. CPU: bf16 where `capabilities` says the
    processor has native bf16 (``avx512_bf16`` or ``amx_bf16``; ``ZOO_CPU_PROFILE`` can simulate
    either answer), where bf16 autocast trained the DDPM U-Net 1.6x faster than fp32; without them
    bf16 is emulated and slower. fp16 on a CPU: never (emulated; see `EMULATION_COST`).
    """
    if precision == "fp32":
        return True
    caps = capabilities()
    if device.type == "cuda":
        return precision == "fp16" or caps.cuda_bf16
    return precision == "bf16" and caps.cpu_native_bf16


# ZOO_CPU_PROFILE (zoo.cpuprofile) overrides what capabilities() reports about the CPU.
#: CPU flags that mean native bf16 arithmetic (what makes bf16 autocast fast on a CPU).
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
#: CPU flags that mean native fp16 arithmetic (recorded; fp16 autocast on a CPU is still treated as
#: emulated: it was never measured faster than fp32 here).
NATIVE_FP16_FLAGS = frozenset({"avx512_fp16", "amx_fp16"})


@dataclass(frozen=True)
class Capabilities:
    """What this machine can compute fast, read once by `capabilities`.

    ``profile`` is ``auto`` for the real CPU, else the simulated ``ZOO_CPU_PROFILE``, which sets
    ``cpu_native_bf16`` and ``cpu_native_fp16`` (``cpu_flags`` stay the real ones). ``cores`` is the
    number of CPUs this process may run on; ``cuda_*`` describe CUDA device 0 (False / 0 without).
    """

    profile: str
    cpu_name: str
    cpu_flags: frozenset[str] = field(repr=False)
    cpu_native_bf16: bool
    cpu_native_fp16: bool
    cores: int
    cuda: bool
    cuda_devices: int

    @property
    def cuda_bf16(self) -> bool:
        """Whether CUDA device 0 computes bf16 (asked only when needed: the question creates a
        CUDA context, which a torchrun rank must not do on device 0 before picking its own)."""
        return self.cuda and _cuda_bf16_supported()

    @property
    def machine_class(self) -> str:
        """The class benchmark files are named by: the instruction set that decides precision and
        speed (``amx``, ``avx512bf16``, ``avx512``, ``avx2``, else the architecture), then
        ``-<cores>c``; e.g. ``avx2-2c``. Read from the real flags, not the simulated profile."""
        import platform

        for flag, name in (("amx_bf16", "amx"), ("avx512_bf16", "avx512bf16"), ("avx512f", "avx512"),
                           ("avx2", "avx2")):
            if flag in self.cpu_flags:
                return f"{name}-{self.cores}c"
        return f"{platform.machine() or 'cpu'}-{self.cores}c"

    def describe(self) -> str:
        """One short line: CPU name, native bf16 or not, cores, the profile when simulated."""
        bf16 = "native bf16" if self.cpu_native_bf16 else "no native bf16"
        sim = f", simulated by {CPU_PROFILE_ENV}={self.profile}" if self.profile != "auto" else ""
        return f"{self.cpu_name} ({bf16}, {self.cores} cores{sim})"


def capabilities() -> Capabilities:
    """The machine's capabilities: the one place genzoo reads CPU flags, cores and CUDA support.

    The hardware is read once per process (``/proc/cpuinfo`` on Linux; elsewhere no flags);
    ``ZOO_CPU_PROFILE`` is read on every call, so a test or CI job can simulate another CPU.

    Raises:
        UsageError: ``ZOO_CPU_PROFILE`` names no profile.
    """
    profile = cpu_profile()
    real = _read_hardware()
    if profile == "auto":
        return real
    native = profile == "native-bf16"
    return replace(real, profile=profile, cpu_native_bf16=native, cpu_native_fp16=False)


@functools.lru_cache(maxsize=1)
def _read_hardware() -> Capabilities:
    """The real machine (cached: the hardware does not change while a process runs)."""
    name, flags = "", frozenset[str]()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not name:
                    name = value.strip()
                elif key == "flags" and not flags:
                    flags = frozenset(value.split())
                if name and flags:
                    break
    except OSError:
        pass
    if not name:
        import platform

        name = platform.processor() or platform.machine() or "unknown CPU"
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    cuda = torch.cuda.is_available()
    return Capabilities(
        profile="auto", cpu_name=name, cpu_flags=flags,
        cpu_native_bf16=bool(flags & NATIVE_BF16_FLAGS),
        cpu_native_fp16=bool(flags & NATIVE_FP16_FLAGS), cores=cores, cuda=cuda,
        cuda_devices=torch.cuda.device_count() if cuda else 0,
    )


@functools.lru_cache(maxsize=1)
def _cuda_bf16_supported() -> bool:
    return bool(torch.cuda.is_bf16_supported())


def cpu_flags() -> frozenset[str]:
    """The CPU flags Linux reports (empty elsewhere): the real ones, whatever the profile."""
    return capabilities().cpu_flags


#: What emulated precision cost where this project measured it, against fp32 on the same CPU (a
#: 2-core AMD EPYC with AVX2 and no avx512_bf16, one thread, DDPM's default U-Net; the commands are
#: in docs/benchmarks.md, "Precision and the machine"), keyed by ``(precision, what)``.
EMULATION_COST = {
    ("bf16", "training"): "11x",  # batch 32: 4 against 39 images/s (ratio 0.09)
    ("fp16", "training"): "10x",  # ratio 0.10
    ("bf16", "sampling"): "19x",  # batch 32, 2 DDIM steps: 3.7 against 70 images/s
    ("fp16", "sampling"): "17x",  # 4.1 images/s
}


class EmulatedPrecisionWarning(UserWarning):
    """A precision the hardware only emulates was asked for: slower than fp32, not faster."""


def emulated_precision_note(precision: str, device: torch.device,
                            what: str = "training") -> str | None:
    """One line saying what ``precision`` costs for ``what`` (``training`` or ``sampling``) on
    ``device`` if the device only emulates it, else ``None`` (fp32, fp16 or a supported bf16 on a
    GPU, bf16 on a CPU with native bf16). Follows `capabilities` (``ZOO_CPU_PROFILE``)."""
    if precision not in ("bf16", "fp16") or device.type != "cpu":
        return None
    if native_precision(precision, device):
        return None
    why = "no avx512_bf16/AMX" if precision == "bf16" else "no CPU computes fp16 natively"
    return (f"{precision} is emulated on this CPU ({why}): DDPM {what} measured "
            f"{EMULATION_COST[(precision, what)]} slower than fp32; use fp32")


def warn_if_emulated(precision: str, device: torch.device | str, what: str = "training",
                     stacklevel: int = 2) -> bool:
    """Warn (`EmulatedPrecisionWarning`, one line) if ``precision`` is emulated on
    ``device``; returns whether it warned. A command calls it once (``zoo bench`` too, not once
    per job)."""
    note = emulated_precision_note(precision, torch.device(device), what)
    if note is not None:
        warnings.warn(note, EmulatedPrecisionWarning, stacklevel=stacklevel + 1)
    return note is not None


@dataclass(frozen=True)
class Precision:
    """The precision of one run, built once: the autocast context factory and the gradient scaler.

    ``fp32`` autocasts nothing; ``bf16`` and ``fp16`` autocast the forward pass. Only ``fp16`` needs
    loss scaling, but `make_scaler` always returns a ``torch.amp.GradScaler`` (disabled unless
    fp16), so callers never branch on ``scaler is None``: a disabled scaler's ``scale`` returns the
    loss unchanged, ``unscale_`` and ``update`` do nothing and ``step`` calls ``optimizer.step()``.
    """

    name: str
    device: torch.device

    @classmethod
    def create(cls, name: str, device: torch.device | str) -> Precision:
        """Validate ``name`` for ``device`` (a `UsageError` if unusable) and build it."""
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

        It starts at `INITIAL_LOSS_SCALE`, not torch's 2**16: a loss above 1 times 2**16
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
    """A gradient scaler, enabled only for fp16; never ``None`` (see `Precision.make_scaler`)."""
    return Precision.create(precision, device).make_scaler()


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so wall-clock timings measure the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and hardware, recorded with every run and result row."""
    import platform

    from zoo import __version__

    caps = capabilities()
    env: dict[str, Any] = {
        "genzoo": __version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "device": str(device),
        "device_name": caps.cpu_name,
        "cpu_threads": torch.get_num_threads(),
        "cpu_cores": caps.cores,
        "cpu_native_bf16": caps.cpu_native_bf16,
        "cpu_profile": caps.profile,
    }
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
    return env
