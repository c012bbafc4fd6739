"""The trainer's loop: budgets, evaluation points, progress, the loss log, resume of the meter."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import zoo.trainer as trainer_module
from zoo.budget import log_spaced_points
from zoo.checkpoint import list_checkpoints, load_checkpoint
from zoo.config import ModelConfig
from zoo.data import ImageDataset
from zoo.errors import TrainingError, UsageError
from zoo.model import GenerativeModel
from zoo.testing import synthetic_images
from zoo.trainer import (
    Interrupted,
    Trainer,
    TrainProgress,
    TrainSettings,
    log_progress,
    seed_everything,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class LinConfig(ModelConfig):
    late_key_at: int = -1  # from this step on, also log "late"
    diverge_at: int = -1  # the loss at this step is infinite


class Lin(GenerativeModel):
    """A linear model: milliseconds per step, FLOPs that FlopCounterMode sees (one matmul)."""

    name = "lin"
    Config = LinConfig

    def __init__(self, config: LinConfig, image_shape=(1, 8, 8), clock: FakeClock | None = None, step_seconds: float = 1.0):
        super().__init__(config, image_shape)
        self.net = nn.Linear(64, 4)
        self.clock, self.step_seconds = clock, step_seconds
        self.modes: list[bool] = []

    def configure_optimizers(self):
        return {"main": torch.optim.SGD(self.parameters(), lr=0.01)}

    def train_step(self, batch, step):
        if self.clock is not None:  # each step costs step_seconds of (fake) training time
            self.clock.now += self.step_seconds
        loss = self.net(batch.flatten(1)).pow(2).mean()
        if step.step == self.config.diverge_at:
            loss = loss * float("inf")
        step.optimize("main", loss)
        out = {"loss": loss}
        if 0 <= self.config.late_key_at <= step.step:
            out["late"] = loss * 2
        return out

    def sample(self, n, *, generator=None, **options):
        return torch.zeros(n, *self.image_shape)


def _data():
    images = synthetic_images(40, (1, 8, 8))
    return ImageDataset("s", images[:32], images[32:])


def _trainer(run_dir=None, *, clock=None, config=None, progress=None, **settings):
    seed_everything(0)
    kw = {"batch_size": 8, "device": "cpu", "sample_grid": 0, "checkpoint_every": 1000, **settings}
    model = Lin(config or LinConfig(), clock=clock)
    return Trainer(model, _data(), TrainSettings(**kw), run_dir, progress=progress, clock=clock or FakeClock())


def _flops_per_step() -> float:
    return _trainer(steps=1).fit().flops_per_step


def test_flop_budget_stops_at_the_right_step():
    fps = _flops_per_step()
    assert fps > 0
    result = _trainer(budget=f"{3.5 * fps}flops").fit()
    assert result.steps == 4 and result.stopped_by == "flops"  # 3 steps fall short, the 4th reaches it
    assert result.flops == 4 * fps and result.spent["train_flops"] == 4 * fps
    assert result.budget.kind == "flops" and result.budget.amount == 3.5 * fps
    assert _trainer(budget=f"{3 * fps}flops").fit().steps == 3  # exactly 3 steps' worth: 3 steps


def test_kimg_and_steps_budgets_and_the_result_records_all_four_measures():
    result = _trainer(budget="0.04kimg").fit()  # 40 images at batch 8: 5 steps
    assert result.steps == 5 and result.stopped_by == "kimg" and result.kimg == pytest.approx(0.04)
    assert set(result.spent) == {"train_seconds", "train_steps", "train_kimg", "train_flops"}
    result = _trainer(steps=3, time_limit=1e9).fit()  # --steps caps a time budget
    assert result.steps == 3 and result.stopped_by == "steps"
    assert [b.kind for b in result.budgets] == ["time", "steps"]


def test_time_budget_with_a_fake_clock_and_points_excluded_from_training_time():
    clock = FakeClock()
    calls = []

    def on_point(trainer, fraction, spent):
        calls.append((fraction, trainer.step, spent["train_seconds"], trainer.model.training))
        trainer.model.eval()
        clock.now += 100.0  # a slow evaluation: not training time
        trainer.model.train()

    trainer = _trainer(clock=clock, budget="10s")
    result = trainer.fit(on_point=on_point, points=[0.25, 0.5, 1.0])
    assert result.steps == 10 and result.stopped_by == "time"
    assert result.seconds == pytest.approx(10.0)  # 300 s of evaluation not counted
    assert calls == [(0.25, 3, 3.0, True), (0.5, 5, 5.0, True), (1.0, 10, 10.0, True)]  # once each, at the first step reaching it


def test_points_fire_once_at_the_right_step_of_a_steps_budget():
    calls = []
    _trainer(steps=8).fit(on_point=lambda t, f, spent: calls.append((f, t.step, spent["train_steps"])),
                          points=log_spaced_points(3))
    assert calls == [(0.25, 2, 2), (0.5, 4, 4), (1.0, 8, 8)]


def test_bad_points_are_usage_errors():
    with pytest.raises(UsageError, match="increasing"):
        _trainer(steps=2).fit(on_point=lambda *a: None, points=[0.5, 0.2])
    with pytest.raises(UsageError, match="on_point"):
        _trainer(steps=2).fit(points=[1.0])


def test_progress_callback_receives_sane_values():
    clock = FakeClock()
    seen: list[TrainProgress] = []
    _trainer(clock=clock, steps=4, progress=seen.append).fit()
    assert [p.step for p in seen] == [1, 2, 3, 4]
    assert [p.fraction for p in seen] == [0.25, 0.5, 0.75, 1.0]
    assert all(p.total_steps == 4 and p.model == "lin" and set(p.losses) == {"loss"} for p in seen)
    assert [p.elapsed for p in seen] == [1.0, 2.0, 3.0, 4.0]
    assert [p.eta for p in seen] == [3.0, 2.0, 1.0, 0.0]  # remaining steps at 1 step/s
    assert all(p.images_per_s == pytest.approx(8.0) for p in seen)  # batch 8, 1 s a step

    seen.clear()
    _trainer(clock=FakeClock(), budget="5s", progress=seen.append).fit()
    assert seen[-1].fraction == 1.0 and seen[-1].total_steps is None and seen[-1].budget == "5s"
    assert [p.eta for p in seen] == [4.0, 3.0, 2.0, 1.0, 0.0]  # the time budget's remainder


def test_log_progress_prints_plain_lines():
    out = io.StringIO()
    _trainer(clock=FakeClock(), steps=4, progress=log_progress(every=2, stream=out)).fit()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("[lin] step 2/4 50% loss=") and lines[1].startswith("[lin] step 4/4 100%")
    assert "8 img/s" in lines[1] and "eta 0s" in lines[1]


def test_trainer_does_not_import_the_cli():
    code = ("import sys, zoo.trainer, zoo.budget, zoo.bench.costs; "
            "print(sorted(m for m in sys.modules if m.startswith('zoo.cli') or m == 'rich'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_loss_keys_that_appear_late_are_kept(tmp_path):
    _trainer(tmp_path, config=LinConfig(late_key_at=2), steps=4).fit()
    lines = (tmp_path / "losses.csv").read_text().splitlines()
    assert lines[0] == "step,seconds,loss,late"
    rows = [line.split(",") for line in lines[1:]]
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4]
    assert [r[3] for r in rows[:2]] == ["", ""] and all(float(r[3]) > 0 for r in rows[2:])
    # Resuming a run whose log already has the wider header keeps it and appends.
    trainer = _trainer(tmp_path, config=LinConfig(late_key_at=2), steps=6)
    trainer.load_state_dict(load_checkpoint(list_checkpoints(tmp_path)[-1]))
    trainer.fit()
    lines = (tmp_path / "losses.csv").read_text().splitlines()
    assert lines[0] == "step,seconds,loss,late" and [int(x.split(",")[0]) for x in lines[1:]] == [1, 2, 3, 4, 5, 6]


def test_resume_keeps_the_meter_and_does_not_count_flops_again(tmp_path, monkeypatch):
    fps = _flops_per_step()
    clock = FakeClock()
    _trainer(tmp_path, clock=clock, steps=3).fit()
    state = load_checkpoint(list_checkpoints(tmp_path)[-1])
    assert state["meter"] == {"steps": 3, "seconds": 3.0, "flops_per_step": fps}

    def no_counting(*args, **kwargs):
        raise AssertionError("FLOPs counted again after resume")

    monkeypatch.setattr(trainer_module, "FlopCounterMode", no_counting)
    clock = FakeClock()
    trainer = _trainer(tmp_path, clock=clock, budget=f"{5 * fps}flops")
    trainer.load_state_dict(state)
    seen: list[TrainProgress] = []
    trainer.progress = seen.append
    result = trainer.fit()
    assert result.steps == 5 and result.stopped_by == "flops" and result.flops == 5 * fps
    assert result.seconds == pytest.approx(5.0)  # 3 s before the resume, 2 s after
    assert seen[0].fraction == pytest.approx(0.8)  # the first resumed step continues the budget


def test_a_resumed_run_skips_points_it_had_passed(tmp_path):
    calls = []
    _trainer(tmp_path, steps=4).fit(on_point=lambda t, f, s: calls.append((f, t.step)), points=[0.5, 1.0])
    trainer = _trainer(tmp_path, steps=8)
    trainer.load_state_dict(load_checkpoint(list_checkpoints(tmp_path)[-1]))
    calls.clear()
    trainer.fit(on_point=lambda t, f, s: calls.append((f, t.step)), points=[0.25, 0.5, 0.75, 1.0])
    assert calls == [(0.75, 6), (1.0, 8)]  # 0.25 and 0.5 were passed before the resume


def test_non_finite_loss_stops_with_a_result(tmp_path):
    trainer = _trainer(tmp_path, config=LinConfig(diverge_at=3), steps=6, checkpoint_every=2)
    with pytest.raises(TrainingError, match=r"non-finite loss at step 3.*last good checkpoint: .*step-00000002\.pt") as info:
        trainer.fit()
    assert info.value.result.stopped_by == "nonfinite" and info.value.result.steps == 3


def test_sigint_saves_and_reports_interrupted(tmp_path):
    def interrupt(p):
        if p.step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(Interrupted) as info:
        _trainer(tmp_path, steps=10, progress=interrupt).fit()
    assert info.value.exit_code == 130 and info.value.result.stopped_by == "interrupted"
    assert load_checkpoint(info.value.path)["step"] == 2
    assert signal.getsignal(signal.SIGINT) is previous  # the old handler is back


def test_scaler_is_never_none_and_precision_is_built_once():
    trainer = _trainer(steps=1)
    assert isinstance(trainer.scaler, torch.amp.GradScaler) and not trainer.scaler.is_enabled()
    assert trainer.precision.name == "fp32" and not trainer.precision.needs_scaler
    assert trainer.state_dict()["scaler"] == {}


@pytest.mark.parametrize("profile", ["native-bf16", "no-bf16"])
def test_resolve_precision_auto_takes_a_usable_recommendation(cpu_profile, profile):
    """bf16 where the (simulated) CPU has it natively, fp32 where it would be emulated."""
    from zoo.device import resolve_precision

    cpu = torch.device("cpu")
    cpu_profile(profile)
    assert resolve_precision("auto", cpu, "bf16") == ("bf16" if profile == "native-bf16" else "fp32")
    assert resolve_precision("auto", cpu, "fp16") == "fp32"  # fp16 is emulated on every CPU
    assert resolve_precision("auto", cpu, None) == "fp32"
    assert resolve_precision("auto", cpu, "fp8") == "fp32"  # an unusable recommendation falls back
    assert resolve_precision("fp16", cpu, "bf16") == "fp16"  # an explicit choice wins
    with pytest.raises(UsageError, match="unknown precision"):
        resolve_precision("fp8", cpu)
