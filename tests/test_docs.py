"""Documentation that must not fall behind the code."""

from __future__ import annotations

import inspect

from tests.helpers import ROOT
from zoo import hookspecs


def test_every_hookspec_is_documented():
    guide = (ROOT / "docs" / "plugins.md").read_text()
    specs = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("zoo_")]
    assert specs, "no hookspecs found"
    missing = [name for name in specs if f"### `{name}" not in guide]
    assert not missing, f"hookspecs without a section in docs/plugins.md: {missing}"


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    head = readme[:1500]
    assert "zoo bench --models gan,vae,ddpm" in head
    assert 'pip install -e ".[test]"' in head and "pytest" in head


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = 'python -m pip install -e ".[test]" && python -m pytest'
    assert command in readme and command in ci
