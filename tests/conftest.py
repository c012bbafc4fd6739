"""Shared fixtures: every test gets a fresh registry and its own working and cache directories."""

from __future__ import annotations

import os

import pytest
import torch

# Two cores are shared by pytest-xdist workers; more threads per worker only thrash.
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 2) // 2)))


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    from zoo.registry import reset_registry

    cache = tmp_path_factory.getbasetemp() / "zoo-cache"  # shared per session: reference stats are reused
    monkeypatch.setenv("ZOO_CACHE_DIR", str(cache))
    for var in ("ZOO_LOAD_PLUGINS", "ZOO_STRICT_PLUGINS", "ZOO_TRACE_PLUGINS", "ZOO_RESULTS"):
        monkeypatch.delenv(var, raising=False)
    reset_registry()
    yield
    reset_registry()


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
