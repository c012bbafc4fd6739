"""The column model of a leaderboard, described once: every format renders from it.

`columns` lists the `Column` objects of a leaderboard (header, cell formatter,
alignment, drop order on a narrow terminal, metric arrow, the raw fields behind it);
`footnote` says what every format prints under the table (statistics, rank groups, power,
warnings). Metric columns come from the board's own metrics, so a new metric needs no code here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from zoo.bench.aggregate import Leaderboard
from zoo.bench.cellfmt import (
    format_count,
    format_interval,
    format_mean_std,
    format_number,
    format_rate,
)
from zoo.bench.cellfmt import numeric as _numeric
from zoo.bench.ranking import MAX_LETTER_LINES
from zoo.metric_names import higher_is_better

__all__ = ["CI_NOTE", "GROUP_NOTE", "Column", "View", "apply_view", "column_keys", "columns", "display_cells", "display_columns", "floor_cells",
           "footnote", "human_columns", "is_top_ranked", "machine_fields", "power_note"]

_MEMORY_KINDS = {"process_peak_rss": "RSS", "cuda_allocated": "CUDA"}
GROUP_NOTE = ("# is the position by mean. group: lines sharing a letter are not significantly different "
              "(all pairwise Welch t-tests over seeds, Holm-corrected at α = 0.05; a pair at uncorrected "
              "p < 0.01 never shares a letter); a line with one seed is not tested (–)")
CI_NOTE = "95% CI: Student-t interval of the mean over seeds"


def power_note(lb: Leaderboard) -> str:
    """The board's power in one sentence (see `board_power`)."""
    from zoo.bench.ranking import MAX_SEEDS

    p = lb.power
    if not p:
        return ("Power: no line has 2 seeds, so the seed-to-seed spread is unknown and no "
                "difference can be tested.")
    best = p["best_mean"]

    def share(value: float) -> str:
        return f" ({value / abs(best):.1%} of the best mean)" if best and math.isfinite(best) else ""

    text = (f"Power: seed-to-seed std {format_number(p['std'])} (pooled over {p['lines']} "
            f"line{'s' if p['lines'] != 1 else ''}); at {p['seeds']} seeds a line one Welch test "
            f"(two-sided, α = {p['alpha']:g}, before Holm) detects {p['power']:.0%} of the time a "
            f"difference of {format_number(p['detectable'])}{share(p['detectable'])}")
    if math.isfinite(p["target"]):
        needed = p["seeds_needed"]
        count = f"{needed} seeds a line" if needed else f"more than {MAX_SEEDS:,} seeds a line"
        text += f"; {p['target_fraction']:.0%} of the best mean ({format_number(p['target'])}) needs {count}"
    return text + "."



def _int_text(value: Any) -> str:
    value = _numeric(value)
    return "–" if math.isnan(value) else f"{value:,.0f}"


@dataclass(frozen=True)
class Column:
    """One column of a leaderboard, as every format shows it.

    ``cell`` turns a table line into the human text (terminal, Markdown, HTML); ``floor`` is the
    text on the real-vs-real line; ``fields`` are the raw table columns behind it, written as
    numbers by the machine formats (CSV, JSON). ``drop`` orders the columns a narrow terminal
    leaves out (1 first; ``None``: always shown); ``fold`` lets a text column wrap at that width;
    ``arrow`` is the metric's direction; ``human=False`` columns only exist in CSV and JSON.
    """

    key: str
    header: str
    cell: Callable[[Mapping[str, Any]], str] = lambda line: ""
    floor: str = ""
    align: str = "right"
    drop: int | None = None
    fold: int | None = None
    arrow: str = ""
    fields: tuple[str, ...] = ()
    human: bool = True

    @property
    def title(self) -> str:
        return f"{self.header} {self.arrow}" if self.arrow else self.header


def _metric_column(lb: Leaderboard, metric: str, drop: int | None) -> Column:
    return Column(
        key=metric, header=metric, arrow="↑" if higher_is_better(metric) else "↓", drop=drop,
        cell=lambda line: format_mean_std(line[f"{metric}_mean"], line[f"{metric}_std"]),
        floor=floor_text(lb, metric), fields=(f"{metric}_mean", f"{metric}_std"),
    )


