"""Training budgets in the field's units, and the meter that spends them.

A `Budget` is one amount of one kind:

======  ==================  ===========================================================
kind    text                spent
======  ==================  ===========================================================
time    ``90s 2m 1.5h``     training seconds (wall clock, evaluation and checkpoints excluded)
steps   ``1000steps``       optimizer steps (one call of the model's ``train_step``)
kimg    ``64kimg``          thousands of real images shown: ``steps * batch_size / 1000``
flops   ``2e13flops``       training FLOPs: ``steps * flops_per_step``
======  ==================  ===========================================================

A `BudgetMeter` tracks all four measures at once for one run, whatever its budget, so a
result can report each of them. FLOPs per step are counted by
`torch.utils.flop_counter.FlopCounterMode` on the first real training step of the run (no
extra probe step: the counted step trains like every other). Counting slows that step down, so its
time counts as training time but is left out of the throughput (``images_per_s``). The count is
saved in checkpoints, so a resumed run keeps it without counting again and its FLOP budget is exact.

A meter may hold several budgets (``--steps`` with ``--time``: whichever is reached first); its
`fraction` is then the largest fraction over them, that is, how far the run is
towards stopping.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from zoo.errors import UsageError
from zoo.vocabulary import BUDGET_KINDS

KINDS = BUDGET_KINDS
FORMS = "90s, 2m, 1.5h, 1000steps, 64kimg or 2e13flops"

_TEXT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]+)\s*$", re.IGNORECASE)
_UNITS = {
    "s": ("time", 1.0), "m": ("time", 60.0), "h": ("time", 3600.0),
    "step": ("steps", 1.0), "steps": ("steps", 1.0),
    "kimg": ("kimg", 1.0),
    "flop": ("flops", 1.0), "flops": ("flops", 1.0),
}


@dataclass(frozen=True)
class Budget:
    """How much training a run gets: ``amount`` of ``kind`` (seconds, steps, kimg or FLOPs)."""

    kind: str
    amount: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"unknown budget kind {self.kind!r} (use {', '.join(KINDS)})")
        amount = self.amount
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount) or amount <= 0:
            raise UsageError(f"a {self.kind} budget must be a finite positive number, got {amount!r}")
        if self.kind == "steps" and amount != int(amount):
            raise UsageError(f"a steps budget must be a whole number of steps, got {amount!r}")
        object.__setattr__(self, "amount", float(amount))

    @classmethod
    def parse(cls, text: str) -> Budget:
        """``"2m"``, ``"90s"``, ``"1h"``, ``"1000steps"``, ``"64kimg"``, ``"2e13flop(s)"`` -> Budget.

        Case and spaces between number and unit are ignored. Anything else raises a one-line
        [`zoo.errors.UsageError`][zoo.errors.UsageError] (exit code 2) that lists the accepted forms.
        """
        m = _TEXT.match(text) if isinstance(text, str) else None
        unit = _UNITS.get(m.group(2).lower()) if m else None
        if m is None or unit is None:
            raise UsageError(f"invalid budget {text!r}: expected a positive amount with a unit, like {FORMS}")
        kind, scale = unit
        try:
            return cls(kind, float(m.group(1)) * scale)
        except UsageError as exc:
            raise UsageError(f"invalid budget {text!r}: {exc} (use {FORMS})") from None

    def __str__(self) -> str:
        if self.kind == "time":
            for unit, scale in (("h", 3600.0), ("m", 60.0)):
                if self.amount >= scale and (self.amount / scale).is_integer():
                    return f"{self.amount / scale:g}{unit}"
            return f"{self.amount:g}s"
        if self.kind == "steps":
            return f"{int(self.amount)}steps"
        return f"{self.amount:g}{self.kind}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "amount": self.amount}


def log_spaced_points(n: int, first: float | None = None) -> list[float]:
    """``n`` budget fractions, evenly spaced in log scale, the last one 1.0.

    ``points[i] = first ** ((n - 1 - i) / (n - 1))`` for ``i = 0 .. n-1``, with ``first``
    defaulting to ``2 ** -(n - 1)`` (each point doubles the previous one): ``n=1 -> [1.0]``,
    ``n=3 -> [0.25, 0.5, 1.0]``, ``n=4 -> [0.125, 0.25, 0.5, 1.0]``. Pass ``first`` (in (0, 1)) to
    choose where the curve starts, e.g. ``log_spaced_points(5, first=0.01)`` -> 0.01 ... 1.0.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"the number of evaluation points must be a positive integer, got {n!r}")
    if n == 1:
        return [1.0]
    first = 2.0 ** -(n - 1) if first is None else float(first)
    if not 0 < first < 1:
        raise UsageError(f"the first evaluation point must lie in (0, 1), got {first!r}")
    return [first ** ((n - 1 - i) / (n - 1)) for i in range(n - 1)] + [1.0]


