"""Paths relative to the store's folder, so a store moves (or is read elsewhere) with its runs."""

from __future__ import annotations

import os


def _store_relative(value: str | None, folder: str) -> str | None:
    """``value`` relative to ``folder`` when it lies under it, else absolute."""
    if value is None or value == "":
        return value
    absolute = os.path.abspath(os.path.expanduser(value))
    try:
        common = os.path.commonpath([absolute, folder])
    except ValueError:  # another drive on Windows
        return absolute
    return os.path.relpath(absolute, folder) if common == folder else absolute


def _from_store(value: str | None, folder: str) -> str | None:
    if value is None or value == "":
        return value
    return value if os.path.isabs(value) else os.path.normpath(os.path.join(folder, value))