def floor_text(lb: Leaderboard, metric: str) -> str:
    """The floor's mean ± its spread over draws (just the mean for rows stored before v3)."""
    mean, spread = lb.floor.get(metric, math.nan), lb.floor_spread.get(metric, math.nan)
    return format_number(mean) if math.isnan(_numeric(spread)) else format_mean_std(mean, spread)


def line_kinds(lb: Leaderboard) -> list[str]:
    """``"model"`` (trained by genzoo) or ``"external"`` (samples made elsewhere) per table line."""
    if "external_source" not in lb.table:
        return ["model"] * len(lb.table)
    return ["external" if s else "model" for s in lb.table["external_source"]]


def _memory_cell(line: Mapping[str, Any]) -> str:
    """``1,285 RSS`` (process peak resident memory on CPU) or ``412 CUDA`` (peak allocated)."""
    kind = line.get("memory_kind")
    kind = _MEMORY_KINDS.get(kind, kind) if isinstance(kind, str) and kind else ""
    text = _int_text(line.get("peak_memory_mb"))
    return f"{text} {kind}" if kind and text != "–" else text


def _rank_cell(line: Mapping[str, Any]) -> str:
    return "" if pd.isna(line["rank"]) else str(int(line["rank"]))


def _group_cell(line: Mapping[str, Any]) -> str:
    """The line's letters; ``–`` for a ranked line that was not tested (fewer than 2 seeds);
    empty for a tested line of a board that draws no letters (the footnote says why)."""
    if str(line["rank_group"]) or pd.isna(line["rank"]):
        return str(line["rank_group"])
    seeds = line.get("n_primary", line.get("n_seeds", 0))
    return "" if not pd.isna(seeds) and int(seeds) >= 2 else "–"


def _status_cell(line: Mapping[str, Any]) -> str:
    return str(line["status"]) if not line["error"] else f"{line['status']}: {line['error']}"


def columns(lb: Leaderboard) -> list[Column]:
    """Every column of ``lb`` in display order (human ones first-class, machine-only ones last),
    narrowed and reordered by the board's `View` when it has one."""
    cols = _all_columns(lb)
    view = lb.view
    if view is not None and view.columns:
        by_key = {c.key: c for c in cols}
        cols = [by_key[k] for k in view.columns if k in by_key]
    return cols


def _hidden_metrics(lb: Leaderboard) -> set[str]:
    """Metrics the view leaves out (``--metrics``); the primary metric is never left out."""
    if lb.view is None or not lb.view.metrics:
        return set()
    keep = set(lb.view.metrics) | {lb.primary_metric}
    return {m for m in lb.metrics if m not in keep and m.removesuffix("_std") not in keep}


