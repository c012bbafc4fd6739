"""The core's one training loop.

The trainer owns everything a plugin should not have to write: device placement, mixed precision
and gradient scaling, budgets (steps, epochs, wall-clock time), seeding, minibatching from an
in-memory dataset, checkpoints that resume bit-exactly, progress, loss logs, signal handling and
the stop on a non-finite loss.
"""

from __future__ import annotations

import csv
import json
import math
import random
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.checkpoint import (
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    remove_stale_temp_files,
    save_checkpoint,
)
from zoo.data import ImageDataset, to_float
from zoo.device import (
    autocast_factory,
    check_precision,
    environment,
    make_scaler,
    resolve_device,
    synchronize,
)
from zoo.errors import CheckpointError, TrainingError, UsageError, ZooError
from zoo.model import GenerativeModel, TrainStep

DEFAULT_STEPS = 2000


class Interrupted(ZooError):
    """Training stopped by SIGINT/SIGTERM after saving a checkpoint (exit 130 / 143)."""

    def __init__(self, signum: int, step: int, path: Path | None):
        self.exit_code = 128 + signum
        self.step, self.path = step, path
        name = signal.Signals(signum).name
        where = f"; checkpoint saved to {path}" if path else ""
        super().__init__(f"interrupted by {name} at step {step}{where}")


