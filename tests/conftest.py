"""Shared fixtures: every test gets a fresh registry and its own working and cache directories."""

from __future__ import annotations

import pytest
import torch

from zoo.device import CPU_PROFILE_ENV, Capabilities, capabilities

# Two cores are shared by pytest-xdist workers; more threads per worker only thrash.
torch.set_num_threads(max(1, min(2, capabilities().cores // 2)))


def pytest_report_header(config):
    # ZOO_CPU_PROFILE (CI sets it) is kept: hardware-marked tests run under the simulated CPU.
    return f"genzoo machine: {capabilities().describe()}"


@pytest.fixture
def cpu_profile(monkeypatch):
    """``cpu_profile("native-bf16" | "no-bf16" | "auto")`` simulates that CPU for this test (and
    for the CLI subprocesses it starts) and returns :func:`zoo.device.capabilities`."""

    def use(name: str) -> Capabilities:
        monkeypatch.setenv(CPU_PROFILE_ENV, name)
        return capabilities()

    return use


@pytest.fixture
def no_cuda(monkeypatch):
    """This process sees no CUDA device, whatever the machine has (a GPU machine takes the CPU
    branches too)."""
    import dataclasses

    from zoo import device

    real = device._read_hardware()
    fake = dataclasses.replace(real, cuda=False, cuda_devices=0)  # cuda_bf16 follows: False
    monkeypatch.setattr(device, "_read_hardware", lambda: fake)


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
