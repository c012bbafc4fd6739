"""``zoo describe`` and ``zoo new-plugin``: what a model accepts, and a plugin package that works."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

import zoo
from tests.helpers import ROOT, zoo_in_process
from zoo.config import ModelConfig, field_docs

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def test_field_docs_read_comments_and_metadata_and_inherit():
    @dataclass
    class Base(ModelConfig):
        lr: float = 1e-3  # learning rate
        steps: int = field(default=10, metadata={"help": "from metadata"})

    @dataclass
    class Child(Base):
        widths: tuple[int, ...] = (1, 2)  # channel widths
        lr: float = 2e-3  # redeclared: the child's comment wins

    docs = {d.name: d for d in field_docs(Child)}
    assert docs["lr"].help == "redeclared: the child's comment wins" and docs["lr"].default == 2e-3
    assert docs["steps"].help == "from metadata" and docs["steps"].type == "int"
    assert docs["widths"].default == [1, 2] and docs["widths"].help == "channel widths"
    assert "tuple" in docs["widths"].type


def test_describe_json_lists_fields_options_sizes_recipe_sweep_paper(capsys):
    code, out, err = zoo_in_process(capsys, "describe", "ddpm", "--json")
    assert code == 0, err
    info = json.loads(out)
    fields = {f["name"]: f for f in info["config"]}
    assert fields["lr"]["type"] == "float" and fields["lr"]["help"]  # help from the source comment
    options = {o["name"]: o for o in info["sample_options"]}
    assert "ddim" in options["sampler"]["choices"] and options["steps"]["type"] == "int"
    assert info["paper"].startswith("Ho et al. 2020") and info["family"] == "diffusion"
    assert {v["name"] for v in info["variants"]} >= {"ddpm-small"}
    assert "supported_sizes" in info and "recipe" in info and "bench_sweep" in info

    code, out, _ = zoo_in_process(capsys, "describe", "ddpm-small", "--json")
    small = json.loads(out)
    base_channels = {f["name"]: f for f in small["config"]}["base_channels"]
    assert small["variant_of"] == "ddpm" and base_channels["default"] == small["overrides"]["base_channels"]
    assert base_channels["class_default"] == fields["base_channels"]["default"]


def test_describe_text_and_unknown_model(capsys):
    code, out, _ = zoo_in_process(capsys, "describe", "wgan-gp")
    assert code == 0
    assert "n_critic" in out and "critic updates per generator update" in out and "arXiv:1704.00028" in out
    assert "batches per step: 5" in out
    code, _, err = zoo_in_process(capsys, "describe", "wgan")
    assert code == 2 and "did you mean" in err


def test_new_plugin_writes_a_package_whose_model_passes_the_contract(capsys, tmp_path, monkeypatch):
    from zoo.testing import check_model

    code, out, err = zoo_in_process(capsys, "new-plugin", "tiny-blob", "--dir", str(tmp_path))
    assert code == 0, err
    root = tmp_path / "zoo-tiny-blob"
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "zoo-tiny-blob" and meta["project"]["version"]
    minor = ".".join(zoo.__version__.split(".")[:2])  # the docs' promise: within one minor release
    assert meta["project"]["dependencies"] == [f"genzoo>={minor},<0.{int(minor.split('.')[1]) + 1}"]
    assert meta["project"]["entry-points"]["zoo"] == {"tiny-blob": "zoo_tiny_blob"}
    assert (root / ".github" / "workflows" / "test.yml").is_file()
    assert "check_model(\"tiny-blob\")" in (root / "tests" / "test_contract.py").read_text()
    init = (root / "src" / "zoo_tiny_blob" / "__init__.py").read_text()
    assert "import torch" not in init.split("def zoo_register_models")[0]  # zoo --help stays torch-free

    monkeypatch.syspath_prepend(str(root / "src"))
    module = importlib.import_module("zoo_tiny_blob.model")
    check_model(module.TinyBlob)

    code, _, err = zoo_in_process(capsys, "new-plugin", "tiny-blob", "--dir", str(tmp_path))
    assert code == 2 and "not empty" in err
    code, _, err = zoo_in_process(capsys, "new-plugin", "Bad_Name", "--dir", str(tmp_path))
    assert code == 2 and "lowercase letters" in err


@pytest.mark.parametrize(("version", "requirement"), [
    ("0.3.0", "genzoo>=0.3,<0.4"), ("0.3.1.dev4+g12ab", "genzoo>=0.3,<0.4"), ("0.10.2", "genzoo>=0.10,<0.11"),
    ("1.2.0", "genzoo>=1.2,<2"), ("2.0", "genzoo>=2.0,<3"),
])
def test_a_generated_plugin_depends_on_genzoo_within_the_promised_range(version, requirement):
    from zoo.templates import compatible_requirement

    assert compatible_requirement(version) == requirement


@pytest.mark.slow
def test_a_generated_plugin_installs_in_a_fresh_venv_and_shows_up_everywhere(tmp_path):
    """venv with the system's torch; genzoo and the new package installed editable, no downloads."""
    from zoo.templates import write_plugin

    root = write_plugin("venv-check", tmp_path)
    venv = tmp_path / "venv"
    # --without-pip: the venv would otherwise bring its own old setuptools, which shadows the
    # system one under --no-build-isolation; the system pip then installs into the venv.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ZOO_LOAD_PLUGINS")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"

    def run(*args, cwd=None, timeout=600):
        done = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        return done

    run(py, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", str(ROOT))
    run(py, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", str(root))
    tests = run(py, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=root)
    assert "2 passed" in tests.stdout

    listed = json.loads(run(py, "-m", "zoo", "list", "--json", cwd=tmp_path).stdout)
    row = next(r for r in listed if r["name"] == "venv-check")
    assert row["distribution"] == "zoo-venv-check" and row["version"] == "0.1.0"
    described = json.loads(run(py, "-m", "zoo", "describe", "venv-check", "--json", cwd=tmp_path).stdout)
    assert {f["name"] for f in described["config"]} == {"lr", "min_std"}
    assert described["config"][0]["help"] == "Adam learning rate"
    run(py, "-m", "zoo", "bench", "--models", "venv-check", "--preset", "smoke", "--results",
        str(tmp_path / "results.sqlite"), "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    board = json.loads(run(py, "-m", "zoo", "leaderboard", "--results", str(tmp_path / "results.sqlite"),
                           "--format", "json", "-o", "-", cwd=tmp_path).stdout)
    assert "venv-check" in json.dumps(board)