def _all_columns(lb: Leaderboard) -> list[Column]:
    hidden = _hidden_metrics(lb)
    secondary = [m for m in lb.shown_metrics if m != lb.primary_metric and m not in hidden]
    cols = [
        Column("rank", "#", cell=_rank_cell, fields=("rank", "rank_group")),
        Column("model", "model", cell=lambda line: str(line["label"]), floor="real vs real", align="left", fold=24,
               fields=("label", "model", "config_label", "config_hash", "plugin", "plugin_version", "family", "preset",
                       "external_source")),
    ]
    if lb.has_options:
        cols.append(Column("options", "options", cell=lambda line: str(line["options"]), align="left", fold=18,
                           fields=("options", "sample_options")))
    if "sample_nfe" in lb.table.columns and lb.table["sample_nfe"].notna().any():
        # network evaluations per image: quality per unit of sampling work (diffusion, flow)
        cols.append(Column("sample_nfe", "NFE", cell=lambda line: format_count(line.get("sample_nfe")), drop=5,
                           fields=("sample_nfe",)))
    cols.append(_metric_column(lb, lb.primary_metric, None))
    cols.append(Column("group", "group", cell=_group_cell, align="left", fields=("rank_group",)))
    cols.append(Column("ci", "95% CI", cell=lambda line: format_interval(line["ci_low"], line["ci_high"]), drop=4,
                       fields=("ci_low", "ci_high")))
    cols += [_metric_column(lb, m, 100 - i) for i, m in enumerate(secondary)]  # the last metric goes first
    cols += [
        Column("train_images_per_s", "train img/s", cell=lambda line: format_rate(line.get("train_images_per_s")), drop=3,
               fields=("train_images_per_s",)),
        Column("sample_images_per_s", "sample img/s", cell=lambda line: format_rate(line.get("sample_images_per_s")),
               drop=5, fields=("sample_images_per_s",)),
        Column("peak_memory_mb", "peak MB", cell=_memory_cell, drop=1, fields=("peak_memory_mb", "memory_kind")),
        Column("params", "params", cell=lambda line: format_count(line.get("params")), drop=2, fields=("params",)),
        Column("seeds", "seeds", cell=lambda line: str(int(line["n_seeds"])), drop=6, fields=("n_seeds", "seeds")),
        Column("status", "status", cell=_status_cell, align="left", fold=12, fields=("status", "failed", "error")),
        Column("budget", "budget", human=False, fields=("budget_kind", "budget_amount", "budget_stopped_by", "precision")),
        Column("best", "best seed", human=False, fields=("best_seed", "grid_path")),
    ]
    covered = {f for c in cols for f in c.fields} | {f"{m}_{s}" for m in hidden for s in ("mean", "std")}
    rest = tuple(c for c in lb.table.columns if c not in covered)
    if rest:  # other metrics and costs: no human column, but nothing is lost in CSV and JSON
        cols.append(Column("other", "other", human=False, fields=rest))
    return cols


def human_columns(lb: Leaderboard) -> list[Column]:
    return [c for c in columns(lb) if c.human]


def machine_fields(lb: Leaderboard) -> list[str]:
    return list(dict.fromkeys(f for c in columns(lb) for f in c.fields if f in lb.table.columns))


def footnote(lb: Leaderboard) -> list[str]:
    """What every format says under the table: the statistics, the rank groups, single seeds,
    the board's power, warnings."""
    notes = [
        f"Ranked by {lb.primary_metric} ({lb.direction}); mean ± std over seeds (sample std, ddof=1); "
        "the first line is the real-vs-real floor of this protocol (held-out real images drawn the way a "
        "generator draws; ± its spread over the draws).",
        f"{CI_NOTE} (of {lb.primary_metric}). {GROUP_NOTE}.",
    ]
    singles = lb.single_seed_lines
    if singles:
        notes.append(f"{singles} line{'s' if singles != 1 else ''} with a single seed: no interval and no "
                     "group (a difference from it cannot be tested).")
    tested = lb.table[lb.table["rank"].notna() & (lb.table["n_seeds"] >= 2)] if len(lb.table) else lb.table
    if len(tested) > MAX_LETTER_LINES:
        notes.append(f"{len(tested):,} lines with several seeds: letter groups are drawn for at most "
                     f"{MAX_LETTER_LINES} (all-pairs tests grow as the square of the lines); no groups shown.")
    elif len(tested) >= 2 and not (tested["rank_group"] != "").any():  # rank_groups ran out of letters
        notes.append("too many groups for letters (more than 52): no groups shown.")
    notes.append(power_note(lb))
    return notes + [f"warning: {w}" for w in lb.warnings]


def display_columns(lb: Leaderboard) -> list[str]:
    """Titles of the human columns, in order (see `columns`)."""
    return [c.title for c in human_columns(lb)]


def display_cells(lb: Leaderboard, line: Mapping[str, Any]) -> list[str]:
    return [c.cell(line) for c in human_columns(lb)]


def floor_cells(lb: Leaderboard) -> list[str]:
    """The real-vs-real line, aligned with `display_columns`."""
    return [c.floor for c in human_columns(lb)]


def is_top_ranked(line: Mapping[str, Any]) -> bool:
    return not pd.isna(line["rank"]) and int(line["rank"]) == 1


def _lines(lb: Leaderboard) -> list[dict[str, Any]]:
    return lb.table.to_dict("records")




