"""The core's one training loop.

The trainer owns everything a plugin should not have to write: device placement, mixed precision
and gradient scaling, budgets, seeding, minibatching from an in-memory dataset, checkpoints that
resume bit-exactly, loss logs, signal handling and the stop on a non-finite loss. It reports
progress through a callback (`TrainProgress`) and never draws anything itself: the CLI
passes a rich bar, a library user may pass `log_progress`.

Budgets ([`zoo.budget`][zoo.budget]) are spent through one [`BudgetMeter`][zoo.budget.BudgetMeter]; ``fit`` can
call back at fractions of the budget (``on_point``/``points``) so quality is measured along it.

Reading order: `TrainSettings`, `train_one_step`, `Trainer.fit`.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch
from torch.utils.flop_counter import FlopCounterMode

from zoo import distributed
from zoo.budget import Budget, BudgetMeter, check_points
from zoo.checkpoint import (
    checkpoint_path,
    list_checkpoints,
    prune_checkpoints,
    remove_stale_temp_files,
    save_checkpoint,
)
from zoo.data import ImageDataset, to_float
from zoo.device import Precision, environment, resolve_device, synchronize
from zoo.errors import (
    CheckpointError,
    DiskFullError,
    TrainingError,
    UsageError,
    UserInterrupt,
    ZooError,
)
from zoo.guard import stop_requested
from zoo.model import GenerativeModel, TrainStep
from zoo.randomness import (  # the process-RNG helpers, importable from here as before
    rng_state,
    seed_everything,  # noqa: F401
    set_rng_state,
)

DEFAULT_STEPS = 2000


def _step_of(checkpoint: Path) -> int:
    """The step a ``step-NNNNNNNN.pt`` file name records."""
    return int(checkpoint.stem.split("-")[-1])


class Interrupted(ZooError):
    """Training stopped by SIGINT/SIGTERM after saving a checkpoint (exit 130 / 143).

    ``result`` is the run's `TrainResult` so far (``stopped_by == "interrupted"``).
    """

    def __init__(self, signum: int, step: int, path: Path | None, result: TrainResult | None = None):
        self.exit_code = 128 + signum
        self.step, self.path, self.result = step, path, result
        name = signal.Signals(signum).name
        where = f"; checkpoint saved to {path}" if path else ""
        super().__init__(f"interrupted by {name} at step {step}{where}")


@dataclass
class TrainSettings:
    """How to train: budgets, batching, precision and bookkeeping. Recorded in ``config.json``.

    The budget is ``budget`` (text such as ``"2m"``, ``"1000steps"``, ``"64kimg"``,
    ``"2e13flops"``; see [`zoo.budget.Budget`][zoo.budget.Budget]), and/or the older fields ``time_limit``
    (a time budget), ``steps`` (a steps budget) and ``epochs`` (converted to steps). When several
    are given, training stops at whichever is reached first; with none, 2000 steps.
    """

    steps: int | None = None  # stop after this many optimizer steps in total
    epochs: float | None = None  # ... or this many passes over the training split
    time_limit: float | None = None  # ... or this many seconds of training
    budget: str | None = None  # ... or this budget: "2m", "1000steps", "64kimg", "2e13flops"
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    checkpoint_every: int = 500  # steps between checkpoints (one is always written at the end)
    keep_checkpoints: int = 2
    log_every: int = 50
    sample_grid: int = 64  # images in the final sample grid (0 to skip)
    loggers: tuple[str, ...] = ("csv",)  # training loggers (zoo.loggers): csv writes losses.csv, tensorboard event files
    # torch.compile (inductor) the model's trainable networks (zoo.accel.compile_networks): same
    # computation up to float rounding; the first steps pay the compile time (minutes on a CPU)
    compile: bool = False

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
        self.budgets(num_train)  # a malformed budget string is a UsageError here

    def budgets(self, num_train: int, batches_per_step: int = 1) -> list[Budget]:
        """Every budget these settings set, the first being the run's main one (an epoch is
        ``num_train // (batch_size * batches_per_step)`` steps)."""
        found = []
        if self.budget is not None:
            found.append(Budget.parse(self.budget))
        if self.time_limit is not None:
            found.append(Budget("time", self.time_limit))
        if self.steps is not None:
            found.append(Budget("steps", self.steps))
        if self.epochs is not None:
            per_epoch = num_train // (self.batch_size * batches_per_step)
            found.append(Budget("steps", max(1, math.ceil(self.epochs * per_epoch))))
        return found or [Budget("steps", DEFAULT_STEPS)]

    def total_steps(self, num_train: int, batches_per_step: int = 1) -> int | None:
        """The step at which a steps or kimg budget ends (``None``: only time or FLOP budgets)."""
        return BudgetMeter(self.budgets(num_train, batches_per_step),
                           self.batch_size * batches_per_step).total_steps()


