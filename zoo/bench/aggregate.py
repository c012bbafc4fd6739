"""Leaderboards as data: result rows grouped by dataset and protocol, seeds aggregated, lines ranked.

Rows measured under different protocols (sample counts, backbone, resize, metric library...) are
never ranked together: `leaderboards` (from a store) and `build_leaderboard` (from rows)
return one `Leaderboard` per (dataset, protocol_hash). Within one, a line is a run identity
without its seed: model, plugin and version, config hash, budget, precision and sampling options
(so two learning rates, two budgets, or DDIM at 50 steps and DDPM at 1000 steps are separate lines,
never averaged together). Its metrics are the mean and sample standard deviation (ddof=1) over
seeds, with a 95% Student-t confidence interval of the primary metric. ``rank`` is the position by
mean; ``rank_group`` holds letters from all pairwise Welch t-tests over seeds (Holm-corrected, see
`zoo.bench.ranking`): lines sharing a letter are not significantly different, and a line with
one seed is not tested (no letter). Each board also states its power (`board_power`). The
protocol's real-versus-real floor travels with the table, since FID is biased by sample count and
perfect samples do not score 0 (Chong & Forsyth 2020).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from zoo.bench.cellfmt import format_count
from zoo.bench.cellfmt import numeric as _numeric
from zoo.bench.external_text import external_text
from zoo.bench.store import ResultRow, ResultsStore, _parse_json, canonical_json
from zoo.bench.store.bulk import gc_paused
from zoo.bench.trials import effort_of, tuning_label
from zoo.metric_names import higher_is_better, protocol_warnings
from zoo.metrics.floors import floor_means, floor_spread

if TYPE_CHECKING:
    from zoo.bench.columns import View

__all__ = ["ALPHA", "COST_COLUMNS", "LINE_KEY", "TARGET_FRACTION", "TEXT_COSTS", "Leaderboard", "board_power",
           "budget_label", "build_leaderboard", "is_quality_metric", "leaderboards", "line_key", "line_key_of",
           "options_label", "pair_p_value", "rank_groups", "welch_p_value"]

# Metric name prefixes where a larger value is better; everything else (FID, KID, ...) is a distance.
# Display order of metric families after the primary metric.
_METRIC_ORDER = ("fid", "fd", "kid", "is", "isc", "precision", "recall", "density", "coverage", "memorised", "classes", "kl",
                 "vendi", "gap")
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
#: A line of a leaderboard: the run identity without seed (dataset and protocol are the board's).
#: ``budget`` is the budget amount as text (``"unknown"`` for NaN) so that it can be grouped on.
LINE_KEY = ["model", "plugin", "plugin_version", "config_hash", "budget_kind", "budget", "precision", "sample_options"]
#: Significance level of the group tests and confidence level of the interval.
ALPHA = 0.05
#: The difference the power line prices in seeds, as a fraction of the best line's mean.
TARGET_FRACTION = 0.1


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
    #: The floor's spread over its draws, per metric (empty for rows stored before protocol v3).
    floor_spread: dict[str, float] = field(default_factory=dict)
    power: dict[str, Any] = field(default_factory=dict)
    #: The folder of the store the rows came from (set by `leaderboards`): the HTML report
    #: embeds images from inside it and from the rows' run folders only.
    store_folder: str | None = None
    #: What a reader chose to show (columns, metrics, order; see `zoo.bench.columns.apply_view`);
    #: ``None``: everything, by rank. Every format honours it through [`zoo.bench.columns.columns`][zoo.bench.columns.columns].
    view: View | None = None
    _grouped: tuple[list[ResultRow], int, dict[tuple[str, ...], list[ResultRow]]] | None = field(
        default=None, repr=False, compare=False)
    #: The tuning effort every line shares (``zoo bench --tune``; ``{}``: untuned): boards never
    #: mix efforts. ``trials``: each model's tuning trials (`zoo.bench.trials.attach_trials`).
    tuning: dict[str, Any] = field(default_factory=dict)
    trials: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def title(self) -> str:
        tuned = f" · {tuning_label(self.tuning)}" if self.tuning else ""
        return f"{self.dataset} · protocol {self.protocol_hash[:12]}{tuned}"

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
        return bool(len(self.table)) and bool((~self.table["options"].isin(["default", "–"])).any())

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
    from zoo.bench.trials import attach_trials

    attach_trials(boards, store)
    return boards


def build_leaderboard(
    rows: Iterable[ResultRow], dataset: str | None = None, protocol_hash: str | None = None
) -> list[Leaderboard]:
    """One `Leaderboard` per (dataset, protocol_hash, tuning effort) among ``rows``, sorted by
    dataset, protocol, then effort; ``dataset`` / ``protocol_hash`` keep only
    exactly matching rows."""
    groups: dict[tuple[str, str, str], list[ResultRow]] = {}
    for row in rows:
        if dataset is not None and row.dataset != dataset:
            continue
        if protocol_hash is not None and row.protocol_hash != protocol_hash:
            continue
        effort = canonical_json(effort_of(row.tuning)) if row.tuning else "{}"
        groups.setdefault((row.dataset, row.protocol_hash, effort), []).append(row)
    with gc_paused():  # millions of short-lived floats and strings at 100,000 rows
        boards = [_build_one(ds, ph, group) for (ds, ph, _), group in sorted(groups.items())]
    for board in boards:
        board.tuning = effort_of(board.rows[0].tuning) if board.rows else {}
    return boards


def _metric_sort_key(metric: str, primary: str) -> tuple[int, int, str]:
    if metric == primary:
        return (0, 0, metric)
    stem = metric.split("_")[0].lower()
    family = _METRIC_ORDER.index(stem) if stem in _METRIC_ORDER else len(_METRIC_ORDER)
    return (1, family, metric)


def _numbers(values: Iterable[Any]) -> np.ndarray:
    """`cellfmt.numeric` of each value, as a float array (plain floats pass straight through)."""
    return np.fromiter((v if type(v) is float else _numeric(v) for v in values), dtype=float)


def _number_columns(dicts: list[dict[str, Any]], names: list[str], keep: np.ndarray) -> dict[str, np.ndarray]:
    """``names`` of each dict (``row.metrics``, ``row.costs``) as float arrays, by
    `cellfmt.numeric`'s rule (numbers only: text and bools are NaN); NaN where ``keep`` is False
    or the key is missing. pandas reads the dicts in C; only a column of mixed types is converted
    value by value."""
    if not names:
        return {}
    frame = pd.DataFrame.from_records(dicts, columns=names) if dicts else pd.DataFrame(columns=names)
    out = {}
    for name in names:
        column = frame[name]
        if column.dtype.kind == "f" or column.dtype.kind in "iu":
            values = column.to_numpy(dtype=float)
        else:  # objects, text, bools: the rule value by value
            values = _numbers(column.tolist())
        out[name] = np.where(keep, values, np.nan)
    return out


def _floors_disagree(floors: list[dict[str, Any]]) -> bool:
    """Whether the rows' floors differ (by content: canonical JSON, so NaN equals NaN). Rows of one
    protocol nearly always share one floor: equal dicts are set aside without writing JSON."""
    last = floors[-1]
    return any(f != last and canonical_json(f) != canonical_json(last) for f in floors)


def _build_one(dataset: str, protocol_hash: str, rows: list[ResultRow]) -> Leaderboard:
    rows = sorted(rows, key=lambda r: r.created_at)
    protocol = rows[-1].protocol
    ok = np.fromiter((r.status == "ok" for r in rows), dtype=bool, count=len(rows))
    ok_rows = [r for r, good in zip(rows, ok, strict=True) if good]
    metric_names = sorted({k for r in ok_rows for k in r.metrics} | {k for r in rows for k in floor_means(r.floor)})
    primary = protocol.get("primary_metric") or next(
        (m for m in metric_names if m.startswith("fid")), metric_names[0] if metric_names else "fid"
    )
    metric_names = sorted(set(metric_names) | {primary}, key=lambda m: _metric_sort_key(m, primary))
    found_costs = {k for r in rows for k in r.costs}
    cost_names = [c for c in COST_COLUMNS if c in found_costs]
    cost_names += sorted(found_costs - set(cost_names))
    lower = not higher_is_better(primary)

    warnings: list[str] = []
    floors = [r.floor for r in rows if r.floor]
    floor = {k: _numeric(v) for k, v in floor_means(floors[-1] if floors else {}).items()}
    if floors and _floors_disagree(floors):
        warnings.append("rows of this protocol disagree on the real-vs-real floor; showing the latest")
    warnings += protocol_warnings(protocol)  # numbers this protocol's counts make unreliable

    # Each row's line, numbered in order of first appearance; the rows behind each line kept
    # for line_rows(). Column by column from here: 100,000 rows in about a second.
    groups: dict[tuple[str, ...], list[ResultRow]] = {}
    line_of: dict[tuple[str, ...], int] = {}
    codes = np.empty(len(rows), dtype=np.int64)
    for i, r in enumerate(rows):
        key = line_key(r)
        code = line_of.setdefault(key, len(line_of))
        codes[i] = code
        groups.setdefault(key, []).append(r)
    keys = list(line_of)
    n_lines = len(keys)
    line_codes = codes.tolist()  # once: each pass below walks the rows with their line

    def last_text(values: Iterable[Any]) -> list[str]:  # each line's latest non-empty text
        out = [""] * n_lines
        for code, value in zip(line_codes, values, strict=True):
            if isinstance(value, str) and value:
                out[code] = value
        return out

    def joined_texts(values: Iterable[Any]) -> list[str]:  # each line's distinct texts, "/"-joined
        seen: list[dict[str, None]] = [{} for _ in range(n_lines)]
        for code, value in zip(line_codes, values, strict=True):
            if isinstance(value, str) and value:
                seen[code][value] = None
        return ["/".join(texts) for texts in seen]

    numbers: dict[str, np.ndarray] = {"ok_seed": np.where(ok, _numbers(r.seed for r in rows), np.nan),
                                      "failed": (~ok).astype(np.int64)}
    # Metrics and costs of failed rows do not enter the means.
    for m, column in _number_columns([r.metrics for r in rows], metric_names, ok).items():
        numbers[f"{m}_mean"] = column
    numeric_costs = [c for c in cost_names if c not in TEXT_COSTS]
    for c, column in _number_columns([r.costs for r in rows], numeric_costs, ok).items():
        numbers[f"c:{c}"] = column
    grouped = pd.DataFrame(numbers).groupby(codes, sort=True)  # codes are first-appearance order
    means = grouped.mean()
    metric_columns = [f"{m}_mean" for m in metric_names]
    stds = grouped[metric_columns].std()  # sample std (ddof=1): NaN for one seed
    counts = grouped[metric_columns].count()

    table = pd.DataFrame(keys, columns=LINE_KEY)
    first = np.unique(codes, return_index=True)[1] if len(codes) else np.array([], dtype=np.int64)
    table["budget_amount"] = np.array([rows[i].budget_amount for i in first], dtype=float)
    table["config_label"] = last_text(r.config_label for r in rows)
    table["preset"] = last_text(r.preset for r in rows)
    table["family"] = last_text(r.family for r in rows)
    table["external_source"] = joined_texts(external_text(r.external) for r in rows)
    seeds: list[set[int]] = [set() for _ in range(n_lines)]
    for code, r, good in zip(line_codes, rows, ok.tolist(), strict=True):
        if good:
            seeds[code].add(int(r.seed))
    table["n_seeds"] = [len(s) for s in seeds]
    table["seeds"] = [",".join(str(s) for s in sorted(found)) for found in seeds]
    table["failed"] = grouped["failed"].sum().to_numpy()
    table["n_primary"] = counts[f"{primary}_mean"].to_numpy()
    for m in metric_names:
        table[f"{m}_mean"] = means[f"{m}_mean"].to_numpy()
        table[f"{m}_std"] = stds[f"{m}_mean"].to_numpy()
    for c in cost_names:
        if c in TEXT_COSTS:
            table[c] = joined_texts(str(r.costs.get(c) or "") if good else "" for r, good in zip(rows, ok, strict=True))
        else:
            table[c] = means[f"c:{c}"].to_numpy()
    table["error"] = last_text("" if good else _first_line(r.error) for r, good in zip(rows, ok, strict=True))

    table["options"] = table["sample_options"].map(options_label)
    table["status"] = [_status(int(n), int(f)) for n, f in zip(table["n_seeds"], table["failed"], strict=True)]
    # The best seed of each line by the primary metric (the first of equal ones), else its latest row.
    scores = numbers[f"{primary}_mean"]
    best: list[ResultRow | None] = [None] * n_lines
    best_score = [math.nan] * n_lines
    primary_values: list[list[float]] = [[] for _ in range(n_lines)]  # each line's ok seeds
    for code, r, score in zip(line_codes, rows, scores.tolist(), strict=True):
        if math.isnan(score):
            continue
        primary_values[code].append(score)
        if best[code] is None or (score < best_score[code] if lower else score > best_score[code]):
            best[code], best_score[code] = r, score
    chosen = [b if b is not None else groups[key][-1] for b, key in zip(best, keys, strict=True)]
    table["best_seed"] = [r.seed for r in chosen]
    table["grid_path"] = [r.grid_path or "" for r in chosen]
    table["label"] = _labels(table)
    table.loc[table["external_source"] != "", "options"] = "–"  # made elsewhere: no sampler of ours

    low, high = _intervals(table[f"{primary}_mean"], table[f"{primary}_std"], table["n_primary"])
    table["ci_low"], table["ci_high"] = low, high
    score = table[f"{primary}_mean"].astype(float)
    table["rank"] = score.rank(method="min", ascending=lower).astype("Int64")
    table["_line"] = np.arange(n_lines)
    table = table.sort_values(["rank", "model", "label", "options"], na_position="last", kind="stable").reset_index(drop=True)
    table["rank_group"] = rank_groups(table["rank"].tolist(), [primary_values[i] for i in table["_line"]])
    power = board_power(table, primary)
    for col in ("n_seeds", "failed", "best_seed"):
        table[col] = table[col].astype("int64")
    table = table.drop(columns=["n_primary", "_line"])
    order = ["rank", "rank_group", "label", "model", "options", "config_label", "budget_kind", "budget_amount", "precision"]
    table = table[order + [c for c in table.columns if c not in order]]

    board = Leaderboard(
        dataset=dataset,
        protocol_hash=protocol_hash,
        protocol=protocol,
        primary_metric=primary,
        lower_is_better=lower,
        floor=floor,
        floor_spread=floor_spread(floors[-1]) if floors else {},
        table=table,
        metrics=metric_names,
        costs=cost_names,
        rows=rows,
        warnings=warnings,
        power=power,
    )
    board._grouped = (rows, len(rows), groups)  # line_rows() without grouping again
    return board


def _labels(table: pd.DataFrame) -> list[str]:
    """``model config-label``, plus what tells lines apart when the board mixes it."""
    # External lines (samples made elsewhere) have no budget, precision or plugin: they neither
    # show one nor make the trained lines' labels say theirs.
    trained = table[table["external_source"] == ""] if "external_source" in table else table
    mixed = {k: trained[k].nunique(dropna=False) > 1 for k in ("budget_kind", "budget", "precision", "plugin_version", "plugin")}
    # Configs per (model, config label), counted once (not per line: boards of 10^4 lines).
    configs = table.groupby(["model", "config_label"], sort=False, dropna=False)["config_hash"].transform("nunique")
    labels = []
    needed = ["model", "external_source", "config_label", "config_hash", "budget_kind", "budget_amount", "precision",
              "plugin", "plugin_version"]
    lines = (dict(zip(needed, values, strict=True)) for values in zip(*(  # lighter than to_dict("records")
        table[k].tolist() if k in table else [""] * len(table) for k in needed), strict=True))
    for line, n_configs in zip(lines, configs.tolist(), strict=True):
        parts = [str(line["model"])]
        if line.get("external_source"):
            labels.append(f"{line['model']} (external)")
            continue
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
    lines = [_finite(values[i]) for i in tested]
    if len(lines) > ranking.MAX_LETTER_LINES:  # no letters (the footnote says why)
        return [""] * len(values)
    first, second, p = ranking.pairwise_welch(lines)
    different = (ranking.holm_array(p) < ALPHA) | (p < ranking.ALWAYS_APART)
    letters = ranking.position_letters(len(tested), np.column_stack([first[different], second[different]]))
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


def _group(rows: list[ResultRow]) -> dict[tuple[str, ...], list[ResultRow]]:
    groups: dict[tuple[str, ...], list[ResultRow]] = {}
    for r in rows:
        groups.setdefault(line_key(r), []).append(r)
    return groups


def _status(ok: int, failed: int) -> str:
    if not failed:
        return "ok"
    if not ok:
        return "failed"
    return f"{ok} ok, {failed} failed"


def _first_line(text: str | None, limit: int = 200) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


