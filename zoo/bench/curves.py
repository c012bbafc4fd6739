"""Quality-versus-compute curves of a leaderboard, averaged over seeds: the data behind the
page's plots and the ``curves`` of ``--format json``.

A row's curve is its evaluations along the training budget (``ResultRow.curve``: points with a
budget ``fraction``, compute so far and ``metrics``); rows without one contribute their final
point. Lines are averaged over seeds point by point (same budget fraction).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from zoo.bench.aggregate import Leaderboard, line_key, options_label
from zoo.bench.store import ResultRow

__all__ = ["COMPUTE_AXES", "compute_curves", "curves_dict", "steps_curves"]

#: Axis names of the quality-versus-compute plots, by the curve point field on the x axis.
COMPUTE_AXES = {"train_flops": "training FLOPs", "train_seconds": "training time (s)"}


def _value(mapping: Mapping[str, Any] | None, key: str) -> float:
    value = (mapping or {}).get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _row_curve(row: ResultRow, x_key: str, metric: str) -> list[tuple[float, float, float]]:
    """``(fraction, x, y)`` points of one row: its stored curve, or its final point alone (rows of
    other sampler settings, and rows written before curves were stored)."""
    points = []
    for point in row.curve or [{"fraction": 1.0, **row.costs, "metrics": row.metrics}]:
        x, y = _value(point, x_key), _value(point.get("metrics"), metric)
        if not (math.isnan(x) or math.isnan(y)) and x > 0:
            points.append((_value(point, "fraction"), x, y))
    return points


def compute_curves(lb: Leaderboard, x_key: str) -> dict[str, list[tuple[float, float, float]]]:
    """Per table line (by label), the quality-versus-compute curve averaged over seeds: a list of
    ``(x, mean, std)`` sorted by x, one point per budget fraction (x is the mean over seeds of
    ``x_key``, e.g. ``train_flops``; std is the sample std of the primary metric, 0 for one seed)."""
    curves: dict[str, list[tuple[float, float, float]]] = {}
    for line in lb.table.to_dict("records"):
        by_fraction: dict[float, list[tuple[float, float]]] = {}
        for row in lb.rows_of(line):
            if row.status != "ok":
                continue
            for fraction, x, y in _row_curve(row, x_key, lb.primary_metric):
                by_fraction.setdefault(round(fraction, 6), []).append((x, y))
        points = []
        for pairs in by_fraction.values():
            x, _ = _mean_std([p[0] for p in pairs])
            y, spread = _mean_std([p[1] for p in pairs])
            points.append((x, y, spread))
        if points:
            curves[lb.line_label(line)] = sorted(points)
    return curves


def steps_curves(lb: Leaderboard) -> dict[str, dict[float, list[float]]]:
    curves: dict[str, dict[float, list[float]]] = {}
    labels = {line_key(r): str(line["label"]) for line in lb.table.to_dict("records") for r in lb.rows_of(line)}
    for row in lb.rows:
        steps = _value(row.sample_options, "steps")
        y = _value(row.metrics, lb.primary_metric)
        if row.status != "ok" or math.isnan(steps) or math.isnan(y):
            continue
        rest = {k: v for k, v in row.sample_options.items() if k != "steps"}
        label = labels.get(line_key(row), row.model) + (f" · {options_label(rest)}" if rest else "")
        curves.setdefault(label, {}).setdefault(steps, []).append(y)
    return curves


def curves_dict(lb: Leaderboard) -> dict[str, Any]:
    """The curves as JSON-ready data: per compute axis (`COMPUTE_AXES`) the primary metric
    against that compute, one entry per line that has a point (``label``, ``points`` of ``x``,
    ``mean``, ``std``); ``steps``: the primary metric against the sampling steps, one entry per
    model and sampler (``points`` of ``steps``, ``mean``, ``std``, ``n`` seeds)."""
    out: dict[str, Any] = {"metric": lb.primary_metric, "axes": dict(COMPUTE_AXES), "compute": {}, "steps": []}
    for x_key in COMPUTE_AXES:
        out["compute"][x_key] = [
            {"label": label, "points": [{"x": x, "mean": y, "std": sd} for x, y, sd in points]}
            for label, points in compute_curves(lb, x_key).items()]
    for label, points in sorted(steps_curves(lb).items()):
        stats = [(x, *_mean_std(points[x]), len(points[x])) for x in sorted(points)]
        out["steps"].append({"label": label, "points": [{"steps": x, "mean": m, "std": sd, "n": n}
                                                        for x, m, sd, n in stats]})
    return out
