"""Atomic file writes: a reader never sees half a file, and a crash never corrupts the old one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from zoo.errors import UsageError


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], Any], mode: str = "wb") -> Path:
    """Call ``write(file)`` on a temp file beside ``path``, fsync it, then rename it into place.

    On any error (Ctrl-C included) the temp file is removed and ``path`` keeps its old content. The
    file gets the permissions a plain ``open()`` would give (``mkstemp`` creates 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        text = "b" not in mode
        with os.fdopen(fd, mode, encoding="utf-8" if text else None, newline="" if text else None) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data), mode="wb")


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text), mode="w")


def remove_stale_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete temp files a killed writer left behind (``.NAME.*.tmp``); completed files are untouched."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp") and p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


class RunLockedError(UsageError):
    """Another live process holds the run directory (exit code 2)."""


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``run_dir/.lock`` exclusively while a run writes there (train, resume, bench jobs).

    A second writer gets a one-line :class:`RunLockedError` naming the holder's PID instead of
    interleaving its checkpoints, config and losses with the first one's. The lock is an
    ``fcntl.flock`` on an open file, so the kernel releases it when the holder exits, even after
    SIGKILL; a stale ``.lock`` file from a dead process never blocks anyone.
    """
    import fcntl

    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".lock"
    handle = open(path, "a+")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunLockedError(f"{folder} is in use by another genzoo process (PID {holder}); "
                                 "wait for it to finish or use another run directory") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield path
    finally:
        handle.close()  # closing the file releases the lock
