"""The site's tutorials run as written: their marked shell commands, at smoke size.

A fenced ``console`` or ``bash`` block that follows a line ``<!-- test -->`` is run: in a
``console`` block the lines starting with ``$ `` (and the lines a trailing ``\\`` continues), in a
``bash`` block every line that is not a comment. A block after ``<!-- test: file PATH -->`` is
saved as PATH, as the page asks the reader to. The blocks of one page run in order in one shell
(a ``cd`` carries on, as in the reader's terminal), in a fresh folder, with a fresh venv (the
system's torch, this checkout of genzoo installed editable: ``pip install`` in a tutorial installs
there, never into the environment running the tests; ``PIP_NO_INDEX`` so nothing is downloaded),
fresh caches and results, one torch thread and an 80-column terminal.

``<!-- test: needs FEATURE -->`` marks commands that use a feature of another branch; they run
once ``zoo`` has it (FEATURES below says how that is seen); until then they are left out, and
``test_every_feature_the_tutorials_use_is_merged`` is skipped for that feature, naming it.

Smoke size: the pages' tested commands use ``--preset smoke`` and small counts themselves; the
LeNet that ``--backbone lenet`` trains on a new labelled dataset (2,000 steps, minutes) is cut to
20 steps here by a ``sitecustomize`` in the subprocesses (the recipe, and so the protocol hash,
changes with it: nothing of the real recipe is cached).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import ROOT

PAGES = ["getting-started.md", "tutorials/own-model.md", "tutorials/own-dataset.md",
         "tutorials/write-a-plugin.md"]
MARK = re.compile(r"^<!-- test(?:: needs (?P<feature>[\w-]+)|: file (?P<file>[\w./-]+))? -->\n"
                  r"```(?P<lang>console|bash|python)\n(?P<body>.*?)^```$", flags=re.MULTILINE | re.DOTALL)
# Each feature of another branch, and the `zoo ... --help` text that shows it has been merged.
FEATURES = {
    "bench-samples": (["bench", "--help"], "--samples"),
    "eval-store": (["eval", "--help"], "--store"),
    "simclr": (["eval", "--help"], "simclr"),
}
SITECUSTOMIZE = '''
"""Smoke-size LeNet (tests/test_tutorials.py): 20 training steps instead of 2,000."""
import dataclasses, importlib.abc, importlib.util, sys

class _SmokeLeNet(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "zoo.metrics.backbones":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module
        def exec_module(module):
            run(module)
            module.DEFAULT_RECIPE = dataclasses.replace(module.DEFAULT_RECIPE, steps=20)
        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _SmokeLeNet())
'''


def blocks(page: str) -> list[tuple[str | None, str]]:
    """``(feature or None, shell script)`` for each block of ``page`` marked for testing."""
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    found = []
    for m in MARK.finditer(text):
        if m["file"]:  # the reader saves this block as a file
            found.append((None, f"mkdir -p \"$(dirname '{m['file']}')\"\ncat > '{m['file']}' <<'ZOO_EOF'\n{m['body']}ZOO_EOF"))
            continue
        lines = m["body"].splitlines()
        if m["lang"] == "console":
            commands, more = [], False
            for line in lines:
                if line.startswith("$ ") or more:
                    commands.append(line[2:] if line.startswith("$ ") and not more else line)
                    more = line.endswith("\\")
            lines = commands
        found.append((m["feature"], "\n".join(line for line in lines if not line.lstrip().startswith("#"))))
    return found


def test_the_marked_blocks_are_found_and_parsed():
    """The extraction itself: prompts stripped, continuations kept, output and comments dropped."""
    every = {page: blocks(page) for page in PAGES}
    assert all(every.values()), f"a tutorial with no tested block: {[p for p, b in every.items() if not b]}"
    script = blocks("getting-started.md")[0][1]
    assert script.startswith("zoo ") and "$ " not in script and "zoo bench:" not in script
    assert {f for b in every.values() for f, _ in b} - {None} <= set(FEATURES)


@pytest.fixture
def venv(tmp_path_factory) -> Path:
    """A venv over the system's packages with this checkout installed editable (no download).

    One per page: a page's ``pip install`` (own-model installs ``zoo-mymodel``) must not leak into
    the next page, which may make a plugin of the same name (write-a-plugin does)."""
    root = tmp_path_factory.mktemp("tutorial-venv")
    venv = root / "venv"
    # --without-pip: the system pip installs into it (a venv's own old setuptools would shadow the
    # system's under --no-build-isolation).
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    (venv / "bin" / "pip").write_text(f'#!/bin/sh\nexec "{py}" -m pip "$@"\n')
    (venv / "bin" / "pip").chmod(0o755)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-e", str(ROOT)],
                   check=True, env=_env(venv, root))
    return venv


def _env(venv: Path, home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("ZOO_", "PYTHON", "PIP_", "VIRTUAL_ENV")) and k != "COLUMNS"}
    return {**keep, "PATH": f"{venv / 'bin'}:{keep.get('PATH', '/usr/bin:/bin')}", "VIRTUAL_ENV": str(venv),
            "ZOO_CACHE_DIR": str(home / "cache"), "ZOO_DATA_DIR": str(home / "data"), "OMP_NUM_THREADS": "1",
            "COLUMNS": "80", "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def _has(venv: Path, env: dict[str, str], feature: str) -> bool:
    args, marker = FEATURES[feature]
    out = subprocess.run([str(venv / "bin" / "zoo"), *args], env=env, capture_output=True, text=True)
    return marker in out.stdout


def _my_images(folder: Path) -> None:
    """The reader's own data in the own-dataset tutorial: 64x64 RGB images, flat in my-images/ and
    in four class folders under my-classes/."""
    rng = np.random.default_rng(0)
    images = (rng.random((120, 64, 64, 3)) * 255).astype(np.uint8)
    for i, image in enumerate(images):
        for target in (folder / "my-images", folder / "my-classes" / "abcd"[i % 4]):
            target.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(target / f"{i:04d}.png")


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_the_tutorials_commands_run(page, venv, tmp_path):
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = _env(venv, home)
    if page == "tutorials/own-dataset.md":
        _my_images(work)
    skipped, script = [], []
    for n, (feature, block) in enumerate(blocks(page), 1):
        if feature and not _has(venv, env, feature):
            skipped.append(feature)
            continue
        script += [f"echo '--- block {n}' >&2", block]
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(script)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (f"{page}: exit {done.returncode} (the last '--- block N' below failed)\n"
                                  f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-4000:]}")
    print(f"{page}: not run, awaiting their features: {sorted(set(skipped))}")  # see the test below


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_every_feature_the_tutorials_use_is_merged(feature):
    """Skipped, naming the feature, while a tutorial's blocks wait for another branch's feature;
    passes once ``zoo`` has it (and then the blocks run in the test above)."""
    args, marker = FEATURES[feature]
    out = subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0
    if marker not in out.stdout:
        pytest.skip(f"the tutorials' blocks marked 'needs {feature}' wait for it (no {marker!r} in zoo {' '.join(args)})")
