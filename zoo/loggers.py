"""Training loggers: where the trainer writes what happens at each step (``zoo train --logger NAME``).

A logger is opened once per training session in the run directory and receives every step:
``write(step, seconds, losses)`` (the step number counted from 1 over the whole run, training
seconds so far and the step's losses as floats), then ``close()``. Built in:

* ``csv`` (the default): ``losses.csv``, one row per step: ``step,seconds,<loss>...``;
* ``tensorboard``: event files under ``tensorboard/`` for TensorBoard (``tensorboard --logdir
  runs``) through `torch.utils.tensorboard.SummaryWriter`: the losses (``loss/<name>``), the
  learning rate of every optimizer's parameter groups (``lr/<optimizer>``), images per second
  (``throughput/img_per_s``) and a sample grid (``samples``) at the first step and every
  ``checkpoint_every`` steps. Needs the ``tensorboard`` package (``pip install
  'genzoo[tensorboard]'``).

A plugin adds a logger through the ``zoo_register_loggers`` hook, the way genzoo registers its
own (this module is the ``loggers`` entry point):

    @zoo.hookimpl
    def zoo_register_loggers(register):
        register(LoggerSpec("jsonl", "one JSON line per step", open_jsonl))

``open(context)`` receives a `LoggerContext` and returns an object with ``write`` and
``close``. This module imports nothing heavy at the top: plugin modules load for ``zoo --help``.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from zoo.hookspecs import hookimpl

__all__ = ["CsvLossLog", "LoggerContext", "LoggerSpec", "LoggerWarning", "Loggers", "TrainingLogger", "open_loggers", "zoo_register_loggers"]

DEFAULT_LOGGERS = ("csv",)
GRID_IMAGES = 16  # images in a periodic TensorBoard sample grid


class TrainingLogger(Protocol):
    def write(self, step: int, seconds: float, losses: dict[str, float]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class LoggerContext:
    """What a logger is opened with.

    ``run_dir``: the run directory (it exists); ``trainer``: the [`zoo.trainer.Trainer`][zoo.trainer.Trainer]
    (its ``model``, ``optimizers``, ``settings`` and ``meter``, read-only by convention);
    ``resume_step``: the step the run resumes from (0 for a new run): a logger that keeps a file
    drops what was logged after it, since those steps are trained again.
    """

    run_dir: Path
    trainer: Any
    resume_step: int = 0


@dataclass(frozen=True)
class LoggerSpec:
    """A training logger: ``open(context)`` returns a `TrainingLogger`."""

    name: str
    summary: str
    open: Callable[[LoggerContext], TrainingLogger]


class Loggers:
    """The loggers of one training session, written and closed together.

    A logger a plugin provides cannot stop training: when its ``write`` or ``close`` raises, one
    warning names the plugin, the logger and the hook (`LoggerWarning`), and that logger
    is dropped; training goes on. genzoo's own loggers (``csv``, ``tensorboard``) are not wrapped:
    their failure (a full disk) is the run's.
    """

    def __init__(self, loggers: Sequence[TrainingLogger] = (), names: Sequence[str | None] = ()):
        self.loggers = list(loggers)
        #: ``"logger 'x' of plugin 'y'"`` per plugin logger, ``None`` for genzoo's own
        self.names = list(names) + [None] * (len(self.loggers) - len(names))

    def _guard(self, index: int, hook: str, call: Callable[[], Any]) -> bool:
        name = self.names[index]
        if name is None:
            call()
            return True
        try:
            call()
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's fault, reported and contained
            import warnings

            text = str(exc).strip().splitlines()
            detail = f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__
            warnings.warn(f"{name}: {hook}() raised {detail}; the logger is switched off, training goes on",
                          LoggerWarning, stacklevel=2)
            return False
        return True

    def write(self, step: int, seconds: float, losses: dict[str, float]) -> None:
        keep = [i for i, logger in enumerate(self.loggers)
                if self._guard(i, "write", lambda lg=logger: lg.write(step, seconds, losses))]
        if len(keep) != len(self.loggers):
            self.loggers, self.names = [self.loggers[i] for i in keep], [self.names[i] for i in keep]

    def close(self) -> None:
        for i, logger in enumerate(self.loggers):
            self._guard(i, "close", logger.close)


class LoggerWarning(UserWarning):
    """A plugin's logger failed and was switched off (training went on)."""


