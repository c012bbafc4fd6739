"""Project templates: ``zoo new-plugin NAME`` writes a working plugin package from ``plugin/``.

The template files end in ``.tmpl`` (so no tool mistakes them for genzoo's own code) and are
filled with `string.Template` (``${name}``, ``${module}``, ``${dist}``, ``${class_name}``,
``${zoo_version}``).
"""

from __future__ import annotations

import re
import string
from pathlib import Path

from zoo.errors import UsageError

TEMPLATE_DIR = Path(__file__).parent / "plugin"

#: template file -> path in the generated package (``{module}`` is the import package's name)
FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "init.py.tmpl": "src/{module}/__init__.py",
    "model.py.tmpl": "src/{module}/model.py",
    "test_contract.py.tmpl": "tests/test_contract.py",
    "ci.yml.tmpl": ".github/workflows/test.yml",
}

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def plugin_names(name: str) -> dict[str, str]:
    """``"my-flow"`` -> model ``my-flow``, distribution ``zoo-my-flow``, module ``zoo_my_flow``, class ``MyFlow``."""
    name = name.strip()
    if name.startswith("zoo-"):
        name = name[4:]
    if not NAME_PATTERN.match(name):
        raise UsageError(f"plugin name {name!r}: use lowercase letters, digits and single hyphens, starting with a "
                         "letter (e.g. my-flow)")
    from zoo import __version__

    return {
        "name": name,
        "dist": f"zoo-{name}",
        "module": "zoo_" + name.replace("-", "_"),
        "class_name": "".join(part.capitalize() for part in name.split("-")),
        "zoo_version": __version__,
        "zoo_requirement": compatible_requirement(__version__),
    }


def compatible_requirement(version: str) -> str:
    """The genzoo requirement a plugin written against ``version`` declares: the same minor
    release while genzoo is 0.x (``0.3.0`` -> ``genzoo>=0.3,<0.4``), the same major after
    (``1.2.0`` -> ``genzoo>=1.2,<2``), as docs/plugins.md section 8 promises compatibility."""
    found = re.match(r"(\d+)\.(\d+)", version)
    if found is None:  # a version genzoo never writes: no upper bound rather than a wrong one
        return f"genzoo>={version}"
    major, minor = int(found.group(1)), int(found.group(2))
    upper = f"0.{minor + 1}" if major == 0 else str(major + 1)
    return f"genzoo>={major}.{minor},<{upper}"


def write_plugin(name: str, directory: str | Path = ".", *, force: bool = False) -> Path:
    """Write the package ``zoo-NAME`` into ``directory/zoo-NAME`` and return that folder.

    The package installs with ``pip install -e``, registers model ``NAME`` through the ``zoo``
    entry point, and its ``tests/test_contract.py`` runs `zoo.testing.check_model`. Raises
    [`UsageError`][zoo.errors.UsageError] for a bad name or an existing non-empty folder (unless ``force``).
    """
    names = plugin_names(name)
    root = Path(directory).expanduser() / names["dist"]
    if root.exists() and any(root.iterdir()) and not force:
        raise UsageError(f"{root} exists and is not empty; choose another --dir (or pass --force)")
    _check_name_is_free(names)
    for template, target in FILES.items():
        text = string.Template((TEMPLATE_DIR / template).read_text()).substitute(names)
        path = root / target.format(**names)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _check_name_is_free(names: dict[str, str]) -> None:
    """Refuse a name a registered model or an importable module already has: installing the
    package would shadow it (``zoo new-plugin gan`` would replace genzoo's own ``zoo_gan``)."""
    import importlib.util

    from zoo.registry import get_registry

    if names["name"] in get_registry().models or importlib.util.find_spec(names["module"]) is not None:
        raise UsageError(f"plugin name {names['name']!r} is taken: a model or the module {names['module']!r} "
                         "already exists; choose another name")
