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

import pandas as pd

from zoo.bench.aggregate import LINE_KEY, Leaderboard, line_key, line_key_of, options_label
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


def _lines(lb: Leaderboard) -> list[tuple[str, str, list[ResultRow]]]:
    """``(label, line label, rows)`` of each table line, in table order (only the columns that
    name a line are read: a board of 10^4 lines has dozens of columns)."""
    needed = ["label", "options", *LINE_KEY]
    columns = [lb.table[k].tolist() for k in needed]
    groups = lb.line_rows()
    out = []
    for values in zip(*columns, strict=True):
        line = dict(zip(needed, values, strict=True))
        out.append((str(line["label"]), lb.line_label(line), groups.get(line_key_of(line), [])))
    return out


def compute_curves(lb: Leaderboard, x_key: str) -> dict[str, list[tuple[float, float, float]]]:
    """Per table line (by label), the quality-versus-compute curve averaged over seeds: a list of
    ``(x, mean, std)`` sorted by x, one point per budget fraction (x is the mean over seeds of
    ``x_key``, e.g. ``train_flops``; std is the sample std of the primary metric, 0 for one seed)."""
    return _compute_curves(lb, (x_key,))[x_key]


def _compute_curves(lb: Leaderboard, x_keys: tuple[str, ...]) -> dict[str, dict[str, list[tuple[float, float, float]]]]:
    """`compute_curves` for several x axes at once: every curve point of the board in one frame,
    averaged by pandas per (line, fraction)."""
    metric = lb.primary_metric
    lines, fractions, ys = [], [], []
    xs: dict[str, list[float]] = {x_key: [] for x_key in x_keys}
    labels = []
    for index, (_, label, rows) in enumerate(_lines(lb)):
        labels.append(label)
        for row in rows:
            if row.status != "ok":
                continue
            for point in row.curve or [{"fraction": 1.0, **row.costs, "metrics": row.metrics}]:
                y = _value(point.get("metrics"), metric)
                if math.isnan(y):
                    continue
                lines.append(index)
                fractions.append(round(_value(point, "fraction"), 6))
                ys.append(y)
                for x_key in x_keys:
                    xs[x_key].append(_value(point, x_key))
    curves: dict[str, dict[str, list[tuple[float, float, float]]]] = {x_key: {} for x_key in x_keys}
    if not ys:
        return curves
    frame = pd.DataFrame({"line": lines, "fraction": fractions, "y": ys, **{f"x:{k}": v for k, v in xs.items()}})
    for x_key in x_keys:
        kept = frame[frame[f"x:{x_key}"] > 0]  # NaN is not
        grouped = kept.groupby(["line", "fraction"], sort=False, dropna=False)
        points = pd.DataFrame({"x": grouped[f"x:{x_key}"].mean(), "y": grouped["y"].mean(),
                               "sd": grouped["y"].std().fillna(0.0)}).reset_index()  # one seed: 0
        points = points.sort_values(["line", "x", "y", "sd"], kind="stable")
        for index, part in points.groupby("line", sort=True):
            curves[x_key][labels[int(index)]] = list(zip(part["x"].tolist(), part["y"].tolist(),
                                                         part["sd"].tolist(), strict=True))
    # In table order, as the lines are (the plots draw and the JSON lists them in that order).
    order = {label: k for k, label in enumerate(labels)}
    return {x_key: dict(sorted(found.items(), key=lambda item: order[item[0]])) for x_key, found in curves.items()}


def steps_curves(lb: Leaderboard) -> dict[str, dict[float, list[float]]]:
    curves: dict[str, dict[float, list[float]]] = {}
    labels = {line_key(rows[0]): label for label, _, rows in _lines(lb) if rows}
    for row in lb.rows:
        steps = _value(row.sample_options, "steps")
        if math.isnan(steps) or row.status != "ok":
            continue
        y = _value(row.metrics, lb.primary_metric)
        if math.isnan(y):
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
    for x_key, curves in _compute_curves(lb, tuple(COMPUTE_AXES)).items():
        out["compute"][x_key] = [
            {"label": label, "points": [{"x": x, "mean": y, "std": sd} for x, y, sd in points]}
            for label, points in curves.items()]
    for label, points in sorted(steps_curves(lb).items()):
        stats = [(x, *_mean_std(points[x]), len(points[x])) for x in sorted(points)]
        out["steps"].append({"label": label, "points": [{"steps": x, "mean": m, "std": sd, "n": n}
                                                        for x, m, sd, n in stats]})
    return out
