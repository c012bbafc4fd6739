"""The database file and SQLite's files beside it (``-wal``, ``-shm``, ``-journal``): how a store
can be opened (`open_mode`), and removing the files a refused open left behind."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def _is_wal(path: Path) -> bool:
    """Whether the database file says WAL mode (header bytes 18 and 19 are 2)."""
    try:
        with path.open("rb") as fh:
            header = fh.read(20)
    except OSError:
        return False
    return len(header) == 20 and header[18] == 2 and header[19] == 2


def open_mode(path: str | os.PathLike[str]) -> str:
    """How a store at ``path`` can be opened: ``"rw"``, ``"ro"`` or ``"immutable"``.

    ``"rw"`` when the file (or, for a new store, its folder) and its folder are writable, since
    SQLite creates its journal or ``-wal``/``-shm`` files beside the database. ``"ro"``
    (``mode=ro``) otherwise. ``"immutable"`` (``immutable=1``: SQLite assumes nobody writes the file
    and creates nothing) when even ``mode=ro`` cannot work: a WAL store in an unwritable folder
    without an existing ``-shm`` file. Decided with `os.access`, so root on a read-only
    mount and a test's monkeypatch both get the answer the kernel would give a write. A folder
    that does not exist yet is judged by its nearest existing ancestor (where it would be created).
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    # A folder that does not exist yet is created by whoever may write its nearest existing ancestor.
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    folder_ok = folder.is_dir() and os.access(folder, os.W_OK)
    file_ok = os.access(path, os.W_OK) if path.exists() else folder_ok
    if folder_ok and file_ok:
        return "rw"
    shm = Path(f"{path}-shm")
    if not folder_ok and _is_wal(path) and not shm.exists():
        return "immutable"
    return "ro"


_SIDECAR_SUFFIXES = ("-wal", "-shm", "-journal")
_WAL_DMS_LOCK = 128  # the -shm byte every connection with the WAL open holds a shared lock on (os_unix.c)


def _sidecars(path: Path) -> set[str]:
    """Which of SQLite's ``-wal``/``-shm``/``-journal`` files exist beside ``path`` now."""
    return {s for s in _SIDECAR_SUFFIXES if os.path.lexists(f"{path}{s}")}


def _in_use(shm: Path) -> bool:
    """Whether another connection holds ``shm`` open (its DMS byte is locked); unreadable counts as in use."""
    import fcntl

    try:
        fd = os.open(shm, os.O_RDWR)
    except OSError:
        return True
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _WAL_DMS_LOCK)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the test lock
    return False


def _remove_new_sidecars(path: Path, before: set[str]) -> None:
    """Remove the ``-wal``/``-shm``/``-journal`` files that this process's refused open created.

    SQLite creates them beside a WAL database even for a ``mode=ro`` read, and leaves them when
    the read fails. Only files absent before the open go, and only while nobody else has the WAL
    open and no frame was written to a new ``-wal``: another process's files are never touched.
    """
    created = {s for s in _SIDECAR_SUFFIXES if s not in before and os.path.lexists(f"{path}{s}")}
    if not created:
        return
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    if shm.is_file() and _in_use(shm):
        return
    if "-wal" in created and wal.is_file() and wal.stat().st_size > 0:
        created.discard("-wal")  # frames someone wrote: not ours to drop
    for suffix in created:
        with contextlib.suppress(OSError):
            os.unlink(f"{path}{suffix}")
