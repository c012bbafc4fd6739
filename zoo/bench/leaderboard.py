"""Leaderboards: result rows grouped by dataset and protocol, seeds aggregated, models ranked.

Rows measured under different protocols (sample counts, backbone, resize, metric library...) are
never ranked together: :func:`build_leaderboard` returns one :class:`Leaderboard` per
(dataset, protocol_hash). Within one, each line is a model with one set of sampling options (DDIM
at 50 steps and DDPM at 1000 steps are two lines) and one preset (training budget); its metrics are
the mean and sample standard deviation (ddof=1) over seeds. The protocol's real-versus-real floor
travels with the table, since FID is biased by sample count and perfect samples do not score 0
(Chong & Forsyth 2020, "Effectively Unbiased FID and Inception Score and where to find them").
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from zoo.bench.store import ResultRow, canonical_json

__all__ = [
    "COST_COLUMNS",
    "Leaderboard",
    "build_leaderboard",
    "format_count",
    "format_mean_std",
    "higher_is_better",
    "options_label",
    "print_leaderboards",
    "render_table",
    "to_csv",
    "to_json",
    "to_markdown",
]

# Metric name prefixes where a larger value is better; everything else (FID, KID, ...) is a distance.
_HIGHER_BETTER = ("is_", "isc", "precision", "recall", "density", "coverage", "accuracy")
# Display order of metric families after the primary metric.
_METRIC_ORDER = ("fid", "kid", "is", "isc", "precision", "recall")
COST_COLUMNS = (
    "train_images_per_s",
    "sample_images_per_s",
    "sample_steps",
    "peak_memory_mb",
    "params",
    "train_flops_per_image",
    "sample_flops_per_image",
    "achieved_train_flops_per_s",
    "train_seconds",
    "train_steps",
    "batch_size",
)
_KEY = ["model", "sample_options", "preset"]


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (IS, precision, recall) or worse (FID, KID)."""
    return metric.lower().startswith(_HIGHER_BETTER)


def is_quality_metric(metric: str) -> bool:
    """Metrics shown as columns; ``kid_*_std`` (KID's spread over subsets) is kept but not shown."""
    return not metric.endswith("_std")


def options_label(options: dict[str, Any] | str) -> str:
    """Human label of sampling options: ``{"sampler": "ddim", "steps": 50}`` -> ``ddim, steps=50``."""
    if isinstance(options, str):
        options = json.loads(options) if options else {}
    if not options:
        return "default"
    parts = [str(options["sampler"])] if "sampler" in options else []
    parts += [f"{k}={v}" for k, v in sorted(options.items()) if k != "sampler"]
    return ", ".join(parts)


@dataclass
class Leaderboard:
    """One ranked table: every line was measured under the same protocol on the same dataset.

    ``table`` has one line per (model, sample_options, preset) with columns ``rank`` (nullable:
    models without a successful seed are listed last, unranked), ``model``, ``options`` (label),
    ``sample_options`` (canonical JSON), ``preset``, ``family``, ``plugin``, ``plugin_version``,
    ``n_seeds`` (successful seeds), ``seeds``, ``failed``, ``status``, ``<metric>_mean`` and
    ``<metric>_std`` for every metric, the mean of every cost, ``error`` (the latest failure),
    ``best_seed`` and ``grid_path`` (of the best seed by the primary metric). A metric that is
    itself a spread (``kid_lenet_std``) gets ``kid_lenet_std_mean``/``_std`` like any other, so
    ``kid_lenet_std`` is always the spread of ``kid_lenet`` over seeds.
    """

    dataset: str
    protocol_hash: str
    protocol: dict[str, Any]
    primary_metric: str
    lower_is_better: bool
    floor: dict[str, float]
    table: pd.DataFrame
    metrics: list[str]
    costs: list[str]
    rows: list[ResultRow] = field(repr=False, default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.dataset} · protocol {self.protocol_hash[:12]}"

    @property
    def direction(self) -> str:
        return "lower is better" if self.lower_is_better else "higher is better"

    @property
    def shown_metrics(self) -> list[str]:
        return [m for m in self.metrics if is_quality_metric(m)]

    @property
    def has_options(self) -> bool:
        """Whether any line has non-default sampling options (else the column is left out)."""
        return bool(len(self.table)) and bool((self.table["options"] != "default").any())

    @property
    def presets(self) -> list[str]:
        return sorted(set(self.table["preset"])) if len(self.table) else []

    def line_rows(self) -> dict[tuple[str, str, str], list[ResultRow]]:
        """The rows behind each table line, keyed like the table: (model, sample_options, preset)."""
        return _group(self.rows)

    def line_label(self, line: pd.Series | dict[str, Any]) -> str:
        """``model · options`` (plus ``[preset]`` when the board mixes presets)."""
        label = str(line["model"])
        if line["options"] != "default":
            label += f" · {line['options']}"
        if len(self.presets) > 1:
            label += f" [{line['preset'] or 'no preset'}]"
        return label


