"""Where a command may write its ``-o/--output``: checked before any work, in one place.

Every output option behaves the same: an existing folder holds the output; a missing folder is
refused (never made silently from a typo), as is a "folder" that is a file.
"""

from __future__ import annotations

import os
from pathlib import Path

from zoo.errors import UsageError

__all__ = ["check_output_folder"]

_SQLITE_MAGIC = b"SQLite format 3\x00"


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:  # missing, a folder, unreadable: not a store this command could lose
        return False


def check_output_folder(path: str | os.PathLike[str], option: str = "--output") -> Path:
    """``path`` as a `Path` when its folder exists and it is not a results store (an SQLite file);
    else [`UsageError`][zoo.errors.UsageError] (exit 2) with one line naming ``option`` and the
    user's path."""
    path = Path(path)
    parent = path.parent
    if parent.is_dir():
        if _is_sqlite(path):  # a results store: writing a report over it would lose every result
            raise UsageError(f"{option} {path} is a results store (SQLite); writing there would replace every "
                             "result in it: choose another path")
        return path
    what = "is not a folder" if parent.exists() else "does not exist"
    raise UsageError(f"{option} {path}: the folder {parent} {what}; create it first or choose another path")
