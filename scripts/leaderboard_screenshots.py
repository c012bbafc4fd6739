"""Screenshots of the HTML leaderboard for the docs (docs/images/leaderboard-1280.png, -1920.png,
and the first page of its A4 print, leaderboard-a4-page1.png).

    zoo bench --models gan,vae,ddpm --preset smoke --seeds 0,1,2 --results /tmp/s/runs/results.sqlite
    python scripts/leaderboard_screenshots.py /tmp/s/runs/results.sqlite docs/images

Renders the store's leaderboard page and photographs it in Debian's headless chromium (through
chromedriver and selenium, as tests/test_browser.py loads it) at each width, the whole page down
to ``--max-height`` pixels, then prints it to A4 PDF (Chromium's ``Page.printToPDF``) and
rasterises the first page with poppler's ``pdftoppm``. PNGs are written with 256 colours
(Pillow's quantize): a page screenshot needs no more, and the files stay small.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import subprocess
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from zoo.bench.leaderboard import leaderboards
from zoo.bench.report import write_html
from zoo.bench.store import ResultsStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--widths", default="1280,1920")
    parser.add_argument("--max-height", type=int, default=3000)
    args = parser.parse_args()
    store = ResultsStore(args.store, create=False)
    work = Path(tempfile.mkdtemp(prefix="zoo-shots-"))
    page = write_html(leaderboards(store), work / "leaderboard.html", base_dir=store.folder)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                f"--user-data-dir={work / 'profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        for width in (int(w) for w in args.widths.split(",")):
            metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 600}
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
            driver.get(page.as_uri())
            height = min(args.max_height, driver.execute_script("return document.documentElement.scrollHeight"))
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": height})
            target = args.out / f"leaderboard-{width}.png"
            driver.save_screenshot(str(target))
            _small(target)
            print(target)
        printed = driver.execute_cdp_cmd("Page.printToPDF", {"paperWidth": 8.27, "paperHeight": 11.69,
                                                             "preferCSSPageSize": True, "printBackground": True})
        pdf = work / "leaderboard.pdf"
        pdf.write_bytes(base64.b64decode(printed["data"]))
        target = args.out / "leaderboard-a4-page1.png"
        subprocess.run(["pdftoppm", "-r", "90", "-png", "-singlefile", "-f", "1", "-l", "1", str(pdf),
                        str(target.with_suffix(""))], check=True)
        _small(target)
        print(target)
    finally:
        driver.quit()
        shutil.rmtree(work, ignore_errors=True)


def _small(path: Path) -> None:
    from PIL import Image

    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)


if __name__ == "__main__":
    main()
