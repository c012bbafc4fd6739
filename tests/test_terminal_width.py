"""An 80-column terminal: leaderboard tables, captions, bench messages and the training bar fit.

Rich crops what does not fit, so "no line wider than 80" alone would pass a table cut in half:
every table line must also end in its right border, and every model must still be there.
"""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from tests.helpers import run_zoo
from zoo.bench.leaderboard import build_leaderboard, to_text
from zoo.bench.store import ResultRow, ResultsStore
from zoo.budget import Budget, BudgetMeter
from zoo.cli.progress import LOSSES_WIDTH, training_bar, training_line
from zoo.trainer import TrainProgress

P = {"primary_metric": "fid_lenet"}
BORDERS = "┓┃┩│┘┐┤"


def rows() -> list[ResultRow]:
    out = []
    for i, (model, options) in enumerate((("ddpm", {"sampler": "ddim", "steps": 50, "eta": 0.0, "spacing": "uniform"}),
                                          ("a-model-with-a-rather-long-plugin-name", {}), ("vae", {"output": "mean"}))):
        for seed in range(2):
            out.append(ResultRow(model=model, dataset="mnist-5k", seed=seed, protocol_hash="3bb635b91b25", protocol=P,
                                 sample_options=options,
                                 metrics={"fid_lenet": 100.0 * (i + 1) + seed, "is_lenet": 5.0, "kid_lenet": 0.1,
                                          "precision_lenet": 0.5, "recall_lenet": 0.4},
                                 floor={"fid_lenet": 59.8}, costs={"train_images_per_s": 1234.0, "sample_images_per_s": 64807.0,
                                                                    "params": 41_600, "peak_memory_mb": 1285.0,
                                                                    "memory_kind": "process_peak_rss"}))
    out.append(ResultRow(model="broken", dataset="mnist-5k", seed=0, protocol_hash="3bb635b91b25", protocol=P,
                         status="failed", error="RuntimeError: " + "x" * 300))
    return out


def assert_fits(text: str, width: int, models: list[str]) -> None:
    lines = text.rstrip("\n").splitlines()
    assert lines and max(len(line.rstrip()) for line in lines) <= width, "\n".join(lines)
    table = [line.rstrip() for line in lines if line[:1] in "┏┃┡│└"]
    assert table and all(line[-1] in BORDERS + "┛┴" for line in table), "a table line was cropped:\n" + "\n".join(table)
    for model in models:
        assert model[:6] in text


@pytest.mark.parametrize("width", [80, 60])
def test_leaderboard_drops_columns_and_wraps_captions_to_fit(width):
    text = to_text(build_leaderboard(rows()), width=width)
    assert_fits(text, width, ["ddpm", "a-model", "vae", "broken"])
    assert "not shown (terminal too narrow)" in text and "real vs" in text
    assert "fid_lenet" in text and "Welch" in text  # the footnotes wrap instead of being cut
    wide = to_text(build_leaderboard(rows()), width=250)
    assert "not shown" not in wide and "1,285 RSS" in wide  # the memory column names its kind


