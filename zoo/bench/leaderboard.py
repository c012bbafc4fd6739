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
behind it), and every format (terminal, CSV, Markdown, JSON, HTML) renders from that description.
The number formatting helpers live here and nowhere else.
"""

from __future__ import annotations

import html
import json
import math
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from zoo.bench.store import ResultRow, ResultsStore, _parse_json, canonical_json
from zoo.metric_names import higher_is_better, protocol_warnings

__all__ = [
    "COST_COLUMNS",
    "LINE_KEY",
    "Column",
    "Leaderboard",
    "build_leaderboard",
    "columns",
    "footnote",
    "format_count",
    "format_interval",
    "format_mean_std",
    "format_number",
    "format_rate",
    "higher_is_better",
    "leaderboards",
    "options_label",
    "print_leaderboards",
    "render_table",
    "to_csv",
    "to_json",
    "to_markdown",
    "to_text",
]

# Metric name prefixes where a larger value is better; everything else (FID, KID, ...) is a distance.
# Display order of metric families after the primary metric.
_METRIC_ORDER = ("fid", "fd", "kid", "is", "isc", "precision", "recall", "density", "coverage", "memorised", "classes", "kl")
COST_COLUMNS = (
    "train_images_per_s",
    "sample_images_per_s",
    "sample_nfe",
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
#: Costs that are text, not numbers: where peak memory was measured (``process_peak_rss`` or
#: ``cuda_allocated``) and which budget ended training (``steps``, ``time``, ``kimg``, ``flops``).
TEXT_COSTS = ("memory_kind", "budget_stopped_by")
_MEMORY_KINDS = {"process_peak_rss": "RSS", "cuda_allocated": "CUDA"}
#: A line of a leaderboard: the run identity without seed (dataset and protocol are the board's).
#: ``budget`` is the budget amount as text (``"unknown"`` for NaN) so that it can be grouped on.
LINE_KEY = ["model", "plugin", "plugin_version", "config_hash", "budget_kind", "budget", "precision", "sample_options"]
#: Significance level of the group tests and confidence level of the interval.
ALPHA = 0.05
GROUP_NOTE = ("# is the position by mean. group: lines sharing a letter are not significantly different "
              "(all pairwise Welch t-tests over seeds, Holm-corrected at α = 0.05; a pair at uncorrected "
              "p < 0.01 never shares a letter); a line with one seed is not tested (–)")
#: The difference the power line prices in seeds, as a fraction of the best line's mean.
TARGET_FRACTION = 0.1
CI_NOTE = "95% CI: Student-t interval of the mean over seeds"


def is_quality_metric(metric: str) -> bool:
    """Metrics shown as columns; ``kid_*_std`` (KID's spread over subsets) is kept but not shown."""
    return not metric.endswith("_std")


def options_label(options: dict[str, Any] | str) -> str:
    """Human label of sampling options: ``{"sampler": "ddim", "steps": 50}`` -> ``ddim, steps=50``."""
    if isinstance(options, str):
        options = _parse_json(options, "options") if options else {}  # deep nesting: ValueError
    if not options:
        return "default"
    parts = [str(options["sampler"])] if "sampler" in options else []
    parts += [f"{k}={v}" for k, v in sorted(options.items()) if k != "sampler"]
    return ", ".join(parts)


def budget_label(kind: str, amount: Any) -> str:
    """``120s``, ``1,000 steps``, ``64 kimg``, ``1.2T FLOPs``; ``time ?`` when the amount is unknown."""
    amount = _numeric(amount)
    if math.isnan(amount):
        return f"{kind} ?"
    if kind == "time":
        return f"{amount:g}s"
    if kind == "steps":
        return f"{amount:,.0f} steps"
    if kind == "kimg":
        return f"{amount:g} kimg"
    return f"{format_count(amount)} FLOPs"


def _budget_key(amount: float) -> str:
    return "unknown" if math.isnan(amount) else repr(float(amount))


def line_key(row: ResultRow) -> tuple[str, ...]:
    """The `LINE_KEY` of a row: its identity without dataset, protocol and seed."""
    return (row.model, row.plugin, row.plugin_version, row.config_hash, row.budget_kind,
            _budget_key(row.budget_amount), row.precision, canonical_json(row.sample_options))


@dataclass
class Leaderboard:
    """One ranked table: every line was measured under the same protocol on the same dataset.

    ``table`` has one line per `LINE_KEY` with columns ``rank`` (position by the primary
    metric's mean, equal means sharing the smaller; nullable: lines without a successful seed are
    listed last, unranked), ``rank_group`` (letters such as ``"a"``, ``"ab"``: lines sharing a letter
    are not significantly different; ``""`` for a line with fewer than 2 seeds, or unranked),
    ``label`` (``"vae lr=0.01"``, plus budget / precision / version when the board mixes
    them), the key columns, ``budget_amount``, ``config_label``, ``options`` (label), ``preset``
    (of the latest row), ``family``, ``n_seeds`` (successful seeds), ``seeds``, ``failed``,
    ``status``, ``<metric>_mean`` and ``<metric>_std`` for every metric, ``ci_low``/``ci_high``
    (95% interval of the primary metric; NaN below two seeds), the mean of every cost, ``error``
    (the latest failure), ``best_seed`` and ``grid_path`` (of the best seed by the primary metric).
    A metric that is itself a spread (``kid_lenet_std``) gets ``kid_lenet_std_mean``/``_std`` like
    any other, so ``kid_lenet_std`` is always the spread of ``kid_lenet`` over seeds.
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
    #: The board's power (see `board_power`): seed-to-seed spread, detectable difference, ...
    power: dict[str, Any] = field(default_factory=dict)
    #: The folder of the store the rows came from (set by `leaderboards`): the HTML report
    #: embeds images from inside it and from the rows' run folders only.
    store_folder: str | None = None
    _grouped: tuple[list[ResultRow], int, dict[tuple[str, ...], list[ResultRow]]] | None = field(
        default=None, repr=False, compare=False)

    @property
    def title(self) -> str:
        return f"{self.dataset} · protocol {self.protocol_hash[:12]}"

    @property
    def direction(self) -> str:
        return "lower is better" if self.lower_is_better else "higher is better"

    @property
    def arrow(self) -> str:
        return "↓" if self.lower_is_better else "↑"

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

    @property
    def single_seed_lines(self) -> int:
        """Ranked lines with one seed only: they get no confidence interval."""
        return int(((self.table["n_seeds"] == 1)).sum()) if len(self.table) else 0

    def line_rows(self) -> dict[tuple[str, ...], list[ResultRow]]:
        """The rows behind each table line, keyed by `LINE_KEY` (see `line_key_of`).
        Grouped once per list of rows (the HTML report asks once per line)."""
        cached = self._grouped
        if cached is None or cached[0] is not self.rows or cached[1] != len(self.rows):
            cached = self._grouped = (self.rows, len(self.rows), _group(self.rows))
        return cached[2]

    def rows_of(self, line: Mapping[str, Any]) -> list[ResultRow]:
        """The rows behind one table line."""
        return self.line_rows().get(line_key_of(line), [])

    def line_label(self, line: Mapping[str, Any]) -> str:
        """``model config-label`` (plus budget, precision, plugin version when the board mixes
        them) ``· options`` when the sampling options are not the defaults."""
        label = str(line["label"])
        if line["options"] != "default":
            label += f" · {line['options']}"
        return label


def line_key_of(line: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(line[k]) for k in LINE_KEY)


def leaderboards(store: ResultsStore, dataset: str | None = None, protocol: str | None = None) -> list[Leaderboard]:
    """The leaderboards of a results store: one per (dataset, protocol hash), sorted.

    ``dataset`` must name a dataset in the store (else [`UnknownNameError`][zoo.errors.UnknownNameError], with
    close matches); ``protocol`` is a unique prefix of a protocol hash (else
    [`UsageError`][zoo.errors.UsageError]). An empty store gives ``[]``.
    """
    from zoo.errors import UnknownNameError, UsageError

    rows = store.rows()
    if not rows:
        return []
    if dataset is not None and dataset not in {r.dataset for r in rows}:
        raise UnknownNameError("dataset in the results store", dataset, sorted({r.dataset for r in rows}))
    protocol_hash = None
    if protocol is not None:
        hashes = sorted({r.protocol_hash for r in rows if dataset is None or r.dataset == dataset})
        matches = [h for h in hashes if h.startswith(protocol)]
        if len(matches) != 1:
            what = "matches no" if not matches else "is ambiguous among"
            raise UsageError(f"protocol {protocol!r} {what} protocol hashes in the store (known: {', '.join(h[:12] for h in hashes)})")
        protocol_hash = matches[0]
    boards = build_leaderboard(rows, dataset=dataset, protocol_hash=protocol_hash)
    for board in boards:
        board.store_folder = store.folder
    return boards


def build_leaderboard(
    rows: Iterable[ResultRow], dataset: str | None = None, protocol_hash: str | None = None
) -> list[Leaderboard]:
    """One `Leaderboard` per (dataset, protocol_hash) among ``rows``, sorted by dataset then
    protocol; ``dataset`` / ``protocol_hash`` keep only exactly matching rows."""
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


def _seed_list(seeds: Iterable[float]) -> str:
    return ",".join(str(int(s)) for s in sorted({s for s in seeds if not pd.isna(s)}))


def _last_text(values: Iterable[Any]) -> str:
    kept = [v for v in values if isinstance(v, str) and v]
    return kept[-1] if kept else ""


def _text_values(values: Iterable[Any]) -> str:
    """The distinct non-empty texts of a line's seeds, in order, joined by ``/``."""
    return "/".join(dict.fromkeys(v for v in values if isinstance(v, str) and v))


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
    warnings += protocol_warnings(protocol)  # numbers this protocol's counts make unreliable

    # One record per row; metrics and costs of failed rows do not enter the means.
    records = []
    for r in rows:
        ok = r.status == "ok"
        records.append({
            **dict(zip(LINE_KEY, line_key(r), strict=True)),
            "budget_amount": r.budget_amount,
            "config_label": r.config_label,
            "preset": r.preset,
            "family": r.family,
            "ok_seed": float(r.seed) if ok else math.nan,
            "failed": 0 if ok else 1,
            "error": "" if ok else _first_line(r.error),
            **{f"m:{m}": _numeric(r.metrics.get(m)) if ok else math.nan for m in metric_names},
            **{f"c:{c}": _numeric(r.costs.get(c)) if ok else math.nan for c in cost_names if c not in TEXT_COSTS},
            **{f"c:{c}": str(r.costs.get(c) or "") if ok else "" for c in cost_names if c in TEXT_COSTS},
        })
    frame = pd.DataFrame.from_records(records)
    aggregations: dict[str, tuple[str, Any]] = {
        "budget_amount": ("budget_amount", "first"),
        "config_label": ("config_label", _last_text),
        "preset": ("preset", _last_text),
        "family": ("family", _last_text),
        "n_seeds": ("ok_seed", "nunique"),
        "seeds": ("ok_seed", _seed_list),
        "failed": ("failed", "sum"),
        "n_primary": (f"m:{primary}", "count"),
    }
    for m in metric_names:
        aggregations[f"{m}_mean"] = (f"m:{m}", "mean")
        aggregations[f"{m}_std"] = (f"m:{m}", "std")  # sample std (ddof=1): NaN for one seed
    for c in cost_names:
        aggregations[c] = (f"c:{c}", _text_values if c in TEXT_COSTS else "mean")
    aggregations["error"] = ("error", _last_text)
    # pandas aggregates the numeric columns; the text ones (a Python function each) are gathered
    # in one pass over the rows instead of a pandas call per line (minutes for 10^4 lines).
    texts = {k: v for k, v in aggregations.items() if callable(v[1])}
    grouped = frame.groupby(LINE_KEY, sort=False, dropna=False)
    table = grouped.agg(**{k: v for k, v in aggregations.items() if k not in texts}).reset_index()
    codes = grouped.ngroup().to_numpy()  # the line of each row, numbered as the table's lines
    for name, (column, reduce) in texts.items():
        buckets: list[list[Any]] = [[] for _ in range(len(table))]
        for code, value in zip(codes, frame[column].tolist(), strict=True):
            buckets[code].append(value)
        table[name] = [reduce(values) for values in buckets]
    table = table[LINE_KEY + list(aggregations)]

    table["options"] = table["sample_options"].map(options_label)
    table["status"] = [_status(int(n), int(f)) for n, f in zip(table["n_seeds"], table["failed"], strict=True)]
    groups = _group(rows)
    best = [_best_row([r for r in groups[line_key_of(line)] if r.status == "ok"], primary, lower)
            or groups[line_key_of(line)][-1] for line in table.to_dict("records")]
    table["best_seed"] = [r.seed for r in best]
    table["grid_path"] = [r.grid_path or "" for r in best]
    table["label"] = _labels(table)

    low, high = _intervals(table[f"{primary}_mean"], table[f"{primary}_std"], table["n_primary"])
    table["ci_low"], table["ci_high"] = low, high
    score = table[f"{primary}_mean"].astype(float)
    table["rank"] = score.rank(method="min", ascending=lower).astype("Int64")
    table = table.sort_values(["rank", "model", "label", "options"], na_position="last", kind="stable").reset_index(drop=True)
    table["rank_group"] = rank_groups(table["rank"].tolist(), [
        [_numeric(r.metrics.get(primary)) for r in groups[line_key_of(line)] if r.status == "ok"]
        for line in table.to_dict("records")])
    power = board_power(table, primary)
    for col in ("n_seeds", "failed", "best_seed"):
        table[col] = table[col].astype("int64")
    table = table.drop(columns=["n_primary"])
    first = ["rank", "rank_group", "label", "model", "options", "config_label", "budget_kind", "budget_amount", "precision"]
    table = table[first + [c for c in table.columns if c not in first]]

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
        power=power,
    )


