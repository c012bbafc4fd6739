"""Leaderboards: result rows grouped by dataset and protocol, seeds aggregated, lines ranked, and
rendered in every format.

This module is the stable import path; the work lives in one module per job:
`zoo.bench.aggregate` (rows to ranked tables and their statistics: what a line is, how seeds are
averaged and how rank groups are tested), `zoo.bench.cellfmt` (number formatting),
`zoo.bench.columns` (the column model every format renders from, and the footnotes; a `View`,
``--columns``/``--metrics``/``--sort``, narrows it) and one module per format under
`zoo.bench.render`.
"""

from __future__ import annotations

from zoo.bench.aggregate import (
    ALPHA,
    COST_COLUMNS,
    LINE_KEY,
    TARGET_FRACTION,
    TEXT_COSTS,
    Leaderboard,
    _intervals,  # noqa: F401 - a private name tests import from here
    board_power,
    budget_label,
    build_leaderboard,
    is_quality_metric,
    leaderboards,
    line_key,
    line_key_of,
    options_label,
    pair_p_value,
    rank_groups,
    welch_p_value,
)
from zoo.bench.cellfmt import (
    format_count,
    format_interval,
    format_mean_std,
    format_number,
    format_rate,
)
from zoo.bench.columns import (
    CI_NOTE,
    GROUP_NOTE,
    Column,
    View,
    apply_view,
    columns,
    display_cells,
    display_columns,
    floor_cells,
    floor_text,
    footnote,
    human_columns,
    is_top_ranked,
    line_kinds,
    machine_fields,
    power_note,
)
from zoo.bench.render.csvfile import RANK_TEST, to_csv
from zoo.bench.render.jsonfile import leaderboard_dict, to_json
from zoo.bench.render.latex import to_latex
from zoo.bench.render.markdown import to_markdown
from zoo.bench.render.terminal import print_leaderboards, render_table, to_text
from zoo.metric_names import higher_is_better

__all__ = [
    "ALPHA",
    "CI_NOTE",
    "COST_COLUMNS",
    "GROUP_NOTE",
    "LINE_KEY",
    "RANK_TEST",
    "TARGET_FRACTION",
    "TEXT_COSTS",
    "Column",
    "Leaderboard",
    "View",
    "apply_view",
    "board_power",
    "budget_label",
    "build_leaderboard",
    "columns",
    "display_cells",
    "display_columns",
    "floor_cells",
    "floor_text",
    "footnote",
    "format_count",
    "format_interval",
    "format_mean_std",
    "format_number",
    "format_rate",
    "higher_is_better",
    "human_columns",
    "is_quality_metric",
    "is_top_ranked",
    "leaderboard_dict",
    "leaderboards",
    "line_key",
    "line_kinds",
    "line_key_of",
    "machine_fields",
    "options_label",
    "pair_p_value",
    "power_note",
    "print_leaderboards",
    "rank_groups",
    "render_table",
    "to_csv",
    "to_json",
    "to_latex",
    "to_markdown",
    "to_text",
    "welch_p_value",
]
