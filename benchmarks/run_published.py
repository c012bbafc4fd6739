"""Reproduce the committed leaderboard: quick preset, mnist-5k, all built-in models, 3 seeds.

    python benchmarks/run_published.py [--preset quick] [--seeds 0,1,2] [--models gan,dcgan,vae,ddpm]
                                       [--threads 1] [--publish-only] [--tag avx2-2c] [--tune 8]

It calls the library (:func:`zoo.api.benchmark`), not the command line. Results go to a store
of their own (benchmarks/results/<preset>.sqlite, not committed) and are published as CSV and
Markdown whose file names carry the preset, the device and the torch version, plus the sample grid
of each model's seed-0 run under benchmarks/results/grids/ and the HTML page with the
quality-versus-compute curves. Jobs already in the store are skipped, so an interrupted run
continues where it stopped, and two processes with different ``--seeds`` can share the store
(SQLite in WAL mode); ``--publish-only`` then writes the files from the store.

``--tune N`` publishes the board at equal tuning effort (``zoo bench --tune N``: every model gets
the same N seeded trials at a quarter of the budget before its full runs) in a store and files of
its own (``<preset>-tuned<N>[-<tag>]``), with each model's trial distribution as a strip plot.
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],  # the first line; the module docstring has the rest
        epilog=f"Method and published results: docs/benchmarks.md; details: the docstring atop benchmarks/{Path(__file__).name}")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--models", default="gan,dcgan,vae,ddpm")
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on a shared machine)")
    parser.add_argument("--publish-only", action="store_true", help="write the published files from the store")
    parser.add_argument("--tune", type=int, default=None, metavar="N",
                        help="tune every model first with N trials (zoo bench --tune N)")
    parser.add_argument("--tag", default=None,
                        help="name the store, files, grids and curves with this tag ('machine': this "
                             "machine's class, e.g. avx2-2c), so a board from another machine class sits "
                             "beside the untagged one")
    args = parser.parse_args()

    from zoo.api import BenchRequest, benchmark
    from zoo.bench import ResultsStore, build_leaderboard
    from zoo.bench.report import (
        plot_quality_vs_compute,
        plot_quality_vs_steps,
        publish_results,
        write_html,
    )
    from zoo.bench.runner import BenchProgress
    from zoo.bench.trialplot import plot_trials
    from zoo.bench.trials import attach_trials
    from zoo.device import resolve_device
    from zoo.errors import ZooError

    class Lines(BenchProgress):
        def message(self, text: str) -> None:
            print(f"run_published: {text}", file=sys.stderr, flush=True)

    torch.set_num_threads(args.threads)
    if args.tag == "machine":
        from zoo.device import capabilities

        args.tag = capabilities().machine_class
    variant = "-".join(part for part in (f"tuned{args.tune}" if args.tune else "", args.tag or "") if part)
    tagged = f"{args.preset}-{variant}" if variant else args.preset
    store_path = RESULTS / f"{tagged}.sqlite"
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.publish_only:
        request = BenchRequest(models=models, preset=args.preset, seeds=[int(s) for s in args.seeds.split(",")],
                               dataset=args.dataset, device=args.device, results=store_path, runs_dir=RESULTS / "runs",
                               tune=args.tune)
        try:
            benchmark(request, reporter=Lines())
        except ZooError as exc:
            print(f"run_published: error: {exc}", file=sys.stderr)
            return exc.exit_code
    store = ResultsStore(store_path)
    rows = [r for r in store.rows(dataset=args.dataset) if r.preset == args.preset and r.model in models]
    boards = build_leaderboard(rows)
    attach_trials(boards, store)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu{args.threads}"
    name = f"{args.tag}-{name}" if args.tag else name
    name = f"tuned{args.tune}-{name}" if args.tune else name
    csv_path, md_path = publish_results(boards, RESULTS, args.preset, name, torch.__version__)
    html = write_html(boards, RESULTS / f"{tagged}.html", base_dir=store_path.parent)
    grids = RESULTS / "grids" / variant if variant else RESULTS / "grids"
    grids.mkdir(parents=True, exist_ok=True)
    for row in rows:
        if row.status == "ok" and row.grid_path and row.seed == 0:
            tag = "-".join(f"{k}{v}" for k, v in row.sample_options.items() if k in ("sampler", "steps"))
            shutil.copyfile(row.grid_path, grids / f"{row.model}{'-' + tag if tag else ''}.png")
    for board in boards:  # the curves, as pictures the README can show
        for stem, png in ((f"{tagged}-curve-flops", plot_quality_vs_compute(board, "train_flops")),
                          (f"{tagged}-curve-seconds", plot_quality_vs_compute(board, "train_seconds")),
                          (f"{tagged}-quality-vs-steps", plot_quality_vs_steps(board)),
                          (f"{tagged}-trials", plot_trials(board) if board.tuning else None)):
            if png:
                (RESULTS / f"{stem}.png").write_bytes(png)
    print(f"published {csv_path} and {md_path}; grids in {grids}; page {html}")
    return 1 if any(r.status == "failed" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
