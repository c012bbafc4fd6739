"""The architecture's promises, checked: a CLI that starts without torch, no import circles or
upward imports, and one construction site for models (zoo.factory)."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.helpers import ROOT, zoo_in_process

CORE = ROOT / "zoo"


def _imported_modules(*code: str) -> set[str]:
    """Modules a fresh interpreter imports for ``python -X importtime ...``."""
    out = subprocess.run([sys.executable, "-X", "importtime", *code], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["bench", "--help"], ["train", "--help"],
                                  ["leaderboard", "--help"]], ids=" ".join)
def test_help_and_version_do_not_import_torch(args):
    modules = _imported_modules("-m", "zoo", *args)
    heavy = sorted(m for m in modules if m.split(".")[0] in {"torch", "torchvision", "torch_fidelity", "pandas", "numpy"})
    assert not heavy, f"`zoo {' '.join(args)}` imported {heavy[:5]}"


def test_help_starts_quickly():
    import resource

    subprocess.run([sys.executable, "-m", "zoo", "--help"], capture_output=True, check=True, cwd=ROOT)  # warm caches
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "zoo", "--help"], capture_output=True, check=True, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds, not wall-clock ones, so a neighbour's load cannot fail this: --help takes about
    # 0.26 s here, importing torch alone 2.4 s.
    assert (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime) < 1.0


def test_data_types_do_not_pull_in_the_registry():
    modules = _imported_modules("-c", "import zoo.data")
    assert "zoo.registry" not in modules and "zoo.factory" not in modules


def _imports_of(path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_only_the_cli_imports_the_cli():
    offenders = [str(p.relative_to(ROOT)) for p in CORE.rglob("*.py")
                 if "cli" not in p.relative_to(CORE).parts and p.name != "__main__.py" and any(m == "zoo.cli" or m.startswith("zoo.cli.") for m in _imports_of(p))]
    assert not offenders, f"core modules importing the CLI: {offenders}"


def test_models_are_only_built_by_the_factory(monkeypatch, tmp_path, capsys):
    """Every GenerativeModel constructed by train, resume, sample, eval, the contract kit and bench
    is built inside zoo.factory.create_model."""
    from zoo.model import GenerativeModel

    original = GenerativeModel.__init__
    callers: list[list[str]] = []

    def spy(self, *args, **kwargs):
        frame, chain = sys._getframe(1), []
        while frame is not None:
            chain.append(frame.f_globals.get("__name__", "?"))
            frame = frame.f_back
        callers.append(chain)
        original(self, *args, **kwargs)

    monkeypatch.setattr(GenerativeModel, "__init__", spy)
    monkeypatch.chdir(tmp_path)
    run = str(tmp_path / "run")
    assert zoo_in_process(capsys, "train", "vae", "--steps", "2", "--set", "hidden=8", "--set", "latent_dim=2", "--set", "width=4",
                          "--run-dir", run, "--no-progress")[0] == 0
    assert zoo_in_process(capsys, "train", "--resume", run, "--steps", "3", "--no-progress")[0] == 0
    assert zoo_in_process(capsys, "sample", run, "-n", "4", "--out", str(tmp_path / "g.png"))[0] == 0
    assert zoo_in_process(capsys, "bench", "--models", "gan", "--preset", "smoke", "--no-progress", "--json",
                          "--results", str(tmp_path / "r.sqlite"), "--runs-dir", str(tmp_path / "bench"))[0] == 0
    from zoo_ppca.model import PPCA

    from zoo.testing import check_model

    check_model(PPCA)
    assert len(callers) >= 5
    outside = [chain[:4] for chain in callers if "zoo.factory" not in chain]
    assert not outside, f"models built outside zoo.factory.create_model: {outside}"
