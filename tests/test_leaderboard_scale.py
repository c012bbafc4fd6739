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


# -- the fast path's parts give what the plain ones gave (issue 27: 100,000 rows in seconds) --


def _plain_line(rows: list, primary: str) -> dict:
    """One line's text columns computed the plain way, from its rows in store order."""
    ok = [r for r in rows if r.status == "ok"]
    scored = [(r.metrics[primary], r) for r in ok if isinstance(r.metrics.get(primary), float)]
    best = min(scored, key=lambda pair: pair[0])[1] if scored else rows[-1]
    failed = len(rows) - len(ok)
    return {
        "config_label": next((r.config_label for r in reversed(rows) if r.config_label), ""),
        "preset": next((r.preset for r in reversed(rows) if r.preset), ""),
        "seeds": ",".join(str(s) for s in sorted({r.seed for r in ok})),
        "n_seeds": len({r.seed for r in ok}),
        "failed": failed,
        "status": "ok" if not failed else ("failed" if not ok else f"{len(ok)} ok, {failed} failed"),
        "error": next((r.error.splitlines()[0] for r in reversed(rows) if r.status != "ok" and r.error), ""),
        "best_seed": best.seed,
        "grid_path": best.grid_path or "",
    }


def test_every_line_s_text_columns_match_the_plain_computation(store):
    for board in leaderboards(store):
        for line in board.table.to_dict("records"):
            rows = board.rows_of(line)
            want = _plain_line(rows, board.primary_metric)
            assert {k: line[k] for k in want} == want


def test_curves_average_each_line_s_seeds_per_budget_fraction_as_the_plain_way(store):
    from zoo.bench.curves import compute_curves

    board = leaderboards(store)[0]
    for x_key in ("train_flops", "train_seconds"):
        curves = compute_curves(board, x_key)
        labels = [board.line_label(line) for line in board.table.to_dict("records")]
        assert list(curves) == [label for label in labels if label in curves]  # table order
        for line in board.table.to_dict("records"):
            points: dict[float, list[tuple[float, float]]] = {}
            for row in board.rows_of(line):
                if row.status == "ok":
                    for p in row.curve:
                        points.setdefault(p["fraction"], []).append((p[x_key], p["metrics"][board.primary_metric]))
            want = sorted((float(pd.Series([x for x, _ in v]).mean()), float(pd.Series([y for _, y in v]).mean()),
                           float(pd.Series([y for _, y in v]).std()) if len(v) > 1 else 0.0)
                          for v in points.values())
            got = curves.get(board.line_label(line), [])
            assert len(got) == len(want)
            assert [v for point in got for v in point] == pytest.approx([v for point in want for v in point], rel=1e-12)


@pytest.mark.parametrize("text", [
    '{"fid": NaN, "kid": Infinity, "x": -Infinity}',  # canonical JSON keeps missing scores as NaN
    '{"a": 1e400}', '{"a": 123456789012345678901234567890}', '{"a": 0.1, "b": -0.0, "c": 5e-324}',
    '{"a": 1, "a": 2}', " {\"a\": [1, {\"b\": null}]} ", '"\\ud83d\\ude00"', '{"a": "\\u00e9"}',
    "[" * 5000 + "]" * 5000, "[" * 400 + "]" * 400, '{"a": 18446744073709551615, "b": -9223372036854775809}',
    "{not json", "", "[1,]", b'{"a": 1}', b"\xff\xfe{", 5, None,
], ids=lambda text: repr(text)[:40])
def test_json_columns_load_exactly_as_the_standard_parser_decides(text):
    from zoo.bench.store.row import _parse_json
    from zoo.fileio import parse_json

    def outcome(parse):  # noqa: ANN001, ANN202
        try:
            value = parse(text)
        except (ValueError, TypeError):
            return "refused"
        return "ok", repr(value), type(value)

    assert outcome(lambda t: _parse_json(t, "metrics")) == outcome(parse_json)


@pytest.mark.parametrize("text", ['{"steps": "\\ud800x"}', '{"fid_\\uDC00": 1.0}', '{"a": NaN, "b": "\\ud800"}'])
def test_a_lone_surrogate_escape_is_refused_as_text_no_output_can_encode(text):
    """The standard parser reads it, and then every format failed on it with a traceback."""
    from zoo.bench.store.row import _parse_json

    with pytest.raises(ValueError, match="result column 'metrics'.*surrogates not allowed"):
        _parse_json(text, "metrics")


