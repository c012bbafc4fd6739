"""Rank groups (compact letters from pairwise Welch tests, Holm) and each board's power line,
checked against independent computations (scipy.stats, a Monte Carlo simulation)."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from zoo.bench import ranking
from zoo.bench.leaderboard import build_leaderboard, footnote, to_csv, to_json, to_markdown, to_text
from zoo.bench.report import render_html
from zoo.bench.store import ResultRow

P = {"primary_metric": "fid_lenet"}
# The issue's board: each line is only compared with the line above in the old ranks, so the ties
# chained down and every line read =1, though ddpm and vae differ at p = 0.0006.
ISSUE = {"ddpm": (739.0, 749.0, 759.0), "dcgan": (780.0, 850.0, 920.0),
         "vae": (931.7, 951.4, 971.1), "gan": (900.0, 1000.0, 1100.0)}


def row(model: str, seed: int, fid: float) -> ResultRow:
    return ResultRow(model=model, dataset="mnist-5k", seed=seed, protocol_hash="p1", protocol=P,
                     metrics={"fid_lenet": fid}, floor={"fid_lenet": 1.0}, budget_kind="steps", budget_amount=1000.0)


def board(lines: dict[str, tuple[float, ...]]):
    (lb,) = build_leaderboard([row(m, s, v) for m, values in lines.items() for s, v in enumerate(values)])
    return lb


def groups(lb) -> dict[str, str]:
    return dict(zip(lb.table["model"], lb.table["rank_group"], strict=True))


def holm_independent(p: list[float]) -> list[float]:
    """Holm's adjusted p-values written out from the definition (max over the smaller ones)."""
    order = np.argsort(p)
    m = len(p)
    scaled = [min(1.0, (m - k) * p[i]) for k, i in enumerate(order)]
    out = [0.0] * m
    for k, i in enumerate(order):
        out[i] = max(scaled[: k + 1])
    return out


def test_issue_board_no_longer_ranks_every_line_first():
    lb = board(ISSUE)
    p = stats.ttest_ind(ISSUE["ddpm"], ISSUE["vae"], equal_var=False).pvalue
    assert p == pytest.approx(0.0006, abs=2e-4)
    assert lb.table["model"].tolist() == ["ddpm", "dcgan", "vae", "gan"]
    assert lb.table["rank"].tolist() == [1, 2, 3, 4]
    g = groups(lb)
    assert not set(g["ddpm"]) & set(g["vae"])  # p < 0.01: never one group
    assert g["ddpm"] == "a" and g["vae"] == "b" and g["dcgan"] == "ab" and g["gan"] == "ab"


def test_pairs_at_p_below_001_never_share_a_letter_and_untold_pairs_always_do():
    """Random boards of 8 lines x 3 seeds (28 pairs: Holm alone would let p = 0.009 pairs share a
    letter): every pair at raw p < 0.01 is apart, every pair Holm and the 0.01 rule leave
    untold shares a letter, and pairs that Holm alone would have merged occur."""
    rng = np.random.default_rng(7)
    merged_by_holm_alone = 0
    for _ in range(12):
        means = np.sort(rng.uniform(50, 80, 8))
        lines = {f"m{i}": tuple(float(v) for v in rng.normal(mu, 5, 3)) for i, mu in enumerate(means)}
        g = groups(board(lines))
        names = list(lines)
        pairs = [(a, b) for k, a in enumerate(names) for b in names[k + 1:]]
        raw = [float(stats.ttest_ind(lines[a], lines[b], equal_var=False).pvalue) for a, b in pairs]
        adjusted = holm_independent(raw)
        for (a, b), p, adj in zip(pairs, raw, adjusted, strict=True):
            share = bool(set(g[a]) & set(g[b]))
            assert share == (adj >= 0.05 and p >= 0.01), (a, b, p, adj, g)
            merged_by_holm_alone += p < 0.01 <= 0.05 <= adj
    assert merged_by_holm_alone > 0


def test_truly_tied_lines_share_one_group():
    lb = board({"a": (10.0, 12.0, 14.0), "b": (10.5, 12.5, 13.5), "c": (11.0, 12.0, 13.0)})
    assert set(groups(lb).values()) == {"a"}


def test_lines_without_spread_are_apart_when_their_means_differ():
    lb = board({"a": (5.0, 5.0), "b": (6.0, 6.0), "c": (5.0, 5.0)})
    assert groups(lb) == {"a": "a", "c": "a", "b": "b"}