@dataclass
class TrainResult:
    steps: int
    seconds: float  # training seconds over all sessions (evaluation points and checkpoints excluded)
    images_per_s: float  # this session's steady-state rate (the FLOP-counting step left out)
    last_losses: dict[str, float]
    stopped_by: str  # "time" | "steps" | "kimg" | "flops" | "interrupted" | "nonfinite"
    checkpoint: Path | None
    run_dir: Path | None
    grid: Path | None = None
    validation: dict[str, float] = field(default_factory=dict)
    budget: Budget | None = None  # the main budget; ``budgets`` lists every one that applied
    budgets: tuple[Budget, ...] = ()
    kimg: float = 0.0  # thousands of images shown
    flops: float | None = None  # training FLOPs (steps x FLOPs counted on the first step)
    flops_per_step: float | None = None

    @property
    def spent(self) -> dict[str, float | None]:
        return {"train_seconds": self.seconds, "train_steps": self.steps, "train_kimg": self.kimg, "train_flops": self.flops}


@dataclass(frozen=True)
class TrainProgress:
    """What the trainer reports after every step to its ``progress`` callback."""

    model: str
    step: int
    total_steps: int | None  # None for a time budget (or a FLOP budget before the first step)
    elapsed: float  # training seconds so far, all sessions
    fraction: float  # of the budget used, in [0, 1]
    eta: float | None  # seconds of training left by the budget (None while unknown)
    images_per_s: float
    losses: dict[str, float]
    budget: str = ""  # the budgets, as text ("2m", "1000steps or 2m")


ProgressCallback = Callable[[TrainProgress], None]
PointCallback = Callable[["Trainer", float, dict[str, Any]], None]


def log_progress(every: int = 50, stream: TextIO | None = None) -> ProgressCallback:
    """A plain-text progress callback: one line every ``every`` steps (and at the last step).

    ``[ddpm] step 100/1000 10% loss=0.0312 950 img/s eta 1m35s`` on stderr (or ``stream``).
    """

    def show(p: TrainProgress) -> None:
        if p.step % every and p.step != p.total_steps:
            return
        total = f"/{p.total_steps}" if p.total_steps else ""
        losses = "".join(f" {k}={v:.4g}" for k, v in p.losses.items())
        eta = f" eta {format_seconds(p.eta)}" if p.eta is not None else ""
        print(f"[{p.model}] step {p.step}{total} {p.fraction:.0%}{losses} {p.images_per_s:.0f} img/s{eta}",
              file=stream or sys.stderr, flush=True)

    return show


def format_seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


#: Under fp16, a run stops after this many steps in a row in which a non-finite loss skipped an
#: update (the scaler halves its scale at each: 2**7 falls below 1e-3 within 20 skips).
MAX_SKIPPED_STEPS = 20


def train_one_step(model: GenerativeModel, batch: torch.Tensor, ctx: TrainStep,
                   autocast: Callable[[], contextlib.AbstractContextManager[Any]]) -> dict[str, float]:
    """One training step: the model's forward and updates under autocast, the scaler's update,
    the model's post-step hook. Returns the losses as floats.

    ``batch`` is the step's first batch; a model with ``batches_per_step = k`` takes the other
    ``k - 1`` from ``ctx.next_batch()`` (when ``ctx.batches`` is unset, as for a timing loop, the
    same batch is handed out again) and must take exactly ``k``. A non-finite loss is a
    TrainingError under a disabled scaler (fp32, bf16); under fp16 it is recorded in ``ctx.skipped``.
    """
    ctx.batches_per_step = model.batches_per_step
    if ctx.batches is None:
        ctx.batches = lambda: batch
    with autocast():
        out = model.train_step(batch, ctx)
    if ctx.batches_used != ctx.batches_per_step:
        raise TrainingError(f"{model.name}.train_step took {ctx.batches_used} batches, but the model declares "
                            f"batches_per_step = {ctx.batches_per_step}: call step.next_batch() "
                            f"{ctx.batches_per_step - 1} times per step")
    losses = {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in (out or {}).items()}
    bad = [k for k, v in losses.items() if not math.isfinite(v)]
    if bad:
        if not ctx.scaler.is_enabled():
            raise TrainingError(f"non-finite loss at step {ctx.step} ({', '.join(bad)})")
        ctx.skipped.extend(f"loss {k}" for k in bad if f"loss {k}" not in ctx.skipped)
    ctx.update_scaler()
    model.after_optimizer_step(ctx.step)
    return losses


