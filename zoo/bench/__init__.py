"""Benchmarking as a library: ``run_benchmark(request) -> rows`` and ``leaderboards(store) -> tables``.

The ``zoo bench`` and ``zoo leaderboard`` commands are thin wrappers over these (like
``llm.get_model`` under ``llm/cli.py``):

    from zoo.bench import BenchRequest, run_benchmark, leaderboards, ResultsStore

    result = run_benchmark(BenchRequest(models=["gan", "vae"], preset="smoke"))
    for board in leaderboards(result.store):
        print(board.table)

Names are imported on first use so ``import zoo.bench`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.bench.api import BenchRequest, BenchResult, run_benchmark
    from zoo.bench.leaderboard import Leaderboard, build_leaderboard, leaderboards
    from zoo.bench.store import ResultRow, ResultsStore, default_store_path

_LAZY = {
    "BenchRequest": "zoo.bench.api",
    "BenchResult": "zoo.bench.api",
    "run_benchmark": "zoo.bench.api",
    "Leaderboard": "zoo.bench.leaderboard",
    "build_leaderboard": "zoo.bench.leaderboard",
    "leaderboards": "zoo.bench.leaderboard",
    "ResultRow": "zoo.bench.store",
    "ResultsStore": "zoo.bench.store",
    "default_store_path": "zoo.bench.store",
}

__all__ = [
    "BenchRequest",
    "BenchResult",
    "Leaderboard",
    "ResultRow",
    "ResultsStore",
    "build_leaderboard",
    "default_store_path",
    "leaderboards",
    "run_benchmark",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo.bench' has no attribute {name!r}")
