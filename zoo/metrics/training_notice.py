"""Telling people about a feature backbone trained on first use: how long, and that it is cached.

Training a backbone (the lenet classifier, the simclr encoder) takes from seconds to minutes on a
CPU and happens once per dataset and recipe. `TrainingClock` times the first steps, then
issues one `BackboneTraining` warning with the estimate and the cache file (the CLI prints
it as one ``zoo: warning:`` line, on a terminal or in a log), and forwards every step to the
caller's ``progress(task, done, total)`` so a bar can show elapsed and remaining time.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path

#: Announce once this much training has been timed (and at least `MIN_STEPS` steps).
CALIBRATION_SECONDS = 1.0
MIN_STEPS = 3


class BackboneTraining(UserWarning):
    """A feature backbone is being trained on first use; the message says how long and where it
    is cached."""


def duration_text(seconds: float) -> str:
    """``"40 s"``, ``"2 min 10 s"``, ``"1 h 05 min"``: a rounded, readable duration."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s // 60 % 60:02d} min"


class TrainingClock:
    """Times a backbone's training steps: one up-front estimate, then every step to ``progress``.

    ``what`` names the work (``"the simclr backbone on folder:3f2a... (1,800 images, 300 steps)"``),
    ``path`` is the cache file the result goes to. Call the instance as ``clock(done, total)`` after
    each step (or every few steps).
    """

    def __init__(self, what: str, path: Path, task: str, progress: Callable[[str, int, int], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.what, self.path, self.task, self.progress, self._clock = what, path, task, progress, clock
        self.start = clock()
        self.announced = False
        self.estimate: float | None = None
        self._first: tuple[int, float] | None = None

    def __call__(self, done: int, total: int) -> None:
        now = self._clock()
        elapsed = now - self.start
        if self._first is None and done > 0:
            self._first = (done, elapsed)  # the first report carries start-up costs: timed apart
        if not self.announced and done > 0 and ((done >= MIN_STEPS and elapsed >= CALIBRATION_SECONDS) or done >= total):
            self.announced = True
            first_done, first_elapsed = self._first or (0, 0.0)
            if done > first_done:  # the rate after the first report, for the steps left
                rate = (elapsed - first_elapsed) / (done - first_done)
            else:
                rate = elapsed / done
            self.estimate = elapsed + rate * (total - done)
            warnings.warn(
                f"training {self.what} once: about {duration_text(self.estimate)} on this machine "
                f"({duration_text(self.estimate - elapsed)} left, timed over the first {done} steps); "
                f"cached in {self.path}",
                BackboneTraining, stacklevel=2,
            )
        if self.progress is not None:
            self.progress(self.task, done, total)


def remaining(elapsed: float, done: float, total: float | None) -> float | None:
    """Time left at the average rate so far (``None`` before the first step or without a total)."""
    if not total or done <= 0 or elapsed <= 0:
        return None
    return max(0.0, elapsed * (total - done) / done)