def open_loggers(names: Sequence[str] | None, run_dir: Path | None, trainer: Any, resume_step: int = 0,
                 registry: Any = None) -> Loggers:
    """Open the loggers named ``names`` (registered through ``zoo_register_loggers``; default
    ``csv``) in ``run_dir``; none when ``run_dir`` is ``None`` (a run that writes no files).

    Raises [`zoo.errors.UnknownNameError`][zoo.errors.UnknownNameError] for a name no plugin registered, and
    [`zoo.errors.UsageError`][zoo.errors.UsageError] when a logger's package is missing. A plugin's logger whose
    ``open`` raises anything else, or returns something without ``write`` and ``close``, is
    reported in one `LoggerWarning` and left out.
    """
    import warnings

    from zoo.errors import ZooError

    names = list(dict.fromkeys(names or DEFAULT_LOGGERS))
    if registry is None:
        from zoo.registry import get_registry

        registry = get_registry()
    specs = [registry.logger(name) for name in names]  # every name checked before anything opens
    if run_dir is None:
        return Loggers()
    context = LoggerContext(Path(run_dir), trainer, resume_step)
    opened: list[TrainingLogger] = []
    labels: list[str | None] = []
    try:
        for name, spec in zip(names, specs, strict=True):
            own = getattr(spec.open, "__module__", "") == __name__
            label = None if own else f"logger {name!r} of plugin {_plugin_of(registry, name)!r}"
            try:
                logger = spec.open(context)
            except (ZooError, KeyboardInterrupt, MemoryError):
                raise
            except Exception as exc:  # noqa: BLE001
                if own:
                    raise
                warnings.warn(f"{label}: open() raised {type(exc).__name__}: {str(exc)[:160]}; left out",
                              LoggerWarning, stacklevel=2)
                continue
            if not own and not (callable(getattr(logger, "write", None)) and callable(getattr(logger, "close", None))):
                warnings.warn(f"{label}: open() returned {type(logger).__name__}, not a logger with write() and "
                              "close(); left out", LoggerWarning, stacklevel=2)
                continue
            opened.append(logger)
            labels.append(label)
    except BaseException:
        Loggers(opened, labels).close()
        raise
    return Loggers(opened, labels)


def _plugin_of(registry: Any, name: str) -> str:
    entry = getattr(registry, "loggers", {}).get(name)
    return str(getattr(getattr(entry, "plugin", None), "name", "?"))


# -- csv -----------------------------------------------------------------------------------------


class CsvLossLog:
    """``losses.csv``, one row per step: ``step,seconds,<loss>...``.

    Columns are the first step's loss names (sorted), then any name first seen later, in the order
    it appears. When a new name appears the file is rewritten atomically with the wider header
    (earlier rows get an empty cell), so no loss is dropped and readers never see a half-written
    file. A step that does not log a loss leaves its cell empty. Resuming drops rows logged after
    the checkpoint's step.
    """

    def __init__(self, path: Path | None, keep_until: int = 0):
        self.path = path
        self.file: Any = None
        self.columns: list[str] = []
        if path is None or not path.exists():
            return
        rows = list(csv.reader(io.StringIO(path.read_text())))
        if rows:
            self.columns = rows[0][2:]
            kept = [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= keep_until]
            if len(kept) != len(rows) - 1:
                self._rewrite(kept)

    def write(self, step: int, seconds: float, losses: dict[str, float]) -> None:
        if self.path is None:
            return
        new = [k for k in sorted(losses) if k not in self.columns]
        if new:
            self.close()
            old = list(csv.reader(io.StringIO(self.path.read_text())))[1:] if self.path.exists() else []
            self.columns += new
            self._rewrite(old)
        if self.file is None:
            if not self.path.exists():
                self._rewrite([])
            # Line-buffered so `tail -f losses.csv` follows a run as it trains.
            self.file = open(self.path, "a", newline="", buffering=1)  # noqa: SIM115 - kept open for the run
            self.writer = csv.writer(self.file, lineterminator="\n")
        self.writer.writerow([step, f"{seconds:.3f}", *(f"{losses[k]:.6g}" if k in losses else "" for k in self.columns)])

    def _rewrite(self, rows: list[list[str]]) -> None:
        from zoo.fileio import atomic_write_text

        assert self.path is not None
        width = 2 + len(self.columns)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["step", "seconds", *self.columns])
        writer.writerows(r + [""] * (width - len(r)) for r in rows)
        atomic_write_text(self.path, out.getvalue())

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def _open_csv(context: LoggerContext) -> CsvLossLog:
    return CsvLossLog(context.run_dir / "losses.csv", keep_until=context.resume_step)