def _labels(table: pd.DataFrame) -> list[str]:
    """``model config-label``, plus what tells lines apart when the board mixes it."""
    mixed = {k: table[k].nunique(dropna=False) > 1 for k in ("budget_kind", "budget", "precision", "plugin_version", "plugin")}
    # Configs per (model, config label), counted once (not per line: boards of 10^4 lines).
    configs = table.groupby(["model", "config_label"], sort=False, dropna=False)["config_hash"].transform("nunique")
    labels = []
    for line, n_configs in zip(table.to_dict("records"), configs, strict=True):
        parts = [str(line["model"])]
        if line["config_label"]:
            parts.append(str(line["config_label"]))
        if n_configs > 1:  # unlabelled configs that differ: tell them apart
            parts.append(f"config {line['config_hash'][:7]}")
        if mixed["budget_kind"] or mixed["budget"]:
            parts.append(f"@{budget_label(line['budget_kind'], line['budget_amount'])}")
        if mixed["precision"]:
            parts.append(str(line["precision"]))
        if mixed["plugin"]:
            parts.append(f"({line['plugin']})")
        if mixed["plugin_version"]:
            parts.append(f"v{line['plugin_version']}")
        labels.append(" ".join(parts))
    return labels


def _intervals(means: pd.Series, stds: pd.Series, counts: pd.Series) -> tuple[list[float], list[float]]:
    """95% Student-t interval of each mean; NaN below two values."""
    import numpy as np
    from scipy import special  # stdtrit is stats.t.ppf; scipy.stats alone takes ~1 s to import

    ns = [int(n) for n in counts]
    # One vectorised ppf for every line (the same ufunc, value for value, as one call per line).
    quantiles = special.stdtrit(np.array([max(n - 1, 1) for n in ns], dtype=float), 1 - ALPHA / 2) if ns else []
    low, high = [], []
    for mean, std, n, q in zip(means, stds, ns, quantiles, strict=True):
        if n < 2 or math.isnan(float(std)):
            low.append(math.nan)
            high.append(math.nan)
            continue
        half = float(q) * float(std) / math.sqrt(n)
        low.append(float(mean) - half)
        high.append(float(mean) + half)
    return low, high


