"""The HTML leaderboard in a real browser: Debian's chromium driven by chromedriver through selenium.

The page is built from a small results store made here (three models, three seeds, curves, sample
grids, a failed run with a long error) and loaded at 1,280 px and 420 px. At both widths the page
itself must not scroll sideways (the table scrolls in its own box), every image must have loaded
and the console must stay free of errors (a CSP violation or a broken data URI is logged there);
at 1,280 px every model's primary metric must be on the first screen.

CI installs ``chromium`` and ``chromium-driver`` (``.ci/run``); elsewhere the test skips when they
are missing. The browser runs headless, without sandbox, GPU, network services or first-run UI, in
a fresh profile.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from torchvision.utils import save_image

from zoo.bench.store import ResultRow, ResultsStore
from zoo.cli.app import run

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WIDTHS = (1280, 420)
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


P = {"primary_metric": "fid_lenet", "dataset": "mnist-5k", "num_real": 200, "num_fake": 100, "backbone": "lenet",
     "resize": "none", "torch_fidelity_version": "0.4.0", "version": 2}


def make_store(root: Path) -> Path:
    """Three models with three seeds each (a DDIM sweep for ddpm), curves and grids; one failure."""
    torch.manual_seed(0)
    store = ResultsStore(root / "runs" / "results.sqlite")
    rows = []
    for m, (model, base, family) in enumerate((("gan", 40.0, "gan"), ("vae", 60.0, "vae"), ("ddpm", 25.0, "diffusion"))):
        for seed in range(3):
            grid = root / "runs" / f"{model}-{seed}" / "samples.png"
            grid.parent.mkdir(parents=True, exist_ok=True)
            save_image(torch.rand(64, 1, 28, 28), grid, nrow=8)
            settings = [{"sampler": "ddim", "steps": s} for s in (10, 50)] if model == "ddpm" else [{}]
            for i, options in enumerate(settings):
                fid = base + seed + (5.0 if options.get("steps") == 10 else 0.0)
                costs = {"train_seconds": 30.0 * (m + 1), "train_flops": 1e12 * (m + 1), "train_steps": 500,
                         "train_images_per_s": 900.0 / (m + 1), "sample_images_per_s": 5e4 / (m + 1) ** 3,
                         "params": 1.2e6 * (m + 1), "peak_memory_mb": 300.0, "memory_kind": "process_peak_rss",
                         "budget_stopped_by": "steps"}
                final = {"fraction": 1.0, "train_seconds": costs["train_seconds"], "train_flops": costs["train_flops"],
                         "train_steps": 500, "train_kimg": 32.0, "metrics": {"fid_lenet": fid}}
                curve = [{**final, "fraction": f, "train_seconds": final["train_seconds"] * f,
                          "train_flops": final["train_flops"] * f, "metrics": {"fid_lenet": fid * (1 + 4 * (1 - f))}}
                         for f in (0.25, 0.5)] + [final] if i == 0 else [final]
                rows.append(ResultRow(model=model, dataset="mnist-5k", seed=seed, protocol_hash="3bb635b91b25", protocol=P,
                                      family=family, metrics={"fid_lenet": fid, "is_lenet": 8.0 - m, "kid_lenet": fid / 1e3},
                                      floor={"fid_lenet": 1.2, "is_lenet": 9.8, "kid_lenet": 1e-4}, costs=costs,
                                      sample_options=options, grid_path=str(grid), curve=curve,
                                      budget_kind="steps", budget_amount=500.0))
    if "images" in {f.name for f in dataclasses.fields(ResultRow)}:  # nearest-neighbour pairs, shown on the card
        pairs = root / "runs" / "ddpm-0" / "nearest.png"
        save_image(torch.rand(8, 1, 28, 28), pairs, nrow=2)
        for r in rows:
            if r.model == "ddpm" and r.seed == 0:
                r.images = {"nearest training images": str(pairs)}
    error = "RuntimeError: " + "a very long error message from a broken plugin " * 8 + "\nTraceback (most recent call last): ..."
    rows.append(ResultRow(model="broken-plugin-model", dataset="mnist-5k", seed=0, protocol_hash="3bb635b91b25",
                          protocol=P, status="failed", error=error, budget_kind="steps", budget_amount=500.0))
    store.add_many(rows)
    return store.path


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    store = make_store(root)
    out = root / "site" / "leaderboard.html"
    assert run(["leaderboard", "--results", str(store), "--format", "html", "-o", str(out)]) == 0
    return out


def test_page_fits_every_width_loads_every_image_and_logs_no_error(page):
    driver, profile = browser()
    try:
        for width in WIDTHS:
            set_viewport(driver, width)
            driver.get(page.as_uri())
            layout = driver.execute_script(
                "return {inner: window.innerWidth, scroll: document.documentElement.scrollWidth,"
                " body: document.body.scrollWidth}")
            assert layout["inner"] == width
            assert layout["scroll"] <= width and layout["body"] <= width, f"the page scrolls sideways at {width}px: {layout}"

            images = driver.execute_script(
                "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
            assert len(images) >= 3 + 3 + 2  # grids, the plots
            broken = [alt for alt, complete, natural in images if not complete or natural <= 0]
            assert not broken, f"images that did not load at {width}px: {broken}"
            assert all(alt.strip() for alt, _, _ in images), "every image has alt text"

            # The table's own box scrolls instead (it is wider than a phone), the page does not.
            box = driver.execute_script("const s = document.querySelector('.scroll'); return [s.scrollWidth, s.clientWidth]")
            if width == 420:
                assert box[0] > box[1]

            scores = driver.execute_script("""
                return Array.from(document.querySelectorAll('tbody tr:not(.floor) td.sticky-primary')).map(td => {
                  const r = td.getBoundingClientRect();
                  const row = td.closest('tr').querySelector('th[scope=row]').textContent.trim();
                  return [row, td.textContent.trim(), r.left, r.right, r.top, r.bottom,
                          getComputedStyle(td).visibility];
                });""")
            assert {s[0] for s in scores} >= {"gan", "vae", "ddpm", "broken-plugin-model"}
            if width == 1280:
                for row, text, left, right, top, bottom, visibility in scores:
                    assert visibility == "visible" and text
                    assert left >= 0 and right <= width and top >= 0 and bottom <= HEIGHT, \
                        f"{row}'s {text} is not on the first screen at 1280px ({left}, {top})-({right}, {bottom})"
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert not errors, f"console errors at {width}px: {errors}"
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


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
