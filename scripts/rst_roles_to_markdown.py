"""Rewrite Sphinx roles (:func:`x`, :class:`~zoo.errors.ConfigError`) in zoo/ and plugins/ as Markdown.

The docs site renders docstrings as Markdown (mkdocstrings, Google style), where a role shows as raw
text. A role whose target the API reference documents becomes a cross-reference
(``[ConfigError][zoo.errors.ConfigError]``); any other becomes inline code (```torch.Generator```).
A leading ``~`` shows only the last component, as in Sphinx. A line ending in reST's ``::``
(a literal block follows) ends in ``:``: Markdown shows the indented block as code. Command-line modules (zoo/cli/) get
inline code only: their docstrings are also ``--help`` text.

    mkdocs build -d /tmp/site            # writes /tmp/site/objects.inv: what the API documents
    python scripts/rst_roles_to_markdown.py --inventory /tmp/site/objects.inv

Safe to run again (a converted docstring has no role left); without --inventory every role
becomes inline code.
"""

from __future__ import annotations

import argparse
import re
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LITERAL = re.compile(r"(?<=[\w)`])::$", flags=re.MULTILINE)  # reST's "text::" before a code block
ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|exc|data|obj|const):`(?P<tilde>~?)(?P<target>[^`<>]+)`")


def read_inventory(path: Path) -> set[str]:
    """The object names of a Sphinx ``objects.inv`` (version 2: four header lines, then zlib)."""
    raw = path.read_bytes()
    body = raw.split(b"\n", 4)[4]
    names = set()
    for line in zlib.decompress(body).decode("utf-8").splitlines():
        name, _, rest = line.partition(" ")
        if rest.startswith("py:"):
            names.add(name)
    return names


def convert(text: str, documented: set[str], crossrefs: bool) -> str:
    def replace(m: re.Match[str]) -> str:
        target = m["target"].strip().removesuffix("()")
        shown = target.rsplit(".", 1)[-1] if m["tilde"] else target
        if crossrefs and target in documented:
            return f"[`{shown}`][{target}]"
        return f"`{shown}`"

    return LITERAL.sub(":", ROLE.sub(replace, text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", type=Path, help="objects.inv of a built site (cross-reference targets)")
    args = parser.parse_args()
    documented = read_inventory(args.inventory) if args.inventory else set()
    changed = 0
    for path in sorted([*(ROOT / "zoo").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]):
        text = path.read_text(encoding="utf-8")
        crossrefs = "cli" not in path.relative_to(ROOT).parts
        new = convert(text, documented, crossrefs)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed += 1
    print(f"{changed} files rewritten")


if __name__ == "__main__":
    main()
