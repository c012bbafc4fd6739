"""Which folders a new run may write into (``zoo train --run-dir``, ``zoo bench``'s job folders).

A new run writes ``config.json``, ``losses.csv``, ``samples.png``, ``checkpoints/`` and more, so
it may only use a folder that

* does not exist yet (it is created),
* is empty (genzoo's own bookkeeping files, ``.lock`` and the marker, do not count), or
* is a genzoo run folder that holds no checkpoint yet (a run that stopped before its first one).

A folder is genzoo's when it holds the marker file `MARKER` (written when genzoo creates a
run folder) or, for runs made before the marker existed, when its ``config.json`` is genzoo's: a
JSON object (at most 1 MiB) with the keys genzoo's trainer writes (`CONFIG_KEYS`).
Anything else (``/``, a project folder with its own ``config.json``) is refused with one line,
before anything is written; a genzoo run with checkpoints is continued with ``--resume``.
"""

from __future__ import annotations

import os
from pathlib import Path

from zoo.errors import UsageError
from zoo.fileio import parse_json

#: Written into every run folder genzoo creates; its presence marks the folder as genzoo's.
MARKER = ".genzoo-run"
#: Keys every genzoo ``config.json`` has (zoo.trainer.Trainer._write_run_files).
CONFIG_KEYS = frozenset({"model", "config", "dataset", "train"})
_OWN_FILES = frozenset({MARKER, ".lock"})
_MAX_CONFIG_BYTES = 1 << 20


def _genzoo_config(path: Path) -> bool:
    """Whether ``path`` is a config.json genzoo wrote; unreadable, huge, deep or foreign is ``False``."""
    try:
        if not path.is_file() or path.stat().st_size > _MAX_CONFIG_BYTES:
            return False
        data = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.keys() >= CONFIG_KEYS


def is_genzoo_run_dir(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` is a run folder genzoo made (its marker, or a genzoo ``config.json``)."""
    folder = Path(folder)
    return (folder / MARKER).is_file() or _genzoo_config(folder / "config.json")


def _has_checkpoint(folder: Path) -> bool:
    checkpoints = folder / "checkpoints"
    try:
        return checkpoints.is_dir() and any(checkpoints.iterdir())
    except OSError:
        return True  # unreadable: assume there is something to lose


def check_new_run_dir(folder: str | os.PathLike[str], option: str = "--run-dir") -> None:
    """Refuse ``folder`` for a new run unless it is new, empty, or a genzoo run without checkpoints.

    Raises [`UsageError`][zoo.errors.UsageError] (exit code 2) naming the folder and ``option`` (the
    command-line option that chose it). Reads only; writes nothing.
    """
    folder = Path(folder)
    if not os.path.lexists(folder):
        return
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder; choose an empty or new {option}")
    try:
        names = {entry.name for entry in os.scandir(folder)}
    except OSError as exc:
        raise UsageError(f"cannot read {folder}: {exc.strerror or exc}; choose an empty or new {option}") from None
    if names <= _OWN_FILES:
        return  # empty, or only genzoo's own bookkeeping
    if not is_genzoo_run_dir(folder):
        raise UsageError(f"{folder} is not empty and is not a genzoo run folder; choose an empty or new {option} "
                         "(or --resume a genzoo run that has checkpoints)")
    if _has_checkpoint(folder):
        raise UsageError(f"{folder} already holds a run; use --resume {folder} or another {option}")


def mark_run_dir(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` (with its parents) if needed and write genzoo's marker into it; returns the marker."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / MARKER
    if not marker.is_file():
        marker.write_text("genzoo run folder: genzoo checks this file before a new run writes here\n", encoding="utf-8")
    return marker
