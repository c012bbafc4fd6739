"""``zoo bench --seeds auto[:CAP]``: add seeds to the contested lines until the ranks resolve.

A board of 3 seeds a line cannot tell apart differences of a few percent (see the power line,
`zoo.bench.leaderboard.board_power`). Instead of guessing a seed count, this runs the
benchmark with `START` seeds, builds the board with its rank groups
(`zoo.bench.ranking.letter_groups`), and gives one more seed to every model with a
*contested* line, one that shares a group letter with another line (or has too few seeds to be
tested), until no line is contested or every contested model has ``cap`` seeds. Lines already
told apart from all others get no more seeds, so the compute goes where the ranking is unsure.
External rows (``--samples``) have the seeds their sources give and are never re-run.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from zoo.errors import UsageError

#: Seeds every model gets before the first look at the board.
START = 3
#: Default cap on seeds per model.
CAP = 10


def parse_auto(text: str) -> int | None:
    """The cap of ``auto`` (`CAP`) or ``auto:CAP``; ``None`` for a seed list. ``UsageError``
    for a cap that is not a whole number from `START` to 100."""
    text = text.strip()
    if not text.startswith("auto"):
        return None
    rest = text[len("auto"):]
    if not rest:
        return CAP
    if not rest.startswith(":") or not rest[1:].isdigit() or not START <= int(rest[1:]) <= 100:
        raise UsageError(f"--seeds auto takes a cap of {START} to 100 seeds a model (auto:CAP), got {text!r}")
    return int(rest[1:])


def contested_models(rows: list[Any]) -> set[str]:
    """Models (trained, not external) with a ranked line that shares a group letter with another
    line, or has fewer than 2 seeds; on every board the rows make."""
    from zoo.bench.leaderboard import build_leaderboard

    out: set[str] = set()
    for board in build_leaderboard(rows):
        table = board.table[board.table["rank"].notna()]
        if "external_source" in table:
            table = table[table["external_source"] == ""]
        lines = list(zip(table["model"], table["rank_group"], table["n_seeds"], strict=True))
        everyone = list(zip(board.table["rank_group"], board.table["rank"].notna(), strict=True))
        for model, group, n in lines:
            if int(n) < 2 or not group:
                out.add(str(model))
                continue
            sharing = sum(1 for other, ranked in everyone if ranked and set(other) & set(group))
            if sharing > 1:  # itself and at least one other
                out.add(str(model))
    return out


def run_auto(request: Any, cap: int, run: Callable[..., Any], *, announce: Callable[[str], None] = print,
             **kwargs: Any) -> Any:
    """Run ``run(request, **kwargs)`` ([`zoo.bench.run_benchmark`][zoo.bench.run_benchmark]) with seeds ``0..START-1``,
    then once more per round for the contested models with their next seed, until none is
    contested or each has ``cap`` seeds. Returns the last round's result holding every round's rows."""
    models = [m for m in request.models]
    first = run(dataclasses.replace(request, seeds=list(range(min(START, cap)))), **kwargs)
    rows = list(first.rows)
    last = first
    seeds = {m: min(START, cap) for m in models}
    while True:
        contested = sorted(m for m in contested_models(rows) if m in seeds and seeds[m] < cap)
        if not contested:
            break
        by_next: dict[int, list[str]] = {}
        for m in contested:
            by_next.setdefault(seeds[m], []).append(m)
        for seed, names in sorted(by_next.items()):
            announce(f"seeds auto: {', '.join(names)} contested; adding seed {seed} (cap {cap})")
            last = run(dataclasses.replace(request, models=names, seeds=[seed], samples={}), **kwargs)
            rows += last.rows
            for m in names:
                seeds[m] += 1
    last.rows = rows
    return last
