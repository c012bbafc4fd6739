"""Atomic file writes: a reader never sees half a file, and a crash never corrupts the old one."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from zoo.errors import DiskFullError, UsageError

#: Errors that mean "no room for this file": a full disk, a quota, a file-size limit (RLIMIT_FSIZE).
NO_SPACE_ERRNOS = frozenset(e for e in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", None)) if e)


def no_space_cause(exc: BaseException | None) -> OSError | None:
    """The no-space ``OSError`` (`NO_SPACE_ERRNOS`) behind ``exc``, following its
    ``__cause__`` / ``__context__`` chain (torch's writer turns it into a ``RuntimeError`` about
    ``inline_container``); None when there is none."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def no_space_reason(cause: OSError) -> str:
    """A few words for a no-space ``OSError``: which limit it hit."""
    if cause.errno == errno.EFBIG:
        return "file size limit reached"
    if cause.errno == getattr(errno, "EDQUOT", None):
        return "disk quota exceeded"
    return "no space left on the device"


def parse_json(text: str | bytes) -> Any:
    """``json.loads`` for files and columns genzoo did not necessarily write: a value nested too
    deeply for the parser (``[[[...``: it recurses per bracket, so a crafted file exhausts the stack)
    is a ``ValueError`` like any other malformed JSON, so one ``except ValueError`` covers both."""
    import json

    try:
        return json.loads(text)
    except (RecursionError, MemoryError):
        raise ValueError("nested too deeply") from None


def nan_to_null(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf; numpy floats too) in nested dicts, lists
    and tuples replaced by None, so strict JSON (``allow_nan=False``) writes it as ``null``."""
    if isinstance(value, dict):
        return {k: nan_to_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [nan_to_null(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def parse_toml(text: str) -> dict[str, Any]:
    """``tomllib.loads`` with `parse_json`'s rule: too deep a nesting is a ``ValueError``
    (``tomllib.TOMLDecodeError`` is one too)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except (RecursionError, MemoryError):
        raise ValueError("nested too deeply") from None


def env_folder(var: str, path: str | os.PathLike[str], value: str | os.PathLike[str] | None = None) -> Path:
    """``path`` (a folder the environment variable ``var``, set to ``value`` (default ``path``),
    names) when it is, or can be made, a folder. A [`UsageError`][zoo.errors.UsageError] (exit 2) naming
    ``var`` when it or a parent is a file, so the first write into it is not an ``OSError`` "Not a
    directory" far from its cause."""
    path = Path(path)
    for probe in (path, *path.parents):
        if probe.exists():
            if not probe.is_dir():
                raise UsageError(f"{var}={value if value is not None else path}: {probe} is a file, not a folder")
            break
    return path


def _about(exc: OSError, path: Path) -> OSError:
    """``exc`` with ``path`` (the file asked for) as its file name: the error a person can act on."""
    return type(exc)(exc.errno, exc.strerror or str(exc), str(path))


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], Any], mode: str = "wb") -> Path:
    """Call ``write(file)`` on a temp file beside ``path``, fsync it, then rename it into place.

    On any error (Ctrl-C included) the temp file is removed and ``path`` keeps its old content. The
    file gets the permissions a plain ``open()`` would give (``mkstemp`` creates 0600). Raises
    [`DiskFullError`][zoo.errors.DiskFullError] (one line) when the disk, a quota or a file-size limit has
    no room for it, whatever library did the writing; other errors propagate unchanged.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # name the path the caller asked for, never the temp file beside it
        raise _about(exc, path) from None
    try:
        # Held while writing: remove_dead_temp_files_of() tells a live writer's temp file by it.
        _lock(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        text = "b" not in mode
        with os.fdopen(fd, mode, encoding="utf-8" if text else None, newline="" if text else None) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        cause = no_space_cause(exc)
        if cause is not None:
            reason = no_space_reason(cause)
            raise DiskFullError(f"cannot write {path}: {reason} (nothing was replaced)", str(path),
                                reason, cause.errno or 0) from None
        if isinstance(exc, OSError) and exc.filename == tmp:
            raise _about(exc, path) from None
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


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no dead-writer detection, nothing else lost
        return
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data), mode="wb")


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text), mode="w")


#: A temp file of `atomic_write` untouched for this many seconds is a dead writer's: a live
#: writer creates it and writes it at once (seconds even for a large checkpoint), on this machine or
#: another sharing the folder, so age works where a PID check cannot (PIDs are per machine).
STALE_TEMP_SECONDS = 600.0
# mkstemp's names: ".NAME." + 8 random characters + ".tmp"
_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def remove_stale_temp_files(folder: str | os.PathLike[str], older_than: float | None = None) -> list[Path]:
    """Delete temp files a killed writer left behind (``.NAME.*.tmp``); completed files are untouched.

    With ``older_than=None`` every temp file goes: for a folder only its caller writes (a run
    folder under `run_lock`). With ``older_than`` seconds, only `atomic_write`'s temp
    files (``.NAME.XXXXXXXX.tmp``) not modified for that long: for folders several processes write at
    once (the metrics cache, the store's folder), where a younger one may be a live writer's. Returns
    the files removed; files that vanish or cannot be removed meanwhile are skipped.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now = time.time()
    stale = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for p in entries:
        if not (p.name.startswith(".") and p.name.endswith(".tmp")):
            continue
        try:
            if not p.is_file():
                continue
            if older_than is not None and (not _TEMP_NAME.match(p.name) or now - p.stat().st_mtime < older_than):
                continue
            p.unlink()
        except OSError:
            continue  # removed by someone else, or a read-only folder
        stale.append(p)
    return stale


def remove_dead_temp_files_of(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temp files `atomic_write` left beside ``path`` when its writer was killed
    (``.NAME.XXXXXXXX.tmp`` for ``path``'s NAME), of any age: a live writer holds an ``flock`` on
    its temp file, so only files nobody holds are removed. Returns the files removed."""
    path = Path(path)
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return []
    prefix = f".{path.name}."
    for p in entries:
        if not (p.name.startswith(prefix) and _TEMP_NAME.match(p.name) and len(p.name) == len(prefix) + 12):
            continue
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises while a live writer holds it
            p.unlink()
            removed.append(p)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


_cleaned: set[str] = set()


def remove_stale_temp_files_once(folder: str | os.PathLike[str], older_than: float = STALE_TEMP_SECONDS) -> list[Path]:
    """`remove_stale_temp_files` with ``older_than``, at most once per folder and process (for
    folders read on every call, such as the metrics cache)."""
    key = os.path.abspath(folder)
    if key in _cleaned:
        return []
    _cleaned.add(key)
    return remove_stale_temp_files(folder, older_than=older_than)


class RunLockedError(UsageError):
    """Another live process holds the run directory (exit code 2)."""


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``run_dir/.lock`` exclusively while a run writes there (train, resume, bench jobs).

    A second writer gets a one-line `RunLockedError` naming the holder's PID instead of
    interleaving its checkpoints, config and losses with the first one's. The lock is an
    ``fcntl.flock`` on an open file, so the kernel releases it when the holder exits, even after
    SIGKILL; a stale ``.lock`` file from a dead process never blocks anyone. Temp files a killed
    writer left in the folder (``.NAME.*.tmp``) are removed once the lock is held.
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
        # Only the lock holder writes here, so every temp file in the folder is a dead writer's.
        remove_stale_temp_files(folder)
        yield path
    finally:
        handle.close()  # closing the file releases the lock
