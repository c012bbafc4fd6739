"""Screenshots of the HTML leaderboard for the docs (docs/leaderboard-1280.png, -420.png).

    zoo bench --models gan,vae,ddpm --preset smoke --seeds 0,1,2 --results /tmp/s/runs/results.sqlite
    python scripts/leaderboard_screenshots.py /tmp/s/runs/results.sqlite docs

Renders the store's leaderboard page and photographs it in Debian's headless chromium (through
chromedriver and selenium, as tests/test_browser.py loads it) at each width, the whole page down
to ``--max-height`` pixels.
"""

from __future__ import annotations

import argparse
import shutil
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
    parser.add_argument("--widths", default="1280,420")
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
            print(target)
    finally:
        driver.quit()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