def test_single_seed_lines_keep_a_rank_but_get_no_group_and_the_footnote_says_so():
    lb = board({"a": (10.0, 10.1, 9.9), "solo": (15.0,), "b": (20.0, 20.1, 19.9)})
    assert lb.table["model"].tolist() == ["a", "solo", "b"] and lb.table["rank"].tolist() == [1, 2, 3]
    assert groups(lb) == {"a": "a", "solo": "", "b": "b"}
    notes = " ".join(footnote(lb))
    assert "1 line with a single seed: no interval and no group" in notes
    assert "| 2 | solo | 15.00 | – |" in to_markdown([lb])
    assert "rank 2 of 3, no group (one seed" in render_html([lb])


def test_letters_run_out_past_52_groups_and_the_footnote_says_so():
    lb = board({f"m{i:02d}": (10.0 * i, 10.0 * i + 0.1, 10.0 * i - 0.1) for i in range(1, 54)})
    assert (lb.table["rank_group"] == "").all() and lb.table["rank"].tolist() == list(range(1, 54))
    assert any("too many groups for letters" in n for n in footnote(lb))
    from zoo.bench.columns import human_columns

    group = next(c for c in human_columns(lb) if c.key == "group")
    # tested lines whose letters were not drawn show nothing, not the "one seed" dash
    assert {group.cell(line) for line in lb.table.to_dict("records")} == {""}
    assert ranking.letter_groups(list(range(52)), {(i, j) for i in range(52) for j in range(i)}) is not None


def test_every_format_shows_rank_and_group_without_formula_guards():
    lb = board(ISSUE)
    frame = pd.read_csv(io.StringIO(to_csv([lb])), keep_default_na=False)
    models = frame[frame["kind"] == "model"]
    assert models["rank"].astype(int).tolist() == [1, 2, 3, 4]
    assert models["rank_group"].tolist() == ["a", "ab", "b", "ab"]
    assert "'=" not in to_csv([lb]) and "holm" in frame["rank_test"].iloc[0]
    assert frame["power"].iloc[0].startswith("Power: seed-to-seed std")
    lines = json.loads(to_json([lb]))[0]["lines"]
    assert [(x["rank"], x["rank_group"]) for x in lines] == [(1, "a"), (2, "ab"), (3, "b"), (4, "ab")]
    text = to_text([lb], width=80)
    assert "group" in text and "│ 3 │ vae" in text and "│ =" not in text
    assert "| # | model | fid_lenet ↓ | group |" in to_markdown([lb])
    assert "rank 3 of 4, group b (lines sharing a letter" in render_html([lb])


# -- power -----------------------------------------------------------------------------------


