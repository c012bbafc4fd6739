"""Exception types genzoo raises on purpose.

The CLI turns every ZooError into a one-line message; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ZooError(Exception):
    """Base of every error genzoo reports to a user. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class UsageError(ZooError):
    """The user asked for something that does not exist or is malformed (exit code 2)."""

    exit_code = 2


class UnknownNameError(UsageError):
    """A model, dataset, preset or option name that is not registered; suggests close matches."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...]):
        import difflib

        self.kind, self.name, self.known = kind, name, sorted(known)
        close = difflib.get_close_matches(name, self.known, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        available = f" (available: {', '.join(self.known)})" if self.known and not close else ""
        super().__init__(f"unknown {kind} {name!r}{hint}{available}")


class ConfigError(UsageError):
    """A configuration value failed validation; the message names the field."""

    def __init__(self, field: str, message: str, owner: str = ""):
        self.field = field
        where = f"{owner}.{field}" if owner else field
        super().__init__(f"invalid config {where}: {message}")


class PluginError(ZooError):
    """A plugin failed to load or registered something invalid (raised only in strict mode)."""


class DataError(UsageError):
    """A dataset could not be found, read, or has the wrong shape, dtype or values."""


class CheckpointError(ZooError):
    """A checkpoint is missing, corrupt, truncated or not safe to load."""


class CheckpointNotFoundError(CheckpointError, UsageError):
    """The path given names no checkpoint or run directory (exit code 2)."""


class DiskFullError(ZooError, OSError):
    """A file could not be written for lack of space: a full disk (``ENOSPC``), a quota
    (``EDQUOT``) or a file-size limit (``EFBIG``). The file it would have replaced is unchanged.
    An ``OSError`` too (``errno`` the cause's), so code that handles failed writes still does;
    ``path`` is the file, ``reason`` a few words (``"no space left on the device"``)."""

    def __init__(self, message: str, path: str = "", reason: str = "", errno: int = 0):
        OSError.__init__(self, errno, message)
        self.message, self.path, self.reason = message, path, reason

    def __str__(self) -> str:
        return self.message


class TrainingError(ZooError):
    """Training stopped on purpose, for example on a non-finite loss."""


class MetricsError(ZooError):
    """Metrics could not be computed (missing backbone weights, too few samples...)."""


class ProtocolChoiceError(MetricsError, UsageError):
    """The protocol asked for does not fit the dataset (image counts outside its splits, the lenet
    backbone on unlabelled data): the user's choice to change, so exit 2 like any usage error."""


class SampleError(ZooError):
    """A model's ``sample`` returned the wrong shape or dtype, non-finite values, or values outside
    ``[-1, 1]`` (beyond `zoo.sampling.RANGE_TOLERANCE`); raised by [`zoo.sampling.generate`][zoo.sampling.generate]."""


class UserInterrupt(KeyboardInterrupt):
    """Ctrl-C pressed by the user (raised by genzoo's SIGINT handlers), as opposed to a
    ``KeyboardInterrupt`` that plugin code raised itself (a failure of that plugin)."""


class Terminated(UserInterrupt):
    """SIGTERM received (``kill``, a scheduler's cancel): stopped like Ctrl-C, so what is half
    written is cleaned up, but the command exits 143 (128 + 15) and says "terminated"."""

    signum = 15
