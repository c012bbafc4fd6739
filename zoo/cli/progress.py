"""Progress on stderr for people: training bars, sampling/feature bars and bench messages.

Everything here adapts the core's plain callbacks (``TrainProgress`` from the trainer,
``progress(task, done, total)`` from sampling and metrics, `zoo.bench.BenchProgress`) to
rich; the core never imports this module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from zoo.cli.app import stderr
from zoo.text import clock_text, printable

if TYPE_CHECKING:
    from zoo.trainer import TrainProgress

#: ``progress(task, done, total)``: the callback shape zoo.metrics and the bench runner accept.
ProgressFn = Callable[[str, int, int], None]
LOSSES_WIDTH = 28  # the losses column never crowds out the step count and the ETA


def losses_text(losses: dict[str, float], width: int = LOSSES_WIDTH) -> str:
    text = " ".join(f"{k}={v:.3g}" for k, v in losses.items())
    return text if len(text) <= width else text[: width - 1] + "…"


LABEL_WIDTH = 12
BAR_WIDTH = 12


def training_line(p: TrainProgress, width: int) -> tuple[str, str, str]:
    """``(steps, clock, info)`` of the training bar for a terminal ``width`` columns wide.

    ``steps`` is ``94/20000`` when the budget fixes the total (steps, kimg, epochs), else
    ``94 steps``; ``clock`` is elapsed training time and the budget's ETA (for a time or FLOP
    budget, the time left by that budget); ``info`` is img/s and the losses, cut to what is left
    of the line after the label and the bar, never more than `LOSSES_WIDTH` for the losses.
    """
    steps = f"{p.step}/{p.total_steps}" if p.total_steps else f"{p.step} steps"
    clock = f"{clock_text(p.elapsed)} eta {clock_text(p.eta)}"
    left = width - (LABEL_WIDTH + BAR_WIDTH + len(steps) + len(clock) + 5)  # five separating spaces
    rate = f"{p.images_per_s:.0f} img/s"
    if left < len(rate):
        return steps, clock, ""
    losses = losses_text(p.losses, min(LOSSES_WIDTH, left - len(rate) - 1)) if left - len(rate) > 4 else ""
    return steps, clock, f"{rate} {losses}".rstrip()


@contextlib.contextmanager
def training_bar(label: str, enabled: bool, console: Any = None) -> Iterator[Callable[[TrainProgress], None] | None]:
    """Yield a trainer progress callback drawing one bar, or ``None`` when not enabled.

    The bar shows steps done (of the total when the budget fixes it), the budget's fraction,
    elapsed training time and the budget's ETA (for a time or FLOP budget too), then img/s and
    the losses in a bounded column (`training_line`), so it fits an 80-column terminal.
    ``console`` is a rich Console (stderr by default).
    """
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn

    console = console or stderr
    bars = Progress(
        TextColumn("{task.description}"), BarColumn(bar_width=BAR_WIDTH), TextColumn("{task.fields[steps]}"),
        TextColumn("{task.fields[clock]}"), TextColumn("[dim]{task.fields[info]}", markup=True),
        console=console, transient=False,
    )
    name = label if len(label) <= LABEL_WIDTH else label[: LABEL_WIDTH - 1] + "…"
    task = bars.add_task(escape(name.ljust(LABEL_WIDTH)), total=1.0, steps="", clock="", info="")

    def update(p: TrainProgress) -> None:
        steps, clock, info = training_line(p, console.width)
        bars.update(task, completed=p.fraction, steps=steps, clock=clock, info=escape(info))

    with bars:
        yield update


def progress_lines(label: str, every: int, console: Any = None) -> Callable[[TrainProgress], None]:
    """Plain progress lines for a log (stderr not a terminal): ``[label] steps elapsed eta ETA
    img/s losses`` every ``every`` steps and at the last, cut to the console's width like the bar."""
    console = console or stderr
    name = label if len(label) <= LABEL_WIDTH else label[: LABEL_WIDTH - 1] + "…"

    def show(p: TrainProgress) -> None:
        if p.step % every and p.step != p.total_steps:
            return
        prefix = f"[{name}] "
        steps, clock, info = training_line(p, console.width - len(prefix) + LABEL_WIDTH + BAR_WIDTH + 1)
        console.print(f"{prefix}{steps} {clock} {info}".rstrip(), markup=False, highlight=False, soft_wrap=False)

    return show


def task_clock(elapsed: float | None, done: float, total: float | None) -> str:
    """``0:00:12 eta 0:01:30``: elapsed time and the time left at the average rate so far (a task
    updated rarely, such as a backbone's training, still gets an ETA after its first update)."""
    from zoo.metrics.training_notice import remaining

    return f"{clock_text(elapsed or 0.0)} eta {clock_text(remaining(elapsed or 0.0, done, total))}"


@contextlib.contextmanager
def task_bars(enabled: bool) -> Iterator[ProgressFn | None]:
    """Yield a ``progress(task, done, total)`` callback drawing one bar per task (done of total,
    elapsed time and ETA: `task_clock`), or ``None``."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn
    from rich.text import Text

    class ClockColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(task_clock(task.elapsed, task.completed, task.total), style="progress.remaining")

    bars = Progress(
        TextColumn("{task.description}"), BarColumn(bar_width=16), MofNCompleteColumn(), ClockColumn(),
        console=stderr, transient=True,
    )
    tasks: dict[str, Any] = {}

    def update(task: str, done: int, total: int) -> None:
        if task not in tasks:
            tasks[task] = bars.add_task(escape(task[:28]), total=total)  # fits 80 columns
        bars.update(tasks[task], completed=done, total=total)

    with bars:
        yield update


def progress_mode(flag: bool | None) -> str:
    """``--progress/--no-progress``: bars, nothing, or (unset) bars on a terminal and lines elsewhere."""
    if flag is None:
        return "bars" if stderr.is_terminal else "lines"
    return "bars" if flag else "off"


def bench_progress(mode: str) -> Any:
    """A `zoo.bench.BenchProgress` printing messages to stderr; ``mode`` from `progress_mode`."""
    interactive = mode == "bars"
    from zoo.bench.runner import BenchProgress

    class CliBenchProgress(BenchProgress):
        def message(self, text: str) -> None:
            stderr.print(f"[dim]zoo bench:[/] {escape(printable(text))}", highlight=False, soft_wrap=False)  # wrap at the width

        @contextlib.contextmanager
        def training(self, label: str) -> Iterator[Callable[[TrainProgress], None] | None]:
            if not interactive:
                yield progress_lines(label, every=200) if mode == "lines" else None
                return
            with training_bar(label, True) as bar:
                yield bar

        @contextlib.contextmanager
        def tasks(self) -> Iterator[ProgressFn | None]:
            with task_bars(interactive) as bars:
                yield bars

    return CliBenchProgress()


def verb_reporter(mode: str, log_every: int = 50) -> Any:
    """A reporter for `zoo.api`'s verbs; ``mode`` from `progress_mode`: a training bar
    and task bars (``bars``), ``[model] step ...`` lines every ``log_every`` steps (``lines``), or
    nothing (``off``)."""
    from zoo.bench.runner import BenchProgress
    from zoo.trainer import log_progress

    class CliReporter(BenchProgress):
        @contextlib.contextmanager
        def training(self, label: str) -> Iterator[Callable[[TrainProgress], None] | None]:
            with training_bar(label, mode == "bars") as bar:
                yield bar or (log_progress(log_every) if mode == "lines" else None)

        @contextlib.contextmanager
        def tasks(self) -> Iterator[ProgressFn | None]:
            with task_bars(mode == "bars") as bars:
                yield bars

    return CliReporter()
