"""Memory: the peak of a piece of work, what is free now, and the largest batch that fits.

A batch's memory is modelled as a straight line, ``fixed + per_image * batch`` bytes above what
was in use before (weights already loaded are not counted: they are not in the free memory
either). `measure_batch_memory` fits the line from the peaks of two probe batches (``b`` and
``2b``), so workspace that does not grow with the batch is told apart from the per-image slope.
`batch_cap` is the largest batch whose predicted peak fits `MEMORY_FRACTION` of the memory free
now (`available_bytes`), never above `MAX_BATCH`. `zoo.accel.sample_batch_cap` applies this to a
model's sampler (cached per model, like the sampling batch), `zoo.metrics.engine` to a backbone.

Peaks are read the way the bench's cost columns read them (`PeakMemory`): on CUDA the allocator's
peak of allocated bytes, on a Linux CPU the process's peak resident set (reset before each probe).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

#: Share of the memory free now that one batch may take; the rest is headroom for the line's
#: error, a multistep sampler's history (probes run one step) and other processes.
MEMORY_FRACTION = 0.5
#: Images per batch, whatever memory allows: probes of 16 and 32 images are not extrapolated
#: further than this, and sampling is no faster above a few hundred (``zoo.accel``).
MAX_BATCH = 4096
#: The smaller probe batch (the other is twice this).
PROBE_BATCH = 16
#: Per-image bytes, as a multiple of the bytes an output image holds, assumed when the probes
#: cannot see per-image growth (a slope below the output's own bytes is noise: allocator reuse,
#: page rounding, or no peak readable on this platform). Measured on a CPU: a GAN's MLP 2-3x,
#: DCGAN 20x, the VAE 40-50x, DDPM's U-Net at 32x32 90-150x; 256 errs on the safe side.
FALLBACK_FACTOR = 256

__all__ = ["FALLBACK_FACTOR", "MAX_BATCH", "MEMORY_FRACTION", "PROBE_BATCH", "BatchCapWarning", "BatchMemory",
           "PeakMemory", "available_bytes", "batch_cap", "fit_batch_memory", "lower_to_cap", "measure_batch_memory"]


class BatchCapWarning(UserWarning):
    """A batch size was lowered to what fits in memory (the CLI shows one ``zoo: warning:`` line)."""


class PeakMemory:
    """Peak memory of the work inside the ``with`` block, in MiB (``mb``) and where it was read (``kind``).

    CUDA: peak allocated bytes (``kind="cuda_allocated"``). CPU on Linux: the process's peak
    resident set (``"process_peak_rss"``), reset on entry through ``/proc/self/clear_refs`` so
    each piece of work is measured on its own. Elsewhere: ``mb`` and ``kind`` stay ``None``.
    Blocks nest: an inner block (a memory probe inside a bench job) resets the counter, so the
    peak read before that reset, and the inner block's own, are carried to the blocks around it.
    """

    _open: ClassVar[list[PeakMemory]] = []  # the blocks entered and not yet left, outermost first

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.mb: float | None = None
        self.kind: str | None = None
        self._carried: float | None = None  # the highest peak of work before a nested reset

    def __enter__(self) -> PeakMemory:
        if PeakMemory._open:  # the peak so far belongs to the blocks already open
            self._carry_out(self._peak()[0])
        _reset_peak(self.device)
        PeakMemory._open.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        with contextlib.suppress(ValueError):
            PeakMemory._open.remove(self)
        mb, kind = self._peak()
        if mb is not None:
            self.mb, self.kind = max(mb, self._carried or 0.0), kind
            self._carry_out(self.mb)

    def _peak(self) -> tuple[float | None, str | None]:
        """The counter's peak (MiB) since its last reset, and its kind."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20, "cuda_allocated"
        kb = _status_kb("VmHWM")
        return (None, None) if kb is None else (kb / 1024, "process_peak_rss")

    def _carry_out(self, mb: float | None) -> None:
        if mb is None:
            return
        for block in PeakMemory._open:
            if _counter(block.device) == _counter(self.device):
                block._carried = max(block._carried or 0.0, mb)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        with contextlib.suppress(OSError):  # not Linux, or not permitted: peak covers the whole process
            Path("/proc/self/clear_refs").write_text("5")


def _counter(device: torch.device) -> tuple[str, int]:
    """Which peak counter a device reads: one per CUDA device, one for the process otherwise."""
    if device.type == "cuda":
        return "cuda", device.index if device.index is not None else torch.cuda.current_device()
    return "process", 0


def _status_kb(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _release_freed(device: torch.device) -> None:
    """Hand memory freed by earlier work back to the system (glibc's ``malloc_trim``), so a CPU
    probe's resident-set growth is its own and not hidden by reuse of a heap grown before."""
    gc.collect()
    if device.type != "cpu":
        return
    with contextlib.suppress(OSError, AttributeError):  # not glibc: growth may then be under-read
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _in_use_bytes(device: torch.device) -> int | None:
    """Bytes in use now, as `PeakMemory` counts them (allocated on CUDA, resident set on a CPU)."""
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated(device))
    kb = _status_kb("VmRSS")
    return None if kb is None else kb * 1024


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):  # absent, "max" (no limit), unreadable
        return None


