"""The floor record: each metric's mean over the floor's draws, their spread and their count.

A floor (`zoo.metrics.compute_floor`, ``ResultRow.floor``) is a dict of metric means
(``{"fid_lenet": 8.4, ...}``) plus ``"spread"`` (``{metric: std over draws}``) and ``"draws"``.
Rows stored before protocol version 3 hold means only. These helpers read either.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: Keys of a floor record that are not metrics.
NOT_METRICS = ("spread", "draws")


def summarise(draws: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """A floor record from the metrics of each draw: means, ``"spread"`` (sample std, ddof=1; NaN
    for one draw is left out) and ``"draws"``. Raises ``ValueError`` for no draw."""
    if not draws:
        raise ValueError("a floor needs at least one draw")
    out: dict[str, Any] = {}
    spread: dict[str, float] = {}
    for key in draws[0]:
        values = [float(d[key]) for d in draws]
        mean = math.fsum(values) / len(values)
        out[key] = mean
        if len(values) > 1:
            spread[key] = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
    out["spread"] = spread
    out["draws"] = len(draws)
    return out


def floor_means(floor: Mapping[str, Any]) -> dict[str, Any]:
    """``{metric: mean}``: every key but `NOT_METRICS`."""
    return {k: v for k, v in floor.items() if k not in NOT_METRICS}


def floor_spread(floor: Mapping[str, Any]) -> dict[str, float]:
    """``{metric: std over the floor's draws}`` (empty for a floor of one draw or an older row)."""
    spread = floor.get("spread")
    if not isinstance(spread, Mapping):
        return {}
    out = {}
    for k, v in spread.items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            continue
    return out
