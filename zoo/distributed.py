"""Data-parallel training on ``torch.distributed``, launched by ``torchrun``.

genzoo does not wrap networks in `torch.nn.parallel.DistributedDataParallel`: a plugin's
``train_step`` calls `zoo.model.TrainStep.optimize` once per optimizer, and a GAN runs its
discriminator on real and fake images and then again for the generator's loss within one step.
DDP's bucketed gradient hooks fire during backward and assume one forward per backward, which such
steps break (or silently mis-synchronise with ``find_unused_parameters``). Instead the trainer sets
``TrainStep.before_step`` to `average_gradients`: between each optimizer's backward and its
step, the gradients of that optimizer's parameters are all-reduced (one flat buffer per dtype) and
divided by the world size. With every rank starting from the same parameters (rank 0's are
broadcast), the ranks stay identical, exactly as under DDP, and every optimizer of every model works.

What is synchronised, and how:

* **data**: one seeded permutation per epoch shared by every rank; the global batch
  ``perm[i : i + B]`` is split as ``DistributedSampler`` splits it (rank ``r`` takes positions
  ``r, r + W, ...``), so the union of the shards of a step does not depend on the world size;
* **gradients**: averaged per optimizer before its step (so gradient clipping sees the global
  gradient, and the GradScaler's inf check sees the same values on every rank);
* **BatchNorm**: converted to `torch.nn.SyncBatchNorm` when the model class sets
  ``sync_batchnorm = True`` (batch statistics over the global batch); otherwise per rank;
* **training noise** (latents, timesteps, dropout): each rank reseeds torch, NumPy and Python
  before every step from ``(seed, step, rank)`` (`step_seed`), so the ranks draw
  independent noise and a resumed run draws exactly what the uninterrupted run drew, with no
  per-rank RNG state in the checkpoint.

Environment variables read (set by ``torchrun``): ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``. Backend: NCCL on CUDA, gloo on CPU. Without them (a plain
``zoo train``) every helper here answers for a world of one process.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import random
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from zoo.device import capabilities
from zoo.errors import TrainingError, UsageError
from zoo.text import one_line

__all__ = [
    "World",
    "average_gradients",
    "broadcast_object",
    "broadcast_parameters",
    "check_batch_size",
    "current",
    "env_world_size",
    "init_from_env",
    "is_main",
    "shutdown",
    "step_seed",
]

#: How long a collective waits for a silent peer before failing (a dead rank usually closes its
#: sockets and fails the others at once; this bounds the case where it hangs instead).
DEFAULT_TIMEOUT = datetime.timedelta(minutes=10)


@dataclass(frozen=True)
class World:
    """The process group this process trains in: ``rank`` in ``[0, size)``; ``local_rank`` on this node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None  # "nccl" | "gloo" | None for a single process

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset); a malformed value is a UsageError."""
    return _env_int("WORLD_SIZE", 1)


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"environment variable {name}={text!r} is not an integer") from None
    if value < 0:
        raise UsageError(f"environment variable {name}={value} must be >= 0")
    return value


def init_from_env(device: str = "auto", timeout: datetime.timedelta = DEFAULT_TIMEOUT) -> World:
    """Join the process group ``torchrun`` describes in the environment; returns this process's `World`.

    ``device`` is the user's ``--device`` (``auto``, ``cpu``, ``cuda``...): CUDA uses NCCL and pins
    this process to ``cuda:LOCAL_RANK``; CPU uses gloo. Without ``WORLD_SIZE > 1`` nothing is
    initialised and a world of one is returned. Calling it twice returns the existing group.
    Raises [`UsageError`][zoo.errors.UsageError] when the environment is incomplete or asks for more
    CUDA devices than this node has.
    """
    size = env_world_size()
    if size <= 1:
        return World()
    if dist.is_initialized():
        return current()
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise UsageError(f"WORLD_SIZE={size} but {', '.join(missing)} is not set: launch with torchrun "
                         "(or zoo train --nproc-per-node N)")
    _env_int("RANK", 0)  # a malformed RANK fails here, as one line
    local_rank = _env_int("LOCAL_RANK", 0)
    caps = capabilities()
    use_cuda = device.startswith("cuda") or (device == "auto" and caps.cuda)
    if use_cuda:
        if not caps.cuda:
            raise UsageError(f"--device {device} asked for CUDA, but this machine has none")
        if local_rank >= caps.cuda_devices:
            raise UsageError(f"LOCAL_RANK {local_rank} but this node has {caps.cuda_devices} CUDA device(s): "
                             "use --nproc-per-node <= the number of GPUs")
        torch.cuda.set_device(local_rank)
    backend = "nccl" if use_cuda else "gloo"
    dist.init_process_group(backend=backend, timeout=timeout)
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=local_rank, backend=backend)


def current() -> World:
    """The `World` of the initialised process group, or a world of one."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=_env_int("LOCAL_RANK", 0),
                 backend=dist.get_backend())


