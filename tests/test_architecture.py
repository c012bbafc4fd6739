"""The architecture's promises, checked: a CLI that starts without torch, no import circles or
upward imports (an AST walk of zoo/), and one construction site for models (zoo.factory)."""

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


# -- the import graph of zoo/ -------------------------------------------------------------------
#
# Every ``import`` and ``from ... import`` in every module, at module level and inside functions,
# resolved to the genzoo module it loads (``from zoo import accel`` is zoo.accel; ``from zoo import
# __version__`` is the package zoo). Imports under ``if TYPE_CHECKING:`` never run, so they are
# left out (as import-linter does when asked): they cannot make a circle at run time.

#: Imports a floor may never make: the circles and upward imports issue 23 removed, kept out.
FORBIDDEN = {
    "zoo.vocabulary": ("zoo",),  # the ground floor imports nothing of genzoo
    "zoo.randomness": ("zoo",),
    "zoo.model": ("zoo.registry", "zoo.factory", "zoo.sampling", "zoo.trainer", "zoo.accel"),
    "zoo.accel": ("zoo.sampling", "zoo.trainer"),
    "zoo.loggers": ("zoo.trainer",),
    "zoo.metrics": ("zoo.export", "zoo.checkpoint", "zoo.trainer", "zoo.bench", "zoo.factory"),
    "zoo.bench.executors": ("zoo.bench.api", "zoo.bench.worker"),
}
#: The top floors, highest first: a module may import a top floor only from a floor above it.
TOP_FLOORS = ("zoo.cli", "zoo.api")


def _module_name(path, root) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom node of ``tree`` except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph(root=CORE) -> dict[str, set[str]]:
    """``module -> genzoo modules it imports`` for every module of the package at ``root``."""
    paths = {_module_name(p, root): p for p in root.rglob("*.py")}

    def known(name: str) -> str | None:
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found: set[str | None] = set()
        for node in _import_nodes(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found.update(known(alias.name) for alias in node.names)
                continue
            base = node.module or ""
            if node.level:  # a relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in paths else known(base))
        graph[module] = {m for m in found if m is not None and m != module}
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle (``[a, b, ..., a]``) per strongly connected group of modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # zoo has ~100 modules: recursion depth is no concern
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_circle_in(sorted(group), graph) for group in groups]


def _circle_in(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path from ``group[0]`` back to itself inside ``group`` (breadth first)."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & members):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    return group


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``"a -> b"`` for every import a floor may not make (:data:`FORBIDDEN`, :data:`TOP_FLOORS`)."""
    out = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            for floor, banned in FORBIDDEN.items():
                if _under(module, floor) and any(_under(target, b) for b in banned):
                    out.append(f"{module} -> {target}")
            for i, top in enumerate(TOP_FLOORS):
                allowed = (*TOP_FLOORS[: i + 1], "zoo.__main__")
                if _under(target, top) and not any(_under(module, a) for a in allowed):
                    out.append(f"{module} -> {target}")
    return sorted(set(out))


def test_zoo_has_no_import_circles():
    circles = import_circles(import_graph())
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_no_floor_imports_upward():
    upward = upward_imports(import_graph())
    assert not upward, f"imports that run upward: {upward}"


def test_the_import_check_finds_circles_and_upward_imports(tmp_path):
    """The checks above can fail: a planted circle (inside a function, through a relative import)
    and a core module importing the CLI are both found."""
    pkg = tmp_path / "zoo"
    (pkg / "cli").mkdir(parents=True)
    (pkg / "metrics").mkdir()
    (pkg / "__init__.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import zoo.model\n")
    (pkg / "cli" / "__init__.py").write_text("")
    (pkg / "model.py").write_text("from zoo.vocabulary import FAMILIES\nimport zoo.cli\n")
    (pkg / "vocabulary.py").write_text("def f():\n    from .metrics import engine\n")
    (pkg / "metrics" / "__init__.py").write_text("")
    (pkg / "metrics" / "engine.py").write_text("from ..model import X\n")
    graph = import_graph(pkg)
    assert graph["zoo.vocabulary"] == {"zoo.metrics.engine"} and graph["zoo"] == set()
    assert import_circles(graph) == [["zoo.metrics.engine", "zoo.model", "zoo.vocabulary", "zoo.metrics.engine"]]
    assert upward_imports(graph) == ["zoo.model -> zoo.cli", "zoo.vocabulary -> zoo.metrics.engine"]


def test_the_import_check_finds_imports_of_the_verbs_floor_from_below(tmp_path):
    """zoo.api sits under zoo.cli and over everything else: a core module importing zoo.api, or
    zoo.api importing zoo.cli (at module level or inside a function), is an upward import."""
    pkg = tmp_path / "zoo"
    for folder in ("cli", "api", "bench"):
        (pkg / folder).mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli" / "__init__.py").write_text("from zoo.api import train\n")  # allowed: from above
    (pkg / "api" / "__init__.py").write_text("from zoo.bench import worker\n")  # allowed: looking down
    (pkg / "api" / "training.py").write_text("def f():\n    from zoo.cli import app\n")
    (pkg / "bench" / "__init__.py").write_text("")
    (pkg / "bench" / "worker.py").write_text("def g():\n    import zoo.api.training\n")
    assert upward_imports(import_graph(pkg)) == ["zoo.api.training -> zoo.cli",
                                                 "zoo.bench.worker -> zoo.api.training"]


def test_the_commands_stand_on_the_verbs_floor():
    """zoo train, sample, eval and bench call zoo.api (the check above is not vacuous)."""
    graph = import_graph()
    for command in ("train", "sample", "eval", "bench"):
        assert any(_under(t, "zoo.api") for t in graph[f"zoo.cli.{command}"]), command


def test_the_ground_floor_is_free_of_torch():
    modules = _imported_modules("-c", "import zoo.vocabulary")
    assert not {m for m in modules if m.split(".")[0] in {"torch", "numpy"}}


def test_only_the_cli_imports_the_cli():
    offenders = [f"{m} -> {t}" for m, targets in import_graph().items() for t in targets
                 if _under(t, "zoo.cli") and not _under(m, "zoo.cli") and m != "zoo.__main__"]
    assert not offenders, f"core modules importing the CLI: {offenders}"


#: Plugin-to-plugin imports still allowed, each with its reason: none (the U-Net that ddpm, flow
#: and edm share lives in zoo.nets.unet).
PLUGIN_EXCEPTIONS: set[tuple[str, str]] = set()


def test_plugins_import_the_core_not_each_other():
    """Shared blocks and losses live in the core (zoo.blocks): a plugin imports zoo.*, never another
    plugin, so uninstalling one never breaks another."""
    plugins = ROOT / "plugins"
    names = {p.name for p in plugins.iterdir() if (p / "__init__.py").is_file()}
    found = set()
    for package in names:
        for path in (plugins / package).rglob("*.py"):
            for node in _import_nodes(ast.parse(path.read_text(), filename=str(path))):
                targets = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                found |= {(package, t.split(".")[0]) for t in targets if t.split(".")[0] in names - {package}}
    assert found <= PLUGIN_EXCEPTIONS, f"plugins importing other plugins: {sorted(found - PLUGIN_EXCEPTIONS)}"


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
