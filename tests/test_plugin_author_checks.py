"""Each silent plugin-author mistake of issue 13 is now caught, with the message that says so."""

from __future__ import annotations

import json
import types
from dataclasses import dataclass

import pytest
import torch

import zoo.registry as registry_module
from tests.helpers import make_distribution, run_zoo, zoo_in_process
from zoo import hookimpl
from zoo.errors import ConfigError, PluginError, SampleError
from zoo.model import SampleOption, validate_model_class
from zoo.registry import Variant, build_registry


def plugin(**hooks) -> types.ModuleType:
    module = types.ModuleType("fake_plugin")
    for name, fn in hooks.items():
        setattr(module, name, hookimpl(fn))
    return module


def ppca(name: str, **attrs):
    from zoo_ppca.model import PPCA

    return type(name.title().replace("-", "").replace(".", ""), (PPCA,), {"name": name, **attrs})


# -- registration -----------------------------------------------------------------------------


def test_a_plugin_without_hook_implementations_warns_and_fails_strict_mode():
    forgot = types.ModuleType("forgot")
    forgot.zoo_register_models = lambda register: register(ppca("never"))  # no @hookimpl
    reg = build_registry(extra_plugins=[("forgot", forgot)])
    record = reg.plugins["forgot"]
    assert record.ok and record.hooks == [] and "no hook implementations" in record.warnings[0]
    assert any("forgot" in p and "@zoo.hookimpl" in p for p in reg.problems())
    with pytest.raises(PluginError, match="no hook implementations"):
        build_registry(extra_plugins=[("forgot", forgot)], strict=True)


def test_strict_mode_reports_every_broken_plugin_not_the_first():
    bad1 = plugin(zoo_register_models=lambda register: 1 / 0)
    bad2 = plugin(zoo_register_models=lambda register: register(object))
    with pytest.raises(PluginError) as caught:
        build_registry(extra_plugins=[("first-bad", bad1), ("second-bad", bad2)], strict=True)
    message = str(caught.value)
    assert "2 plugin problems" in message and "first-bad" in message and "second-bad" in message
    assert "\n" not in message


def test_model_and_variant_names_may_not_contain_a_dot():
    with pytest.raises(TypeError, match=r"must not contain.*'\.'"):
        validate_model_class(ppca("my.model"))
    reg = build_registry(extra_plugins=[("dotted", plugin(zoo_register_models=lambda register: register(ppca("my.model"))))])
    assert "my.model" not in reg.models and "'.' separates model and key" in reg.plugins["dotted"].error
    dotted_variant = plugin(zoo_register_models=lambda register: register(Variant("gan.small", "gan", {})))
    reg = build_registry(extra_plugins=[("dotted-variant", dotted_variant)])
    assert "gan.small" not in reg.models and "invalid variant" in reg.plugins["dotted-variant"].error


def test_a_config_subclass_without_dataclass_is_refused():
    from zoo_ppca.model import PPCAConfig

    class Forgot(PPCAConfig):  # no @dataclass: latent_dim below would not be a field
        latent_dim: int = 3

    with pytest.raises(TypeError, match="not decorated with @dataclass"):
        validate_model_class(ppca("forgot-dataclass", Config=Forgot))

    @dataclass
    class Fine(PPCAConfig):
        latent_dim: int = 3

    validate_model_class(ppca("fine", Config=Fine))


def test_boolean_options_accept_only_true_false_words():
    opt = SampleOption("ema", bool, False, "sample from the EMA weights")
    for word, value in [("true", True), ("Yes", True), ("on", True), ("1", True), ("false", False), ("off", False), ("0", False)]:
        assert opt.parse(word) is value
    for typo in ("ture", "flase", "2", "", "enabled"):
        with pytest.raises(ConfigError, match="expected true or false"):
            opt.parse(typo)


