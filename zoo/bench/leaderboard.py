"""Leaderboards: result rows grouped by dataset and protocol, seeds aggregated, lines ranked.

Rows measured under different protocols (sample counts, backbone, resize, metric library...) are
never ranked together: `leaderboards` (from a store) and `build_leaderboard` (from rows)
return one `Leaderboard` per (dataset, protocol_hash). Within one, a line is a run identity
without its seed: model, plugin and version, config hash, budget, precision and sampling options
(so two learning rates, two budgets, or DDIM at 50 steps and DDPM at 1000 steps are separate lines,
never averaged together). Its metrics are the mean and sample standard deviation (ddof=1) over
seeds, with a 95% Student-t confidence interval of the primary metric. ``rank`` is the position by
mean; ``rank_group`` holds letters from all pairwise Welch t-tests over seeds (Holm-corrected, see
`zoo.bench.ranking`): lines sharing a letter are not significantly different, and a line with
one seed is not tested (no letter). Each board also states its power (`power_note`). The
protocol's real-versus-real floor travels with the table, since FID is biased by sample count and
perfect samples do not score 0 (Chong & Forsyth 2020).

Presentation is described once: `columns` lists the `Column` objects of a leaderboard
(header, cell formatter, alignment, drop order on a narrow terminal, metric arrow, the raw fields
behind it), and every format (terminal, CSV, Markdown, JSON, LaTeX, HTML) renders from that
description; a `View` (``--columns``, ``--metrics``, ``--sort``) narrows it.

This module is the stable import path; the work lives in one module per job:
`zoo.bench.aggregate` (rows to ranked tables and their statistics), `zoo.bench.cellfmt`
(number formatting), `zoo.bench.columns` (the column model and footnotes) and one module per
format under `zoo.bench.render`.
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