def test_zoo_leaderboard_at_80_columns(tmp_path):
    store = ResultsStore(tmp_path / "results.sqlite")
    store.add_many(rows())
    done = run_zoo("leaderboard", "--results", str(store.path), env={"COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    assert_fits(done.stdout, 80, ["ddpm", "a-model", "vae", "broken"])


@pytest.mark.slow  # a real smoke bench of three models: about a minute on a busy 2-core machine
def test_smoke_bench_prints_nothing_wider_than_80_columns(tmp_path):
    done = run_zoo("bench", "--models", "gan,vae,ddpm", "--preset", "smoke", "--results", str(tmp_path / "r.sqlite"),
                   "--no-progress", env={"COLUMNS": "80"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for stream in (done.stdout, done.stderr):
        assert max(len(line) for line in stream.splitlines()) <= 80, stream
    assert_fits(done.stdout.split("results:")[0], 80, ["gan", "vae", "ddpm"])


def progress_at(meter: BudgetMeter, losses: dict[str, float]) -> TrainProgress:
    return TrainProgress(model="ddpm", step=meter.steps, total_steps=meter.total_steps(), elapsed=meter.seconds,
                         fraction=meter.fraction(), eta=meter.eta(), images_per_s=meter.images_per_s(), losses=losses)


def test_training_bar_keeps_steps_elapsed_and_the_time_budgets_eta_at_80_columns():
    now = [0.0]
    meter = BudgetMeter(Budget("time", 120.0), batch_size=64, clock=lambda: now[0])
    meter.start()
    for _ in range(94):
        now[0] += 30.0 / 94
        meter.step_done()
    losses = {"loss_discriminator_real": 0.693, "loss_discriminator_fake": 0.7, "loss_generator": 1.234, "gp": 10.0}
    p = progress_at(meter, losses)
    steps, clock, info = training_line(p, 80)
    # A time budget: no step total, 30 s spent, 90 s left (not an ETA from a default step count).
    assert steps == "94 steps" and clock == "0:00:30 eta 0:01:30"
    assert info.startswith("201 img/s") and len(info) <= 80  # 94 x 64 images in 30 s

    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None)
    with training_bar("wgan-gp-with-a-long-name", True, console) as update:
        update(p)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue()).replace("\r", "\n")
    final = [line for line in text.splitlines() if "steps" in line][-1]
    assert len(final) <= 80 and "94 steps" in final and "0:00:30 eta 0:01:30" in final and "img/s" in final
    assert "…" in final  # the losses are cut, not the step count or the clock


def test_training_line_bounds_the_losses_column():
    meter = BudgetMeter(Budget("steps", 20000), batch_size=64, clock=lambda: 10.0)
    meter.start()
    p = progress_at(meter, {f"loss_{i}": 0.1 * i for i in range(20)})
    for width in (60, 80, 200):
        steps, clock, info = training_line(p, width)
        assert steps == "0/20000"
        loss_text = info.split("img/s", 1)[1].strip() if "img/s" in info else ""
        assert len(loss_text) <= LOSSES_WIDTH
        assert 12 + 12 + len(steps) + len(clock) + len(info) + 4 <= width


def test_progress_lines_fit_the_width_for_logs():
    from zoo.cli.progress import progress_lines

    meter = BudgetMeter(Budget("steps", 4), batch_size=64, clock=lambda: 2.0)
    meter.start()
    out = io.StringIO()
    console = Console(file=out, width=80, color_system=None)
    show = progress_lines("a-plugin-model-with-a-long-name", every=200, console=console)
    for _ in range(4):
        meter.step_done()
        show(progress_at(meter, {f"loss_{i}": 0.5 for i in range(12)}))
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and len(lines[0]) <= 80  # only the last step (every=200)
    assert lines[0].startswith("[a-plugin-mo…] 4/4 0:00:00 eta ") and lines[0].endswith("…")


def test_zoo_eval_of_a_run_names_its_sampler_and_fits_80_columns(tmp_path):
    run = tmp_path / "run"
    sets = [x for k, v in (("base_channels", 8), ("channel_mults", "[1,2]"), ("num_timesteps", 20)) for x in ("--set", f"{k}={v}")]
    assert run_zoo("train", "ddpm", "--steps", "2", "--batch-size", "8", *sets, "--run-dir", str(run), "--no-progress",
                   cwd=tmp_path).returncode == 0
    out = run_zoo("eval", str(run), "--num-fake", "20", "--num-real", "200", "--option", "sampler=dpmpp2m",
                  "--option", "steps=3", env={"COLUMNS": "80"}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    # The caption wraps where the (temporary, any length) run path ends: read it unwrapped.
    flat = " ".join(out.stdout.split())
    assert "ddpm step 2" in flat and "sampler=dpmpp2m" in flat and "steps=3" in flat
    assert max(len(line) for line in out.stdout.splitlines()) <= 80