class Batcher:
    """Shuffled minibatches from an in-memory uint8 split, with state that can be checkpointed.

    ``batch_size`` is the global batch. Under data-parallel training every rank keeps the same
    seeded permutation and position and returns its shard of each global batch, as
    ``DistributedSampler`` splits it: rank ``r`` of ``world_size`` takes positions ``r, r + W, ...``
    (``batch_size / world_size`` images), so the union of a step's shards is the single-process batch.
    """

    def __init__(self, images: torch.Tensor, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.images, self.batch_size = images, batch_size
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(len(images), generator=self.generator)
        self.position, self.epoch = 0, 0

    def __next__(self) -> torch.Tensor:
        if self.position + self.batch_size > len(self.perm):  # drop the ragged tail, reshuffle
            self.perm = torch.randperm(len(self.images), generator=self.generator)
            self.position, self.epoch = 0, self.epoch + 1
        idx = self.perm[self.position : self.position + self.batch_size][self.rank :: self.world_size]
        self.position += self.batch_size
        return to_float(self.images[idx.to(self.images.device)])

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "perm": self.perm, "position": self.position, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.perm, self.position, self.epoch = state["perm"].clone(), int(state["position"]), int(state["epoch"])


@contextmanager
def _stop_on_signals() -> Iterator[dict[str, int]]:
    """Turn SIGINT/SIGTERM into a flag checked at step boundaries; restore the old handlers after."""
    flag: dict[str, int] = {}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, _frame: Any) -> None:
        if "signum" in flag and signum == signal.SIGINT:  # a second Ctrl-C: stop now
            raise UserInterrupt
        flag["signum"] = signum
        stop_requested(signum)  # a step that never returns is stopped by the bench's watchdog

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class Trainer:
    """Trains one model on one dataset; ``fit()`` runs (or, after ``load_state_dict``, resumes) to the budget.

    ``progress`` is called after every step with a `TrainProgress` (pass
    `log_progress` for plain lines; ``True``/``False`` are accepted from older callers and
    mean ``log_progress(settings.log_every)``/nothing). ``clock`` is the meter's clock (a fake in tests).
    """

    def __init__(
        self,
        model: GenerativeModel,
        dataset: ImageDataset,
        settings: TrainSettings,
        run_dir: str | Path | None = None,
        *,
        progress: ProgressCallback | bool | None = None,
        run_config: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.settings = settings
        settings.validate(len(dataset.train))
        self.world = distributed.current()  # a world of one unless torchrun's process group is joined
        distributed.check_batch_size(settings.batch_size, self.world.size)
        self.device = resolve_device(settings.device)
        if self.world.distributed and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", self.world.local_rank)
        self.precision = Precision.create(settings.precision, self.device)
        self.model = distributed.convert_sync_batchnorm(model, self.device).to(self.device)
        distributed.broadcast_parameters(self.model)  # every rank starts from rank 0's weights
        if settings.compile:
            from zoo.accel import compile_networks

            compile_networks(self.model)
        self.dataset = dataset.to(self.device)
        self.run_dir = Path(run_dir) if run_dir else None
        if isinstance(progress, bool):
            progress = log_progress(settings.log_every) if progress else None
        self.progress = progress
        self.run_config = run_config or {}
        self.optimizers = model.configure_optimizers()
        if not self.optimizers or not all(isinstance(o, torch.optim.Optimizer) for o in self.optimizers.values()):
            raise TrainingError(f"{model.name}.configure_optimizers() must return a dict of torch optimizers")
        self.scaler = self.precision.make_scaler()  # disabled unless fp16
        self.batcher = Batcher(self.dataset.train, settings.batch_size, settings.seed, self.world.rank, self.world.size)
        # One step consumes batch_size * batches_per_step images: the meter counts images (kimg,
        # images/s) per step, so a WGAN-GP's 5 critic batches are 5 batches of kimg.
        bps = model.batches_per_step
        self.meter = BudgetMeter(settings.budgets(len(dataset.train), bps), settings.batch_size * bps, clock=clock)
        self.skipped_in_a_row = 0  # fp16 steps in a row with a skipped update (non-finite loss)
        self.last_losses: dict[str, float] = {}

    @property
    def step(self) -> int:
        return self.meter.steps

    @property
    def elapsed(self) -> float:
        """Training seconds over all sessions of this run."""
        return self.meter.seconds

    # -- state --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.name,
            "config": self.model.config.to_dict(),
            "image_shape": list(self.model.image_shape),
            "dataset": self.dataset.name,
            "step": self.step,
            "elapsed": self.elapsed,
            "meter": self.meter.state_dict(),
            "train": asdict(self.settings),
            "model_state": self.model.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "scaler": self.scaler.state_dict(),  # {} unless fp16
            "batcher": self.batcher.state_dict(),
            "rng": rng_state(),
            "world_size": self.world.size,  # data-parallel processes (1: a single process)
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["model"] != self.model.name:
            raise CheckpointError(f"checkpoint is for model {state['model']!r}, not {self.model.name!r}")
        self.model.load_state_dict(state["model_state"])
        for name, opt in self.optimizers.items():
            if name not in state["optimizers"]:
                raise CheckpointError(f"checkpoint has no state for optimizer {name!r}")
            opt.load_state_dict(state["optimizers"][name])
        if state.get("scaler"):  # empty (or None, older checkpoints) when not saved under fp16
            self.scaler.load_state_dict(state["scaler"])
        self.batcher.load_state_dict(state["batcher"])
        set_rng_state(state["rng"])
        saved_world = int(state.get("world_size", 1))
        if saved_world != self.world.size and self.world.is_main:
            warnings.warn(
                f"resuming a run trained on {saved_world} process(es) with {self.world.size}: the data order and "
                "the global batch continue unchanged, the training noise is drawn per rank, so the run is not "
                "bit-identical to an uninterrupted one (docs/distributed.md)", stacklevel=2)
        # Older checkpoints have no meter: their FLOPs per step are counted again on the next step.
        self.meter.load_state_dict(state.get("meter") or {"steps": state["step"], "seconds": state.get("elapsed", 0.0)})

    @property
    def writes_files(self) -> bool:
        """True when this process writes the run folder: a run folder was given and this is rank 0."""
        return self.run_dir is not None and self.world.is_main

    def save(self) -> Path | None:
        if not self.writes_files:  # only rank 0 writes checkpoints
            return None
        with self.meter.paused():  # checkpoints are not training time
            previous = list_checkpoints(self.run_dir)
            try:
                path = save_checkpoint(checkpoint_path(self.run_dir, self.step), self.state_dict())
            except DiskFullError as exc:  # the older checkpoints are untouched: say the run resumes
                last = f"step {_step_of(previous[-1])}" if previous else "its start"
                raise DiskFullError(f"checkpoint of step {self.step} not saved ({exc.reason}) in "
                                    f"{self.run_dir}; it resumes from {last} once there is room",
                                    exc.path, exc.reason, exc.errno) from None
            prune_checkpoints(self.run_dir, self.settings.keep_checkpoints)
        return path

    # -- the loop -----------------------------------------------------------------------------

    def fit(self, on_point: PointCallback | None = None, points: Sequence[float] = ()) -> TrainResult:
        """Train until the budget is spent; returns a `TrainResult`.

        ``points`` are increasing fractions of the budget in (0, 1] (see
        [`zoo.budget.log_spaced_points`][zoo.budget.log_spaced_points]). At the first step boundary where the meter reaches a
        point, ``on_point(trainer, fraction, spent)`` is called once, with the model in train mode
        (it may switch to eval and back) and the clock paused, so its time is not training time.
        ``spent`` is `BudgetMeter.spent`. Points a resumed run had already passed are skipped.
        """
        pending = check_points(points)
        if pending and on_point is None:
            raise UsageError("evaluation points were given without an on_point callback")
        meter, s = self.meter, self.settings
        pending = [p for p in pending if p > meter.fraction()]
        if self.writes_files:
            remove_stale_temp_files(self.run_dir / "checkpoints")  # type: ignore[operator]  # from a run killed mid-write
            self._write_run_files()
        self.model.train()
        grad_clip = getattr(self.model.config, "grad_clip", None)
        from zoo.loggers import open_loggers

        losses_log = open_loggers(s.loggers, self.run_dir if self.writes_files else None, self, resume_step=self.step)
        last_ckpt: Path | None = None
        meter.start()
        with _stop_on_signals() as stop, contextlib.closing(losses_log):
            fraction = meter.fraction()
            while fraction < 1.0:
                if "signum" in stop:
                    meter.stop()
                    path = self.save()
                    raise Interrupted(stop["signum"], self.step, path, self._result("interrupted", path))
                ctx = TrainStep(step=self.step, optimizers=self.optimizers, scaler=self.scaler, grad_clip=grad_clip,
                                total_steps=meter.total_steps(), progress=fraction, batches=self.batcher.__next__)
                self._data_parallel(ctx)
                self.last_losses = self._counted_step(next(self.batcher), ctx)
                fraction = meter.fraction()
                while pending and pending[0] <= fraction:
                    rng = rng_state()  # whatever the callback draws, training continues as without it
                    with meter.paused():
                        on_point(self, pending.pop(0), meter.spent())  # type: ignore[misc]
                    set_rng_state(rng)
                losses_log.write(self.step, meter.seconds, self.last_losses)
                if self.progress is not None:
                    with meter.paused():
                        self.progress(self._progress(fraction))
                if self.run_dir is not None and self.step % s.checkpoint_every == 0:
                    last_ckpt = self.save()
            stopped_by = meter.stopped_by() or "steps"
        synchronize(self.device)
        meter.stop()
        if self.run_dir is not None and (last_ckpt is None or self.step % s.checkpoint_every):
            last_ckpt = self.save()
        result = self._result(stopped_by, last_ckpt)
        result.validation = self.validate()
        if self.writes_files and s.sample_grid:
            result.grid = self.write_grid(self.run_dir / "samples.png", s.sample_grid)
        return result

    def _counted_step(self, batch: torch.Tensor, ctx: TrainStep) -> dict[str, float]:
        """One step; the run's first step is also counted by FlopCounterMode (the meter leaves its
        time out of throughput). A non-finite loss stops with the last good checkpoint named."""
        counter = FlopCounterMode(display=False) if self.meter.flops_per_step is None else None
        try:
            with counter or contextlib.nullcontext():
                losses = train_one_step(self.model, batch, ctx, self.precision.autocast)
            self.skipped_in_a_row = self.skipped_in_a_row + 1 if ctx.skipped else 0
            if self.skipped_in_a_row >= MAX_SKIPPED_STEPS:
                raise TrainingError(
                    f"non-finite loss for {self.skipped_in_a_row} steps in a row under fp16 loss scaling "
                    f"(step {ctx.step}: {', '.join(ctx.skipped)}; loss scale now {self.scaler.get_scale():.3g})")
        except TrainingError as exc:
            self.meter.stop()
            error = TrainingError(f"{exc}; stopped{self._last_checkpoint_note()}")
            error.result = self._result("nonfinite", None)  # type: ignore[attr-defined]
            raise error from None
        # Every rank runs the counted work on its shard: the step's FLOPs are world size times them.
        self.meter.step_done(counted_flops=None if counter is None else counter.get_total_flops() * self.world.size)
        return losses

    def _data_parallel(self, ctx: TrainStep) -> None:
        """Under torchrun: seed this rank's noise for the step and average gradients before each
        optimizer step (zoo.distributed); nothing in a single process."""
        if self.world.distributed:
            distributed.seed_step(self.settings.seed, self.step, self.world.rank)
            distributed.broadcast_batchnorm_buffers(self.model)  # rank 0's running stats, as DDP does
            ctx.before_step = self._average_gradients

    def _average_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        distributed.average_gradients(p for group in optimizer.param_groups for p in group["params"])

    def _progress(self, fraction: float) -> TrainProgress:
        m = self.meter
        return TrainProgress(model=self.model.name, step=self.step, total_steps=m.total_steps(), elapsed=m.seconds,
                             fraction=fraction, eta=m.eta(), images_per_s=m.images_per_s(), losses=dict(self.last_losses),
                             budget=" or ".join(str(b) for b in m.budgets))

    def _result(self, stopped_by: str, checkpoint: Path | None) -> TrainResult:
        m = self.meter
        return TrainResult(
            steps=m.steps, seconds=m.seconds, images_per_s=m.images_per_s(), last_losses=self.last_losses,
            stopped_by=stopped_by, checkpoint=checkpoint, run_dir=self.run_dir, budget=m.budgets[0], budgets=m.budgets,
            kimg=m.kimg, flops=m.flops, flops_per_step=m.flops_per_step,
        )

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
            "budgets": [b.to_dict() for b in self.meter.budgets],
            "parameters": self.model.num_parameters(trainable_only=True),
        }
        text = json.dumps(config, indent=2) + "\n"
        atomic_write(self.run_dir / "config.json", lambda f: f.write(text), mode="w")
        env = json.dumps(environment(self.device), indent=2) + "\n"
        atomic_write(self.run_dir / "environment.json", lambda f: f.write(env), mode="w")
