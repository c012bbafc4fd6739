"""``benchmark(request)``: the benchmark verb over [`zoo.bench.run_benchmark`][zoo.bench.run_benchmark], which the bench
job worker (`zoo.bench.worker`, below this floor) calls directly."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.bench.api import BenchRequest, BenchResult
from zoo.bench.runner import BenchProgress

if TYPE_CHECKING:
    from zoo.registry import Registry

__all__ = ["BenchProgress", "BenchRequest", "BenchResult", "benchmark"]


def benchmark(request: BenchRequest, *, registry: Registry | None = None,
              reporter: BenchProgress | None = None) -> BenchResult:
    """Train, sample, evaluate and time every model and seed of ``request``; returns its rows
    (measured now or found in the store). Errors as [`zoo.bench.run_benchmark`][zoo.bench.run_benchmark]'s."""
    from zoo.bench import api  # looked up per call: one function, whoever patches or wraps it

    return api.run_benchmark(request, registry=registry, progress=reporter)
