"""Budgets in the field's units (zoo.budget): parsing, the meter's four measures, fractions and ETA."""

from __future__ import annotations

import math

import pytest

from zoo.budget import Budget, BudgetMeter, check_points, log_spaced_points
from zoo.errors import UsageError
from zoo.trainer import TrainSettings


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "kind", "amount"),
    [
        ("90s", "time", 90.0),
        ("2m", "time", 120.0),
        ("1h", "time", 3600.0),
        ("1.5h", "time", 5400.0),
        (" 2 M ", "time", 120.0),
        ("1000steps", "steps", 1000.0),
        ("1000 steps", "steps", 1000.0),
        ("1step", "steps", 1.0),
        ("64kimg", "kimg", 64.0),
        ("0.5kimg", "kimg", 0.5),
        ("2e13flop", "flops", 2e13),
        ("2e13flops", "flops", 2e13),
        ("2E13FLOPS", "flops", 2e13),
        (".5e3flops", "flops", 500.0),
    ],
)
def test_parse_accepts_every_form(text, kind, amount):
    budget = Budget.parse(text)
    assert (budget.kind, budget.amount) == (kind, amount)
    assert Budget.parse(str(budget)) == budget  # str() is parseable text naming the same budget


@pytest.mark.parametrize(
    "text",
    ["", "2", "steps", "2min", "5 minutes", "-5s", "0s", "0steps", "1.5steps", "1e400flops", "nan s", "inf s",
     "2x", "1000 steps please", "2m30s", "1,000steps"],
)
def test_parse_rejects_bad_text_with_one_line_usage_error(text):
    with pytest.raises(UsageError) as info:
        Budget.parse(text)
    message = str(info.value)
    assert info.value.exit_code == 2
    assert "\n" not in message and "90s" in message and "kimg" in message and "flops" in message, message


@pytest.mark.parametrize(("kind", "amount"), [("time", 0), ("steps", -1), ("kimg", math.inf), ("flops", math.nan), ("watts", 1)])
def test_budget_amounts_must_be_finite_and_positive(kind, amount):
    with pytest.raises(UsageError):
        Budget(kind, amount)


def test_log_spaced_points():
    assert log_spaced_points(1) == [1.0]
    assert log_spaced_points(3) == pytest.approx([0.25, 0.5, 1.0])
    assert log_spaced_points(4) == pytest.approx([0.125, 0.25, 0.5, 1.0])
    points = log_spaced_points(5, first=0.01)
    assert points[0] == pytest.approx(0.01) and points[-1] == 1.0
    ratios = [b / a for a, b in zip(points, points[1:], strict=False)]
    assert ratios == pytest.approx([ratios[0]] * 4)  # evenly spaced in log scale
    assert check_points(points) == points
    for bad in (0, -1, 1.5):
        with pytest.raises(UsageError):
            log_spaced_points(bad)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        log_spaced_points(3, first=1.0)


@pytest.mark.parametrize("points", [[0.5, 0.25], [0.0, 1.0], [0.5, 1.5], [0.5, 0.5]])
def test_points_must_increase_within_the_budget(points):
    with pytest.raises(UsageError, match="increasing fractions"):
        check_points(points)


def test_time_budget_fraction_and_eta_follow_the_clock_and_skip_pauses():
    clock = FakeClock()
    meter = BudgetMeter(Budget.parse("100s"), batch_size=8, clock=clock)
    meter.start()
    assert meter.fraction() == 0.0 and meter.eta() == 100.0
    clock.now = 10.0
    meter.step_done(counted_flops=1e6)
    assert meter.fraction() == pytest.approx(0.1) and meter.eta() == pytest.approx(90.0)
    with meter.paused():  # evaluation: 50 seconds that are not training
        clock.now = 60.0
    assert meter.seconds == pytest.approx(10.0) and meter.eta() == pytest.approx(90.0)
    clock.now = 100.0
    assert meter.fraction() == pytest.approx(0.5) and not meter.done() and meter.stopped_by() is None
    clock.now = 160.0
    assert meter.fraction() == 1.0 and meter.done() and meter.stopped_by() == "time" and meter.eta() == 0.0
    assert meter.total_steps() is None  # a time budget has no step count