# -- the CLI: installed distributions ---------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    hijack = """
        from zoo import hookimpl

        @hookimpl
        def zoo_register_commands(cli):
            @cli.command("train")
            def train():
                print("hijacked")

            @cli.command("hello")
            def hello():
                print("hello from a plugin")
    """
    make_distribution(site, "zoo-hijack", {"hijack": "zoo_hijack"}, {"zoo_hijack": hijack})
    make_distribution(site, "zoo-nohooks", {"nohooks": "zoo_nohooks"},
                      {"zoo_nohooks": "def zoo_register_models(register):\n    pass\n"})
    make_distribution(site, "zoo-broken", {"broken": "zoo_broken"},
                      {"zoo_broken": "import os\n\ndef helper():\n    raise ValueError('bad config at import')\n\nhelper()\n"})
    return site


def test_a_command_name_collision_is_refused_and_reported(site):
    env = {"PYTHONPATH": str(site)}
    help_text = run_zoo("train", "--help", env=env)
    assert help_text.returncode == 0 and "hijacked" not in help_text.stdout and "--steps" in help_text.stdout
    hello = run_zoo("hello", env=env)
    assert hello.returncode == 0 and "hello from a plugin" in hello.stdout  # a free name is fine
    records = {r["name"]: r for r in json.loads(run_zoo("plugins", "--json", env=env).stdout)}
    assert records["hijack"]["commands"] == ["hello"]
    assert any("command 'train' refused" in w and "zoo train" in w for w in records["hijack"]["warnings"])
    assert any("no hook implementations" in w for w in records["nohooks"]["warnings"])
    strict = run_zoo("--strict-plugins", "list", env=env)
    assert strict.returncode == 1 and "Traceback" not in strict.stderr
    for name in ("hijack", "nohooks", "broken"):  # every problem, in one line
        assert name in strict.stderr
    assert len([line for line in strict.stderr.splitlines() if line.startswith("zoo: error")]) == 1


def test_trace_names_the_plugin_and_prints_the_import_traceback_and_unknown_load_names_warn(site):
    env = {"PYTHONPATH": str(site), "ZOO_TRACE_PLUGINS": "1", "ZOO_LOAD_PLUGINS": "broken,zoo-typo"}
    out = run_zoo("list", "--json", env=env)
    assert out.returncode == 0
    assert "loading plugin 'broken' from module 'zoo_broken' (zoo-broken 1.0)" in out.stderr
    assert "Traceback (most recent call last)" in out.stderr and "in helper" in out.stderr
    assert "ValueError: bad config at import" in out.stderr
    assert "ZOO_LOAD_PLUGINS names 'zoo-typo', which is no installed plugin" in out.stderr


# -- check_model ------------------------------------------------------------------------------


def test_check_model_fails_a_gan_whose_generator_is_never_updated():
    from zoo_gan.model import GAN, discriminator_loss

    from zoo.testing import check_model

    def d_only(self, batch, step):
        with torch.no_grad():
            fake = self.generator(torch.randn(batch.shape[0], self.config.latent_dim))
        loss = discriminator_loss(self.discriminator(batch), self.discriminator(fake))
        step.optimize("d", loss)
        return {"d_loss": loss}

    lazy = type("LazyGAN", (GAN,), {"name": "lazy-gan", "train_step": d_only, "Config": GAN.Config})
    with pytest.raises(AssertionError, match="optimizer 'g' did not change any of its parameters"):
        check_model(lazy)


def test_check_model_fails_loss_names_that_change_between_steps():
    from zoo.testing import check_model

    def shifty(self, batch, step):
        loss = self.nll(batch)
        step.optimize("main", loss)
        return {"nll": loss} if step.step == 0 else {"nll": loss, "extra": 1.0}

    with pytest.raises(AssertionError, match="return the same loss names on every step"):
        check_model(ppca("shifty", train_step=shifty))


# -- samples are checked where they are made --------------------------------------------------


def _bad_sampler(kind: str):
    def sample(self, n, *, generator=None, **options):
        x = torch.zeros(n, *self.image_shape)
        if kind == "nan":
            x[0, 0, 0, 0] = float("nan")
        elif kind == "range":
            x[:, :, :2] = 3.0
        elif kind == "shape":
            x = x[:, :, :-1]
        return x

    return sample


@pytest.mark.parametrize(("kind", "message"), [("nan", "non-finite"), ("range", "outside"), ("shape", "expected")])
def test_generate_refuses_broken_samples_instead_of_clamping(kind, message):
    from zoo.sampling import generate
    from zoo.testing import tiny_model

    net = tiny_model(ppca(f"bad-{kind}", sample=_bad_sampler(kind)))
    with pytest.raises(SampleError, match=message) as caught:
        generate(net, 3, seed=0)
    assert "\n" not in str(caught.value)


def test_generate_allows_float_rounding_just_past_one():
    from zoo.sampling import RANGE_TOLERANCE, generate
    from zoo.testing import tiny_model

    def almost(self, n, *, generator=None, **options):
        return torch.full((n, *self.image_shape), 1 + RANGE_TOLERANCE / 2)

    assert generate(tiny_model(ppca("rounding", sample=almost)), 2).max() == 255


def _with_models(monkeypatch, *classes):
    module = types.ModuleType("fault_plugin")
    module.zoo_register_models = hookimpl(lambda register: [register(c) for c in classes])
    monkeypatch.setattr(registry_module, "_REGISTRY", build_registry(extra_plugins=[("faults", module)]))


def test_zoo_train_and_zoo_bench_refuse_nan_samples(capsys, tmp_path, monkeypatch):
    from zoo.bench.store import ResultsStore

    _with_models(monkeypatch, ppca("nan-sampler", sample=_bad_sampler("nan")))
    monkeypatch.chdir(tmp_path)
    code, _, err = zoo_in_process(capsys, "train", "nan-sampler", "--steps", "2", "--batch-size", "8",
                                  "--run-dir", str(tmp_path / "run"), "--no-progress")
    assert code == 1 and "nan-sampler.sample" in err and "non-finite" in err and "Traceback" not in err
    code, _, err = zoo_in_process(capsys, "bench", "--models", "nan-sampler,gan", "--preset", "smoke")
    assert code == 1
    rows = {r.model: r for r in ResultsStore(tmp_path / "runs" / "results.sqlite").rows()}
    assert rows["gan"].status == "ok"
    assert rows["nan-sampler"].status == "failed" and "non-finite" in rows["nan-sampler"].error


# -- sweeps a model declares ------------------------------------------------------------------


def test_a_model_declared_sweep_replaces_the_family_sweep_and_a_family_sweep_never_drops_an_option():
    from zoo.bench.presets import get_preset
    from zoo.bench.runner import _sample_settings

    steps_only = (SampleOption("steps", int, 20, "solver steps", min=1),)
    solver = ppca("steps-only", family="diffusion", sample_options=steps_only)
    with pytest.raises(ConfigError, match=r"preset 'quick'.*declares no sampling option 'sampler'.*bench_sweep"):
        _sample_settings(solver, "steps-only", get_preset("quick"), {})

    declared = ppca("own-sweep", family="diffusion", sample_options=steps_only,
                    bench_sweep=[{"steps": 4}, {"steps": 8}])
    validate_model_class(declared)
    assert _sample_settings(declared, "own-sweep", get_preset("quick"), {}) == [{"steps": 4}, {"steps": 8}]
    # --option still wins over any sweep
    assert _sample_settings(declared, "own-sweep", get_preset("quick"), {"steps": "3"}) == [{"steps": 3}]

    with pytest.raises(TypeError, match="bench_sweep entry"):
        validate_model_class(ppca("bad-sweep", sample_options=steps_only, bench_sweep=[{"sampler": "euler"}]))


# -- datasets declare their backbone ----------------------------------------------------------


def test_a_dataset_names_its_backbone_and_gray_unlabelled_data_never_gets_lenet_silently():
    from zoo.data import DatasetSpec, ImageDataset
    from zoo.factory import load_dataset
    from zoo.metrics import default_backbone
    from zoo.testing import synthetic_images

    images = synthetic_images(20, (1, 28, 28))
    spec = DatasetSpec("gray-blobs", lambda arg, data_dir, download: ImageDataset("gray-blobs", images[:16], images[16:]),
                       "gray blobs", backbone="dinov2-vit-s-14")
    reg = build_registry(extra_plugins=[("blobs", plugin(zoo_register_datasets=lambda register: register(spec)))])
    ds = load_dataset("gray-blobs", registry=reg)
    assert ds.info["backbone"] == "dinov2-vit-s-14" and default_backbone(ds) == "dinov2-vit-s-14"

    undeclared = ImageDataset("gray-unlabelled", images[:16], images[16:])
    with pytest.warns(UserWarning, match="gray images without labels are scored with Inception-v3"):
        assert default_backbone(undeclared) == "inception"
