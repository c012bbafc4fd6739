"""Leaderboard lines by run identity, confidence intervals, tie ranks, formats and the command."""

from __future__ import annotations

import io
import json
import math

import pandas as pd
import pytest
import torch
from torchvision.utils import save_image

from zoo.bench.formats import BUILTIN_FORMATS, OutputFormat
from zoo.bench.leaderboard import (
    build_leaderboard,
    leaderboards,
    to_csv,
    to_json,
    to_markdown,
    to_text,
)
from zoo.bench.report import render_html
from zoo.bench.store import ResultRow, ResultsStore
from zoo.cli.app import run
from zoo.errors import UnknownNameError, UsageError

P = {"primary_metric": "fid_lenet"}


def row(model: str, seed: int, fid: float, **extra) -> ResultRow:
    values = dict(model=model, dataset="mnist-5k", seed=seed, protocol_hash="p1", protocol=P, metrics={"fid_lenet": fid},
                  floor={"fid_lenet": 1.0}, budget_kind="steps", budget_amount=1000.0)
    values.update(extra)
    return ResultRow(**values)


def test_clearly_separated_lines_get_ranks_1_2_with_intervals():
    rows = [row("a", s, v) for s, v in enumerate((10.0, 10.1, 9.9))] + [row("b", s, v) for s, v in enumerate((20.0, 20.1, 19.9))]
    (lb,) = build_leaderboard(rows)
    assert lb.table["model"].tolist() == ["a", "b"]
    assert lb.table["rank"].tolist() == [1, 2] and lb.table["rank_group"].tolist() == ["a", "b"]
    from scipy import stats
    half = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)
    a = lb.table.iloc[0]
    assert a["ci_low"] == pytest.approx(10.0 - half) and a["ci_high"] == pytest.approx(10.0 + half)


def test_overlapping_lines_share_a_rank():
    rows = [row("a", s, v) for s, v in enumerate((10.0, 12.0, 14.0))] + [row("b", s, v) for s, v in enumerate((11.0, 13.0, 15.0))]
    rows += [row("c", s, v) for s, v in enumerate((50.0, 50.5, 51.0))]
    (lb,) = build_leaderboard(rows)
    assert lb.table["rank"].tolist() == [1, 2, 3]
    assert lb.table["rank_group"].tolist() == ["a", "a", "b"]
    assert "| 2 | b | 13.00 ± 2.00 | a |" in to_markdown([lb]) and "Welch" in to_markdown([lb])


def test_single_seeds_give_no_interval_and_ties_and_the_footnote_says_so():
    (lb,) = build_leaderboard([row("a", 0, 5.0), row("b", 0, 50.0)])
    assert lb.table["ci_low"].isna().all() and lb.table["rank_group"].tolist() == ["", ""]
    assert lb.table["rank"].tolist() == [1, 2]
    for text in (to_text([lb]), to_markdown([lb]), render_html([lb])):
        assert "single seed" in text and "Welch" in text
    assert any("single seed" in n for n in json.loads(to_json([lb]))[0]["footnotes"])
    assert "welch" in pd.read_csv(io.StringIO(to_csv([lb])))["rank_test"].iloc[0].lower()


def test_configs_and_budgets_are_separate_labelled_lines():
    rows = [row("vae", 0, 10.0, config={"lr": 1e-3}), row("vae", 1, 11.0, config={"lr": 1e-3}),
            row("vae", 0, 30.0, config={"lr": 1e-2}, config_label="lr=0.01"),
            row("vae", 0, 8.0, config={"lr": 1e-3}, budget_amount=5000.0)]
    (lb,) = build_leaderboard(rows)
    assert len(lb.table) == 3
    labels = dict(zip(lb.table["label"], lb.table["fid_lenet_mean"], strict=True))
    assert labels["vae lr=0.01 @1,000 steps"] == 30.0
    assert labels["vae @1,000 steps"] == 10.5 and labels["vae @5,000 steps"] == 8.0
    assert "vae lr=0.01" in to_markdown([lb])