# -- tensorboard ---------------------------------------------------------------------------------


class TensorBoardLogger:
    """Scalars and sample grids for TensorBoard under ``<run_dir>/tensorboard``.

    Every step: ``loss/<name>`` for each loss, ``lr/<optimizer>`` (``lr/<optimizer>/<group>`` with
    several parameter groups) from the optimizers' ``param_groups``, ``throughput/img_per_s``
    (the session's steady-state rate) and ``time/train_seconds``. At the first step and every
    ``checkpoint_every`` steps, a grid of 16 samples (``samples``, seed of the run), drawn with the
    training clock paused and the random state restored, so training continues exactly as
    without it. A resumed run purges the events logged after its checkpoint.
    """

    def __init__(self, context: LoggerContext):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            from zoo.errors import UsageError

            raise UsageError("--logger tensorboard needs the tensorboard package: pip install 'genzoo[tensorboard]'") from None
        self.trainer = context.trainer
        purge = context.resume_step + 1 if context.resume_step else None
        self.writer = SummaryWriter(log_dir=str(context.run_dir / "tensorboard"), purge_step=purge)
        settings = getattr(self.trainer, "settings", None)
        self.grid_every = max(1, int(getattr(settings, "checkpoint_every", 500)))
        self.first = True

    def write(self, step: int, seconds: float, losses: dict[str, float]) -> None:
        for name, value in losses.items():
            self.writer.add_scalar(f"loss/{name}", value, step)
        for name, optimizer in (getattr(self.trainer, "optimizers", None) or {}).items():
            groups = optimizer.param_groups
            for i, group in enumerate(groups):
                if "lr" in group:
                    self.writer.add_scalar(f"lr/{name}" + (f"/{i}" if len(groups) > 1 else ""), float(group["lr"]), step)
        meter = getattr(self.trainer, "meter", None)
        if meter is not None:
            self.writer.add_scalar("throughput/img_per_s", meter.images_per_s(), step)
        self.writer.add_scalar("time/train_seconds", seconds, step)
        if self.first or step % self.grid_every == 0:
            self.first = False
            self._grid(step)

    def _grid(self, step: int) -> None:
        from torchvision.utils import make_grid

        from zoo.randomness import rng_state, set_rng_state
        from zoo.sampling import generate

        trainer, model = self.trainer, self.trainer.model
        meter = getattr(trainer, "meter", None)
        state = rng_state()
        with meter.paused() if meter is not None and meter.running else contextlib.nullcontext():
            try:
                model.eval()
                images = generate(model, GRID_IMAGES, seed=trainer.settings.seed)
                self.writer.add_image("samples", make_grid(images, nrow=4, padding=2, pad_value=255), step)
            finally:
                model.train()
                set_rng_state(state)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


BUILTIN_LOGGERS = (
    LoggerSpec("csv", "losses.csv: step, training seconds and every loss, one row per step", _open_csv),
    LoggerSpec("tensorboard", "TensorBoard event files under tensorboard/: losses, learning rate, img/s, sample grids",
               TensorBoardLogger),
)


@hookimpl
def zoo_register_loggers(register: Callable[[LoggerSpec], None]) -> None:
    for spec in BUILTIN_LOGGERS:
        register(spec)
