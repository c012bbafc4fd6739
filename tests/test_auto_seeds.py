"""``zoo bench --seeds auto[:CAP]`` (issue 24, item 2): seeds go to the contested lines only, up to
the cap, with a fake benchmark whose per-seed numbers are drawn from known distributions."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from zoo.bench.api import BenchRequest
from zoo.bench.auto_seeds import CAP, START, contested_models, parse_auto, run_auto
from zoo.bench.leaderboard import build_leaderboard
from zoo.bench.store import ResultRow
from zoo.errors import UsageError

PROTOCOL = {"primary_metric": "fid_lenet", "hash": "p" * 12}


def row(model: str, seed: int, value: float, external: bool = False) -> ResultRow:
    return ResultRow(model=model, dataset="mnist-5k", seed=seed, protocol_hash="p" * 12, protocol=PROTOCOL,
                     metrics={"fid_lenet": value}, plugin="external" if external else "zoo_" + model,
                     external={"source": "x", "kind": "folder"} if external else {})


@dataclasses.dataclass
class FakeResult:
    rows: list[ResultRow]


def fake_bench(means: dict[str, float], std: float):
    """A run_benchmark stand-in: model m, seed s scores means[m] + std * N(0, 1) (seeded by m, s)."""
    calls: list[tuple[list[str], list[int]]] = []

    def run(request: BenchRequest, **_: object) -> FakeResult:
        calls.append((list(request.models), list(request.seeds)))
        rows = []
        for m in request.models:
            for s in request.seeds:
                noise = np.random.default_rng([sum(map(ord, m)), s]).standard_normal()
                rows.append(row(m, s, means[m] + std * float(noise)))
        return FakeResult(rows)

    return run, calls


def seeds_of(rows: list[ResultRow]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r.model] = out.get(r.model, 0) + 1
    return out


def test_a_clear_winner_stops_at_the_start_and_a_tie_runs_to_the_cap():
    run, calls = fake_bench({"gan": 100.0, "vae": 100.2, "ddpm": 40.0}, std=2.0)
    result = run_auto(BenchRequest(models=["gan", "vae", "ddpm"]), 6, run, announce=lambda _: None)
    counts = seeds_of(result.rows)
    assert counts == {"ddpm": START, "gan": 6, "vae": 6}  # gan and vae stay tied: the cap stops them
    assert calls[0] == (["gan", "vae", "ddpm"], [0, 1, 2])
    assert all(models == ["gan", "vae"] for models, _ in calls[1:])
    assert [seeds for _, seeds in calls[1:]] == [[3], [4], [5]]


def test_seeds_are_added_until_the_groups_resolve():
    run, _ = fake_bench({"gan": 100.0, "vae": 104.0, "ddpm": 40.0}, std=2.0)
    result = run_auto(BenchRequest(models=["gan", "vae", "ddpm"]), 30, run, announce=lambda _: None)
    counts = seeds_of(result.rows)
    assert START < counts["gan"] == counts["vae"] < 30 and counts["ddpm"] == START
    (board,) = build_leaderboard(result.rows)
    groups = dict(zip(board.table["model"], board.table["rank_group"], strict=True))
    assert len({groups["gan"], groups["vae"], groups["ddpm"]}) == 3  # every line told apart
    assert not contested_models(result.rows)


def test_external_lines_and_single_seeds_count_as_expected():
    rows = [row("gan", s, 10.0 + 0.1 * s) for s in range(3)] + [row("mine", s, 10.05 + 0.1 * s, True) for s in range(3)]
    assert contested_models(rows) == {"gan"}  # tied with the external line, which is never re-run
    assert contested_models([row("vae", 0, 5.0), *(row("gan", s, 50.0 + s) for s in range(3))]) == {"vae"}


def test_parse_auto(capsys):
    from zoo.cli.app import run

    assert run(["bench", "--models", "gan", "--seeds", "auto:2", "--preset", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "auto:CAP" in err and len(err.strip().splitlines()) == 1
    assert parse_auto("0,1,2") is None
    assert parse_auto("auto") == CAP and parse_auto("auto:5") == 5
    for bad in ("auto:2", "auto:x", "auto5", "auto:1000"):
        with pytest.raises(UsageError, match="auto:CAP"):
            parse_auto(bad)