# -- a reader's view: which columns and metrics, in which order --------------------------------


@dataclass(frozen=True)
class View:
    """What a reader chose to see, honoured by every format (through `columns`).

    ``columns``: column keys in the order to show them (see `column_keys`; empty: all, in
    the usual order); ``metrics``: metric names to keep (empty: all; the primary metric, which
    ranks the board, always stays; ``kid_lenet`` keeps ``kid_lenet_std`` too); ``sort``: the
    column key the lines are ordered by (``rank`` when empty), with ``:asc`` or ``:desc``.
    """

    columns: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    sort: str = ""


def column_keys(lb: Leaderboard) -> list[str]:
    """The keys ``--columns`` and ``--sort`` accept for ``lb`` (every column, machine-only ones too)."""
    return [c.key for c in _all_columns(dataclasses.replace(lb, view=None))]


def _sort_field(lb: Leaderboard, key: str) -> tuple[str, bool] | None:
    """The table field a column sorts by and whether its natural order is descending (metrics
    best first, rates fastest first); ``None`` when the board has no such column."""
    col = next((c for c in _all_columns(dataclasses.replace(lb, view=None)) if c.key == key), None)
    if col is None or not col.fields:
        return None
    field = {"model": "label", "rank": "rank", "ci": "ci_low", "seeds": "n_seeds", "status": "failed"}.get(
        key, col.fields[0])
    if field not in lb.table.columns:
        return None
    return field, col.arrow == "↑" or field.endswith("_per_s")


def apply_view(boards: Sequence[Leaderboard], columns: Sequence[str] = (), metrics: Sequence[str] = (),
               sort: str = "") -> list[Leaderboard]:
    """``boards`` as a reader asked to see them (``zoo leaderboard --columns/--metrics/--sort``):
    copies carrying a `View`, their lines in the chosen order (lines without a value for the
    sort key last; ties keep the rank order). Ranks and groups do not change: they always come from
    the primary metric.

    Raises [`UnknownNameError`][zoo.errors.UnknownNameError] (exit 2) for a column, metric or sort key that no
    board has, and [`UsageError`][zoo.errors.UsageError] for a sort direction other than asc/desc or
    columns that are all machine-only (``budget``, ``best``, ``other``: no table could show them)."""
    from zoo.errors import UnknownNameError, UsageError

    columns, metrics = tuple(dict.fromkeys(columns)), tuple(dict.fromkeys(metrics))
    if not boards or not (columns or metrics or sort):
        return list(boards)
    keys = list(dict.fromkeys(k for lb in boards for k in column_keys(lb)))
    for key in columns:
        if key not in keys:
            raise UnknownNameError("leaderboard column", key, keys)
    shown = {c.key for lb in boards for c in _all_columns(dataclasses.replace(lb, view=None)) if c.human}
    if columns and not shown & set(columns):  # a table of no column: name one a table shows
        raise UsageError(f"--columns {','.join(columns)}: none of these is shown in a table; add one, "
                         "e.g. rank,model")
    known_metrics = sorted({m for lb in boards for m in lb.metrics})
    for metric in metrics:
        if metric not in known_metrics:
            raise UnknownNameError("metric", metric, known_metrics)
    key, _, direction = sort.partition(":")
    if direction not in ("", "asc", "desc"):
        raise UsageError(f"--sort {sort!r}: the direction after ':' is asc or desc")
    if key and key not in keys:
        raise UnknownNameError("leaderboard column to sort by", key, keys)
    out = []
    for lb in boards:
        table = lb.table
        found = _sort_field(lb, key) if key and key != "rank" else None
        if found is not None and len(table):
            field, descending = found
            descending = {"asc": False, "desc": True}.get(direction, descending)
            table = table.sort_values(field, ascending=not descending, na_position="last",
                                      kind="stable").reset_index(drop=True)
        elif key == "rank" and direction == "desc" and len(table):
            table = table.sort_values("rank", ascending=False, na_position="last", kind="stable")
            table = table.reset_index(drop=True)
        out.append(dataclasses.replace(lb, table=table, view=View(columns, metrics, sort), _grouped=None))
    return out
