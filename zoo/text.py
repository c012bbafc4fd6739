"""Small text helpers every layer shares: booleans, slugs and one-line error messages.

Standard library only, so the CLI can use them before torch is imported.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def parse_bool(text: str) -> bool | None:
    """``true``/``yes``/``on``/``1`` -> True, ``false``/``no``/``off``/``0`` -> False, else None."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def env_flag(name: str) -> bool:
    """Whether environment variable ``name`` is set to a true word."""
    return parse_bool(os.environ.get(name, "")) is True


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe slug of the last path component: ``folder:/a/b c`` -> ``b_c``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text.split("/")[-1])[:limit]


def clock_text(seconds: float | None) -> str:
    """``1:02:03`` (hours:minutes:seconds, rounded); ``-:--:--`` when unknown (None)."""
    if seconds is None:
        return "-:--:--"
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def one_line(exc: BaseException, *, where: bool = False, limit: int | None = None) -> str:
    """``TypeName: message`` on one line (lines joined by ``; ``, cut to ``limit`` characters with
    an ellipsis: a runtime's message can run to pages), optionally ``(at file:line)``."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {'; '.join(lines)}" if lines else type(exc).__name__
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    if where and exc.__traceback__ is not None:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        text += f" (at {Path(frame.filename).name}:{frame.lineno})"
    return text


def printable(text: str) -> str:
    """``text`` with terminal control characters (escape sequences, bells, carriage returns) shown
    as ``\\xNN`` escapes, so third-party text cannot move the cursor or retitle a terminal."""
    return "".join(c if c in "\n\t" or (c.isprintable() and c not in "\x7f") else f"\\x{ord(c):02x}" for c in text)