def is_main() -> bool:
    """True on rank 0 (and in a single process): the only rank that writes files or prints results."""
    return current().is_main


def shutdown() -> None:
    """Leave the process group (no-op when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def check_batch_size(global_batch: int, world_size: int) -> int:
    """The per-rank batch of a global batch ``global_batch`` split over ``world_size`` ranks.

    Raises [`UsageError`][zoo.errors.UsageError] (one line) when it does not divide evenly.
    """
    if world_size < 1:
        raise UsageError(f"world size must be >= 1, got {world_size}")
    if global_batch % world_size:
        raise UsageError(f"--batch-size {global_batch} is the global batch and must be divisible by the "
                         f"{world_size} processes (try {max(world_size, global_batch // world_size * world_size)})")
    return global_batch // world_size


def step_seed(seed: int, step: int, rank: int) -> int:
    """The 63-bit seed of rank ``rank``'s training noise at optimizer step ``step`` (SHA-256 of all three)."""
    digest = hashlib.sha256(f"zoo-ddp:{seed}:{step}:{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def seed_step(seed: int, step: int, rank: int) -> None:
    """Seed Python, NumPy, torch (and CUDA) for ``rank``'s draws in step ``step`` (see `step_seed`)."""
    value = step_seed(seed, step, rank)
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)


def broadcast_parameters(module: torch.nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank (in place), so all ranks start equal."""
    if not current().distributed:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=src)


def broadcast_batchnorm_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s BatchNorm running statistics to every rank, as DDP's ``broadcast_buffers``
    does before each forward; per-rank BatchNorm (no SyncBatchNorm) would otherwise drift apart."""
    if not current().distributed:
        return
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(layer, torch.nn.SyncBatchNorm):
                for tensor in layer.buffers():
                    dist.broadcast(tensor.data, src=src)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (picklable objects; ``obj`` itself in a single process)."""
    if not current().distributed:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Replace each parameter's ``.grad`` by its mean over all ranks (a no-op in a single process).

    Parameters whose gradient is ``None`` on every rank stay ``None`` (their optimizer skips them,
    as in a single process); one that has a gradient on some rank only gets zeros elsewhere first.
    The gradients travel as one flat buffer per dtype and device. A peer that died or hung raises
    [`TrainingError`][zoo.errors.TrainingError] naming this rank.
    """
    world = current()
    if not world.distributed:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    device = params[0].device
    try:
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=device)
        dist.all_reduce(has)  # which gradients exist anywhere (same structure on every rank normally)
        grads = []
        for p, anywhere in zip(params, has.tolist(), strict=True):
            if not anywhere:
                continue
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
        by_kind: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
        for g in grads:
            by_kind.setdefault((g.dtype, g.device), []).append(g)
        for group in by_kind.values():
            flat = torch.cat([g.reshape(-1) for g in group])
            dist.all_reduce(flat)
            flat /= world.size
            offset = 0
            for g in group:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()
    except (RuntimeError, dist.DistBackendError) as exc:  # DistBackendError is a RuntimeError in new torch
        raise TrainingError(f"rank {world.rank}/{world.size}: gradient all-reduce failed ({one_line(exc, limit=300)}); "
                            "another rank probably died or was killed") from None


def convert_sync_batchnorm(model: torch.nn.Module, device: torch.device | str = "cuda") -> torch.nn.Module:
    """Replace the BatchNorm layers of ``model`` by SyncBatchNorm in place when it asks for it.

    A model class asks with ``sync_batchnorm = True``; otherwise (or in a single process) the model
    is returned unchanged. The layers keep their parameter objects, so optimizers made before or
    after see the same tensors. PyTorch's SyncBatchNorm runs on CUDA (and XPU) only: on a CPU
    (gloo) run the layers stay per-rank BatchNorm and a warning says so.
    """
    if not current().distributed or not getattr(type(model), "sync_batchnorm", False):
        return model
    if torch.device(device).type == "cpu":
        warnings.warn(f"{type(model).__name__} asks for synchronised BatchNorm, which PyTorch runs on CUDA only: "
                      "on CPU each rank normalises its own shard", stacklevel=2)
        return model
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # the top module is kept; BN children replaced