def simulated_power(effect: float, n: int, draws: int = 100_000, seed: int = 0) -> float:
    """Welch's test (scipy.stats) on simulated normal seeds: the share of draws at p < 0.05."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, (draws, n))
    b = rng.normal(effect, 1.0, (draws, n))
    return float((stats.ttest_ind(a, b, axis=1, equal_var=False).pvalue < 0.05).mean())


@pytest.mark.parametrize(("effect", "n"), [(1.25, 3), (2.5, 3), (1.25, 5), (1.0, 2), (0.6, 12)])
def test_welch_power_matches_a_simulation(effect, n):
    # effect 1.25 and 2.5 at n = 3: the issue's 10% and 20% differences at an 8% spread
    assert ranking.welch_power(effect, n) == pytest.approx(simulated_power(effect, n), abs=0.006)


def test_issue_figures_at_three_seeds():
    """The issue: at ~8% spread and 3 seeds, Welch finds a 10% difference 14% of the time and a
    20% one 45%. With both lines at exactly 8% of the same mean the formula (and the simulation)
    give 16.5% and 53%; with each line's spread 8% of its own mean, the simulation gives about
    15% and 45%: the issue's figures are of that kind, and the formula's are close to them."""
    assert ranking.welch_power(0.10 / 0.08, 3) == pytest.approx(0.165, abs=0.005)
    assert ranking.welch_power(0.20 / 0.08, 3) == pytest.approx(0.527, abs=0.005)
    assert 0.12 < ranking.welch_power(0.10 / 0.08, 3) < 0.2 and 0.4 < ranking.welch_power(0.20 / 0.08, 3) < 0.6


def test_board_states_its_detectable_difference_and_seeds_needed():
    lb = board(ISSUE)
    p = lb.power
    spreads = [np.var(v, ddof=1) for v in ISSUE.values()]
    assert p["std"] == pytest.approx(math.sqrt(np.mean(spreads))) and p["lines"] == 4 and p["seeds"] == 3
    assert p["alpha"] == 0.05 and p["power"] == 0.8 and p["best_mean"] == pytest.approx(749.0)
    # independent: a simulation at the stated difference finds it 80% of the time
    assert simulated_power(p["detectable"] / p["std"], 3, draws=60_000, seed=1) == pytest.approx(0.8, abs=0.01)
    k = p["seeds_needed"]
    effect = p["target"] / p["std"]
    assert p["target"] == pytest.approx(74.9)
    assert simulated_power(effect, k, draws=40_000, seed=2) >= 0.79
    assert simulated_power(effect, k - 1, draws=40_000, seed=3) < 0.81
    line = next(n for n in footnote(lb) if n.startswith("Power:"))
    assert "at 3 seeds a line one Welch test (two-sided, α = 0.05, before Holm) detects 80%" in line
    assert f"needs {k} seeds a line" in line
    for text in (to_text([lb], width=80), to_markdown([lb]), render_html([lb]),
                 " ".join(json.loads(to_json([lb]))[0]["footnotes"])):
        assert "Power: seed-to-seed std" in " ".join(text.split())
    assert json.loads(to_json([lb]))[0]["power"]["seeds_needed"] == k


def test_a_board_without_two_seeds_says_its_power_is_unknown():
    lb = board({"a": (5.0,), "b": (6.0,)})
    assert lb.power == {}
    assert any(n.startswith("Power: no line has 2 seeds") for n in footnote(lb))


def test_holm_matches_its_definition():
    p = [0.01, 0.04, 0.03, 0.5, 0.001]
    assert ranking.holm(p) == pytest.approx(holm_independent(p))


def letters_reference(n: int, different: set[tuple[int, int]]) -> list[str] | None:
    """Piepho's insert-and-absorb written plainly with sets (the display before bit masks)."""
    columns = [set(range(n))]
    for i, j in sorted({tuple(sorted(p)) for p in different}):
        split = []
        for col in columns:
            split += [col - {i}, col - {j}] if i in col and j in col else [col]
        unique = []
        for col in sorted(split, key=len, reverse=True):
            if col and not any(col <= kept for kept in unique):
                unique.append(col)
        columns = unique
    if len(columns) > len(ranking.LETTERS):
        return None
    columns.sort(key=sorted)
    return ["".join(ranking.LETTERS[c] for c, col in enumerate(columns) if k in col) for k in range(n)]


@pytest.mark.parametrize("seed", range(40))
def test_bit_mask_letters_match_the_plain_set_display(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 14))
    density = rng.random()
    different = {(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < density}
    assert ranking.position_letters(n, sorted(different)) == letters_reference(n, different)
    assert ranking.letter_groups(list(range(100, 100 + n)), {(100 + j, 100 + i) for i, j in different}) \
        == letters_reference(n, different)


def test_vectorised_welch_matches_scipy_on_every_pair():
    rng = np.random.default_rng(0)
    lines = [list(rng.normal(rng.uniform(0, 5), rng.uniform(0.1, 2), size=rng.integers(2, 6))) for _ in range(12)]
    lines += [[3.0, 3.0], [3.0, 3.0, 3.0], [4.0, 4.0]]  # no spread: 1 when the means agree, else 0
    first, second, p = ranking.pairwise_welch(lines)
    assert len(p) == len(lines) * (len(lines) - 1) // 2
    for i, j, value in zip(first, second, p, strict=True):
        a, b = lines[i], lines[j]
        if np.var(a) == 0 and np.var(b) == 0:
            assert value == (1.0 if np.mean(a) == np.mean(b) else 0.0)
        else:
            assert value == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9, abs=1e-12)


def test_a_board_past_the_letter_line_limit_gets_no_groups_and_says_why(monkeypatch):
    monkeypatch.setattr(ranking, "MAX_LETTER_LINES", 5)
    from zoo.bench import columns

    monkeypatch.setattr(columns, "MAX_LETTER_LINES", 5)
    lb = board({f"m{i}": (10.0, 10.5, 11.0) for i in range(6)})  # all tied: one group if drawn
    assert (lb.table["rank_group"] == "").all()
    assert any("letter groups are drawn for at most 5" in n for n in footnote(lb))
    lb = board({f"m{i}": (10.0, 10.5, 11.0) for i in range(5)})
    assert (lb.table["rank_group"] == "a").all()
