"""Checkpoints that are safe to load, verified, and written atomically.

* Loading never unpickles arbitrary objects: ``torch.load(weights_only=True)`` only, and no fallback.
* Every checkpoint carries a SHA-256 over its whole content (tensors and metadata), checked on
  load, so a flipped bit is caught instead of silently changing a weight.
* Writes go to a temporary file in the same folder, are flushed and fsynced, then renamed over the
  target; a crash mid-write leaves the previous checkpoint intact and no temp file on success.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from zoo.errors import CheckpointError, CheckpointNotFoundError
from zoo.fileio import atomic_write, remove_stale_temp_files  # noqa: F401  (re-exported)
from zoo.model import GenerativeModel

if TYPE_CHECKING:
    from zoo.registry import Registry

FORMAT = "genzoo-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_DIR = "checkpoints"
_STEP_FILE = re.compile(r"^step-(\d+)\.pt$")


def content_hash(obj: Any) -> str:
    """A SHA-256 over a nested structure of tensors and plain values, in a stable order."""
    h = hashlib.sha256()
    for chunk in _walk(obj):
        h.update(chunk)
    return h.hexdigest()


def _walk(obj: Any) -> Iterator[bytes]:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        yield f"T{t.dtype}{tuple(t.shape)}".encode()
        yield t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
    elif isinstance(obj, dict):
        yield f"D{len(obj)}".encode()
        for key in sorted(obj, key=repr):
            yield repr(key).encode()
            yield from _walk(obj[key])
    elif isinstance(obj, (list, tuple)):
        yield f"L{len(obj)}".encode()
        for item in obj:
            yield from _walk(item)
    else:
        yield f"V{obj!r}".encode()


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` (tensors and plain Python values only) with its checksum, atomically."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    payload.pop("checksum", None)
    payload["checksum"] = content_hash(payload)
    atomic_write(path, lambda f: torch.save(payload, f))
    return Path(path)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and verify a checkpoint; any problem is one `CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"corrupt checkpoint {path}: the file is empty")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        if isinstance(exc, (zipfile.BadZipFile, EOFError, RuntimeError)) or "zip" in str(exc).lower():
            kind = "truncated or corrupt"
        else:
            kind = "not a safe checkpoint (it holds objects weights-only loading refuses)"
        if "Unsupported global" in str(exc) or "weights_only" in str(exc):
            kind = "not a safe checkpoint (it holds objects weights-only loading refuses)"
        raise CheckpointError(f"corrupt checkpoint {path}: {kind}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a genzoo checkpoint")
    version = state.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: unknown checkpoint format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer genzoo (format {version})")
    stored = state.pop("checksum", None)
    if stored is None or content_hash(state) != stored:
        raise CheckpointError(f"corrupt checkpoint {path}: checksum mismatch")
    step = state.get("step", 0)
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"{path}: step must be a non-negative integer, got {step!r}")
    return state


def checkpoint_path(run_dir: str | os.PathLike[str], step: int) -> Path:
    if step < 0:
        raise CheckpointError(f"a checkpoint step must be >= 0, got {step}")
    return Path(run_dir) / CHECKPOINT_DIR / f"step-{step:08d}.pt"


def list_checkpoints(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Checkpoints of a run, oldest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(source: str | os.PathLike[str]) -> Path:
    """The checkpoint a run directory or file path refers to."""
    source = Path(source)
    if source.is_file():
        return source
    if source.is_dir():
        found = list_checkpoints(source)
        if not found:
            raise CheckpointNotFoundError(f"{source} has no checkpoints (expected {CHECKPOINT_DIR}/step-*.pt)")
        return found[-1]
    raise CheckpointNotFoundError(f"no run directory or checkpoint at {source}")


def prune_checkpoints(run_dir: str | os.PathLike[str], keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (at least 2 are kept, so one can be corrupt)."""
    for old in list_checkpoints(run_dir)[: -max(keep, 2)]:
        old.unlink(missing_ok=True)


def load_model(
    source: str | os.PathLike[str], map_location: str | torch.device = "cpu", model_cls: type[GenerativeModel] | None = None,
    *, registry: Registry | None = None,
) -> tuple[GenerativeModel, dict[str, Any]]:
    """Rebuild a trained model from a run directory or checkpoint file, through [`zoo.create_model`][zoo.create_model].

    The class is looked up in ``registry`` (default: the process-wide one) by the name the
    checkpoint records, unless ``model_cls`` is given (a plugin's tests may use a class that is not
    installed). Returns ``(model, meta)`` where ``meta`` holds ``model``, ``dataset``, ``config``,
    ``image_shape``, ``step``, ``train`` and ``path``. The model is in eval mode on ``map_location``.
    Raises [`CheckpointError`][zoo.errors.CheckpointError] for anything that does not fit.
    """
    from zoo.factory import create_model_from_checkpoint

    path = latest_checkpoint(source)
    state = load_checkpoint(path, map_location=map_location)
    model = create_model_from_checkpoint(state, model_cls=model_cls, registry=registry, where=str(path))
    model.to(map_location).eval()
    meta = {k: state.get(k) for k in ("model", "dataset", "config", "image_shape", "step", "train")}
    meta["path"] = str(path)
    return model, meta
