"""Strict JSON: one object per leaderboard with its lines (NaN written as null)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

import orjson
import pandas as pd

from zoo.bench.aggregate import Leaderboard
from zoo.bench.columns import columns, footnote, line_kinds, machine_fields
from zoo.bench.curves import curves_dict
from zoo.bench.render.csvfile import RANK_TEST

__all__ = ["leaderboard_dict", "to_json"]


def _lines(lb: Leaderboard) -> list[dict[str, Any]]:
    return lb.table.to_dict("records")



def _json_safe(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:  # the common cases first
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is pd.NA:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def leaderboard_dict(lb: Leaderboard) -> dict[str, Any]:
    """A JSON-ready dict of one leaderboard (NaN becomes null)."""
    fields = machine_fields(lb)
    return _json_safe(
        {
            "dataset": lb.dataset,
            "protocol_hash": lb.protocol_hash,
            "protocol": lb.protocol,
            "primary_metric": lb.primary_metric,
            "lower_is_better": lb.lower_is_better,
            "floor": lb.floor,
            "floor_spread": lb.floor_spread,
            "warnings": lb.warnings,
            "footnotes": footnote(lb),
            "rank_test": RANK_TEST,
            "power": lb.power,
            "columns": [{"key": c.key, "header": c.title, "fields": list(c.fields)} for c in columns(lb) if c.human],
            "lines": [{"kind": kind, **{f: ("none" if kind == "external" and f in ("budget_kind", "precision")
                                            else line[f]) for f in fields}}
                      for kind, line in zip(line_kinds(lb), _lines(lb), strict=True)],
            "curves": curves_dict(lb),  # what the HTML page plots
            **({"tuning": lb.tuning, "trials": _trials_json(lb)} if lb.tuning else {}),
        }
    )


def _trials_json(lb: Leaderboard) -> dict[str, Any]:
    """A tuned board's trials in JSON: each model's summary and its trials (zoo bench --tune)."""
    from zoo.bench.trialplot import trials_summary

    keep = ("number", "state", "value", "last_value", "params", "intermediate", "config_label", "error")
    return {"summary": trials_summary(lb),
            "by_model": {m: [{k: t.get(k) for k in keep} for t in ts] for m, ts in lb.trials.items()}}


def to_json(leaderboards: Sequence[Leaderboard], indent: int | None = 2) -> str:
    """A JSON list with one object per leaderboard (strict JSON: NaN is written as null), ASCII
    only (other characters as ``\\uXXXX`` escapes, as ``json.dumps`` writes them)."""
    data = [leaderboard_dict(lb) for lb in leaderboards]
    if indent in (2, None):  # orjson: a 100,000-row store's JSON in a fraction of the time
        try:
            text = orjson.dumps(data, option=orjson.OPT_INDENT_2 if indent else 0).decode("utf-8")
        except orjson.JSONEncodeError:  # e.g. an integer past 64 bits in a plugin's config
            pass
        else:
            return _NON_ASCII.sub(_escape, text)  # only inside strings: every JSON token is ASCII
    return json.dumps(data, indent=indent, allow_nan=False)


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as JSON writes characters past the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
