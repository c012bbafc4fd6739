"""The documentation site as a reader gets it: built with ``mkdocs build --strict``, served locally,
opened in Debian's chromium (selenium, as in tests/test_browser.py).

Every page of the nav opens, nothing it loads or links to inside the site is a 404, no page shows
a raw Sphinx role (``:func:`x```, ``:class:`~zoo.errors.ConfigError```) and the console stays free
of errors; the built HTML loads no script, style, font or image from another host (the site works
offline).

Needs the ``docs`` extra (mkdocs-material, mkdocstrings, mkdocs-click): CI runs this file after
installing it (``.ci/run``); elsewhere the tests skip without it. The browser test also needs
chromium and chromium-driver, like tests/test_browser.py.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from tests.helpers import ROOT
from tests.test_browser import CHROMEDRIVER, CHROMIUM, browser, set_viewport

RAW_ROLE = re.compile(r"(?<![\w:]):(?:py:)?(?:func|class|meth|mod|attr|exc|data|obj|const):(?=\S)")  # ":class:Name" as shown
EXTERNAL = re.compile(r"^(?:[a-z]+:)?//", flags=re.IGNORECASE)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python", "mkdocs_click"):
        pytest.importorskip(module, reason="needs the docs extra: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                            "-d", str(out)], capture_output=True, text=True, cwd=ROOT,
                           env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, timeout=600)
    assert built.returncode == 0, built.stderr[-4000:]
    return out


class _Assets(HTMLParser):
    """Every URL an HTML page loads by itself (scripts, styles, icons, images, frames)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "audio", "video", "source", "embed") and a.get("src"):
            self.urls.append(a["src"])
        if tag == "link" and a.get("href") and set((a.get("rel") or "").split()) & {
                "stylesheet", "icon", "preload", "modulepreload", "manifest", "apple-touch-icon"}:
            self.urls.append(a["href"])
        if a.get("srcset"):
            self.urls += [part.split()[0] for part in a["srcset"].split(",") if part.strip()]


def test_the_built_site_loads_nothing_from_another_host(site):
    external = []
    for page in site.rglob("*.html"):
        parser = _Assets()
        parser.feed(page.read_text(encoding="utf-8"))
        external += [f"{page.relative_to(site)}: {u}" for u in parser.urls if EXTERNAL.match(u)]
    for sheet in site.rglob("*.css"):
        external += [f"{sheet.relative_to(site)}: {u}" for u in
                     re.findall(r"url\(\s*['\"]?((?:[a-z]+:)?//[^)'\"]+)", sheet.read_text(encoding="utf-8"))]
    assert not external, "\n".join(external)
    assert (site / "assets" / "vendor" / "iframe-worker" / "shim.js").is_file()  # search from file://


class _Recorder(http.server.SimpleHTTPRequestHandler):
    missing: list[str]

    def send_error(self, code, message=None, explain=None):  # noqa: ANN001, ANN201
        if code == 404:
            self.missing.append(self.path)
        super().send_error(code, message, explain)

    def log_message(self, *args) -> None:  # noqa: ANN002 - quiet
        pass


@pytest.fixture(scope="module")
def served(site):  # noqa: ANN201
    missing: list[str] = []
    handler = functools.partial(type("Handler", (_Recorder,), {"missing": missing}), directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.handle_error = lambda request, address: None  # a browser closing a connection early
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", missing
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                    reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver); "
                           "CI installs them: apt-get install -y chromium chromium-driver")
def test_every_nav_page_opens_without_404_or_raw_rest_roles(served):
    base, missing = served
    driver, profile = browser()
    try:
        set_viewport(driver, 1280)
        driver.get(base)
        nav = driver.execute_script(
            "return Array.from(document.querySelectorAll('nav.md-nav--primary a.md-nav__link[href]'))"
            ".map(a => a.href)")
        pages = sorted({urlsplit(u)._replace(fragment="").geturl() for u in nav if u.startswith(base)})
        expected = {"installation.html", "getting-started.html", "tutorials/own-model.html",
                    "tutorials/own-dataset.html", "tutorials/write-a-plugin.html", "cli.html", "api/index.html",
                    "changelog.html", "export.html"}
        assert {base + p for p in expected} <= set(pages), f"pages missing from the nav: {expected}, nav: {pages}"
        problems, links = [], set()
        for url in pages:
            driver.get(url)
            title = driver.title
            text = driver.execute_script("return document.querySelector('article').innerText")
            if "404" in title or not text.strip():
                problems.append(f"{url}: not a page ({title!r})")
            problems += [f"{url}: raw reST role: ...{text[max(0, m.start() - 40):m.end() + 40]!r}"
                         for m in RAW_ROLE.finditer(text)]
            fetched = driver.execute_script(
                "return performance.getEntriesByType('resource').map(e => e.name)")
            problems += [f"{url}: loaded from another host: {u}" for u in fetched if not u.startswith(base)]
            errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            problems += [f"{url}: console error: {e}" for e in errors]
            links |= set(driver.execute_script(
                "return Array.from(document.querySelectorAll('article a[href]')).map(a => a.href)"))
        # Every link of the pages' text that stays on the site resolves (a page, an anchor's page,
        # a bundled image or file).
        for link in sorted(u for u in links if u.startswith(base)):
            target = urlsplit(link)._replace(fragment="").geturl()
            try:
                urllib.request.urlopen(urljoin(base, target), timeout=10).close()
            except urllib.error.HTTPError as exc:
                problems.append(f"{target}: HTTP {exc.code}")
        problems += [f"404 while loading the pages: {path}" for path in sorted(set(missing))]
        assert not problems, "\n".join(problems)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
