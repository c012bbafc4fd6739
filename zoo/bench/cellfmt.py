"""Values as leaderboard cell text: numbers (mean ± std, intervals, counts, rates) and strings
made safe for a terminal. Every format formats numbers through these helpers and nowhere else."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["clean", "format_count", "format_interval", "format_mean_std", "format_number", "format_rate",
           "numeric"]


def numeric(value: Any) -> float:
    """``value`` as a float; NaN for anything that is not an int or float (bools included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    try:
        return float(value)
    except OverflowError:  # an integer past float's range (a tampered store): infinite
        return math.inf if value > 0 else -math.inf


_numeric = numeric


def _decimals(value: float) -> int:
    magnitude = abs(value)
    if magnitude >= 100:
        return 1
    if magnitude >= 1:
        return 2
    if magnitude == 0:
        return 2
    # Small values (KID ~ 0.003): keep three significant digits.
    return min(8, 2 - math.floor(math.log10(magnitude)))


def format_number(value: Any) -> str:
    value = _numeric(value)
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{_decimals(value)}f}"


def format_mean_std(mean: Any, std: Any) -> str:
    """``12.34 ± 0.56``; just the mean for one seed; ``–`` when nothing was measured."""
    mean, std = _numeric(mean), _numeric(std)
    if math.isnan(mean):
        return "–"
    if math.isinf(mean):
        return format_number(mean)
    digits = _decimals(mean)
    text = f"{mean:.{digits}f}"
    return text if math.isnan(std) else f"{text} ± {std:.{digits}f}"


def format_count(value: Any) -> str:
    """Human count: 950, 12.3k, 1.2M, 35.7M, 1.5G."""
    value = _numeric(value)
    if math.isnan(value):
        return "–"
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}"


def format_rate(value: Any) -> str:
    """Images per second: 3 significant digits, thousands separated."""
    value = _numeric(value)
    if math.isnan(value):
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"




def format_interval(low: Any, high: Any) -> str:
    """``[11.20, 14.80]``; ``–`` when there is no interval (fewer than two seeds)."""
    low, high = _numeric(low), _numeric(high)
    if math.isnan(low) or math.isnan(high):
        return "–"
    digits = _decimals(max(abs(low), abs(high)))
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def _int_text(value: Any) -> str:
    value = _numeric(value)
    return "–" if math.isnan(value) else f"{value:,.0f}"



def clean(text: str) -> str:
    """Replace terminal control characters (escape sequences, bells, CR, newlines, tabs) with
    ``�``: a name could retitle the terminal or move the cursor. Used for every string the table
    shows: cells, titles, column headers, captions."""
    return "".join(ch if ch.isprintable() or ch == " " else "�" for ch in str(text))