def test_every_float_reads_back_to_the_same_bits():
    import random
    import struct

    from zoo.bench.store.row import _parse_json

    rng = random.Random(0)
    values = [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(5000)]
    values = [v for v in values if math.isfinite(v)] + [1e-310, 2.2250738585072014e-308, 1.7976931348623157e308]
    got = _parse_json("[" + ",".join(repr(v) for v in values) + "]", "curve")
    assert [struct.pack("<d", v) for v in got] == [struct.pack("<d", v) for v in values]


def test_json_output_is_ascii_and_says_what_the_standard_encoder_says(tmp_path):
    import json

    from zoo.bench.leaderboard import build_leaderboard, leaderboard_dict, to_json
    from zoo.bench.store import ResultRow

    rows = [ResultRow(model="modèle-😀\x1b[31m", dataset="d", seed=s, protocol_hash="p" * 12, config_label="λ=1\u2028",
                      metrics={"fid_lenet": 10.0 + s, "kid_lenet": math.nan}, protocol={"primary_metric": "fid_lenet"})
            for s in range(3)]
    boards = build_leaderboard(rows)
    plain = json.dumps([leaderboard_dict(b) for b in boards], allow_nan=False)
    for indent in (2, None, 4):
        text = to_json(boards, indent=indent)
        assert text.isascii() and json.loads(text) == json.loads(plain)
    assert "\\ud83d\\ude00" in to_json(boards) and "modèle" not in to_json(boards)


@pytest.mark.parametrize("enabled", [True, False])
def test_reading_a_store_leaves_the_garbage_collector_as_it_was(store, enabled):
    import gc

    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        assert store.rows() and leaderboards(store)
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_the_page_never_renders_a_download_it_must_leave_out(store, monkeypatch):
    from zoo.bench import report
    from zoo.bench.render import csvfile, jsonfile

    board = leaderboards(store)[0]
    monkeypatch.setattr(report, "DOWNLOAD_MAX_BYTES", 3_000)  # 100 lines of dozens of fields: surely past it

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("rendered only to be left out")

    monkeypatch.setattr(csvfile, "to_csv", refuse)
    monkeypatch.setattr(jsonfile, "to_json", refuse)
    assert report._downloads(board) == []
    monkeypatch.undo()
    small = report.top_lines(board, 3)
    assert [d["kind"] for d in report._downloads(small)] == ["CSV", "JSON"]


def test_the_page_cuts_a_huge_error_and_says_so():
    """A 5 MB error text (a runaway traceback) made the page 10 MB larger: it was copied in full
    twice."""
    from zoo.bench.leaderboard import build_leaderboard
    from zoo.bench.report import HTML_MAX_ERROR, render_html
    from zoo.bench.store import ResultRow

    huge = "RuntimeError: boom\n" + "x" * 5_000_000
    rows = [ResultRow(model="ok", dataset="d", seed=s, protocol_hash="p" * 12, metrics={"fid_lenet": 10.0 + s},
                      protocol={"primary_metric": "fid_lenet"}) for s in range(2)]
    rows += [ResultRow(model="ok", dataset="d", seed=2, protocol_hash="p" * 12, status="failed", error=huge,
                       protocol={"primary_metric": "fid_lenet"})]
    page = render_html(build_leaderboard(rows))
    assert len(page) < 100_000  # the details of the status cell and the failures list, each cut
    assert page.count(f"{len(huge) - HTML_MAX_ERROR:,} more characters; the full text is in the store") == 2


def test_an_infinite_score_ranks_last_without_an_unnamed_numpy_warning():
    """A metric stored as 1e400 reads as inf: numpy's "invalid value encountered in subtract"
    reached the user as a warning naming no row or metric."""
    import warnings

    from zoo.bench.leaderboard import build_leaderboard, to_csv, to_json
    from zoo.bench.report import render_html
    from zoo.bench.store import ResultRow

    def rows(model: str, scores: list[float]) -> list[ResultRow]:
        return [ResultRow(model=model, dataset="d", seed=s, protocol_hash="p" * 12, metrics={"fid_lenet": v},
                          protocol={"primary_metric": "fid_lenet"}) for s, v in enumerate(scores)]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        boards = build_leaderboard(rows("inf", [math.inf, 11.0, 12.0]) + rows("fine", [20.0, 21.0, 22.0]))
        to_csv(boards), to_json(boards), render_html(boards)
    table = boards[0].table
    assert table["label"].tolist() == ["fine", "inf"] and table["rank_group"].tolist() == ["a", "b"]
