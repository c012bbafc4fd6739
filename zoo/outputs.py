"""Where a command may write its ``-o/--output``: checked before any work, in one place.

Every output option behaves the same: an existing folder holds the output; a missing folder is
refused (never made silently from a typo), as is a "folder" that is a file.
"""

from __future__ import annotations

import os
from pathlib import Path

from zoo.errors import UsageError

__all__ = ["check_output_folder"]


def check_output_folder(path: str | os.PathLike[str], option: str = "--output") -> Path:
    """``path`` as a `Path` when its folder exists; else
    [`UsageError`][zoo.errors.UsageError] (exit 2) with one line naming ``option`` and the user's path."""
    path = Path(path)
    parent = path.parent
    if parent.is_dir():
        return path
    what = "is not a folder" if parent.exists() else "does not exist"
    raise UsageError(f"{option} {path}: the folder {parent} {what}; create it first or choose another path")
