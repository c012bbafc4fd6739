"""``benchmark(request)``: the benchmark verb; the same function as :func:`zoo.bench.run_benchmark`,
which ``zoo bench``, the bench job worker and ``benchmarks/run_published.py`` call."""

from __future__ import annotations

from zoo.bench.api import BenchRequest, BenchResult, run_benchmark
from zoo.bench.runner import BenchProgress

__all__ = ["BenchProgress", "BenchRequest", "BenchResult", "benchmark"]

#: Train, sample, evaluate and time every model and seed of a :class:`BenchRequest`.
benchmark = run_benchmark
