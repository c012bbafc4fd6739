"""The HTML leaderboard in a real browser: Debian's chromium driven by chromedriver through selenium.

The page is built from a small results store (tests/board_fixtures.py: three models, three seeds,
the quick board's ten metrics, a long sampler label, curves, sample grids, a failed run with a long
error) and loaded at 420, 1,280 and 1,920 px. At every width the page does not scroll sideways and
every board table is fully visible (no cell clipped or past the window's edge), every image loads,
the plots are inline SVG and the console stays free of errors (a CSP violation or a broken data URI
is logged there); at 1,280 px every model's primary metric is on the first screen. The page is
then printed to A4 PDF by Chromium (``Page.printToPDF``), read back with poppler's ``pdftotext``
and rasterised with ``pdftoppm``: each table is whole on one page, no card is split across pages,
and nothing reaches past the right margin.

CI installs ``chromium``, ``chromium-driver`` and ``poppler-utils`` (``.ci/run``); elsewhere the
tests skip when they are missing. The browser runs headless, without sandbox, GPU, network services
or first-run UI, in a fresh profile. ``ZOO_SHOTS=DIR`` keeps the screenshots and the PDF's first
page there (how docs/images/ was made).
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.board_fixtures import MORE_METRICS, make_store
from zoo.bench.store import ResultRow
from zoo.cli.app import run

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WIDTHS = (420, 1280, 1920)
HEIGHT = 800  # a laptop's first screen

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver); "
           "CI installs them: apt-get install -y chromium chromium-driver",
)


def browser():  # noqa: ANN201 - selenium is imported lazily
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="zoo-chromium-")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    return driver, profile


def set_viewport(driver, width: int, height: int = HEIGHT) -> None:  # noqa: ANN001
    """An exact viewport (window sizes include browser chrome); a phone's for narrow widths."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    store = make_store(root, many_metrics=True)
    out = root / "site" / "leaderboard.html"
    out.parent.mkdir()  # an output's folder must exist (zoo never makes one from a typo)
    assert run(["leaderboard", "--results", str(store), "--format", "html", "-o", str(out)]) == 0
    return out


def shots() -> Path | None:
    folder = os.environ.get("ZOO_SHOTS")
    return Path(folder) if folder else None


LAYOUT = """
const tables = Array.from(document.querySelectorAll('.board table')).map(t => {
  const box = t.closest('.board');
  // shown cells (a phone's layout keeps the header for screen readers only: 1 px, clipped)
  const cells = Array.from(t.querySelectorAll('th, td')).filter(c => getComputedStyle(c).display !== 'none'
                                                                  && c.getBoundingClientRect().width > 1);
  return {caption: t.caption.textContent.trim(), right: t.getBoundingClientRect().right,
          left: t.getBoundingClientRect().left, boxScroll: box.scrollWidth, boxClient: box.clientWidth,
          cellRight: Math.max(...cells.map(c => c.getBoundingClientRect().right)),
          clipped: cells.filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.textContent.trim()),
          rows: Array.from(t.querySelectorAll('tbody th[scope=row]')).map(th => th.textContent.trim())};
});
return {inner: window.innerWidth, scroll: document.documentElement.scrollWidth,
        body: document.body.scrollWidth, tables: tables};
"""


def test_tables_are_whole_at_420_1280_and_1920_px_and_every_image_and_plot_loads(page):
    driver, profile = browser()
    try:
        for width in WIDTHS:
            set_viewport(driver, width)
            driver.get(page.as_uri())
            layout = driver.execute_script(LAYOUT)
            assert layout["inner"] == width
            assert layout["scroll"] <= width and layout["body"] <= width, f"the page scrolls sideways at {width}px"
            assert len(layout["tables"]) >= 3  # the ranking, further metrics (in slices), costs
            for table in layout["tables"]:
                where = f"{table['caption']!r} at {width}px"
                assert table["left"] >= 0 and table["right"] <= width, f"{where} runs past the window: {table}"
                assert table["cellRight"] <= table["right"] + 1, f"a cell of {where} sticks out: {table}"
                assert table["boxScroll"] <= table["boxClient"], f"{where} hides columns in a scroll box"
                assert not table["clipped"], f"cells of {where} cut their text: {table['clipped']}"
                assert len(table["rows"]) == 1 + 5, f"{where} lists the floor and every line"
            headers = driver.execute_script(
                "return Array.from(document.querySelectorAll('.board thead th')).map(th => th.textContent)")
            for metric in ("fid_lenet", "kid_lenet", "is_lenet") + MORE_METRICS:
                assert any(h.startswith(metric + " ") for h in headers), f"{metric} has no column at {width}px"

            images = driver.execute_script(
                "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
            assert len(images) >= 3  # the sample grids
            broken = [alt for alt, complete, natural in images if not complete or natural <= 0]
            assert not broken, f"images that did not load at {width}px: {broken}"
            assert all(alt.strip() for alt, _, _ in images), "every image has alt text"
            plots = driver.execute_script("""return Array.from(document.querySelectorAll('figure.plot')).map(f => {
                const svg = f.querySelector('svg'); const r = svg.getBoundingClientRect();
                return [f.getAttribute('aria-label'), r.width, r.height, r.right]; });""")
            assert len(plots) >= 3 and all(label and w > 100 and h > 100 and right <= width
                                           for label, w, h, right in plots), plots

            scores = driver.execute_script("""
                return Array.from(document.querySelectorAll('.board')[0].querySelectorAll('tbody tr:not(.floor) td.primary'))
                  .map(td => { const r = td.getBoundingClientRect();
                    return [td.closest('tr').querySelector('th[scope=row]').textContent.trim(), td.textContent.trim(),
                            r.left, r.right, r.top, r.bottom]; });""")
            assert {s[0] for s in scores} >= {"gan", "vae", "ddpm", "broken-plugin-model"}
            if width == 1280:
                for row, text, left, right, top, bottom in scores:
                    assert left >= 0 and right <= width and top >= 0 and bottom <= HEIGHT, \
                        f"{row}'s {text} is not on the first screen at 1280px ({left}, {top})-({right}, {bottom})"
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert not errors, f"console errors at {width}px: {errors}"
            if shots() is not None and width > 420:
                height = min(2400, driver.execute_script("return document.documentElement.scrollHeight"))
                set_viewport(driver, width, height)
                driver.save_screenshot(str(shots() / f"leaderboard-{width}.png"))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_the_page_offers_its_rows_as_csv_and_json(page):
    driver, profile = browser()
    try:
        set_viewport(driver, 1280)
        driver.get(page.as_uri())
        links = driver.execute_script(
            "return Array.from(document.querySelectorAll('a[download]')).map(a => [a.download, a.href])")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    assert [name.rsplit(".", 1)[1] for name, _ in links] == ["csv", "json"]
    data = {name.rsplit(".", 1)[1]: base64.b64decode(href.split(",", 1)[1]).decode() for name, href in links}
    models = [r["model"] for r in csv.DictReader(io.StringIO(data["csv"])) if r["kind"] == "model"]
    assert sorted(models) == ["broken-plugin-model", "ddpm", "ddpm", "gan", "vae"]
    assert '"curves"' in data["json"] and '"fid_lenet_mean"' in data["json"]


def pdf_pages(pdf: Path) -> list[str]:
    """The text of each page of ``pdf`` (poppler's pdftotext, reading order)."""
    count = int(re.search(r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True,
                                                             check=True).stdout).group(1))
    return [subprocess.run(["pdftotext", "-f", str(k), "-l", str(k), str(pdf), "-"], capture_output=True, text=True,
                           check=True).stdout for k in range(1, count + 1)]


