"""A Markdown section per leaderboard; every text from a row escaped for Markdown and HTML."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from zoo.bench.aggregate import Leaderboard
from zoo.bench.cellfmt import clean as _clean
from zoo.bench.columns import footnote, human_columns
from zoo.bench.store import canonical_json
from zoo.bench.trials import tuning_label

__all__ = ["to_markdown"]


def _lines(lb: Leaderboard) -> list[dict[str, Any]]:
    return lb.table.to_dict("records")


# Markdown's own syntax in a cell: backslash first (so "a\\|b" cannot turn an escaped pipe into a
# live one), then pipes (cell borders), backticks (code spans), brackets (links, images).
_MD_SPECIAL = re.compile(r"([\\|`\[\]])")


def _md_cell(text: str) -> str:
    """Text for a Markdown table cell or line: control characters and newlines replaced, HTML
    escaped, and ``\\ | ` [ ]`` backslash-escaped, so the text stays in its cell and can open no
    link, image, code span or tag."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(_clean(str(text)), quote=False))


def _md_code(text: str) -> str:
    """``text`` as an inline code span: fenced by more backticks than any run inside it (CommonMark),
    so it cannot close early; HTML inside a code span is shown, not rendered."""
    text = _clean(str(text))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or longest else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def to_markdown(leaderboards: Sequence[Leaderboard]) -> str:
    """A Markdown section per leaderboard: heading, protocol line, table with the floor first,
    then the footnote."""
    if not leaderboards:
        return "No results yet.\n"
    parts = []
    for lb in leaderboards:
        cols = human_columns(lb)
        tuned = f" · {_md_cell(tuning_label(lb.tuning))}" if lb.tuning else ""
        parts.append(f"### {_md_cell(lb.dataset)} · protocol {_md_code(lb.protocol_hash)}{tuned}\n")
        if lb.protocol:
            parts.append(f"Protocol: {_md_code(canonical_json(lb.protocol))}\n")
        align = ["---" if c.align == "left" else "---:" for c in cols]
        lines = ["| " + " | ".join(_md_cell(c.title) for c in cols) + " |", "| " + " | ".join(align) + " |"]
        floor = [("*real vs real (floor)*" if c.key == "model" else _md_cell(c.floor)) for c in cols]
        lines.append("| " + " | ".join(floor) + " |")
        for line in _lines(lb):
            lines.append("| " + " | ".join(_md_cell(c.cell(line)) for c in cols) + " |")
        parts.append("\n".join(lines) + "\n")
        parts.append("\n".join(f"{'> ' if note.startswith('warning') else ''}{_md_cell(note)}  " for note in footnote(lb)) + "\n")
        if lb.trials:
            from zoo.bench.trialplot import trials_markdown

            parts.append(trials_markdown(lb, _md_cell))
    return "\n".join(parts)

