"""Plugin discovery survives broken plugins, reports them, and strict mode makes them fatal."""

from __future__ import annotations

import json
import types

import pytest

from tests.helpers import make_distribution, run_zoo
from zoo import GenerativeModel, hookimpl
from zoo.errors import PluginError, UnknownNameError
from zoo.registry import build_registry

BUILTINS = {"gan", "dcgan", "wgan-gp", "vae", "ddpm", "vaegan", "flow"}
BUILTIN_VARIANTS = {"ddpm-small", "ddpm-cifar10"}  # named variants the ddpm plugin registers


def plugin(**hooks) -> types.ModuleType:
    """A plugin module built on the fly (plugins are usually modules)."""
    module = types.ModuleType("fake_plugin")
    for name, fn in hooks.items():
        setattr(module, name, hookimpl(fn))
    return module


def model_class(name: str, family: str = "other") -> type[GenerativeModel]:
    from zoo_ppca.model import PPCA  # a complete model to subclass

    return type(f"M_{name}", (PPCA,), {"name": name, "family": family})


def test_builtins_are_discovered_through_entry_points():
    reg = build_registry()
    assert set(reg.models) >= BUILTINS
    for name in BUILTINS:
        entry = reg.models[name]
        assert entry.plugin.distribution == "genzoo" and entry.plugin.builtin
        assert entry.plugin.hooks == ["zoo_register_models"]
    assert {"mnist-5k", "folder:", "npz:"} <= set(reg.datasets)
    assert not reg.errors


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (plugin(zoo_register_models=lambda register: 1 / 0), "ZeroDivisionError"),
        (plugin(zoo_register_models=lambda register: register(object)), "not a subclass of zoo.GenerativeModel"),
        (plugin(zoo_register_models=lambda register: register(model_class("gan"))), "already registered by plugin 'gan'"),
        (plugin(zoo_register_models=lambda registr: None), "registr"),  # wrong argument name
        (plugin(zoo_register_modles=lambda register: None), "did you mean 'zoo_register_models'"),
        (plugin(zoo_register_datasets=lambda register: register("mnist")), "not a zoo.data.DatasetSpec"),
    ],
    ids=["hook-raises", "not-a-model", "duplicate-name", "wrong-signature", "misspelt-hook", "bad-dataset"],
)
def test_a_bad_plugin_is_reported_and_skipped(bad, message):
    good = plugin(zoo_register_models=lambda register: register(model_class("good-one")))
    reg = build_registry(extra_plugins=[("bad", bad), ("good", good)])
    record = reg.plugins["bad"]
    assert not record.ok and message in record.error
    assert record.models == [] and record.datasets == []
    assert "good-one" in reg.models and set(reg.models) >= BUILTINS
    assert reg.models["gan"].plugin.name == "gan"  # a duplicate never replaces the first owner
    with pytest.raises(PluginError, match="bad"):
        build_registry(extra_plugins=[("bad", bad)], strict=True)


def test_a_failing_plugin_contributes_nothing_even_after_partial_registration():
    def register_then_fail(register):
        register(model_class("half-done"))
        raise RuntimeError("boom")

    reg = build_registry(extra_plugins=[("partial", plugin(zoo_register_models=register_then_fail))])
    assert "half-done" not in reg.models
    assert "RuntimeError: boom" in reg.plugins["partial"].error


def test_unknown_model_suggests_close_names():
    reg = build_registry()
    with pytest.raises(UnknownNameError, match="did you mean 'dcgan'"):
        reg.model("dcgn")
    with pytest.raises(UnknownNameError, match="'nope'"):
        reg.resolve_models(["gan", "nope"])


@pytest.fixture
def site(tmp_path):
    """A folder of fake installed distributions: one healthy, one that fails to import, one whose hook raises."""
    site = tmp_path / "site"
    site.mkdir()
    good = """
        from zoo import hookimpl
        from zoo_ppca.model import PPCA

        class Healthy(PPCA):
            name = "healthy"

        @hookimpl
        def zoo_register_models(register):
            register(Healthy)
    """
    make_distribution(site, "zoo-healthy", {"healthy": "zoo_healthy"}, {"zoo_healthy": good})
    make_distribution(site, "zoo-broken-import", {"brokenimport": "zoo_broken_import"},
                      {"zoo_broken_import": "import this_module_does_not_exist\n"})
    raises = """
        from zoo import hookimpl

        @hookimpl
        def zoo_register_models(register):
            raise RuntimeError("plugin bug")
    """
    make_distribution(site, "zoo-raises", {"raises": "zoo_raises"}, {"zoo_raises": raises})
    return site