@pytest.mark.skipif(not all(shutil.which(t) for t in ("pdftoppm", "pdftotext", "pdfinfo")),
                    reason="needs poppler-utils (pdftoppm, pdftotext, pdfinfo); CI installs it (.ci/run)")
def test_printed_a4_pdf_keeps_each_table_whole_and_each_card_on_one_page(page, tmp_path):
    from PIL import Image

    driver, profile = browser()
    try:
        driver.get(page.as_uri())
        printed = driver.execute_cdp_cmd("Page.printToPDF", {"paperWidth": 8.27, "paperHeight": 11.69,
                                                             "preferCSSPageSize": True, "printBackground": True})
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    pdf = tmp_path / "leaderboard.pdf"
    pdf.write_bytes(base64.b64decode(printed["data"]))
    pages = pdf_pages(pdf)
    assert 2 <= len(pages) <= 12

    # Each table: its caption, its header's last column and every line on one page.
    captions = [c for c in re.findall(r"mnist-5k leaderboard[^\n]*", "\n".join(pages))]
    assert len(captions) >= 3
    for caption in captions:
        (on,) = [k for k, text in enumerate(pages) if caption in text]
        after = pages[on].split(caption, 1)[1]
        for name in ("real vs real", "gan", "vae", "ddpm", "broken-plugin-model"):
            assert name in after, f"table {caption!r} is not whole on page {on + 1}: {name} is missing"
    # Each card: its rank line and its last entry (precision · batch) on the same page.
    starts = [len(re.findall(r"rank \d+ of \d+|not ranked \(", text)) for text in pages]
    ends = [text.count("precision · batch") for text in pages]
    assert sum(starts) == 5 and starts == ends, f"a card is split across pages: starts {starts}, ends {ends}"

    # Rasterised: ink on every page, none past the right margin (12 mm of 210 mm: nothing was cut).
    prefix = tmp_path / "page"
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf), str(prefix)], check=True)
    images = sorted(tmp_path.glob("page-*.png"))
    assert len(images) == len(pages)
    for image in images:
        gray = Image.open(image).convert("L")
        box = gray.point(lambda v: 255 if v < 200 else 0).getbbox()
        assert box is not None, f"{image.name} is blank"
        assert box[2] <= gray.width * (1 - 10 / 210), f"{image.name} has ink in its right margin: {box}"
    if shots() is not None:
        shutil.copy(images[0], shots() / "leaderboard-a4-page1.png")


def test_long_errors_are_folded_and_the_page_is_labelled(page):
    driver, profile = browser()
    try:
        set_viewport(driver, 1280)
        driver.get(page.as_uri())
        summary, opened = driver.execute_script("""
            const d = document.querySelector('td.status-failed details');
            return [d.querySelector('summary').textContent, d.open];""")
        assert summary.endswith("…") and len(summary) < 80 and not opened
        headers = driver.execute_script(
            "return Array.from(document.querySelectorAll('thead th')).map(th => [th.scope, th.textContent.trim()])")
        assert all(scope == "col" for scope, _ in headers)
        assert any(text.startswith("fid_lenet ↓") for _, text in headers) and any("is_lenet ↑" in t for _, t in headers)
        assert driver.execute_script("return document.querySelectorAll('table caption').length") >= 1
        if "images" in {f.name for f in dataclasses.fields(ResultRow)}:
            extra = driver.execute_script("return Array.from(document.querySelectorAll('.card figure.extra img'))"
                                          ".map(i => [i.alt, i.naturalWidth])")
            assert extra and extra[0][0].startswith("nearest training images for ddpm") and extra[0][1] > 0
        ranks = driver.execute_script("return Array.from(document.querySelectorAll('.card .rank-words')).map(p => p.textContent)")
        assert ranks[0].startswith("rank 1 of") or ranks[0].startswith("rank =1 of")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
