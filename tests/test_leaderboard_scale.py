"""The leaderboard of a large store (issue 27): the fast path gives the numbers of the plain one,
and the HTML page caps what it draws and says so. ``benchmarks/leaderboard_scale.py`` times it."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest

from zoo.bench.leaderboard import (
    ALPHA,
    leaderboards,
    line_key,
    rank_groups,
    to_csv,
)
from zoo.bench.store import ResultsStore

ROOT = Path(__file__).resolve().parent.parent


def _scale_module():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("leaderboard_scale", ROOT / "benchmarks" / "leaderboard_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ResultsStore:
    path = tmp_path_factory.mktemp("scale") / "results.sqlite"
    _scale_module().build_store(path, 2000, boards=4, seeds=5)
    return ResultsStore(path, create=False)


def _reference(rows: list, primary: str) -> pd.DataFrame:
    """Mean, interval, rank and tie label of each line computed the plain way: one scipy call per
    line and per neighbouring pair (what the leaderboard did before it was vectorised)."""
    from scipy import stats

    lines: dict[tuple, list[float]] = {}
    for r in rows:
        values = lines.setdefault(line_key(r), [])
        if r.status == "ok" and isinstance(r.metrics.get(primary), (int, float)):
            values.append(float(r.metrics[primary]))
    records = []
    for key, values in lines.items():
        mean = float(pd.Series(values, dtype=float).mean()) if values else math.nan
        std = float(pd.Series(values, dtype=float).std()) if values else math.nan
        low = high = math.nan
        if len(values) >= 2:
            half = float(stats.t.ppf(1 - ALPHA / 2, len(values) - 1)) * std / math.sqrt(len(values))
            low, high = mean - half, mean + half
        records.append({"key": key, "mean": mean, "ci_low": low, "ci_high": high, "values": values})
    table = pd.DataFrame(records)
    table["rank"] = table["mean"].rank(method="min", ascending=True)
    return table


def test_a_2000_row_store_ranks_as_the_plain_computation_does(store):
    boards = leaderboards(store)
    assert len(boards) == 4 and sum(len(b.table) for b in boards) == 400
    for board in boards:
        ref = _reference(board.rows, board.primary_metric).set_index("key")
        table = board.table
        keys = [tuple(str(line[k]) for k in ("model", "plugin", "plugin_version", "config_hash", "budget_kind",
                                               "budget", "precision", "sample_options"))
                for line in table.to_dict("records")]
        ref = ref.loc[keys]
        # pandas' grouped mean sums in another order than Series.mean: equal to the last bit or two.
        same = {"nan_ok": True, "rel": 1e-13, "abs": 0}
        assert table[f"{board.primary_metric}_mean"].tolist() == pytest.approx(ref["mean"].tolist(), **same)
        assert table["ci_low"].tolist() == pytest.approx(ref["ci_low"].tolist(), **same)
        assert table["ci_high"].tolist() == pytest.approx(ref["ci_high"].tolist(), **same)
        assert [int(r) if not pd.isna(r) else None for r in table["rank"]] == \
            [int(r) if not math.isnan(r) else None for r in ref["rank"]]
        # Rank groups: the all-pairs test on each line's seeds as collected the plain way.
        groups = rank_groups(table["rank"].tolist(), ref["values"].tolist())
        assert table["rank_group"].tolist() == groups


def test_the_page_shows_the_best_lines_of_a_large_board_and_says_so(store, monkeypatch):
    from zoo.bench import report

    monkeypatch.setattr(report, "HTML_MAX_LINES", 15)
    boards = leaderboards(store)
    page = report.render_html(boards[:1])
    assert page.count('<article class="card') == 15
    assert "shows the 15 best-ranked of 100 lines" in page and "plots draw the 12 best-ranked" in page
    best = boards[0].table.iloc[0]["label"]
    assert best in page
    assert to_csv(boards[:1]).count("\n") > 100  # machine formats keep every line


def test_rows_of_one_read_share_no_dicts(store):
    # A read decodes each distinct protocol text once; every row still owns its dict.
    a, b = store.rows()[:2]
    assert a.protocol == b.protocol and a.protocol is not b.protocol
    a.protocol["primary_metric"] = "changed"
    assert b.protocol["primary_metric"] == "fid_lenet"


def test_a_board_needing_more_than_52_letters_skips_the_all_pairs_tests(monkeypatch):
    from zoo.bench import ranking

    def all_pairs(*args):  # noqa: ANN002, ANN202
        raise AssertionError("all-pairs tests run on a board that cannot get letters")

    monkeypatch.setattr(ranking, "pairwise_welch", all_pairs)
    values = [[10.0 * i, 10.0 * i + 0.1, 10.0 * i - 0.1] for i in range(1, 2001)]
    assert rank_groups(list(range(1, 2001)), values) == [""] * 2000


def test_the_terminal_shows_the_first_lines_of_a_large_board_and_says_so(store, monkeypatch):
    from zoo.bench.render import terminal

    monkeypatch.setattr(terminal, "TERMINAL_MAX_LINES", 15)
    board = leaderboards(store)[0]
    text = terminal.to_text([board], width=400)
    assert "shows the first 15 of 100 lines" in text and "--format csv or json lists them all" in text
    labels = board.table["label"].tolist()
    assert labels[0] in text and labels[14] in text and labels[15] not in text
