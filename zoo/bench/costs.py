"""What a model costs, measured the way timm's benchmark does.

Warm up first (excluded), synchronise the device before reading the clock, time many iterations,
retry with half the batch on out-of-memory and record the batch actually used. FLOPs come from
``torch.utils.flop_counter.FlopCounterMode``; achieved FLOP/s above the device's peak would mean a
timing bug.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import torch

from zoo.data import to_float
from zoo.device import Precision, synchronize
from zoo.memory import PeakMemory  # noqa: F401 - where the bench runner imports it from
from zoo.model import GenerativeModel, TrainStep


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def measure_train(
    model: GenerativeModel, images: torch.Tensor, batch_size: int, precision: Precision | Callable[[], Any],
    scaler: torch.amp.GradScaler | None = None, warmup: int = 3, iters: int = 10,
) -> dict[str, float]:
    """Steady-state training images/s and FLOPs per image, on a copy (the trained model is untouched).

    ``precision`` is the run's `zoo.device.Precision`; the copy gets its own gradient scaler
    from it. Older callers pass ``(autocast_factory, scaler)`` instead, which still works. Each
    iteration is `zoo.trainer.train_one_step`, the step the trainer runs.
    """
    from zoo.trainer import train_one_step

    net = copy.deepcopy(model).train()
    optimizers = net.configure_optimizers()
    device = net.device
    if isinstance(precision, Precision):
        autocast, scaler = precision.autocast, precision.make_scaler()
    else:  # the (autocast, scaler) call of callers not yet moved to Precision
        autocast, scaler = precision, scaler or torch.amp.GradScaler(device.type, enabled=False)
    g = torch.Generator().manual_seed(0)
    batch = to_float(images[torch.randint(len(images), (batch_size,), generator=g).to(images.device)]).to(device)
    grad_clip = getattr(net.config, "grad_clip", None)

    def step(i: int) -> None:
        train_one_step(net, batch, TrainStep(step=i, optimizers=optimizers, scaler=scaler, grad_clip=grad_clip), autocast)

    state = torch.get_rng_state()  # timing must not shift the caller's random stream
    try:
        flops = count_flops(lambda: step(0))
        for i in range(warmup):
            step(i)
        synchronize(device)
        start = time.perf_counter()
        for i in range(iters):
            step(i)
        synchronize(device)
        seconds = time.perf_counter() - start
    finally:
        torch.set_rng_state(state)
    ips = iters * batch_size / seconds
    per_image = flops / batch_size
    return {"train_images_per_s": ips, "train_flops_per_image": per_image, "achieved_train_flops_per_s": per_image * ips}


def count_flops(fn: Callable[[], Any]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def sample_flops_per_image(model: GenerativeModel, options: dict[str, Any], n: int = 2) -> float:
    generator = torch.Generator(device=model.device).manual_seed(0)
    model.eval()
    with torch.no_grad():
        flops = count_flops(lambda: model.sample(n, generator=generator, **options))
    return flops / n