def test_cli_lists_healthy_models_and_reports_broken_plugins(site):
    env = {"PYTHONPATH": str(site)}
    listed = run_zoo("list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    names = {row["name"] for row in json.loads(listed.stdout)}
    assert names >= BUILTINS | {"healthy"}
    assert "brokenimport" in listed.stderr and "ModuleNotFoundError" in listed.stderr  # diagnostics on stderr

    plugins = run_zoo("plugins", "--json", env=env)
    assert plugins.returncode == 0, plugins.stderr
    records = {r["name"]: r for r in json.loads(plugins.stdout)}
    assert records["healthy"]["error"] is None and records["healthy"]["distribution"] == "zoo-healthy"
    assert records["healthy"]["models"] == ["healthy"] and records["healthy"]["version"] == "1.0"
    assert "failed to import" in records["brokenimport"]["error"]
    assert "plugin bug" in records["raises"]["error"]

    strict = run_zoo("--strict-plugins", "list", env=env)
    assert strict.returncode == 1 and "brokenimport" in strict.stderr and "Traceback" not in strict.stderr


def test_load_plugins_env_limits_external_plugins(site):
    env = {"PYTHONPATH": str(site), "ZOO_LOAD_PLUGINS": "zoo-healthy"}
    records = {r["name"] for r in json.loads(run_zoo("plugins", "--json", env=env).stdout)}
    assert records == {"healthy"}
    env["ZOO_LOAD_PLUGINS"] = ""
    listed = json.loads(run_zoo("list", "--json", env=env).stdout)
    assert {r["name"] for r in listed} == BUILTINS | BUILTIN_VARIANTS  # built-ins always load


@pytest.mark.parametrize("spelling", ["zoo_healthy", "Zoo-Healthy", "zoo.healthy", "ZOO__healthy"])
def test_load_plugins_env_normalises_distribution_names(site, monkeypatch, spelling):
    """PEP 503: every spelling pip accepts for the installed ``zoo-healthy`` selects it (they
    selected nothing and warned that no such plugin was installed)."""
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", spelling)
    registry = build_registry()
    external = {name for name, record in registry.plugins.items() if not record.builtin}
    assert external == {"healthy"} and registry.warnings == []
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "zoo_typo")  # an unknown name is still named as written
    assert build_registry().warnings == ["ZOO_LOAD_PLUGINS names 'zoo_typo', which is no installed plugin or distribution"]


def test_tracing_shows_hook_calls(site):
    out = run_zoo("list", "--json", env={"PYTHONPATH": str(site), "ZOO_TRACE_PLUGINS": "1"})
    assert "zoo_register_models" in out.stderr and out.returncode == 0


def test_plugin_text_with_markup_and_escapes_never_breaks_a_command(tmp_path):
    """Issue 17, case 2: an import error holding rich markup (`[/]`) made zoo list, plugins, train
    and bench die with a MarkupError; a summary holding `[/x]` killed zoo list; escape sequences
    reached the terminal. Each is now printed literally and escaped, and the commands carry on."""
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "zoo-markup-import", {"markupimport": "zoo_markup_import"},
                      {"zoo_markup_import": 'raise ImportError("bad [/] tag [bold]x[/bold] \\x1b]0;owned\\x07")\n'})
    summary = '''
        from zoo import hookimpl
        from zoo_gan.model import GAN

        class Loud(GAN):
            name = "loud"
            summary = "Closes a tag it never opened [/x] and sets the title \\x1b]0;owned\\x07."

        @hookimpl
        def zoo_register_models(register):
            register(Loud)
    '''
    make_distribution(site, "zoo-loud", {"loud": "zoo_loud"}, {"zoo_loud": summary})
    env = {"PYTHONPATH": str(site), "COLUMNS": "200"}
    for args in (["list"], ["plugins"], ["train", "gan", "--steps", "1", "--batch-size", "8", "--set", "g_hidden=8",
                                        "--set", "d_units=8", "--run-dir", str(tmp_path / "run"), "--no-progress"]):
        out = run_zoo(*args, env=env, cwd=tmp_path)
        assert out.returncode == 0, (args, out.stderr[-800:])
        both = out.stdout + out.stderr
        assert "Traceback" not in both and "MarkupError" not in both and "\x1b]0;" not in both, args
    listed = run_zoo("list", env=env).stdout + run_zoo("plugins", env=env).stderr
    assert "[/x]" in listed and "bad [/] tag" in run_zoo("plugins", env=env).stdout + run_zoo("plugins", env=env).stderr