def test_meter_tracks_all_four_measures_and_leaves_the_counted_step_out_of_throughput():
    clock = FakeClock()
    meter = BudgetMeter(Budget.parse("10steps"), batch_size=16, clock=clock)
    meter.start()
    clock.now = 5.0  # the FLOP-counting step is slow
    meter.step_done(counted_flops=2e6)
    assert meter.images_per_s() == pytest.approx(16 / 5.0)  # the only step: used rather than reporting 0
    for _ in range(4):
        clock.now += 0.5
        meter.step_done()
    assert meter.images_per_s() == pytest.approx(16 / 0.5)  # steady state, the counted step left out
    assert meter.spent() == {"train_seconds": 7.0, "train_steps": 5, "train_kimg": 0.08, "train_flops": 1e7}
    assert meter.fraction() == 0.5 and meter.total_steps() == 10
    assert meter.eta() == pytest.approx(5 * 0.5)  # remaining steps over the step rate


@pytest.mark.parametrize(
    ("text", "batch", "steps"),
    [("8steps", 8, 8), ("0.064kimg", 8, 8), ("0.06kimg", 8, 8), ("5e6flops", 8, 5), ("4.5e6flops", 8, 5)],
)
def test_step_like_budgets_end_at_the_right_step(text, batch, steps):
    meter = BudgetMeter(Budget.parse(text), batch_size=batch, clock=FakeClock())
    meter.start()
    done_at = None
    for i in range(1, 20):
        meter.step_done(counted_flops=1e6 if i == 1 else None)
        if meter.done():
            done_at = i
            break
    assert done_at == steps and meter.total_steps() == steps and meter.stopped_by() == Budget.parse(text).kind


def test_flop_budget_is_unknown_until_counted_and_refuses_a_model_with_no_flops():
    meter = BudgetMeter(Budget.parse("1e9flops"), batch_size=4, clock=FakeClock())
    assert meter.fraction() == 0.0 and meter.total_steps() is None and meter.eta() is None and meter.flops is None
    with pytest.raises(UsageError, match="FLOP budget"):
        meter.step_done(counted_flops=0)


def test_several_budgets_stop_at_whichever_comes_first():
    clock = FakeClock()
    meter = BudgetMeter([Budget.parse("10s"), Budget.parse("4steps")], batch_size=2, clock=clock)
    meter.start()
    for _ in range(4):
        clock.now += 1.0
        meter.step_done(counted_flops=1.0 if meter.flops_per_step is None else None)
    assert meter.fraction() == 1.0 and meter.stopped_by() == "steps"
    assert meter.eta() == 0.0  # the steps cap ends it now, whatever the time budget says


def test_meter_state_round_trips():
    clock = FakeClock()
    meter = BudgetMeter(Budget.parse("1e7flops"), batch_size=4, clock=clock)
    meter.start()
    clock.now = 3.0
    meter.step_done(counted_flops=1e6)
    state = meter.state_dict()
    again = BudgetMeter(Budget.parse("1e7flops"), batch_size=4, clock=clock)
    again.load_state_dict(state)
    assert again.spent() == meter.spent() == {"train_seconds": 3.0, "train_steps": 1, "train_kimg": 0.004, "train_flops": 1e6}
    assert again.fraction() == pytest.approx(0.1) and again.total_steps() == 10


def test_train_settings_map_old_fields_onto_budgets():
    s = TrainSettings(steps=100, time_limit=60.0, batch_size=10)
    assert s.budgets(1000) == [Budget("time", 60.0), Budget("steps", 100)]
    assert TrainSettings(epochs=2, batch_size=10).budgets(1005) == [Budget("steps", 200)]  # the ragged tail is dropped
    assert TrainSettings(batch_size=10).budgets(1000) == [Budget("steps", 2000)]  # the default
    s = TrainSettings(budget="64kimg", steps=10_000, batch_size=64)
    assert s.budgets(1000)[0] == Budget("kimg", 64.0) and s.total_steps(1000) == 1000
    assert TrainSettings(budget="2m", batch_size=10).total_steps(1000) is None
    with pytest.raises(UsageError, match="invalid budget"):
        TrainSettings(budget="lots", batch_size=10).validate(1000)
