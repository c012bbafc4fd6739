"""Plugin code cannot end, stall or reconfigure the host: each fault is one failed job, one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types

import pytest
import torch

import zoo.guard as guard
import zoo.registry as registry_module
from tests.helpers import ROOT, make_distribution, zoo_in_process
from zoo import hookimpl
from zoo.bench.store import ResultsStore
from zoo.registry import build_registry


def _with_models(monkeypatch, *classes):
    module = types.ModuleType("fault_plugin")
    module.zoo_register_models = hookimpl(lambda register: [register(c) for c in classes])
    monkeypatch.setattr(registry_module, "_REGISTRY", build_registry(extra_plugins=[("faults", module)]))


def _ppca(name, **methods):
    from zoo_ppca.model import PPCA

    return type(name.title().replace("-", ""), (PPCA,), {"name": name, **methods})


def _rows(tmp_path):
    return {r.model: r for r in ResultsStore(tmp_path / "runs" / "results.sqlite").rows()}


def test_plugins_that_exit_interrupt_or_run_out_of_memory_fail_alone(capsys, tmp_path, monkeypatch):
    """sys.exit(0) in train_step or sample made zoo bench exit 0 with no row and skip the other models."""

    def exits(self, batch, step):
        sys.exit(0)

    def interrupts(self, batch, step):
        raise KeyboardInterrupt

    def hungry(self, batch, step):
        raise MemoryError

    def exits_sampling(self, n, **kw):
        raise SystemExit(3)

    def float64(self, batch, step):  # leaves torch's default dtype changed for whatever runs next
        from zoo_ppca.model import PPCA

        torch.set_default_dtype(torch.float64)
        torch.set_grad_enabled(False)
        return PPCA.train_step(self, batch, step)

    _with_models(monkeypatch, _ppca("exits", train_step=exits), _ppca("interrupts", train_step=interrupts),
                 _ppca("hungry", train_step=hungry), _ppca("exits-sampling", sample=exits_sampling),
                 _ppca("float64", train_step=float64))
    monkeypatch.chdir(tmp_path)
    code, out, err = zoo_in_process(capsys, "bench", "--models", "exits,interrupts,hungry,exits-sampling,float64,gan",
                                    "--preset", "smoke", "--curve-points", "1", "--json")
    assert code == 1, err
    rows = _rows(tmp_path)
    assert rows["gan"].status == "ok"  # after every fault, and after a plugin changed torch's defaults
    assert "plugin code called sys.exit(0)" in rows["exits"].error
    assert "plugin code raised KeyboardInterrupt (no Ctrl-C was pressed)" in rows["interrupts"].error
    assert rows["hungry"].error.startswith("out of memory: MemoryError")
    assert "sys.exit(3)" in rows["exits-sampling"].error
    assert torch.get_default_dtype() == torch.float32 and torch.is_grad_enabled()
    assert "Traceback" not in err and [r["model"] for r in json.loads(out)][-1] == "gan"


def test_a_real_ctrl_c_still_stops_the_bench_with_130(capsys, tmp_path, monkeypatch):
    from zoo_ppca.model import PPCA

    def pressed(self, batch, step):
        os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C during this step
        return PPCA.train_step(self, batch, step)

    _with_models(monkeypatch, _ppca("pressed", train_step=pressed))
    monkeypatch.chdir(tmp_path)
    code, _, err = zoo_in_process(capsys, "bench", "--models", "pressed,gan", "--preset", "smoke")
    assert code == 130 and "interrupted by SIGINT" in err, err
    assert _rows(tmp_path) == {}  # neither a failed row for it nor a run of the next model


def test_a_step_that_never_returns_is_stopped_after_the_time_budget(capsys, tmp_path, monkeypatch):
    """A train_step looping forever hung zoo bench --time for good; now the watchdog stops it
    (a Python loop, and a sleep inside C) and the next model runs."""

    def spins(self, batch, step):
        while True:
            pass

    def sleeps(self, batch, step):
        time.sleep(10**6)

    monkeypatch.setattr(guard, "BUDGET_GRACE_SECONDS", 1.0)
    _with_models(monkeypatch, _ppca("spins", train_step=spins), _ppca("sleeps", train_step=sleeps))
    monkeypatch.chdir(tmp_path)
    start = time.monotonic()
    code, _, err = zoo_in_process(capsys, "bench", "--models", "spins,sleeps,gan", "--preset", "smoke",
                                  "--time", "2s", "--curve-points", "1")
    assert code == 1, err
    rows = _rows(tmp_path)
    for name in ("spins", "sleeps"):
        assert rows[name].status == "failed"
        assert f"{name}.train_step did not return within 1s after the 2s budget ran out" in rows[name].error
    assert rows["gan"].status == "ok" and time.monotonic() - start < 120


def test_sigterm_inside_a_step_that_never_returns_stops_the_bench(capsys, tmp_path, monkeypatch):
    """SIGTERM was ignored by a hung step (the trainer waits for the step boundary): now the step
    gets a grace period, is recorded as failed, and the bench exits 143 without the next model."""

    def terminated(self, batch, step):
        os.kill(os.getpid(), signal.SIGTERM)
        while True:
            pass

    monkeypatch.setattr(guard, "SIGNAL_GRACE_SECONDS", 1.0)
    _with_models(monkeypatch, _ppca("terminated", train_step=terminated))
    monkeypatch.chdir(tmp_path)
    code, _, err = zoo_in_process(capsys, "bench", "--models", "terminated,gan", "--preset", "smoke")
    assert code == 143, err
    rows = _rows(tmp_path)
    assert set(rows) == {"terminated"} and "did not return within 1s of SIGTERM" in rows["terminated"].error
    assert len(err.strip().splitlines()[-1]) < 400 and "Traceback" not in err


def test_code_that_cannot_be_stopped_is_recorded_and_the_process_ends(tmp_path):
    """It swallows every exception: the watchdog records the failure, then ends the process."""
    marker = tmp_path / "recorded"
    code = (
        "import time\nfrom zoo.guard import Watchdog\n"
        f"def record(message, code):\n    open({str(marker)!r}, 'w').write(f'{{code}} {{message}}')\n"
        "with Watchdog(record, kill_after=1.0) as dog:\n"
        "    dog.arm(0.2, 'stubborn.train_step', 'within 0.2s')\n"
        "    while True:\n        try:\n            time.sleep(100)\n        except BaseException:\n            pass\n"
    )
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 1 and time.monotonic() - start < 30
    assert marker.read_text().startswith("1 stubborn.train_step did not return within 0.2s; stopped")
    assert out.stderr.strip().splitlines() == [f"zoo: error: {marker.read_text()[2:]}"]


@pytest.mark.parametrize("command", ["train", "sample"])
def test_train_and_sample_report_a_plugin_exit_in_one_line(capsys, tmp_path, monkeypatch, command):
    """They exited 0 having done nothing."""

    def exits(self, *args, **kwargs):
        if os.environ.get("QUIT"):
            sys.exit(0)
        return PPCA.sample(self, *args, **kwargs)  # the training run's own grid

    from zoo_ppca.model import PPCA

    monkeypatch.chdir(tmp_path)
    _with_models(monkeypatch, _ppca("quitter", **{"train_step" if command == "train" else "sample": exits}))
    train = ["train", "quitter", "--steps", "2", "--run-dir", "run", "--no-progress"]
    if command == "sample":
        code, _, err = zoo_in_process(capsys, *train)
        assert code == 0, err
    monkeypatch.setenv("QUIT", "1")
    code, _, err = zoo_in_process(capsys, *(train if command == "train" else ["sample", "run", "-n", "4"]))
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("zoo: error: plugin code called sys.exit(0) (at test_plugin_faults.py:"), err


def test_plugin_prints_never_reach_machine_output(capsys, tmp_path, monkeypatch):
    """A plugin that prints at import and in its hooks made zoo list --json invalid JSON."""
    site = tmp_path / "site"
    source = """
        print("hello from import")
        from zoo import hookimpl
        from zoo_ppca.model import PPCA

        class Chatty(PPCA):
            name = "chatty"

        @hookimpl
        def zoo_register_models(register):
            print("hello from a hook")
            register(Chatty)
    """
    make_distribution(site, "zoo-chatty", {"chatty": "zoo_chatty"}, {"zoo_chatty": source})
    monkeypatch.syspath_prepend(str(site))
    registry_module.reset_registry()
    code, out, err = zoo_in_process(capsys, "list", "--json")
    assert code == 0, err
    assert "chatty" in {row["name"] for row in json.loads(out)}
    assert "hello from import" in err and "hello from a hook" in err