@dataclass
class TrainSettings:
    """How to train: budgets, batching, precision and bookkeeping. Recorded in ``config.json``."""

    steps: int | None = None  # stop after this many optimizer steps in total
    epochs: float | None = None  # ... or this many passes over the training split
    time_limit: float | None = None  # ... or this many seconds of training (whichever comes first)
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    checkpoint_every: int = 500  # steps between checkpoints (one is always written at the end)
    keep_checkpoints: int = 2
    log_every: int = 50
    sample_grid: int = 64  # images in the final sample grid (0 to skip)

    def validate(self, num_train: int) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        for name in ("epochs", "time_limit"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise UsageError(f"--{name.replace('_limit', '')} must be a positive number, got {value!r}")
        if self.batch_size > num_train:
            raise UsageError(f"--batch-size {self.batch_size} is larger than the training split ({num_train} images)")
        if self.sample_grid < 0:
            raise UsageError("sample grid size must be >= 0")

    def total_steps(self, num_train: int) -> int | None:
        """The step budget implied by ``steps`` and ``epochs`` (``None``: time budget only)."""
        budgets = []
        if self.steps is not None:
            budgets.append(self.steps)
        if self.epochs is not None:
            budgets.append(max(1, math.ceil(self.epochs * (num_train // self.batch_size))))
        if not budgets and self.time_limit is None:
            budgets.append(DEFAULT_STEPS)
        return min(budgets) if budgets else None


@dataclass
class TrainResult:
    steps: int
    seconds: float
    images_per_s: float
    last_losses: dict[str, float]
    stopped_by: str  # "steps" | "time"
    checkpoint: Path | None
    run_dir: Path | None
    grid: Path | None = None
    validation: dict[str, float] = field(default_factory=dict)


class Batcher:
    """Shuffled minibatches from an in-memory uint8 split, with state that can be checkpointed."""

    def __init__(self, images: torch.Tensor, batch_size: int, seed: int):
        self.images, self.batch_size = images, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(len(images), generator=self.generator)
        self.position, self.epoch = 0, 0

    def __next__(self) -> torch.Tensor:
        if self.position + self.batch_size > len(self.perm):  # drop the ragged tail, reshuffle
            self.perm = torch.randperm(len(self.images), generator=self.generator)
            self.position, self.epoch = 0, self.epoch + 1
        idx = self.perm[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return to_float(self.images[idx.to(self.images.device)])

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "perm": self.perm, "position": self.position, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.perm, self.position, self.epoch = state["perm"].clone(), int(state["position"]), int(state["epoch"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    np_state: tuple[Any, ...] = np.random.get_state()  # type: ignore[assignment]
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


@contextmanager
def _stop_on_signals() -> Iterator[dict[str, int]]:
    """Turn SIGINT/SIGTERM into a flag checked at step boundaries; restore the old handlers after."""
    flag: dict[str, int] = {}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, _frame: Any) -> None:
        if "signum" in flag and signum == signal.SIGINT:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        flag["signum"] = signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class Trainer:
    """Trains one model on one dataset; ``fit()`` runs or resumes to the budget."""

    def __init__(
        self,
        model: GenerativeModel,
        dataset: ImageDataset,
        settings: TrainSettings,
        run_dir: str | Path | None = None,
        *,
        progress: bool | None = None,
        run_config: dict[str, Any] | None = None,
    ):
        self.settings = settings
        settings.validate(len(dataset.train))
        self.device = resolve_device(settings.device)
        check_precision(settings.precision, self.device)
        self.model = model.to(self.device)
        self.dataset = dataset.to(self.device)
        self.run_dir = Path(run_dir) if run_dir else None
        self.progress = progress
        self.run_config = run_config or {}
        self.optimizers = model.configure_optimizers()
        if not self.optimizers or not all(isinstance(o, torch.optim.Optimizer) for o in self.optimizers.values()):
            raise TrainingError(f"{model.name}.configure_optimizers() must return a dict of torch optimizers")
        self.scaler = make_scaler(settings.precision, self.device)
        self.autocast = autocast_factory(settings.precision, self.device)
        self.batcher = Batcher(self.dataset.train, settings.batch_size, settings.seed)
        self.step = 0
        self.elapsed = 0.0  # training seconds over all sessions of this run
        self.last_losses: dict[str, float] = {}

    # -- state --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.name,
            "config": self.model.config.to_dict(),
            "image_shape": list(self.model.image_shape),
            "dataset": self.dataset.name,
            "step": self.step,
            "elapsed": self.elapsed,
            "train": asdict(self.settings),
            "model_state": self.model.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "batcher": self.batcher.state_dict(),
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["model"] != self.model.name:
            raise CheckpointError(f"checkpoint is for model {state['model']!r}, not {self.model.name!r}")
        self.model.load_state_dict(state["model_state"])
        for name, opt in self.optimizers.items():
            if name not in state["optimizers"]:
                raise CheckpointError(f"checkpoint has no state for optimizer {name!r}")
            opt.load_state_dict(state["optimizers"][name])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.batcher.load_state_dict(state["batcher"])
        set_rng_state(state["rng"])
        self.step, self.elapsed = int(state["step"]), float(state.get("elapsed", 0.0))

    def save(self) -> Path | None:
        if self.run_dir is None:
            return None
        path = save_checkpoint(checkpoint_path(self.run_dir, self.step), self.state_dict())
        prune_checkpoints(self.run_dir, self.settings.keep_checkpoints)
        return path

    def resume(self, source: str | Path | None = None) -> Path:
        """Load the newest checkpoint of ``source`` (default: this run's directory)."""
        path = latest_checkpoint(source or self.run_dir or ".")
        self.load_state_dict(load_checkpoint(path, map_location=self.device))
        return path

    # -- the loop -----------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        s = self.settings
        total = s.total_steps(len(self.dataset.train))
        if self.run_dir is not None:
            remove_stale_temp_files(self.run_dir / "checkpoints")  # from a run killed mid-write
            self._write_run_files()
        self.model.train()
        losses_log = _LossLog(self.run_dir / "losses.csv" if self.run_dir else None, keep_until=self.step)
        start_step, start_elapsed, stopped_by = self.step, self.elapsed, "steps"
        session_start = time.perf_counter()
        last_ckpt: Path | None = None
        with _stop_on_signals() as stop, _Progress(self, total, self.progress) as bar:
            while total is None or self.step < total:
                if s.time_limit is not None and self.elapsed + (time.perf_counter() - session_start) >= s.time_limit:
                    stopped_by = "time"
                    break
                if "signum" in stop:
                    self.elapsed += time.perf_counter() - session_start
                    raise Interrupted(stop["signum"], self.step, self.save())
                batch = next(self.batcher)
                ctx = TrainStep(step=self.step, optimizers=self.optimizers, scaler=self.scaler,
                                grad_clip=getattr(self.model.config, "grad_clip", None))
                try:
                    with self.autocast():
                        out = self.model.train_step(batch, ctx)
                    losses = {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in (out or {}).items()}
                    bad = [k for k, v in losses.items() if not math.isfinite(v)]
                    if bad:
                        raise TrainingError(f"non-finite loss at step {self.step} ({', '.join(bad)})")
                except TrainingError as exc:
                    losses_log.close()
                    last = self._last_checkpoint_note()
                    raise TrainingError(f"{exc}; stopped{last}") from None
                if self.scaler is not None:
                    self.scaler.update()
                self.model.after_optimizer_step(self.step)
                self.step += 1
                self.last_losses = losses
                losses_log.write(self.step, self.elapsed + time.perf_counter() - session_start, losses)
                bar.update(self.step, losses)
                if self.run_dir is not None and self.step % s.checkpoint_every == 0:
                    self.elapsed += time.perf_counter() - session_start
                    session_start = time.perf_counter()
                    last_ckpt = self.save()
        synchronize(self.device)
        self.elapsed += time.perf_counter() - session_start
        losses_log.close()
        if self.run_dir is not None and (last_ckpt is None or self.step % s.checkpoint_every):
            last_ckpt = self.save()
        steps_done = self.step - start_step
        session_seconds = max(self.elapsed - start_elapsed, 1e-9)  # a resumed run counts only this session
        result = TrainResult(
            steps=self.step, seconds=self.elapsed,
            images_per_s=steps_done * s.batch_size / session_seconds if steps_done else 0.0,
            last_losses=self.last_losses, stopped_by=stopped_by, checkpoint=last_ckpt, run_dir=self.run_dir,
        )
        result.validation = self.validate()
        if self.run_dir is not None and s.sample_grid:
            result.grid = self.write_grid(self.run_dir / "samples.png", s.sample_grid)
        return result

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """The model's own validation numbers on (up to 500 images of) the held-out split."""
        self.model.eval()
        try:
            batch = to_float(self.dataset.test[:500])
            return {k: float(v) for k, v in self.model.validation_metrics(batch).items()}
        finally:
            self.model.train()

    def write_grid(self, path: Path, n: int, seed: int | None = None, **options: Any) -> Path:
        from zoo.sampling import save_grid

        self.model.eval()
        try:
            return save_grid(self.model, path, n, seed=self.settings.seed if seed is None else seed, options=options)
        finally:
            self.model.train()

    def _last_checkpoint_note(self) -> str:
        if self.run_dir is None:
            return ""
        found = [p for p in (self.run_dir / "checkpoints").glob("step-*.pt")] if (self.run_dir / "checkpoints").is_dir() else []
        return f"; last good checkpoint: {sorted(found)[-1]}" if found else "; no checkpoint was written yet"

    def _write_run_files(self) -> None:
        from zoo.fileio import atomic_write

        assert self.run_dir is not None
        config = {
            **self.run_config,
            "model": self.model.name,
            "config": self.model.config.to_dict(),
            "dataset": self.dataset.name,
            "image_shape": list(self.model.image_shape),
            "train": asdict(self.settings),
            "parameters": self.model.num_parameters(trainable_only=True),
        }
        text = json.dumps(config, indent=2) + "\n"
        atomic_write(self.run_dir / "config.json", lambda f: f.write(text), mode="w")
        env = json.dumps(environment(self.device), indent=2) + "\n"
        atomic_write(self.run_dir / "environment.json", lambda f: f.write(env), mode="w")


class _LossLog:
    """``losses.csv``: one row per step, columns added as losses appear."""

    def __init__(self, path: Path | None, keep_until: int = 0):
        self.path = path
        self.file: Any = None
        if path is not None and path.exists():  # resuming: drop rows logged after the checkpoint
            rows = path.read_text().splitlines()
            kept = rows[:1] + [r for r in rows[1:] if r.split(",", 1)[0].isdigit() and int(r.split(",", 1)[0]) <= keep_until]
            if len(kept) != len(rows):
                from zoo.fileio import atomic_write_text

                atomic_write_text(path, "\n".join(kept) + "\n")
        self.writer: Any = None
        self.columns: list[str] = []

    def write(self, step: int, seconds: float, losses: dict[str, float]) -> None:
        if self.path is None:
            return
        if self.file is None:
            new = not self.path.exists()
            # Line-buffered so `tail -f losses.csv` follows a run as it trains.
            self.file = open(self.path, "a", newline="", buffering=1)  # noqa: SIM115 - kept open for the run
            self.columns = ["step", "seconds", *sorted(losses)]
            self.writer = csv.writer(self.file)
            if new:
                self.writer.writerow(self.columns)
        self.writer.writerow([step, f"{seconds:.3f}", *(f"{losses.get(k, float('nan')):.6g}" for k in self.columns[2:])])

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class _Progress:
    """A rich progress bar on a terminal; a plain line every ``log_every`` steps otherwise."""

    def __init__(self, trainer: Trainer, total: int | None, enabled: bool | None):
        import sys

        self.trainer, self.total = trainer, total
        self.interactive = sys.stderr.isatty() if enabled is None else enabled
        self.quiet = enabled is False
        self.t0 = time.perf_counter()
        self.step0 = trainer.step
        self.bar: Any = None

    def __enter__(self) -> _Progress:
        if self.interactive and not self.quiet:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            from zoo.cli.app import stderr

            self.bar = Progress(
                TextColumn(f"[bold]{self.trainer.model.name}[/]"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                console=stderr, transient=False,
            )
            self.bar.start()
            self.task = self.bar.add_task("train", total=self.total, completed=self.trainer.step, info="")
        return self

    def update(self, step: int, losses: dict[str, float]) -> None:
        if self.quiet:
            return
        rate = (step - self.step0) * self.trainer.settings.batch_size / max(time.perf_counter() - self.t0, 1e-9)
        info = " ".join(f"{k}={v:.4g}" for k, v in losses.items()) + f" {rate:.0f} img/s"
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=info)
        elif step % self.trainer.settings.log_every == 0 or step == self.total:
            import sys

            total = f"/{self.total}" if self.total else ""
            print(f"[{self.trainer.model.name}] step {step}{total} {info}", file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()