def test_text_is_escaped_in_every_format():
    evil = row("=HYPERLINK(\"x\")", 0, 3.0, config_label="+cmd|' /C calc'!A0")
    (lb,) = build_leaderboard([evil, row("<b>x</b>", 0, 4.0), row("[red]m[/]\x1b[2J", 0, 5.0)])
    frame = pd.read_csv(io.StringIO(to_csv([lb])))
    assert frame["model"].iloc[1].startswith("'=") and frame["config_label"].iloc[1].startswith("'+")
    assert "<b>x</b>" not in render_html([lb]) and "&lt;b&gt;x&lt;/b&gt;" in render_html([lb])
    assert "&lt;b&gt;" in to_markdown([lb]) and "\x1b" not in to_text([lb]) and "[red]m[/]" in to_text([lb])


def test_every_builtin_format_renders_empty_and_full():
    assert {f.name for f in BUILTIN_FORMATS} == {"table", "csv", "markdown", "json", "latex", "html"}
    assert all(isinstance(f, OutputFormat) for f in BUILTIN_FORMATS)
    boards = build_leaderboard([row("a", 0, 5.0)])
    for fmt in BUILTIN_FORMATS:
        assert fmt.render(boards) and fmt.render([]) is not None
    assert json.loads(to_json([])) == []
    header = to_csv([])
    assert header.count("\n") == 1 and header.startswith("dataset,protocol_hash")
    core = {"dataset", "protocol_hash", "kind", "rank", "rank_group", "model", "label", "n_seeds", "ci_low"}
    assert core <= set(header.strip().split(",")) and core <= set(pd.read_csv(io.StringIO(to_csv(boards))).columns)


def test_leaderboards_filters_and_validates(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    assert leaderboards(store) == []
    store.add_many([row("a", 0, 5.0), row("a", 0, 6.0, protocol_hash="p2abc")])
    assert [lb.protocol_hash for lb in leaderboards(store)] == ["p1", "p2abc"]
    assert [lb.protocol_hash for lb in leaderboards(store, protocol="p2")] == ["p2abc"]
    with pytest.raises(UnknownNameError):
        leaderboards(store, dataset="mnist5k")
    with pytest.raises(UsageError, match="ambiguous"):
        leaderboards(store, protocol="p")


def test_cli_empty_store_in_every_format(tmp_path, capsys):
    empty = tmp_path / "empty.sqlite"
    ResultsStore(empty)
    assert run(["leaderboard", "--results", str(empty), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert run(["leaderboard", "--results", str(empty), "--format", "csv"]) == 0
    assert capsys.readouterr().out.count("\n") == 1
    assert run(["leaderboard", "--results", str(empty)]) == 0
    assert "No results yet" in capsys.readouterr().out
    assert run(["leaderboard", "--results", str(empty), "--format", "latex"]) == 0  # built in since issue 24
    assert capsys.readouterr().out == "% genzoo leaderboard; needs \\usepackage{booktabs}\n% No results yet.\n"
    assert run(["leaderboard", "--results", str(empty), "--format", "docx"]) == 2
    assert "unknown output format 'docx'" in capsys.readouterr().err


def test_cli_html_from_another_directory_finds_grids_and_dash_is_stdout(tmp_path, capsys, monkeypatch):
    project = tmp_path / "project"
    (project / "runs" / "a-s0").mkdir(parents=True)
    torch.manual_seed(0)
    save_image(torch.rand(4, 1, 8, 8), project / "runs" / "a-s0" / "grid.png", nrow=2)
    monkeypatch.chdir(project)
    ResultsStore("runs/results.sqlite").add(row("a", 0, 5.0, grid_path="runs/a-s0/grid.png"))
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    assert run(["leaderboard", "--results", str(project / "runs" / "results.sqlite"), "--format", "html", "-o", "-"]) == 0
    page = capsys.readouterr().out
    assert page.startswith("<!doctype html>") and "sample grid not found" not in page
    assert page.count('<img src="data:image/png;base64,') >= 1
    assert run(["leaderboard", "--results", str(project / "runs" / "results.sqlite"), "--format", "markdown", "-o", "-"]) == 0
    assert "| # | model |" in capsys.readouterr().out
