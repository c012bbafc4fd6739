"""Reading genzoo's own backbone weight files (safetensors with a metadata header), shared by the
backbones genzoo trains itself (`zoo.metrics.lenet`, `zoo.metrics.simclr`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import torch

from zoo.errors import MetricsError

__all__ = ["read_header", "tensor_digest"]


def read_header(path: str | Path, name: str, weights_format: str) -> dict[str, str]:
    """The safetensors metadata of ``path`` (no tensors read). Raises `MetricsError` naming the
    ``name`` backbone if the file cannot be read or its ``format`` is not ``weights_format``."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:
        raise MetricsError(f"cannot read {name} weights {path}: {type(exc).__name__}: {exc}") from None
    if meta.get("format") != weights_format:
        raise MetricsError(f"{path} is not a genzoo {name} weight file")
    return meta


def tensor_digest(path: str | Path, name: str, meta: dict[str, str], arch_keys: Iterable[str]) -> str:
    """SHA-256 over the architecture (``arch_keys`` of ``meta``) and the tensors (names, dtypes,
    shapes, bytes), not the file: safetensors may order its header differently for identical
    weights, and a protocol must not tell such files apart. `MetricsError` if unreadable."""
    from safetensors.torch import load_file

    h = hashlib.sha256(json.dumps({k: meta.get(k) for k in arch_keys}, sort_keys=True).encode())
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:
        raise MetricsError(f"cannot read {name} weights {path}: {type(exc).__name__}") from None
    for key in sorted(tensors):
        t = tensors[key].contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # reshape: a 0-d step count too
    return h.hexdigest()
