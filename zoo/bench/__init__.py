"""Benchmarking: the results store, leaderboards and reports (the runner lands beside them)."""

from zoo.bench.leaderboard import Leaderboard, build_leaderboard
from zoo.bench.store import ResultRow, ResultsStore, default_store_path

__all__ = ["Leaderboard", "ResultRow", "ResultsStore", "build_leaderboard", "default_store_path"]
