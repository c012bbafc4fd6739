"""One CSV for all leaderboards: numbers as numbers, every text cell guarded against formulas."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

from zoo.bench.aggregate import LINE_KEY, Leaderboard
from zoo.bench.columns import columns, line_kinds, machine_fields, power_note

__all__ = ["RANK_TEST", "to_csv"]

_CSV_LEAD = ["dataset", "protocol_hash", "primary_metric", "rank_test", "power", "kind"]
_CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")
RANK_TEST = ("rank: position by mean; rank_group: compact letters from pairwise welch-t, holm alpha 0.05, "
             "raw p<0.01 always apart; fewer than 2 seeds: no group")


def _csv_frame(lb: Leaderboard) -> pd.DataFrame:
    fields = [f for f in machine_fields(lb) if f != "grid_path"]  # a local path is not a result
    table = lb.table[fields].copy()
    floor: dict[str, Any] = {"model": "real vs real", "label": "real vs real", "status": "floor", "n_seeds": 0, "failed": 0}
    floor.update({f"{m}_mean": lb.floor.get(m, math.nan) for m in lb.metrics})
    floor.update({f"{m}_std": lb.floor_spread.get(m, math.nan) for m in lb.metrics})  # over the draws
    table = pd.concat([pd.DataFrame([floor]), table], ignore_index=True)[fields]
    table.insert(0, "kind", ["floor"] + line_kinds(lb))
    _blank_external_budget(table)
    for name, value in (("power", power_note(lb)), ("rank_test", RANK_TEST), ("primary_metric", lb.primary_metric), ("protocol_hash", lb.protocol_hash), ("dataset", lb.dataset)):
        table.insert(0, name, value)
    return table


def _blank_external_budget(table: pd.DataFrame) -> None:
    """An external line has no budget or precision (the store's placeholders are not shown)."""
    if "kind" in table:
        external = table["kind"] == "external"
        for col in ("budget_kind", "precision"):
            if col in table:
                table.loc[external, col] = "none"


def _csv_safe(value: Any) -> Any:
    """OWASP CSV injection: a text cell starting with = + - @ tab or CR is prefixed with ';
    terminal control characters and bidi overrides become U+FFFD (see `_CSV_CONTROL`).

    Only text: numbers (a negative mean included) stay numbers. A CR inside the text becomes a
    newline, since the CSV writer quotes fields holding ``\n`` but not a lone ``\r``, which a
    reader (and Excel) takes as the end of the row."""
    if not isinstance(value, str):
        return value
    if value.startswith(_CSV_FORMULA):
        value = "'" + value
    return _CSV_CONTROL.sub("\ufffd", value.replace("\r\n", "\n").replace("\r", "\n"))


# Control characters a terminal acts on (ESC sequences retitle it, BEL rings) and the bidi
# overrides that reorder what is shown: a CSV printed to a terminal shows U+FFFD instead, as the
# table does (`zoo.bench.cellfmt.clean`). Newlines and tabs are data the CSV writer quotes.
_CSV_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def to_csv(leaderboards: Sequence[Leaderboard]) -> str:
    """One CSV for all leaderboards: a ``kind=floor`` line (real vs real) then one line per table
    line, with ``<metric>_mean`` / ``<metric>_std`` as separate numeric columns, and the numeric
    ``rank`` beside its letters ``rank_group`` (text no spreadsheet reads as a formula). With no leaderboard, just the header."""
    if not leaderboards:
        empty = Leaderboard("", "", {}, "", True, {}, pd.DataFrame(columns=LINE_KEY), [], [])
        header = _CSV_LEAD + [f for c in columns(empty) if c.key != "" for f in c.fields if f != "grid_path"]
        return ",".join(dict.fromkeys(header)) + "\n"
    frames = [_csv_frame(lb) for lb in leaderboards]
    names = list(dict.fromkeys(c for f in frames for c in f.columns))  # union, first-seen order
    frame = pd.concat(frames, ignore_index=True)[names]
    for col in ("rank", "n_seeds", "failed", "best_seed"):
        if col in frame:
            frame[col] = frame[col].astype("Int64")
    for col in frame.columns:
        if frame[col].dtype == object or pd.api.types.is_string_dtype(frame[col]):
            frame[col] = frame[col].map(_csv_safe)
    # Headers are text from plugins too (metric and cost names): the same rule.
    frame.columns = [_csv_safe(str(c)) for c in frame.columns]
    return frame.to_csv(index=False, lineterminator="\n")


# Markdown's own syntax in a cell: backslash first (so "a\\|b" cannot turn an escaped pipe into a
# live one), then pipes (cell borders), backticks (code spans), brackets (links, images).