def available_bytes(device: torch.device | str) -> int | None:
    """Bytes a new allocation on ``device`` can take now, or None where it cannot be read.

    CUDA: the device's free memory (``torch.cuda.mem_get_info``) plus what torch's caching
    allocator holds reserved but unused. CPU: ``MemAvailable`` of ``/proc/meminfo``, lowered to
    the room left under this process's cgroup limit (v2 ``memory.max``, v1
    ``memory.limit_in_bytes``) where one is set. None off Linux.
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    if device.type != "cpu":
        return None
    found = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found = int(line.split()[1]) * 1024
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 2**60:  # v1 writes ~2**63 for "no limit"
            room = max(0, limit - usage)
            found = room if found is None else min(found, room)
            break
    return found


@dataclass(frozen=True)
class BatchMemory:
    """A batch of ``b`` images takes ``fixed_bytes + per_image_bytes * b`` bytes above what was in
    use before it (both >= 0; ``per_image_bytes`` > 0). ``how``: ``"measured"`` (the probes'
    slope) or ``"fallback"`` (`FALLBACK_FACTOR` times the output's bytes)."""

    fixed_bytes: int
    per_image_bytes: int
    how: str

    def to_dict(self) -> dict[str, Any]:
        return {"fixed_bytes": self.fixed_bytes, "per_image_bytes": self.per_image_bytes, "how": self.how}

    @classmethod
    def from_dict(cls, data: Any) -> BatchMemory:
        """Raises ValueError, TypeError or KeyError unless ``data`` is what `to_dict` wrote."""
        fixed, per_image, how = int(data["fixed_bytes"]), int(data["per_image_bytes"]), str(data["how"])
        if fixed < 0 or per_image < 1 or how not in ("measured", "fallback"):
            raise ValueError(f"not a batch memory record: {data!r:.80}")
        return cls(fixed, per_image, how)


def fit_batch_memory(probe: int, growth: tuple[float | None, float | None], output_bytes: int) -> BatchMemory:
    """The line through the memory growth (bytes above the starting point) of a batch of ``probe``
    and of ``2 * probe`` images.

    A slope below ``output_bytes`` (the bytes one output image takes; every batch holds its
    output, so a real slope is never below it), including a non-positive one or an unreadable
    peak (None), is noise: the per-image bytes are then ``FALLBACK_FACTOR * output_bytes`` and
    the fixed part is the smaller probe's growth (0 where unknown).
    """
    small, large = growth
    per_image_floor = max(1, int(output_bytes))
    if small is not None and large is not None:
        slope = (large - small) / probe
        if slope >= per_image_floor:
            return BatchMemory(max(0, int(small - slope * probe)), int(slope), "measured")
    fixed = max(0, int(small)) if small is not None else 0
    return BatchMemory(fixed, FALLBACK_FACTOR * per_image_floor, "fallback")


def measure_batch_memory(run: Callable[[int], Any], device: torch.device | str, output_bytes: int,
                         probe: int = PROBE_BATCH) -> BatchMemory:
    """Fit `BatchMemory` to ``run(b)`` (the work for a batch of ``b``, e.g. sampling ``b``
    images) on ``device``: one warm-up call of ``probe`` images (lazy initialisation and kernel
    workspaces are not per-image memory), then ``run(probe)`` and ``run(2 * probe)``, each inside `PeakMemory` and measured
    from the bytes in use just before it, freed memory handed back first (see
    `fit_batch_memory`). What ``run`` returns is dropped at once."""
    device = torch.device(device)
    run(probe)
    growth: list[float | None] = []
    for b in (probe, 2 * probe):
        _release_freed(device)
        start = _in_use_bytes(device)
        with PeakMemory(device) as peak:
            run(b)
        growth.append(None if peak.mb is None or start is None else peak.mb * 2**20 - start)
    return fit_batch_memory(probe, (growth[0], growth[1]), output_bytes)


def batch_cap(memory: BatchMemory, device: torch.device | str, fraction: float = MEMORY_FRACTION,
              ceiling: int = MAX_BATCH) -> int:
    """The largest batch (1..``ceiling``) whose predicted bytes fit ``fraction`` of
    `available_bytes` now; ``ceiling`` where free memory cannot be read. At least 1: a batch of
    one is the least any work can use."""
    free = available_bytes(device)
    if free is None:
        return ceiling
    fits = (fraction * free - memory.fixed_bytes) // memory.per_image_bytes
    return int(min(ceiling, max(1, fits)))


def lower_to_cap(batch: int, cap: int, what: str = "--batch-size", note: str = "same images") -> int:
    """``min(batch, cap)``; when that lowers ``batch``, one `BatchCapWarning` says so, naming
    ``what`` was lowered, why (`MAX_BATCH` or the memory) and ending with ``note`` (why the
    result does not change). The asked value is not repeated: any size of it fits 80 columns."""
    if batch <= cap:
        return batch
    why = "the most per batch" if cap >= MAX_BATCH else "to fit memory"
    warnings.warn(f"{what} lowered to {cap:,}, {why} ({note})", BatchCapWarning, stacklevel=2)
    return cap
