"""Small helpers for tests that run the CLI or build fake plugin distributions."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_SRC = ROOT / "examples" / "zoo-ppca" / "src"


def run_zoo(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m zoo ARGS`` in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    # The example plugin's module (not its entry point) is importable, as pytest's pythonpath makes it.
    paths = [full_env.get("PYTHONPATH", ""), str(EXAMPLE_SRC)]
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=timeout)


def make_distribution(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str], version: str = "1.0") -> None:
    """Write an installed-looking distribution (dist-info + modules) into ``site``."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[zoo]\n{lines}\n")
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))


def zoo_in_process(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process (fast); returns ``(exit code, stdout, stderr)``."""
    from zoo.cli.app import run

    capsys.readouterr()
    code = run(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def recipe_train_args(model: str) -> list[str]:
    """``zoo train`` arguments for ``model``'s recipe as ``zoo bench`` applies it on this machine:
    ``--precision`` as ``auto`` resolves it, and the config changes of the recipe for that
    precision (its fp32 fallback where the CPU only emulates the recipe's bf16), so slow tests
    train what the quick preset trains here instead of an emulated precision 11x slower."""
    import torch

    from zoo.device import resolve_precision
    from zoo.registry import get_registry

    recipe = get_registry().resolve_models([model])[0].source.get("recipe")
    if recipe is None:
        return []
    precision = resolve_precision("auto", torch.device("cpu"), recipe.precision)
    args = ["--precision", precision]
    for key, value in recipe.for_precision(precision).overrides.items():
        text = "[" + ",".join(map(str, value)) + "]" if isinstance(value, (list, tuple)) else str(value)
        args += ["--set", f"{key}={text}"]
    return args


def train_tiny_gan(folder: Path) -> Path:
    """A 2-step GAN run in ``folder / "run"`` (its cache in ``folder / "cache"``), for tests that
    sample or evaluate a real checkpoint. Module-scoped fixtures call it before the autouse
    isolation, so it sets ``ZOO_CACHE_DIR`` itself for the training only."""
    import pytest

    from zoo.cli.app import run

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_CACHE_DIR", str(folder / "cache"))
        code = run(["train", "gan", "--steps", "2", "--batch-size", "16", "--set", "g_hidden=32", "--run-dir",
                    str(folder / "run"), "--no-progress"])
    assert code == 0
    return folder / "run"