def check_points(points: Sequence[float]) -> list[float]:
    """Validate evaluation points: strictly increasing budget fractions in (0, 1]."""
    out = [float(p) for p in points]
    if any(not (0 < p <= 1) for p in out) or any(b <= a for a, b in zip(out, out[1:], strict=False)):
        raise UsageError(f"evaluation points must be increasing fractions of the budget in (0, 1], got {list(points)}")
    return out


class BudgetMeter:
    """What one run has spent, in seconds, steps, kimg and FLOPs, against one or more budgets.

    The trainer calls `start` when it begins, `step_done` after every step and
    `stop` when it ends; work that is not training (evaluation, checkpoints, progress display)
    runs inside `paused`. ``clock`` is injectable so tests can pass a fake one.
    """

    def __init__(self, budgets: Budget | Sequence[Budget], batch_size: int, *,
                 clock: Callable[[], float] = time.perf_counter):
        self.budgets: tuple[Budget, ...] = (budgets,) if isinstance(budgets, Budget) else tuple(budgets)
        if not self.budgets:
            raise UsageError("a run needs at least one budget")
        self.batch_size, self.clock = batch_size, clock
        self.steps = 0
        self.flops_per_step: float | None = None
        self._banked = 0.0  # training seconds up to the last stop or pause
        self._since: float | None = None  # clock reading when the running segment began
        self._session_steps = 0  # steps and seconds of this session, for throughput
        self._session_seconds = 0.0
        self._excluded_steps = 0  # the FLOP-counting step is left out of throughput
        self._excluded_seconds = 0.0
        self._last_boundary = 0.0

    # -- the clock ----------------------------------------------------------------------------

    @property
    def seconds(self) -> float:
        """Training seconds over all sessions of the run, the running segment included."""
        running = self.clock() - self._since if self._since is not None else 0.0
        return self._banked + running

    @property
    def running(self) -> bool:
        return self._since is not None

    def start(self) -> None:
        """Start (or restart) a session: the clock runs and throughput counts from here."""
        self._session_steps, self._session_seconds = 0, 0.0
        self._excluded_steps, self._excluded_seconds = 0, 0.0
        self._since = self.clock()
        self._last_boundary = self.seconds

    def stop(self) -> None:
        if self._since is not None:
            self._banked += self.clock() - self._since
            self._since = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Time inside this block is not training time (evaluation, checkpoints, display)."""
        was_running = self._since is not None
        self.stop()
        try:
            yield
        finally:
            if was_running:
                self._since = self.clock()

    def step_done(self, *, counted_flops: float | None = None) -> None:
        """Record one finished step; ``counted_flops`` marks the FLOP-counting step and its count."""
        now = self.seconds
        seconds, self._last_boundary = now - self._last_boundary, now
        self.steps += 1
        self._session_steps += 1
        self._session_seconds += seconds
        if counted_flops is not None:
            if counted_flops <= 0 and any(b.kind == "flops" for b in self.budgets):
                raise UsageError("a FLOP budget needs FLOPs to count, but FlopCounterMode counted none in a training "
                                 "step of this model; use a time, steps or kimg budget")
            self.flops_per_step = float(counted_flops)
            self._excluded_steps += 1
            self._excluded_seconds += seconds

    # -- what was spent -----------------------------------------------------------------------

    @property
    def kimg(self) -> float:
        return self.steps * self.batch_size / 1000

    @property
    def flops(self) -> float | None:
        """Training FLOPs so far (``None`` until the first step has been counted)."""
        return None if self.flops_per_step is None else self.steps * self.flops_per_step

    def spent(self) -> dict[str, float | None]:
        return {"train_seconds": self.seconds, "train_steps": self.steps,
                "train_kimg": self.kimg, "train_flops": self.flops}

    def _spent_in(self, kind: str, seconds: float) -> float:
        if kind == "time":
            return seconds
        if kind == "steps":
            return float(self.steps)
        if kind == "kimg":
            return self.kimg
        return self.flops or 0.0

    def fractions(self) -> dict[Budget, float]:
        """Each budget's used fraction, not clamped (above 1 once the budget is overrun)."""
        seconds = self.seconds  # one clock reading for all of them
        return {b: self._spent_in(b.kind, seconds) / b.amount for b in self.budgets}

    def fraction(self) -> float:
        """How far the run is towards stopping, in [0, 1]: the largest fraction over the budgets."""
        return min(1.0, max(self.fractions().values()))

    def done(self) -> bool:
        return self.fraction() >= 1.0

    def stopped_by(self) -> str | None:
        """The kind of the budget that is used up (the most overrun one), or ``None``."""
        budget, used = max(self.fractions().items(), key=lambda kv: kv[1])
        return budget.kind if used >= 1.0 else None

    # -- rates --------------------------------------------------------------------------------

    def steps_per_s(self) -> float:
        """Steady-state steps per training second this session (the FLOP-counting step left out
        unless it is the only one)."""
        steps, seconds = self._session_steps - self._excluded_steps, self._session_seconds - self._excluded_seconds
        if steps <= 0 or seconds <= 0:
            steps, seconds = self._session_steps, self._session_seconds
        return steps / seconds if steps and seconds > 0 else 0.0

    def images_per_s(self) -> float:
        return self.steps_per_s() * self.batch_size

    def total_steps(self) -> int | None:
        """The step at which a step-like budget ends (``None`` for time only, or FLOPs not yet counted)."""
        totals = [t for b in self.budgets if (t := self._steps_for(b)) is not None]
        return min(totals) if totals else None

    def _steps_for(self, budget: Budget) -> int | None:
        if budget.kind == "steps":
            return int(budget.amount)
        if budget.kind == "kimg":
            return math.ceil(budget.amount * 1000 / self.batch_size - 1e-9)
        if budget.kind == "flops" and self.flops_per_step:
            return math.ceil(budget.amount / self.flops_per_step - 1e-9)
        return None

    def eta(self) -> float | None:
        """Seconds of training left: the time budget's remainder, or the steps left over the
        current step rate for a step, kimg or FLOP budget; the soonest over all budgets."""
        seconds, rate, etas = self.seconds, self.steps_per_s(), []
        for b in self.budgets:
            if b.kind == "time":
                etas.append(max(0.0, b.amount - seconds))
            elif (total := self._steps_for(b)) is not None and rate > 0:
                etas.append(max(0, total - self.steps) / rate)
        return min(etas) if etas else None

    # -- checkpoints --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "seconds": self.seconds, "flops_per_step": self.flops_per_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        self._banked = float(state.get("seconds", 0.0))
        if self._since is not None:
            self._since = self.clock()
        fps = state.get("flops_per_step")
        self.flops_per_step = None if fps is None else float(fps)
        self._last_boundary = self.seconds