def build_leaderboard(
    rows: Iterable[ResultRow], dataset: str | None = None, protocol_hash: str | None = None
) -> list[Leaderboard]:
    """One :class:`Leaderboard` per (dataset, protocol_hash) among ``rows``, sorted by dataset then
    protocol; ``dataset`` / ``protocol_hash`` keep only matching rows."""
    groups: dict[tuple[str, str], list[ResultRow]] = {}
    for row in rows:
        if dataset is not None and row.dataset != dataset:
            continue
        if protocol_hash is not None and row.protocol_hash != protocol_hash:
            continue
        groups.setdefault((row.dataset, row.protocol_hash), []).append(row)
    return [_build_one(ds, ph, group) for (ds, ph), group in sorted(groups.items())]


def _metric_sort_key(metric: str, primary: str) -> tuple[int, int, str]:
    if metric == primary:
        return (0, 0, metric)
    stem = metric.split("_")[0].lower()
    family = _METRIC_ORDER.index(stem) if stem in _METRIC_ORDER else len(_METRIC_ORDER)
    return (1, family, metric)


def _numeric(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _build_one(dataset: str, protocol_hash: str, rows: list[ResultRow]) -> Leaderboard:
    rows = sorted(rows, key=lambda r: r.created_at)
    protocol = rows[-1].protocol
    ok_rows = [r for r in rows if r.status == "ok"]
    metric_names = sorted({k for r in ok_rows for k in r.metrics} | {k for r in rows for k in r.floor})
    primary = protocol.get("primary_metric") or next(
        (m for m in metric_names if m.startswith("fid")), metric_names[0] if metric_names else "fid"
    )
    metric_names = sorted(set(metric_names) | {primary}, key=lambda m: _metric_sort_key(m, primary))
    cost_names = [c for c in COST_COLUMNS if any(c in r.costs for r in rows)]
    cost_names += sorted({k for r in rows for k in r.costs} - set(cost_names))
    lower = not higher_is_better(primary)

    warnings: list[str] = []
    floors = [r.floor for r in rows if r.floor]
    floor = {k: _numeric(v) for k, v in (floors[-1] if floors else {}).items()}
    if any(canonical_json(f) != canonical_json(floors[-1]) for f in floors):
        warnings.append("rows of this protocol disagree on the real-vs-real floor; showing the latest")

    records = [
        {
            "model": r.model,
            "sample_options": canonical_json(r.sample_options),
            "preset": r.preset,
            "seed": r.seed,
            "ok": r.status == "ok",
            **{f"m:{m}": _numeric(r.metrics.get(m)) for m in metric_names},
            **{f"c:{c}": _numeric(r.costs.get(c)) for c in cost_names},
        }
        for r in rows
    ]
    frame = pd.DataFrame.from_records(records)
    ok = frame[frame["ok"]]
    metric_cols = [f"m:{m}" for m in metric_names]
    cost_cols = [f"c:{c}" for c in cost_names]
    # Sample standard deviation over seeds (ddof=1): NaN for a single seed, shown as no "±".
    means = ok.groupby(_KEY, sort=False)[metric_cols].mean()
    stds = ok.groupby(_KEY, sort=False)[metric_cols].std(ddof=1)
    cost_means = ok.groupby(_KEY, sort=False)[cost_cols].mean()

    lines = []
    for key, line_rows in _group(rows).items():
        model, options, preset = key
        good = [r for r in line_rows if r.status == "ok"]
        bad = [r for r in line_rows if r.status != "ok"]
        latest = line_rows[-1]
        line: dict[str, Any] = {
            "rank": pd.NA,
            "model": model,
            "options": options_label(options),
            "sample_options": options,
            "preset": preset,
            "family": latest.family,
            "plugin": latest.plugin,
            "plugin_version": latest.plugin_version,
            "n_seeds": len({r.seed for r in good}),
            "seeds": ",".join(str(s) for s in sorted({r.seed for r in good})),
            "failed": len(bad),
            "status": _status(len(good), len(bad)),
        }
        for m in metric_names:
            has = key in means.index
            line[f"{m}_mean"] = means.at[key, f"m:{m}"] if has else math.nan
            line[f"{m}_std"] = stds.at[key, f"m:{m}"] if has else math.nan
        for c in cost_names:
            line[c] = cost_means.at[key, f"c:{c}"] if key in cost_means.index else math.nan
        line["error"] = _first_line(bad[-1].error) if bad else ""
        best = _best_row(good, primary, lower) or latest
        line["best_seed"] = best.seed
        line["grid_path"] = best.grid_path or ""
        lines.append(line)

    table = pd.DataFrame.from_records(lines)
    score = table[f"{primary}_mean"].astype(float)
    table["rank"] = score.rank(method="min", ascending=lower).astype("Int64")
    table = table.sort_values(["rank", "model", "options", "preset"], na_position="last", kind="stable")
    table = table.reset_index(drop=True)
    for col in ("n_seeds", "failed", "best_seed"):
        table[col] = table[col].astype("int64")

    return Leaderboard(
        dataset=dataset,
        protocol_hash=protocol_hash,
        protocol=protocol,
        primary_metric=primary,
        lower_is_better=lower,
        floor=floor,
        table=table,
        metrics=metric_names,
        costs=cost_names,
        rows=rows,
        warnings=warnings,
    )


def _group(rows: list[ResultRow]) -> dict[tuple[str, str, str], list[ResultRow]]:
    groups: dict[tuple[str, str, str], list[ResultRow]] = {}
    for r in rows:
        groups.setdefault((r.model, canonical_json(r.sample_options), r.preset), []).append(r)
    return groups


def _best_row(rows: list[ResultRow], metric: str, lower: bool) -> ResultRow | None:
    scored = [(v, r) for r in rows if not math.isnan(v := _numeric(r.metrics.get(metric)))]
    if not scored:
        return None
    pick = min if lower else max
    return pick(scored, key=lambda pair: pair[0])[1]


def _status(ok: int, failed: int) -> str:
    if not failed:
        return "ok"
    if not ok:
        return "failed"
    return f"{ok} ok, {failed} failed"


def _first_line(text: str | None, limit: int = 200) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


# -- number formatting -------------------------------------------------------------------------


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


# -- human-facing columns (shared by the terminal, Markdown and HTML) ----------------------------


def primary_header(lb: Leaderboard) -> str:
    return f"{lb.primary_metric} {'↓' if lb.lower_is_better else '↑'}"


def display_columns(lb: Leaderboard) -> list[str]:
    """Headers of the human table, in order; :func:`display_cells` gives the matching cells."""
    cols = ["#", "model"] + (["options"] if lb.has_options else [])
    if len(lb.presets) > 1:
        cols.append("preset")
    cols.append(primary_header(lb))
    cols += [m for m in lb.shown_metrics if m != lb.primary_metric]
    cols += ["train img/s", "sample img/s", "peak MB", "params", "seeds", "status"]
    return cols


def display_cells(lb: Leaderboard, line: pd.Series) -> list[str]:
    rank = line["rank"]
    cells = ["" if pd.isna(rank) else str(int(rank)), str(line["model"])]
    if lb.has_options:
        cells.append(str(line["options"]))
    if len(lb.presets) > 1:
        cells.append(str(line["preset"]) or "–")
    for m in [lb.primary_metric] + [m for m in lb.shown_metrics if m != lb.primary_metric]:
        cells.append(format_mean_std(line[f"{m}_mean"], line[f"{m}_std"]))
    cells += [
        format_rate(line.get("train_images_per_s")),
        format_rate(line.get("sample_images_per_s")),
        _int_text(line.get("peak_memory_mb")),
        format_count(line.get("params")),
        str(int(line["n_seeds"])),
        str(line["status"]) if not line["error"] else f"{line['status']}: {line['error']}",
    ]
    return cells


def floor_cells(lb: Leaderboard) -> list[str]:
    """The real-vs-real line, aligned with :func:`display_columns`."""
    cells = ["", "real vs real"] + ([""] if lb.has_options else [])
    if len(lb.presets) > 1:
        cells.append("")
    for m in [lb.primary_metric] + [m for m in lb.shown_metrics if m != lb.primary_metric]:
        cells.append(format_number(lb.floor.get(m, math.nan)))
    cells += ["", "", "", "", "", ""]
    return cells


def is_top_ranked(line: pd.Series) -> bool:
    return not pd.isna(line["rank"]) and int(line["rank"]) == 1


def _int_text(value: Any) -> str:
    value = _numeric(value)
    return "–" if math.isnan(value) else f"{value:,.0f}"


# -- renderers -----------------------------------------------------------------------------------


_TEXT_COLUMNS = {"model", "options", "preset", "status"}
# Columns dropped, in this order, when the terminal is too narrow for the whole table.
_DROPPABLE = ("peak MB", "params", "train img/s")


def _drop_order(columns: list[str], primary_header: str) -> list[str]:
    metrics = [c for c in columns if c not in _TEXT_COLUMNS and c != primary_header
               and c not in {"#", "seeds", "sample img/s", *_DROPPABLE}]
    return [c for c in _DROPPABLE if c in columns] + metrics[::-1]


def render_table(lb: Leaderboard, width: int | None = None):  # noqa: ANN201 - rich is imported lazily
    """A rich Table for the terminal; the floor is the first, highlighted line.

    Given a console ``width``, secondary columns (memory, parameters, train throughput, then
    secondary metrics) are left out until the table fits, and the caption says so. Every string
    from a row is passed as :class:`rich.text.Text`, so third-party names cannot inject markup.
    """
    from rich.table import Table
    from rich.text import Text

    columns = display_columns(lb)
    body = [floor_cells(lb)]
    for _, line in lb.table.iterrows():
        cells = display_cells(lb, line)
        if len(cells[-1]) > 60:
            cells[-1] = cells[-1][:59] + "…"
        body.append(cells)

    # Numbers never wrap (a wrapped "12.00 ± 2.00" is unreadable); long names and errors fold,
    # but not below these widths.
    fold_at = {"model": 24, "options": 18, "preset": 12, "status": 12}
    widths = {c: max([len(c)] + [len(r[i]) for r in body]) for i, c in enumerate(columns)}
    widths = {c: min(w, fold_at[c]) if c in fold_at else w for c, w in widths.items()}

    def needed(cols: list[str]) -> int:  # content + padding and borders
        return sum(widths[c] for c in cols) + 3 * len(cols) + 1

    shown = list(columns)
    hidden = []
    for col in _drop_order(columns, primary_header(lb)):
        if width is None or needed(shown) <= width:
            break
        shown.remove(col)
        hidden.append(col)

    floor_text = format_number(lb.floor.get(lb.primary_metric, math.nan))
    caption = "mean ± std over seeds (ddof=1); floor = real-vs-real score of this protocol"
    if hidden:
        caption += f"\nnot shown (terminal too narrow): {', '.join(hidden)}; try --format markdown"
    caption += "".join(f"\nwarning: {w}" for w in lb.warnings)
    table = Table(
        title=Text(f"{lb.title} · {lb.primary_metric} ({lb.direction}) · floor {floor_text}"),
        title_justify="left",
        caption=Text(caption),
        caption_justify="left",
    )
    for col in shown:
        text = col in _TEXT_COLUMNS
        table.add_column(col, justify="left" if text else "right", no_wrap=not text, overflow="fold",
                         min_width=widths[col] if text else None)
    keep = [columns.index(c) for c in shown]
    table.add_row(*[Text(body[0][i]) for i in keep], style="italic cyan")
    for (_, line), cells in zip(lb.table.iterrows(), body[1:], strict=True):
        texts = [Text(cells[i]) for i in keep]
        failed = line["n_seeds"] == 0
        if line["failed"]:
            texts[-1].stylize("red" if failed else "yellow")
        table.add_row(*texts, style="dim" if failed else ("bold" if is_top_ranked(line) else None))
    return table


def print_leaderboards(leaderboards: Sequence[Leaderboard], console: Any = None) -> None:
    """Print every leaderboard to ``console`` (a rich Console; stdout by default), fitted to its width."""
    if console is None:
        from rich.console import Console

        console = Console()
    for i, lb in enumerate(leaderboards):
        if i:
            console.print()
        console.print(render_table(lb, width=console.width))


def _csv_frame(lb: Leaderboard) -> pd.DataFrame:
    table = lb.table.copy()
    table.insert(0, "kind", "model")
    floor = {"kind": "floor", "model": "real vs real", "status": "floor", "n_seeds": 0, "failed": 0}
    floor.update({f"{m}_mean": lb.floor.get(m, math.nan) for m in lb.metrics})
    table = pd.concat([pd.DataFrame([floor]), table], ignore_index=True)[list(table.columns)]
    for name, value in (("primary_metric", lb.primary_metric), ("protocol_hash", lb.protocol_hash), ("dataset", lb.dataset)):
        table.insert(0, name, value)
    return table


def to_csv(leaderboards: Sequence[Leaderboard]) -> str:
    """One CSV for all leaderboards: a ``kind=floor`` line (real vs real) then one line per model,
    with ``<metric>_mean`` / ``<metric>_std`` as separate numeric columns."""
    if not leaderboards:
        return ""
    frames = [_csv_frame(lb) for lb in leaderboards]
    columns = list(dict.fromkeys(c for f in frames for c in f.columns))  # union, first-seen order
    frame = pd.concat(frames, ignore_index=True)[columns]
    frame = frame.drop(columns=["grid_path"])
    for col in ("rank", "n_seeds", "failed", "best_seed"):
        frame[col] = frame[col].astype("Int64")
    return frame.to_csv(index=False, lineterminator="\n")


def _md_cell(text: str) -> str:
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def to_markdown(leaderboards: Sequence[Leaderboard]) -> str:
    """A Markdown section per leaderboard: heading, protocol line, table with the floor first."""
    parts = []
    for lb in leaderboards:
        cols = display_columns(lb)
        parts.append(f"### {_md_cell(lb.dataset)} · protocol `{_md_cell(lb.protocol_hash)}`\n")
        parts.append(
            f"Ranked by **{_md_cell(lb.primary_metric)}** ({lb.direction}); mean ± std over seeds. "
            f"The first line is the real-vs-real floor of this protocol.\n"
        )
        if lb.protocol:
            parts.append(f"Protocol: `{_md_cell(canonical_json(lb.protocol))}`\n")
        for w in lb.warnings:
            parts.append(f"> warning: {_md_cell(w)}\n")
        align = ["---:" if c in {"#", "train img/s", "sample img/s", "peak MB", "params", "seeds"} or c not in {"model", "options", "preset", "status"} else "---" for c in cols]
        lines = ["| " + " | ".join(_md_cell(c) for c in cols) + " |", "| " + " | ".join(align) + " |"]
        floor = floor_cells(lb)
        floor[1] = "*real vs real (floor)*"
        lines.append("| " + " | ".join(c if i == 1 else _md_cell(c) for i, c in enumerate(floor)) + " |")
        for _, line in lb.table.iterrows():
            lines.append("| " + " | ".join(_md_cell(c) for c in display_cells(lb, line)) + " |")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is pd.NA or value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def leaderboard_dict(lb: Leaderboard) -> dict[str, Any]:
    """A JSON-ready dict of one leaderboard (NaN becomes null)."""
    return _json_safe(
        {
            "dataset": lb.dataset,
            "protocol_hash": lb.protocol_hash,
            "protocol": lb.protocol,
            "primary_metric": lb.primary_metric,
            "lower_is_better": lb.lower_is_better,
            "floor": lb.floor,
            "warnings": lb.warnings,
            "lines": lb.table.to_dict(orient="records"),
        }
    )


def to_json(leaderboards: Sequence[Leaderboard], indent: int | None = 2) -> str:
    """A JSON list with one object per leaderboard (strict JSON: NaN is written as null)."""
    return json.dumps([leaderboard_dict(lb) for lb in leaderboards], indent=indent, allow_nan=False)
