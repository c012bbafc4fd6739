"""Plugin discovery survives broken plugins, reports them, and strict mode makes them fatal."""

from __future__ import annotations

import json
import types

import pytest

from tests.helpers import make_distribution, run_zoo
from zoo import GenerativeModel, hookimpl
from zoo.errors import PluginError, UnknownNameError
from zoo.registry import build_registry

BUILTINS = {"gan", "dcgan", "wgan-gp", "vae", "ddpm", "vaegan", "flow", "edm"}
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
        (plugin(zoo_register_models=lambda register: [register(model_class("twice")), register(model_class("twice"))]),
         "registered twice by plugin 'bad'"),
        (plugin(zoo_register_models=lambda registr: None), "registr"),  # wrong argument name
        (plugin(zoo_register_modles=lambda register: None), "did you mean 'zoo_register_models'"),
        (plugin(zoo_register_datasets=lambda register: register("mnist")), "not a zoo.data.DatasetSpec"),
    ],
    ids=["hook-raises", "not-a-model", "duplicate-in-one-plugin", "wrong-signature", "misspelt-hook", "bad-dataset"],
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


# -- a name clash disables only the clashing name (issue 23) --------------------------------------

THIRD_PARTY = """
    import torch
    import click

    from zoo import hookimpl
    from zoo.data import DatasetSpec, ImageDataset
    from zoo_ppca.model import PPCA

    class MyWGAN(PPCA):  # written against 0.1's docs, before genzoo had its own wgan-gp
        name = "wgan-gp"
        family = "gan"
        summary = "a third party's WGAN-GP"

    class RectifiedFlow(PPCA):
        name = "rflow"
        summary = "an unrelated model"

    def _load(arg, data_dir, download):
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (48, 1, 8, 8), dtype=torch.uint8, generator=g)
        return ImageDataset("third-digits", images[:32], images[32:])

    @hookimpl
    def zoo_register_models(register):
        register(MyWGAN)
        register(RectifiedFlow)

    @hookimpl
    def zoo_register_datasets(register):
        register(DatasetSpec("third-digits", _load, "random 8x8 digits"))

    @hookimpl
    def zoo_register_commands(cli):
        @cli.command("third-hello")
        def hello():
            click.echo("hello from the third party")
"""


def _third_party_module():
    module = types.ModuleType("zoo_third")
    exec(compile(__import__("textwrap").dedent(THIRD_PARTY), "zoo_third", "exec"), module.__dict__)
    return module


def test_a_clashing_model_disables_only_itself_and_stays_reachable_by_its_qualified_name():
    from zoo.factory import create_model, load_dataset

    reg = build_registry(extra_plugins=[("third", _third_party_module())])
    record = reg.plugins["third"]
    assert record.ok, record.error
    assert reg.models["wgan-gp"].plugin.builtin  # the built-in keeps the plain name
    assert {"third:wgan-gp", "rflow"} <= set(reg.models) and record.models == ["rflow", "third:wgan-gp"]
    assert any("reachable as 'third:wgan-gp'" in w for w in record.warnings)
    assert "third-digits" in reg.datasets and len(load_dataset("third-digits", registry=reg).train) == 32
    model = create_model("third:wgan-gp", (1, 8, 8), {"latent_dim": 2}, registry=reg)
    assert type(model).__name__ == "MyWGAN" and model.name == "third:wgan-gp"  # what checkpoints record
    assert create_model("wgan-gp", (1, 28, 28), registry=reg).name == "wgan-gp"
    assert reg.entry("third:rflow") is reg.models["rflow"]  # any model answers to plugin:model
    with pytest.raises(PluginError, match="third"):
        build_registry(extra_plugins=[("third", _third_party_module())], strict=True)


def test_a_clashing_dataset_is_left_out_and_the_rest_of_the_plugin_loads():
    from zoo.data import DatasetSpec

    def datasets(register):
        register(DatasetSpec("mnist-5k", lambda *a: None))
        register(DatasetSpec("own-set", lambda *a: None))

    reg = build_registry(extra_plugins=[("p", plugin(zoo_register_models=lambda register: register(model_class("own")),
                                                     zoo_register_datasets=datasets))])
    assert reg.plugins["p"].ok and "own" in reg.models and reg.datasets["own-set"].plugin.name == "p"
    assert reg.datasets["mnist-5k"].plugin.builtin
    assert any("'mnist-5k'" in w and "left out" in w for w in reg.plugins["p"].warnings)


def test_the_cli_serves_both_models_of_a_clash(tmp_path):
    """Issue 23's third-party plugin: its own wgan-gp, an unrelated model, a dataset and a command.
    zoo list shows both wgan-gp entries; describe, train, resume and sample work by the qualified
    name; the unrelated model, the dataset and the command work as before."""
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "zoo-third", {"third": "zoo_third"}, {"zoo_third": THIRD_PARTY})
    env = {"PYTHONPATH": str(site)}
    listed = {(r["name"], r["plugin"]) for r in json.loads(run_zoo("list", "--json", env=env).stdout)}
    assert {("wgan-gp", "wgan-gp"), ("third:wgan-gp", "third"), ("rflow", "third")} <= listed
    described = run_zoo("describe", "third:wgan-gp", "--json", env=env)
    assert described.returncode == 0, described.stderr
    assert json.loads(described.stdout)["summary"] == "a third party's WGAN-GP"
    run = tmp_path / "run"
    common = ["--dataset", "third-digits", "--steps", "2", "--batch-size", "8", "--set", "latent_dim=2", "--no-progress"]
    trained = run_zoo("train", "third:wgan-gp", *common, "--run-dir", str(run), env=env, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-800:]
    resumed = run_zoo("train", "third:wgan-gp", "--resume", str(run), "--steps", "3", "--no-progress", env=env,
                      cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-800:]
    sampled = run_zoo("sample", str(run), "-n", "4", "--out", str(tmp_path / "g.png"), "--json", env=env)
    assert sampled.returncode == 0 and json.loads(sampled.stdout)["model"] == "third:wgan-gp", sampled.stderr
    hello = run_zoo("third-hello", env=env)
    assert hello.returncode == 0 and "hello from the third party" in hello.stdout, hello.stderr


def test_a_plugin_skipped_for_an_error_is_skipped_whole_commands_included(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    broken = """
        import click

        from zoo import hookimpl

        @hookimpl
        def zoo_register_models(register):
            raise RuntimeError("plugin bug")

        @hookimpl
        def zoo_register_commands(cli):
            @cli.command("broken-hello")
            def hello():
                click.echo("should not run")
    """
    make_distribution(site, "zoo-broken-cmd", {"brokencmd": "zoo_broken_cmd"}, {"zoo_broken_cmd": broken})
    out = run_zoo("broken-hello", env={"PYTHONPATH": str(site)})
    assert out.returncode != 0 and "should not run" not in out.stdout
    assert "plugin 'brokencmd'" in out.stderr and "plugin bug" in out.stderr and "Traceback" not in out.stderr
    records = {r["name"]: r for r in json.loads(run_zoo("plugins", "--json", env={"PYTHONPATH": str(site)}).stdout)}
    assert records["brokencmd"]["commands"] == [] and "plugin bug" in records["brokencmd"]["error"]
