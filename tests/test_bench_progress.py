"""The whole bench's progress (jobs done of all, ETA) and the message an interrupted bench prints."""

from __future__ import annotations

import os
import signal

from tests.helpers import zoo_in_process
from tests.test_bench import _ppca, _with_models
from zoo.bench.api import BenchRequest, run_benchmark
from zoo.bench.runner import BenchProgress, BenchStatus, JobCounter
from zoo.bench.store import ResultsStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder(BenchProgress):
    def __init__(self) -> None:
        self.statuses: list[BenchStatus] = []
        self.messages: list[str] = []

    def message(self, text: str) -> None:
        self.messages.append(text)

    def overall(self, status: BenchStatus) -> None:
        self.statuses.append(status)
        super().overall(status)  # the default: one message line


def test_job_counter_eta_comes_from_the_jobs_that_ran():
    clock = FakeClock()
    counter = JobCounter(4, clock=clock)
    first = counter.status()
    assert (first.done, first.total, first.eta) == (0, 4, None)
    assert first.line() == "jobs 0 of 4 done · 0:00:00 so far · eta -:--:--"
    clock.now += 1
    skipped = counter.finish(skipped=True)
    assert skipped.eta is None  # a skipped job says nothing about how long one takes
    clock.now += 60
    ran = counter.finish(failed=True)
    assert ran.elapsed == 61 and ran.eta == 61 * 2
    assert ran.line() == "jobs 2 of 4 done (1 skipped, 1 failed) · 0:01:01 so far · eta 0:02:02"
    clock.now += 3600
    counter.finish()
    last = counter.finish()
    assert last.eta == 0 and last.line().startswith("jobs 4 of 4 done (1 skipped, 1 failed) · 1:01:01 so far")
    assert len(last.line()) + len("zoo bench: ") <= 80


def test_smoke_bench_reports_jobs_done_of_all_before_and_after_each_job(tmp_path, monkeypatch):
    _with_models(monkeypatch, _ppca("ppca"))
    request = BenchRequest(models=["ppca"], preset="smoke", seeds=[0, 1], results=str(tmp_path / "r.sqlite"))
    sink = Recorder()
    run_benchmark(request, progress=sink)
    assert [(s.done, s.total, s.skipped) for s in sink.statuses] == [(0, 2, 0), (1, 2, 0), (2, 2, 0)]
    assert sink.statuses[1].eta is not None and sink.statuses[2].eta == 0
    assert [m for m in sink.messages if m.startswith("jobs ")] == [s.line() for s in sink.statuses]

    again = Recorder()
    run_benchmark(request, progress=again)  # everything is in the store: skipped, and said so
    assert [(s.done, s.skipped) for s in again.statuses] == [(0, 0), (1, 1), (2, 2)]


def test_an_interrupted_bench_names_the_command_that_resumes_it(capsys, tmp_path, monkeypatch):
    from zoo_ppca.model import PPCA

    state = {"signals": [signal.SIGTERM]}

    def stop_once(self, batch, step):
        if state["signals"]:
            os.kill(os.getpid(), state["signals"].pop())  # the trainer checkpoints and stops
        return PPCA.train_step(self, batch, step)

    _with_models(monkeypatch, _ppca("stopper", stop_once))
    monkeypatch.chdir(tmp_path)
    args = ["bench", "--models", "stopper", "--preset", "smoke", "--seeds", "0", "--rerun"]
    code, _, err = zoo_in_process(capsys, *args)
    assert code == 143, err
    words = " ".join(err.split())  # the explanation wraps at the terminal's width; the command does not
    assert "zoo bench: interrupted by SIGTERM at step" in words and "Traceback" not in err
    assert "run the same command again to resume" in words and "(without --rerun, which would redo them)" in words
    assert "  zoo bench --models stopper --preset smoke --seeds 0\n" in err
    assert not ResultsStore(tmp_path / "runs" / "results.sqlite").rows()

    # Ctrl-C outside training (here: while sampling) says the same, exit 130. genzoo's SIGINT
    # handler raises UserInterrupt; a bare KeyboardInterrupt from plugin code is that plugin's
    # failure (tests/test_plugin_faults.py).
    def interrupt(*_a, **_k):
        from zoo.errors import UserInterrupt

        raise UserInterrupt

    monkeypatch.setattr(PPCA, "sample", interrupt)
    code, _, err = zoo_in_process(capsys, *args[:-1])
    assert code == 130 and "zoo bench: interrupted by SIGINT." in err and max(map(len, err.splitlines()[-3:-1])) <= 80
    assert "  zoo bench --models stopper --preset smoke --seeds 0\n" in err
    monkeypatch.undo()

    _with_models(monkeypatch, _ppca("stopper", stop_once))
    monkeypatch.chdir(tmp_path)
    code, _, err = zoo_in_process(capsys, *args[:-1])  # the command it named: resumes, finishes
    assert code == 0, err
    assert "resuming at step" in err
    assert [r.status for r in ResultsStore(tmp_path / "runs" / "results.sqlite").rows()] == ["ok"]


def test_sigterm_outside_training_is_an_interrupt_not_a_silent_death(capsys, tmp_path, monkeypatch):
    from zoo_ppca.model import PPCA

    def terminate(*_a, **_k):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM should have interrupted")

    before = signal.getsignal(signal.SIGTERM)
    _with_models(monkeypatch, _ppca("ppca"))
    monkeypatch.setattr(PPCA, "sample", terminate)
    monkeypatch.chdir(tmp_path)
    # no curve points: the first sampling is after training, outside the trainer's own handler
    code, _, err = zoo_in_process(capsys, "bench", "--models", "ppca", "--preset", "smoke", "--curve-points", "1")
    assert code == 143, err
    assert "zoo bench: interrupted by SIGTERM." in err
    assert "  zoo bench --models ppca --preset smoke --curve-points 1\n" in err
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is the bench's only while it runs


def test_a_progress_object_without_overall_gets_the_line_as_a_message():
    from zoo.bench.runner import report_overall

    class Old:  # written before BenchProgress.overall existed (as the cluster jobs' printer was)
        def __init__(self) -> None:
            self.lines: list[str] = []

        def message(self, text: str) -> None:
            self.lines.append(text)

    old = Old()
    report_overall(old, BenchStatus(1, 3, elapsed=30.0))
    assert old.lines == ["jobs 1 of 3 done · 0:00:30 so far · eta 0:01:00"]
