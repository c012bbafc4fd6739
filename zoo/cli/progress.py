"""Progress bars for multi-stage work (sampling, feature extraction) on stderr."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from zoo.cli.app import stderr

#: ``progress(task, done, total)``: the callback shape zoo.metrics and the bench runner accept.
ProgressFn = Callable[[str, int, int], None]


@contextlib.contextmanager
def task_bars(enabled: bool) -> Iterator[ProgressFn | None]:
    """Yield a ``progress(task, done, total)`` callback drawing one bar per task, or ``None``."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    bars = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=stderr, transient=True,
    )
    tasks: dict[str, Any] = {}

    def update(task: str, done: int, total: int) -> None:
        if task not in tasks:
            tasks[task] = bars.add_task(task, total=total)
        bars.update(tasks[task], completed=done, total=total)

    with bars:
        yield update
