"""mkdocs hooks (mkdocs.yml ``hooks:``): the site's links that leave docs/.

The guides link to files of the repository (``../plugins/zoo_wgan/model.py``,
``../examples/zoo-ppca``, ``../benchmarks/results/...md``) so that they work on the repository's
own file view. On the site those files are not pages, so:

* an image outside docs/ is bundled into the site under ``repo/`` (the site stays offline);
* any other file or folder outside docs/ becomes a link to the repository (``[project.urls]
  Repository`` of pyproject.toml), at the branch ``main``;
* ``<!-- include: PATH -->`` in a page is replaced by the repository file PATH (the changelog),
  its relative links rebased onto the page.

Whatever is left is checked by mkdocs' own link validation, which mkdocs.yml sets to warn (so
``mkdocs build --strict`` fails on a broken link).
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}
BUNDLE = "repo"  # the site folder of images bundled from outside docs/
BRANCH = "main"
# A Markdown link or image whose target is relative; the target has no spaces or parentheses.
LINK = re.compile(r"(?P<bang>!?)\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s:]+)\)")
INCLUDE = re.compile(r"^<!-- include: (?P<path>[^ ]+) -->$", flags=re.MULTILINE)


def repository_url() -> str:
    """The repository's URL from pyproject.toml's ``[project.urls] Repository``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project["urls"]["Repository"].rstrip("/")


def _outside(docs_dir: Path, page_dir: Path, target: str) -> Path | None:
    """The repository file or folder a relative link leaves docs/ for, else None."""
    path = target.partition("#")[0]
    if not path:
        return None
    resolved = (page_dir / path).resolve()
    if resolved.is_relative_to(docs_dir) or not resolved.is_relative_to(ROOT) or not resolved.exists():
        return None
    return resolved


def on_files(files, config):  # noqa: ANN001, ANN201
    """Bundle every image that a page links outside docs/."""
    docs_dir = Path(config.docs_dir).resolve()
    wanted: set[Path] = set()
    for file in files.documentation_pages():
        page_dir = Path(file.abs_src_path).parent
        text = _with_includes(Path(file.abs_src_path).read_text(encoding="utf-8"), page_dir)
        for m in LINK.finditer(text):
            outside = _outside(docs_dir, page_dir, m["target"])
            if outside is not None and outside.is_file() and outside.suffix.lower() in IMAGE_SUFFIXES:
                wanted.add(outside)
    for path in sorted(wanted):
        uri = f"{BUNDLE}/{path.relative_to(ROOT).as_posix()}"
        if files.get_file_from_path(uri) is None:
            files.append(_generated(config, uri, path))
    return files


def _generated(config, uri: str, path: Path):  # noqa: ANN001, ANN202
    from mkdocs.structure.files import File

    return File.generated(config, uri, abs_src_path=str(path))


def _with_includes(markdown: str, page_dir: Path) -> str:
    """``<!-- include: PATH -->`` replaced by the file (PATH from the repository root)."""

    def include(m: re.Match[str]) -> str:
        source = ROOT / m["path"]
        text = source.read_text(encoding="utf-8")
        return LINK.sub(lambda link: _rebase(link, source.parent, page_dir), text)

    return INCLUDE.sub(include, markdown)


def _rebase(m: re.Match[str], source_dir: Path, page_dir: Path) -> str:
    path, hash_, anchor = m["target"].partition("#")
    if not path:
        return m[0]
    moved = posixpath.relpath((source_dir / path).resolve().as_posix(), page_dir.resolve().as_posix())
    return f"{m['bang']}[{m['text']}]({moved}{hash_}{anchor})"


def on_page_markdown(markdown, page, config, files):  # noqa: ANN001, ANN201
    docs_dir = Path(config.docs_dir).resolve()
    page_dir = Path(page.file.abs_src_path).resolve().parent
    markdown = _with_includes(markdown, page_dir)
    # Not mkdocs' repo_url: with it the theme asks the host's API for stars and releases from the
    # reader's browser, which an offline site must not do.
    repo = repository_url()

    def rewrite(m: re.Match[str]) -> str:
        outside = _outside(docs_dir, page_dir, m["target"])
        if outside is None:
            return m[0]
        rel = outside.relative_to(ROOT).as_posix()
        anchor = m["target"].partition("#")[2]
        if outside.is_file() and outside.suffix.lower() in IMAGE_SUFFIXES:
            here = posixpath.dirname(page.file.src_uri)
            return f"{m['bang']}[{m['text']}]({posixpath.relpath(f'{BUNDLE}/{rel}', here or '.')})"
        kind = "blob" if outside.is_file() else "tree"
        url = f"{repo}/{kind}/{BRANCH}/{rel}" + (f"#{anchor}" if anchor else "")
        return f"{m['bang']}[{m['text']}]({url})"

    return LINK.sub(rewrite, markdown)


# mkdocs-material's offline plugin loads this shim from a CDN (whichever host the theme names);
# the site serves its bundled copy.
SHIM_CDN = re.compile(r'"https://[^"/]+/iframe-worker/shim"')
SHIM_LOCAL = "assets/vendor/iframe-worker/shim.js"


def on_post_page(output, page, config):  # noqa: ANN001, ANN201
    here = posixpath.dirname(page.file.dest_uri)
    return SHIM_CDN.sub(f'"{posixpath.relpath(SHIM_LOCAL, here or ".")}"', output)


def on_post_template(output_content, template_name, config):  # noqa: ANN001, ANN201 - 404.html
    return SHIM_CDN.sub(f'"{SHIM_LOCAL}"', output_content)
