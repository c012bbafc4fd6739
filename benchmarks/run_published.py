"""Reproduce the committed leaderboard: quick preset, mnist-5k, all built-in models, 3 seeds.

    python benchmarks/run_published.py [--preset quick] [--seeds 0,1,2] [--models gan,dcgan,vae,ddpm]

Results go to a store of their own (benchmarks/results/<preset>.sqlite, not committed) and are
published as CSV and Markdown whose file names carry the preset, the device and the torch version,
plus the sample grid of each model's best seed under benchmarks/results/grids/.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--models", default="gan,dcgan,vae,ddpm")
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    from zoo.bench.leaderboard import build_leaderboard
    from zoo.bench.report import publish_results
    from zoo.bench.store import ResultsStore
    from zoo.cli.app import run
    from zoo.device import resolve_device

    store_path = RESULTS / f"{args.preset}.sqlite"
    code = run(["bench", "--models", args.models, "--preset", args.preset, "--seeds", args.seeds, "--dataset", args.dataset,
                "--device", args.device, "--results", str(store_path), "--runs-dir", str(RESULTS / "runs"),
                "--html", str(RESULTS / f"{args.preset}.html")])
    if code not in (0, 1):
        return code
    rows = [r for r in ResultsStore(store_path).rows(dataset=args.dataset) if r.preset == args.preset]
    boards = build_leaderboard(rows)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu{torch.get_num_threads()}"
    csv_path, md_path = publish_results(boards, RESULTS, args.preset, name, torch.__version__)
    grids = RESULTS / "grids"
    grids.mkdir(exist_ok=True)
    for row in rows:
        if row.status == "ok" and row.grid_path and row.seed == 0:
            tag = "-".join(f"{k}{v}" for k, v in row.sample_options.items() if k in ("sampler", "steps"))
            shutil.copyfile(row.grid_path, grids / f"{row.model}{'-' + tag if tag else ''}.png")
    print(f"published {csv_path} and {md_path}; grids in {grids}")
    return code


if __name__ == "__main__":
    sys.exit(main())
