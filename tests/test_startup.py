"""Commands that start at once: the listing commands never import torch, models register lazily
(and a lazy registration cannot silently disagree with its class), loading a dataset never imports
the metrics stack, and the heavy commands say what they are about to do before loading torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import ROOT
from zoo import ModelSpec
from zoo.errors import PluginError
from zoo.registry import build_registry

HEAVY = ("torch", "torch_fidelity", "torchvision")


def _modules_after(code: str, tmp_path: Path) -> dict:
    """Run ``code`` in a fresh interpreter; return ``{"heavy": [...], "out": ...}``."""
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent(code) + textwrap.dedent(f"""
        import json, sys
        print("\\nPROBE " + json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
    """), encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "PROBE " in proc.stdout, proc.stderr[-2000:]
    out, _, probe = proc.stdout.rpartition("PROBE ")
    return {"heavy": json.loads(probe), "out": out, "err": proc.stderr}


def _cli(*args: str) -> str:
    return f"""
        from zoo.cli.app import run
        code = run({list(args)!r})
        print("EXIT", code)
    """


@pytest.mark.parametrize("args", [
    ("list", "--json"), ("describe", "ddpm"), ("describe", "ddpm-small", "--json"), ("plugins", "--json", "--all"),
    ("data", "list"),
], ids=" ".join)
def test_listing_commands_do_not_import_torch(tmp_path, args):
    result = _modules_after(_cli(*args), tmp_path)
    assert "EXIT 0" in result["out"], result["err"][-2000:]
    assert result["heavy"] == [], f"zoo {' '.join(args)} imported {result['heavy']}"
    if args == ("list", "--json"):
        rows = json.loads(result["out"].split("EXIT")[0])
        ddpm = next(r for r in rows if r["name"] == "ddpm")
        assert ddpm["family"] == "diffusion" and "sampler" in ddpm["sample_options"]
    if args == ("describe", "ddpm"):
        assert "snr_gamma" in result["out"] and "sampler" in result["out"]


def test_leaderboard_on_a_small_store_does_not_import_torch(tmp_path):
    from zoo.bench.store import ResultRow, ResultsStore

    store = tmp_path / "results.sqlite"
    protocol = {"primary_metric": "fid_lenet", "n_gen": 1000, "backbone": "lenet"}
    ResultsStore(store).add_many([
        ResultRow(model=m, dataset="mnist-5k", seed=s, protocol_hash="p1", protocol=protocol, status="ok",
                  family="gan", metrics={"fid_lenet": f + s}) for m, f in (("gan", 20.0), ("vae", 30.0)) for s in (0, 1)])
    for args in (("leaderboard", "--results", str(store)), ("leaderboard", "--results", str(tmp_path / "none.sqlite"))):
        result = _modules_after(_cli(*args), tmp_path)
        assert "EXIT 0" in result["out"], result["err"][-2000:]
        assert result["heavy"] == []
    assert "vae" in _modules_after(_cli("leaderboard", "--results", str(store)), tmp_path)["out"]


def test_loading_a_dataset_does_not_import_the_metrics_stack(tmp_path):
    result = _modules_after("""
        from zoo.factory import load_dataset
        ds = load_dataset("mnist-5k")
        print(len(ds.train), len(ds.test))
    """, tmp_path)
    assert "4000 1000" in result["out"], result["err"][-2000:]
    assert "torch_fidelity" not in result["heavy"] and "torchvision" not in result["heavy"]


def test_heavy_commands_announce_themselves_before_importing_torch(tmp_path):
    # The spy stops each command at its announcement, so torch is never imported unless a
    # command imported it before announcing.
    result = _modules_after("""
        import sys
        import zoo.cli as cli

        seen = []
        def spy(message):
            seen.append((message, "torch" in sys.modules))
            raise SystemExit(0)
        for module in (cli.train, cli.sample, cli.eval, cli.bench):
            module.announce = spy
        for args in (["train", "ddpm", "--steps", "1"], ["sample", "runs/x"], ["eval", "."],
                     ["bench", "--models", "gan"]):
            try:
                cli.app.run(args)
            except SystemExit:
                pass
        print("SEEN", seen)
    """, tmp_path)
    seen = eval(result["out"].split("SEEN ", 1)[1].strip())  # a list of (str, bool) pairs we printed
    assert [m.split(" ", 1)[0] for m, _ in seen] == ["training", "sampling", "scoring", "benchmarking"]
    assert not any(torch_loaded for _, torch_loaded in seen)
    assert result["heavy"] == []


def test_announce_prints_only_to_a_terminal(monkeypatch):
    import io

    from rich.console import Console

    from zoo.cli import app

    for terminal in (False, True):
        buffer = io.StringIO()
        monkeypatch.setattr(app, "stderr", Console(file=buffer, force_terminal=terminal, width=80))
        app.announce("training ddpm on mnist-5k: loading torch...")
        assert ("training ddpm" in buffer.getvalue()) is terminal


# -- lazy registration -----------------------------------------------------------------------

MODEL_SOURCE = '''
from dataclasses import dataclass
from zoo.model import GenerativeModel, ModelConfig

@dataclass
class LazyConfig(ModelConfig):
    width: int = 4  # channels

class Lazy(GenerativeModel):
    name = "lazy"
    family = "{family}"
    summary = "a lazily registered model"
    Config = LazyConfig
'''


def _lazy_plugin(tmp_path: Path, monkeypatch, module: str, family: str = "other", **declared):
    (tmp_path / f"{module}.py").write_text(MODEL_SOURCE.format(family=family), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    from zoo import hookimpl

    class Plugin:
        @staticmethod
        @hookimpl
        def zoo_register_models(register):
            register("lazy", f"{module}:Lazy", family="other", summary="a lazily registered model", **declared)

    return build_registry(entry_points=[], extra_plugins=[("lazy-plugin", Plugin)], strict=False)


def test_lazy_registration_lists_without_importing_and_loads_on_use(tmp_path, monkeypatch):
    reg = _lazy_plugin(tmp_path, monkeypatch, "lazy_ok_mod")
    entry = reg.entry("lazy")
    assert [e.name for e in reg.list_models("other")] == ["lazy"]
    assert (entry.family, entry.summary) == ("other", "a lazily registered model")
    assert "lazy_ok_mod" not in sys.modules
    assert entry.cls.__name__ == "Lazy" and "lazy_ok_mod" in sys.modules  # built on use
    assert entry.describe()["config"][0]["help"] == "channels"


def test_lazy_registration_that_disagrees_with_its_class_is_a_plugin_error(tmp_path, monkeypatch):
    reg = _lazy_plugin(tmp_path, monkeypatch, "lazy_bad_mod", family="gan")
    entry = reg.entry("lazy")
    assert entry.family == "other"  # what the registration says, until the class loads
    with pytest.raises(PluginError, match=r"lazy-plugin.*family is 'other' in the registration but 'gan'"):
        _ = entry.cls
    with pytest.raises(PluginError, match="family"):  # every later use too, never a silent mismatch
        reg.model("lazy")


def test_lazy_registration_of_a_missing_module_fails_on_use_not_listing(tmp_path, monkeypatch):
    from zoo import hookimpl

    class Plugin:
        @staticmethod
        @hookimpl
        def zoo_register_models(register):
            register("ghost", "no_such_module_xyz:Ghost", family="gan", summary="not installed")

    reg = build_registry(entry_points=[], extra_plugins=[("ghost-plugin", Plugin)], strict=False)
    assert reg.entry("ghost").summary == "not installed"
    with pytest.raises(PluginError, match="ghost-plugin.*ModuleNotFoundError"):
        reg.model("ghost")


@pytest.mark.parametrize("args, kwargs, message", [
    (("bad", "not a target"), {"family": "gan", "summary": ""}, "target must be"),
    (("bad", "m:C"), {"family": "nope", "summary": ""}, "family must be one of"),
    (("bad", "m:C"), {"family": "gan", "summary": "", "colour": "red"}, "colour"),
    (("bad", "m:C"), {"family": "gan", "summary": "", "config": dict}, "must subclass zoo.ModelConfig"),
])
def test_invalid_lazy_registrations_are_rejected_at_collection(args, kwargs, message):
    from zoo import hookimpl

    class Plugin:
        @staticmethod
        @hookimpl
        def zoo_register_models(register):
            register(*args, **kwargs)

    reg = build_registry(entry_points=[], extra_plugins=[("bad-plugin", Plugin)], strict=False)
    assert "bad" not in reg.models
    assert message in (reg.plugins["bad-plugin"].error or "")


def test_every_builtin_model_is_lazy_and_agrees_with_its_class():
    reg = build_registry(strict=True)
    for entry in reg.list_models():
        if entry.variant is None:
            assert entry.source.spec is not None, f"{entry.name} is registered eagerly"
        before = entry.describe()
        assert entry.cls.name == (entry.variant.model if entry.variant else entry.name)  # loads, checks
        assert entry.source.spec.disagreements(entry.cls) == []
        assert entry.describe() == before  # the same description with the class loaded


def test_ddpm_spec_names_every_scheduler():
    from zoo_ddpm.schedulers import SCHEDULERS
    from zoo_ddpm.spec import SAMPLERS

    assert tuple(SCHEDULERS) == SAMPLERS


def test_a_class_built_from_a_spec_refuses_a_different_body_value():
    from zoo_gan.spec import SPEC

    from zoo.model import GenerativeModel

    with pytest.raises(TypeError, match="family is 'gan' in the registration but 'vae'"):
        class Wrong(GenerativeModel, spec=SPEC):  # noqa: F841
            family = "vae"


def test_model_spec_declares_only_what_it_is_given():
    spec = ModelSpec("m", "pkg.mod:M", family="gan", summary="s", default_batch_size=32)
    assert spec.declared() == {"name": "m", "family": "gan", "summary": "s", "default_batch_size": 32}


def test_startup_benchmark_runs(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "startup.py"), "--repeat", "1", "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert [r["command"] for r in report["commands"]] == [
        "zoo list", "zoo plugins", "zoo describe ddpm", "zoo data list", "zoo leaderboard"]
    assert all(r["median_s"] > 0 and r["exit_code"] == 0 for r in report["commands"])
    assert report["target_s"] == 1.0


def test_register_cls_still_works_beside_lazy_ones():
    from zoo_gan.model import GAN

    from zoo import hookimpl

    class Plugin:
        @staticmethod
        @hookimpl
        def zoo_register_models(register):
            register(GAN)

    reg = build_registry(entry_points=[], extra_plugins=[("eager", Plugin)], strict=True)
    entry = reg.entry("gan")
    assert entry.source.spec is None and entry.cls is GAN and entry.family == "gan"
    assert entry.describe()["class"] == "zoo_gan.model.GAN"


def test_leaderboard_statistics_match_scipy_stats():
    import random

    from scipy import stats

    from zoo.bench.leaderboard import ALPHA, _intervals, welch_p_value

    rng = random.Random(0)
    for _ in range(200):
        a = [rng.gauss(0, rng.uniform(0.1, 3)) for _ in range(rng.randint(2, 6))]
        b = [rng.gauss(rng.uniform(-2, 2), rng.uniform(0.1, 3)) for _ in range(rng.randint(2, 6))]
        expected = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
        assert welch_p_value(a, b) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    import pandas as pd

    low, high = _intervals(pd.Series([10.0]), pd.Series([2.0]), pd.Series([4]))
    half = float(stats.t.ppf(1 - ALPHA / 2, 3)) * 2.0 / 2.0
    assert (low[0], high[0]) == (pytest.approx(10 - half), pytest.approx(10 + half))
