"""Tuning trials in the results store: the ``tuning_trials`` table (migration ``m005_tuning``).

One record per trial of ``zoo bench --tune`` (`zoo.bench.tuning`): its study (a hash of
everything the trials depend on), number, parameters, state (``complete``, ``pruned`` or
``failed``), final value and the values it reported along its budget. Each is committed when the
trial ends, so an interrupted tuning run resumes after its last finished trial. Boards read a
model's trials to show their distribution beside its tuned line (`attach_trials`).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from zoo.bench.store import ResultsStore, canonical_json

__all__ = [
    "TrialRecord",
    "add_trial",
    "attach_trials",
    "board_trials",
    "study_trials",
    "tuning_label",
]

STATES = ("complete", "pruned", "failed")
_COLUMNS = (
    "study",
    "number",
    "created_at",
    "model",
    "family",
    "dataset",
    "protocol_hash",
    "tuning",
    "state",
    "value",
    "params",
    "intermediate",
    "system_attrs",
    "config_label",
    "config_hash",
    "error",
)


@dataclass
class TrialRecord:
    """One finished trial. ``value``: the primary metric at the trial budget (NaN unless complete;
    a pruned trial's last reported value is in ``intermediate``, keyed by resource step)."""

    study: str
    number: int
    model: str
    dataset: str
    protocol_hash: str
    tuning: dict[str, Any]
    state: str
    params: dict[str, Any]
    value: float = math.nan
    family: str = ""
    intermediate: dict[str, float] = field(default_factory=dict)
    system_attrs: dict[str, Any] = field(default_factory=dict)
    config_label: str = ""
    config_hash: str = ""
    error: str | None = None
    created_at: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"trial state must be one of {STATES}, got {self.state!r}")

    @property
    def last_value(self) -> float:
        """The final value, else the last value reported before the trial was pruned."""
        if math.isfinite(self.value):
            return self.value
        steps = sorted(self.intermediate, key=float)
        return float(self.intermediate[steps[-1]]) if steps else math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _db(record: TrialRecord) -> tuple[Any, ...]:
    values = record.to_dict()
    for key in ("tuning", "params", "intermediate", "system_attrs"):
        values[key] = canonical_json(values[key])
    values["value"] = None if not math.isfinite(record.value) else float(record.value)
    return tuple(values[c] for c in _COLUMNS)


def _record(values: Iterable[Any]) -> TrialRecord:
    data = dict(zip(_COLUMNS, values, strict=True))
    for key in ("tuning", "params", "intermediate", "system_attrs"):
        data[key] = json.loads(data[key])
    data["value"] = math.nan if data["value"] is None else float(data["value"])
    return TrialRecord(**data)


def add_trial(store: ResultsStore, record: TrialRecord) -> None:
    """Commit ``record`` (replacing a record of the same study and number)."""
    marks = ", ".join("?" * len(_COLUMNS))
    sql = f"INSERT OR REPLACE INTO tuning_trials ({', '.join(_COLUMNS)}) VALUES ({marks})"

    def write(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(sql, _db(record))
        conn.execute("COMMIT")

    store._with_retry(write)


def _select(store: ResultsStore | None, where: str, params: tuple[Any, ...]) -> list[TrialRecord]:
    if store is None or store.empty:
        return []

    def read(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
        try:
            columns = ", ".join(_COLUMNS)
            sql = f"SELECT {columns} FROM tuning_trials WHERE {where} ORDER BY model, number"
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:  # a store from before m005_tuning, opened read-only
            return []

    out = []
    for values in store._with_retry(read):
        try:
            out.append(_record(values))
        except (TypeError, ValueError):  # a malformed record is left out, like a malformed row
            continue
    return out


def study_trials(store: ResultsStore | None, study: str) -> list[TrialRecord]:
    """The finished trials of one study, by number."""
    return _select(store, "study = ?", (study,))


def effort_of(tuning: dict[str, Any]) -> dict[str, Any]:
    """The effort every model of a board shares: a tuning record without its model's own
    search-space hash (each model has its own space; the hash stays in the row's identity)."""
    return {k: v for k, v in tuning.items() if k != "space"}


def board_trials(
    store: ResultsStore | None, dataset: str, protocol_hash: str, tuning: dict[str, Any]
) -> dict[str, list[TrialRecord]]:
    """The trials behind one board (dataset, protocol, tuning effort), by model."""
    out: dict[str, list[TrialRecord]] = {}
    effort = canonical_json(effort_of(tuning))
    for record in _select(store, "dataset = ? AND protocol_hash = ?", (dataset, protocol_hash)):
        if canonical_json(effort_of(record.tuning)) == effort:
            out.setdefault(record.model, []).append(record)
    return out


def attach_trials(boards: Iterable[Any], store: ResultsStore | None) -> None:
    """Fill each tuned board's ``trials`` (model -> trial dicts) from ``store``."""
    for board in boards:
        if board.tuning:
            found = board_trials(store, board.dataset, board.protocol_hash, board.tuning)
            board.trials = {
                m: [r.to_dict() | {"last_value": r.last_value} for r in rs]
                for m, rs in found.items()
            }


def tuning_label(tuning: dict[str, Any]) -> str:
    """``tuned: 8 trials at 32kimg, space hashes per model`` in a few words."""
    return f"tuned: {tuning.get('n_trials')} trials at {tuning.get('trial_budget')} each"
