"""The tuning trials of a board, beside its final lines (``zoo bench --tune``).

Lucic et al. 2018 report each GAN's FID over its hyperparameter trials as a distribution (box
plots), not only its best: a family whose best is good but whose trials are mostly bad is hard
to tune, and that is part of the answer. `plot_trials` draws, per model, a box plot of its
completed trials' primary metric with every trial as a dot (hollow: pruned early, at the last
value it reported), the model's final tuned line (mean over seeds) as a red diamond and the
real-versus-real floor as a dashed line. `trials_markdown` says the same in a table.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

__all__ = ["plot_trials", "trials_alt", "trials_markdown", "trials_summary"]


def _finals(lb: Any) -> dict[str, float]:
    """The mean primary metric of each model's tuned line (its best line when several)."""
    out: dict[str, float] = {}
    column = f"{lb.primary_metric}_mean"
    for line in lb.table.to_dict("records"):
        value = line.get(column)
        if isinstance(value, (int, float)) and math.isfinite(value):
            model = str(line["model"])
            best = out.get(model)
            if best is None or (value < best if lb.lower_is_better else value > best):
                out[model] = float(value)
    return out


def trials_summary(lb: Any) -> list[dict[str, Any]]:
    """Per model with trials: counts by state, min / median / max of completed ones, final value."""
    finals = _finals(lb)
    out = []
    for model, trials in sorted(lb.trials.items()):
        done = sorted(
            float(t["value"]) for t in trials if t["state"] == "complete" and _finite(t["value"])
        )
        out.append(
            {
                "model": model,
                "complete": len(done),
                "pruned": sum(t["state"] == "pruned" for t in trials),
                "failed": sum(t["state"] == "failed" for t in trials),
                "min": done[0] if done else math.nan,
                "median": _median(done),
                "max": done[-1] if done else math.nan,
                "final": finals.get(model, math.nan),
            }
        )
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _median(values: list[float]) -> float:
    if not values:
        return math.nan
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _horizontal() -> dict[str, Any]:
    """Matplotlib 3.10 names a horizontal box plot ``orientation``; older ones ``vert=False``."""
    import matplotlib

    major, minor = (int(p) for p in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


def plot_trials(lb: Any, fmt: str = "png") -> bytes | None:
    """A PNG (``fmt="svg"``: SVG) strip-and-box plot of each model's trials and its final line; ``None`` if none."""
    from matplotlib.figure import Figure  # the object-oriented API: Agg, no pyplot state

    models = sorted(
        m for m, ts in lb.trials.items() if any(_finite(t.get("last_value")) for t in ts)
    )
    if not models:
        return None
    finals = _finals(lb)
    fig = Figure(figsize=(5.6, max(2.4, 0.55 * len(models) + 1.4)), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    for y, model in enumerate(models):
        trials = lb.trials[model]
        done = [
            float(t["value"]) for t in trials if t["state"] == "complete" and _finite(t["value"])
        ]
        if len(done) >= 2:
            ax.boxplot(
                [done],
                positions=[y],
                widths=0.5,
                showfliers=False,
                **_horizontal(),
                medianprops={"color": "#57606a"},
                boxprops={"color": "#8c959f"},
                whiskerprops={"color": "#8c959f"},
                capprops={"color": "#8c959f"},
            )
        n = max(len(trials), 1)
        for i, t in enumerate(trials):
            value = t.get("last_value")
            if not _finite(value):
                continue
            jitter = (i / n - 0.5) * 0.3  # deterministic spread, so equal values stay visible
            pruned = t["state"] != "complete"
            ax.scatter(
                [value],
                [y + jitter],
                s=22,
                zorder=3,
                facecolors="none" if pruned else "#0969da",
                edgecolors="#0969da",
            )
        if model in finals:
            ax.scatter([finals[model]], [y], marker="D", s=46, color="#cf222e", zorder=4)
    floor = lb.floor.get(lb.primary_metric, math.nan)
    if _finite(floor):
        ax.axvline(
            floor, color="#0969da", linestyle="--", linewidth=1, label=f"real vs real ({floor:.3g})"
        )
        ax.legend(fontsize=8, loc="best")
    ax.set_yticks(range(len(models)), [_plot_text(m) for m in models])
    ax.set_xlabel(
        _plot_text(f"{lb.primary_metric} ({'lower' if lb.lower_is_better else 'higher'} is better)")
    )
    ax.set_title(
        _plot_text(
            f"tuning trials (dots; hollow: pruned) and final line (diamond), "
            f"{lb.tuning.get('n_trials')} trials each"
        ),
        fontsize=9,
    )
    ax.grid(axis="x", alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, metadata={"Software": None} if fmt == "png" else {"Date": None})
    return buf.getvalue()


def _plot_text(text: str) -> str:
    """Text made safe for matplotlib: control characters shown, ``$`` not read as mathtext."""
    from zoo.text import printable

    return printable(str(text)).replace("\n", " ").replace("$", r"\$")


def _number(value: float) -> str:
    return f"{value:.5g}" if math.isfinite(value) else "–"


def trials_alt(lb: Any) -> str:
    """The plot in words, for its alt text."""
    return "; ".join(
        f"{s['model']}: {s['complete']} completed trials, {lb.primary_metric} "
        f"{_number(s['min'])} to "
        f"{_number(s['max'])} (median {_number(s['median'])}), final {_number(s['final'])}"
        for s in trials_summary(lb)
    )


def trials_markdown(lb: Any, cell: Callable[[str], str]) -> str:
    """A Markdown table of each model's trials beside its final value; ``""`` without trials.
    ``cell`` escapes text for a Markdown table cell (the leaderboard's own rules)."""
    summary = trials_summary(lb)
    if not summary:
        return ""
    metric = lb.primary_metric
    lines = [
        cell(
            f"Tuning trials ({lb.tuning.get('n_trials')} per model at {lb.tuning.get('trial_budget')}): "
            f"{metric} of the completed trials beside the final line."
        )
        + "\n",
        "| model | trials (done / pruned / failed) | min | median | max | final |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in summary:
        lines.append(
            f"| {cell(s['model'])} | {s['complete']} / {s['pruned']} / {s['failed']} | "
            f"{_number(s['min'])} | {_number(s['median'])} | {_number(s['max'])} | {_number(s['final'])} |"
        )
    return "\n".join(lines) + "\n"