def welch_p_value(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test (``scipy.stats.ttest_ind(a, b, equal_var=False)``),
    computed from its formula with ``scipy.special.stdtr`` (scipy.stats takes ~1 s to import;
    ``zoo leaderboard`` should start at once). ``a`` and ``b`` hold >= 2 finite values each; NaN
    when both have no spread."""
    from scipy import special

    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se2 = va + vb
    if not se2 > 0:
        return math.nan
    t = (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(se2)
    df = se2 * se2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1))
    return float(2 * special.stdtr(df, -abs(t)))


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if not math.isnan(v)]


def pair_p_value(a: Sequence[float], b: Sequence[float]) -> float:
    """Welch's two-sided p-value for two lines' seeds (>= 2 finite values each); when neither has
    any spread, 0 if the means differ and 1 if they do not."""
    p = welch_p_value(a, b)
    if math.isnan(p):
        return 0.0 if statistics.fmean(a) != statistics.fmean(b) else 1.0
    return p


def rank_groups(ranks: Sequence[Any], values: Sequence[Sequence[float]]) -> list[str]:
    """Compact-letter rank groups, one per line (``ranks`` nullable, the table's order, best
    first; ``values`` the primary metric of each line's ok seeds). Lines with >= 2 finite values
    are tested pairwise (`pair_p_value`, Holm-corrected, see `zoo.bench.ranking`);
    the others, and unranked lines, get ``""``. Letters run out past 52 groups: all ``""``."""
    from zoo.bench import ranking

    tested = [i for i, (rank, v) in enumerate(zip(ranks, values, strict=True))
              if not pd.isna(rank) and len(_finite(v)) >= 2]
    p_values = {(i, j): pair_p_value(_finite(values[i]), _finite(values[j]))
                for k, i in enumerate(tested) for j in tested[k + 1:]}
    letters = ranking.letter_groups(tested, ranking.different_pairs(p_values, ALPHA))
    groups = [""] * len(values)
    for i, text in zip(tested, letters or [""] * len(tested), strict=True):
        groups[i] = text
    return groups


def board_power(table: pd.DataFrame, primary: str) -> dict[str, Any]:
    """What the board can resolve, from its own seed-to-seed spread: ``std`` (pooled sample std of
    the primary metric over the ranked lines with >= 2 seeds; ``lines`` of them), ``seeds`` (the
    most common seed count among those lines), ``alpha`` and ``power`` (one two-sided Welch
    test), ``detectable`` (the smallest difference found with that power at ``seeds`` a line),
    ``best_mean``, ``target`` (`TARGET_FRACTION` of the best mean) and ``seeds_needed`` for
    it (``None`` past `zoo.bench.ranking.MAX_SEEDS`). ``{}`` when no line has 2 seeds;
    NaN where a value cannot be given (no spread, a best mean of 0)."""
    from zoo.bench import ranking

    if not len(table):
        return {}
    ranked = table[table["rank"].notna()]
    counts = [int(n) for n in ranked["n_primary" if "n_primary" in ranked else "n_seeds"]]
    std, used = ranking.pooled_std([float(v) for v in ranked[f"{primary}_std"]], counts)
    if not used:
        return {}
    many = sorted(n for n in counts if n >= 2)
    seeds = max(set(many), key=lambda n: (many.count(n), -n))
    best = float(ranked[f"{primary}_mean"].iloc[0]) if len(ranked) else math.nan
    target = abs(best) * TARGET_FRACTION
    out: dict[str, Any] = {"std": std, "lines": used, "seeds": seeds, "alpha": ranking.ALPHA,
                           "power": ranking.POWER, "best_mean": best, "target_fraction": TARGET_FRACTION,
                           "target": target if target > 0 else math.nan, "detectable": math.nan,
                           "seeds_needed": None}
    if std > 0:
        out["detectable"] = ranking.detectable_effect(seeds) * std
        if target > 0:
            out["seeds_needed"] = ranking.seeds_needed(target / std)
    else:
        out["detectable"] = 0.0
        out["seeds_needed"] = 2 if target > 0 else None
    return out


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


def _group(rows: list[ResultRow]) -> dict[tuple[str, ...], list[ResultRow]]:
    groups: dict[tuple[str, ...], list[ResultRow]] = {}
    for r in rows:
        groups.setdefault(line_key(r), []).append(r)
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


# -- the columns, described once -----------------------------------------------------------------


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
        floor=format_number(lb.floor.get(metric, math.nan)), fields=(f"{metric}_mean", f"{metric}_std"),
    )


def _memory_cell(line: Mapping[str, Any]) -> str:
    """``1,285 RSS`` (process peak resident memory on CPU) or ``412 CUDA`` (peak allocated)."""
    kind = line.get("memory_kind")
    kind = _MEMORY_KINDS.get(kind, kind) if isinstance(kind, str) and kind else ""
    text = _int_text(line.get("peak_memory_mb"))
    return f"{text} {kind}" if kind and text != "–" else text


def _rank_cell(line: Mapping[str, Any]) -> str:
    return "" if pd.isna(line["rank"]) else str(int(line["rank"]))


def _group_cell(line: Mapping[str, Any]) -> str:
    """The line's letters; ``–`` for a ranked line that was not tested (fewer than 2 seeds)."""
    return str(line["rank_group"]) or ("" if pd.isna(line["rank"]) else "–")


def _status_cell(line: Mapping[str, Any]) -> str:
    return str(line["status"]) if not line["error"] else f"{line['status']}: {line['error']}"


def columns(lb: Leaderboard) -> list[Column]:
    """Every column of ``lb`` in display order (human ones first-class, machine-only ones last)."""
    secondary = [m for m in lb.shown_metrics if m != lb.primary_metric]
    cols = [
        Column("rank", "#", cell=_rank_cell, fields=("rank", "rank_group")),
        Column("model", "model", cell=lambda line: str(line["label"]), floor="real vs real", align="left", fold=24,
               fields=("label", "model", "config_label", "config_hash", "plugin", "plugin_version", "family", "preset")),
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
    covered = {f for c in cols for f in c.fields}
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
        "the first line is the real-vs-real floor of this protocol (two sets of real images).",
        f"{CI_NOTE} (of {lb.primary_metric}). {GROUP_NOTE}.",
    ]
    singles = lb.single_seed_lines
    if singles:
        notes.append(f"{singles} line{'s' if singles != 1 else ''} with a single seed: no interval and no "
                     "group (a difference from it cannot be tested).")
    tested = lb.table[lb.table["rank"].notna() & (lb.table["n_seeds"] >= 2)] if len(lb.table) else lb.table
    if len(tested) >= 2 and not (tested["rank_group"] != "").any():  # rank_groups ran out of letters
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


# -- renderers -----------------------------------------------------------------------------------


def render_table(lb: Leaderboard, width: int | None = None):  # noqa: ANN201 - rich is imported lazily
    """A rich Table for the terminal; the floor is the first, highlighted line.

    Given a console ``width``, columns with a ``drop`` order are left out (lowest first) until the
    table fits, and the caption says so. Every string from a row is passed as
    `rich.text.Text`, so third-party names cannot inject markup.
    """
    from rich.table import Table
    from rich.text import Text

    cols = human_columns(lb)
    lines = _lines(lb)
    body = [[_clean(c.floor) for c in cols]]
    for line in lines:
        cells = [_clean(c.cell(line)) for c in cols]
        if len(cells[-1]) > 60:
            cells[-1] = cells[-1][:59] + "…"
        body.append(cells)

    # Numbers never wrap (a wrapped "12.00 ± 2.00" is unreadable); long names and errors fold,
    # but not below their fold widths.
    widths = {c.key: max([len(_clean(c.title))] + [len(r[i]) for r in body]) for i, c in enumerate(cols)}
    widths = {c.key: min(widths[c.key], c.fold) if c.fold else widths[c.key] for c in cols}

    def needed(shown: list[Column]) -> int:  # content + padding and borders
        return sum(widths[c.key] for c in shown) + 3 * len(shown) + 1

    shown = list(cols)
    hidden = []
    for col in sorted((c for c in cols if c.drop is not None), key=lambda c: c.drop or 0):
        if width is None or needed(shown) <= width:
            break
        shown.remove(col)
        hidden.append(col.title)
    if width is not None:  # still too wide: folding columns give up width, widest first, down to their header
        excess = needed(shown) - width
        for col in sorted((c for c in shown if c.fold), key=lambda c: -widths[c.key]):
            give = max(0, min(excess, widths[col.key] - max(len(col.title), 8)))
            widths[col.key] -= give
            excess -= give

    floor_text = format_number(lb.floor.get(lb.primary_metric, math.nan))
    caption = "\n".join(_clean(note) for note in footnote(lb))  # warnings quote protocol values
    if hidden:
        caption += f"\nnot shown (terminal too narrow): {', '.join(hidden)}; try --format markdown"
    table = Table(
        title=Text(_clean(f"{lb.title} · {lb.primary_metric} ({lb.direction}) · floor {floor_text}")),
        title_justify="left",
        caption=Text(caption),
        caption_justify="left",
    )
    for col in shown:
        table.add_column(Text(_clean(col.title)), justify="left" if col.align == "left" else "right", no_wrap=col.fold is None,
                         overflow="fold", min_width=widths[col.key] if col.fold else None,
                         max_width=widths[col.key] if col.fold and width is not None else None)
    keep = [cols.index(c) for c in shown]
    table.add_row(*[Text(body[0][i]) for i in keep], style="italic cyan")
    for line, cells in zip(lines, body[1:], strict=True):
        texts = [Text(cells[i]) for i in keep]
        failed = line["n_seeds"] == 0
        if line["failed"] and shown[-1].key == "status":
            texts[-1].stylize("red" if failed else "yellow")
        table.add_row(*texts, style="dim" if failed else ("bold" if is_top_ranked(line) else None))
    return table


def _clean(text: str) -> str:
    """Replace terminal control characters (escape sequences, bells, CR, newlines, tabs) with
    ``�``: a name could retitle the terminal or move the cursor. Used for every string the table
    shows: cells, titles, column headers, captions."""
    return "".join(ch if ch.isprintable() or ch == " " else "�" for ch in str(text))


def print_leaderboards(leaderboards: Sequence[Leaderboard], console: Any = None, source: str = "") -> None:
    """Print every leaderboard to ``console`` (a rich Console; stdout by default), fitted to its
    width; with none, the "No results yet" line."""
    if console is None:
        from rich.console import Console

        console = Console()
    if not leaderboards:
        where = f" in {_clean(source)}" if source else ""
        console.print(f"No results yet{where}. Run `zoo bench` to add some.", highlight=False, markup=False)
        return
    for i, lb in enumerate(leaderboards):
        if i:
            console.print()
        console.print(render_table(lb, width=console.width), soft_wrap=False)  # captions wrap at the width


def to_text(leaderboards: Sequence[Leaderboard], width: int = 200) -> str:
    """The terminal table as plain text (no colours), ``width`` characters wide."""
    import io

    from rich.console import Console

    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    print_leaderboards(leaderboards, console)
    return console.export_text()


_CSV_LEAD = ["dataset", "protocol_hash", "primary_metric", "rank_test", "power", "kind"]
_CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")
RANK_TEST = ("rank: position by mean; rank_group: compact letters from pairwise welch-t, holm alpha 0.05, "
             "raw p<0.01 always apart; fewer than 2 seeds: no group")


def _csv_frame(lb: Leaderboard) -> pd.DataFrame:
    fields = [f for f in machine_fields(lb) if f != "grid_path"]  # a local path is not a result
    table = lb.table[fields].copy()
    floor: dict[str, Any] = {"model": "real vs real", "label": "real vs real", "status": "floor", "n_seeds": 0, "failed": 0}
    floor.update({f"{m}_mean": lb.floor.get(m, math.nan) for m in lb.metrics})
    table = pd.concat([pd.DataFrame([floor]), table], ignore_index=True)[fields]
    table.insert(0, "kind", ["floor"] + ["model"] * len(lb.table))
    for name, value in (("power", power_note(lb)), ("rank_test", RANK_TEST), ("primary_metric", lb.primary_metric), ("protocol_hash", lb.protocol_hash), ("dataset", lb.dataset)):
        table.insert(0, name, value)
    return table


def _csv_safe(value: Any) -> Any:
    """OWASP CSV injection: a text cell starting with = + - @ tab or CR is prefixed with '.

    Only text: numbers (a negative mean included) stay numbers. A CR inside the text becomes a
    newline, since the CSV writer quotes fields holding ``\n`` but not a lone ``\r``, which a
    reader (and Excel) takes as the end of the row."""
    if not isinstance(value, str):
        return value
    if value.startswith(_CSV_FORMULA):
        value = "'" + value
    return value.replace("\r\n", "\n").replace("\r", "\n")


def to_csv(leaderboards: Sequence[Leaderboard]) -> str:
    """One CSV for all leaderboards: a ``kind=floor`` line (real vs real) then one line per table
    line, with ``<metric>_mean`` / ``<metric>_std`` as separate numeric columns, and the numeric
    ``rank`` beside its letters ``rank_group`` (text no spreadsheet reads as a formula). With no leaderboard, just the header."""
    if not leaderboards:
        empty = Leaderboard("", "", {}, "", True, {}, pd.DataFrame(columns=LINE_KEY), [], [])
        header = _CSV_LEAD + [f for c in columns(empty) if c.key != "" for f in c.fields if f != "grid_path"]
        return ",".join(dict.fromkeys(header)) + "\n"
    frames = [_csv_frame(lb) for lb in leaderboards]
    names = list(dict.fromkeys(c for f in frames for c in f.columns))  # union, first-seen order
    frame = pd.concat(frames, ignore_index=True)[names]
    for col in ("rank", "n_seeds", "failed", "best_seed"):
        if col in frame:
            frame[col] = frame[col].astype("Int64")
    for col in frame.columns:
        if frame[col].dtype == object or pd.api.types.is_string_dtype(frame[col]):
            frame[col] = frame[col].map(_csv_safe)
    # Headers are text from plugins too (metric and cost names): the same rule.
    frame.columns = [_csv_safe(str(c)) for c in frame.columns]
    return frame.to_csv(index=False, lineterminator="\n")


# Markdown's own syntax in a cell: backslash first (so "a\\|b" cannot turn an escaped pipe into a
# live one), then pipes (cell borders), backticks (code spans), brackets (links, images).
_MD_SPECIAL = re.compile(r"([\\|`\[\]])")


def _md_cell(text: str) -> str:
    """Text for a Markdown table cell or line: control characters and newlines replaced, HTML
    escaped, and ``\\ | ` [ ]`` backslash-escaped, so the text stays in its cell and can open no
    link, image, code span or tag."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(_clean(str(text)), quote=False))


def _md_code(text: str) -> str:
    """``text`` as an inline code span: fenced by more backticks than any run inside it (CommonMark),
    so it cannot close early; HTML inside a code span is shown, not rendered."""
    text = _clean(str(text))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or longest else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def to_markdown(leaderboards: Sequence[Leaderboard]) -> str:
    """A Markdown section per leaderboard: heading, protocol line, table with the floor first,
    then the footnote."""
    if not leaderboards:
        return "No results yet.\n"
    parts = []
    for lb in leaderboards:
        cols = human_columns(lb)
        parts.append(f"### {_md_cell(lb.dataset)} · protocol {_md_code(lb.protocol_hash)}\n")
        if lb.protocol:
            parts.append(f"Protocol: {_md_code(canonical_json(lb.protocol))}\n")
        align = ["---" if c.align == "left" else "---:" for c in cols]
        lines = ["| " + " | ".join(_md_cell(c.title) for c in cols) + " |", "| " + " | ".join(align) + " |"]
        floor = [_md_cell(c.floor) for c in cols]
        floor[1] = "*real vs real (floor)*"
        lines.append("| " + " | ".join(floor) + " |")
        for line in _lines(lb):
            lines.append("| " + " | ".join(_md_cell(c.cell(line)) for c in cols) + " |")
        parts.append("\n".join(lines) + "\n")
        parts.append("\n".join(f"{'> ' if note.startswith('warning') else ''}{_md_cell(note)}  " for note in footnote(lb)) + "\n")
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
    fields = machine_fields(lb)
    return _json_safe(
        {
            "dataset": lb.dataset,
            "protocol_hash": lb.protocol_hash,
            "protocol": lb.protocol,
            "primary_metric": lb.primary_metric,
            "lower_is_better": lb.lower_is_better,
            "floor": lb.floor,
            "warnings": lb.warnings,
            "footnotes": footnote(lb),
            "rank_test": RANK_TEST,
            "power": lb.power,
            "columns": [{"key": c.key, "header": c.title, "fields": list(c.fields)} for c in columns(lb) if c.human],
            "lines": [{f: line[f] for f in fields} for line in _lines(lb)],
        }
    )


def to_json(leaderboards: Sequence[Leaderboard], indent: int | None = 2) -> str:
    """A JSON list with one object per leaderboard (strict JSON: NaN is written as null)."""
    return json.dumps([leaderboard_dict(lb) for lb in leaderboards], indent=indent, allow_nan=False)
