"""EDM against DDPM at equal training compute: FID (the protocol's primary metric) along the
quick preset's budget, against training FLOPs.

    python benchmarks/edm_vs_ddpm.py [--models ddpm,edm] [--seeds 0] [--threads 1]
                                     [--set edm.KEY=VALUE ...] [--publish-only]

Both models train under the quick preset (128 kimg on mnist-5k, each model's recipe: on a CPU
without native bf16, fp32 and the same 12/24/24-channel U-Net, so one training image costs both
the same FLOPs) through the library (:func:`zoo.bench.run_benchmark`). The bench evaluates every
run at the preset's curve points (log-spaced fractions of the budget, the last at the full budget)
with the cheapest sampling setting of the model's sweep (ddpm: DDIM 10 steps, NFE 10; edm: Heun 5
steps, NFE 9) and the whole sweep at the end. Results go to a store of their own
(benchmarks/results/edm-vs-ddpm.sqlite, not committed; finished jobs are skipped, so two processes
with different ``--models`` can share it and an interrupted run continues), and are published as
benchmarks/results/edm-vs-ddpm-quick.csv (one line per curve point and per final sampling setting)
and edm-vs-ddpm-quick.png (FID against training FLOPs). ``--publish-only`` while a job still runs
adds the curve points its run folder holds so far (``kind`` ``curve-unfinished``).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
STEM = "edm-vs-ddpm-quick"
FIELDS = ("model", "config", "sampling", "nfe", "kind", "fraction", "train_kimg", "train_flops",
          "train_seconds", "fid_lenet", "seed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="ddpm,edm")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on a shared machine)")
    parser.add_argument("--set", action="append", default=[], metavar="MODEL.KEY=VALUE",
                        help="config override (recorded in the run identity and the CSV's config column)")
    parser.add_argument("--publish-only", action="store_true", help="write the CSV and figure from the store")
    args = parser.parse_args()

    from zoo.bench import BenchRequest, ResultsStore, run_benchmark
    from zoo.bench.runner import BenchProgress
    from zoo.errors import ZooError

    class Lines(BenchProgress):
        def message(self, text: str) -> None:
            print(f"edm_vs_ddpm: {text}", file=sys.stderr, flush=True)

    torch.set_num_threads(args.threads)
    store_path = RESULTS / "edm-vs-ddpm.sqlite"
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.publish_only:
        overrides = dict(item.split("=", 1) for item in args.set)
        request = BenchRequest(models=models, preset="quick", seeds=[int(s) for s in args.seeds.split(",")],
                               dataset=args.dataset, results=store_path, runs_dir=RESULTS / "runs",
                               overrides=overrides)
        try:
            run_benchmark(request, progress=Lines())
        except ZooError as exc:
            print(f"edm_vs_ddpm: error: {exc}", file=sys.stderr)
            return exc.exit_code
    rows = [r for r in ResultsStore(store_path).rows(dataset=args.dataset)
            if r.preset == "quick" and r.status == "ok" and r.model in ("ddpm", "edm")] if store_path.exists() else []
    table = points(rows) + unfinished(RESULTS / "runs", {Path(r.run_dir).name for r in rows if r.run_dir})
    if not table:
        print("edm_vs_ddpm: no curve points yet", file=sys.stderr)
        return 1
    out = io.StringIO()
    writer = csv.DictWriter(out, FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    (RESULTS / f"{STEM}.csv").write_text(out.getvalue())
    (RESULTS / f"{STEM}.png").write_bytes(figure(table))
    for line in table:
        print(f"{line['model']:<5} {line['kind']:<6} {line['sampling']:<12} NFE {line['nfe']:>3} "
              f"{float(line['train_flops']):.3g} FLOPs  FID {float(line['fid_lenet']):7.2f}")
    print(f"wrote {RESULTS / STEM}.csv and .png")
    return 0


def points(rows: list) -> list[dict]:
    """One dict per curve point (the row of each run that carries its curve) and per final row."""
    table = []
    for row in sorted(rows, key=lambda r: (r.model, r.config_label, r.seed, r.costs.get("sample_nfe") or 0)):
        sampling = f"{row.sample_options.get('sampler')} {row.sample_options.get('steps')}"
        base = {"model": row.model, "config": row.config_label, "sampling": sampling,
                "nfe": row.costs.get("sample_nfe"), "seed": row.seed}
        for point in row.curve[:-1]:  # the last curve point is the final row itself
            table.append({**base, "kind": "curve", "fraction": point["fraction"],
                          "train_kimg": point.get("train_kimg"), "train_flops": point["train_flops"],
                          "train_seconds": point.get("train_seconds"),
                          "fid_lenet": point["metrics"]["fid_lenet"]})
        table.append({**base, "kind": "curve" if len(row.curve) > 1 else "final", "fraction": 1.0,
                      "train_kimg": row.costs.get("train_kimg"), "train_flops": row.costs["train_flops"],
                      "train_seconds": row.costs.get("train_seconds"), "fid_lenet": row.metrics["fid_lenet"]})
    return table


def unfinished(runs: Path, finished: set[str]) -> list[dict]:
    """Curve points of ddpm and edm jobs whose run folder (named in ``finished`` when the store has
    its rows) has no row yet: still training."""
    import json

    table = []
    for curve_path in sorted(runs.glob("*/curve.json")):
        identities = json.loads((curve_path.parent / "job.json").read_text())["identities"]
        model, seed = identities[0][2], int(identities[0][9])
        if model not in ("ddpm", "edm") or curve_path.parent.name in finished:
            continue
        # The runner's curve setting: the sweep's setting with the fewest steps (the first such).
        options = min((json.loads(i[10]) for i in identities), key=lambda o: o.get("steps") or 0)
        from zoo.registry import get_registry

        cls = get_registry().model(model)
        config = json.loads((curve_path.parent / "config.json").read_text())["config"]
        defaults = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(cls.Config()).items()}
        label = " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
                         for k, v in config.items() if defaults.get(k) != v)
        for point in json.loads(curve_path.read_text()):
            table.append({"model": model, "config": f"{label} (unfinished)", "sampling":
                          f"{options.get('sampler')} {options.get('steps')}", "nfe": cls.sample_nfe(**options),
                          "seed": seed, "kind": "curve-unfinished", "fraction": point["fraction"],
                          "train_kimg": point.get("train_kimg"), "train_flops": point["train_flops"],
                          "train_seconds": point.get("train_seconds"), "fid_lenet": point["metrics"]["fid_lenet"]})
    return table


def figure(table: list[dict]) -> bytes:
    """FID against training FLOPs: each model's curve (its cheapest sampler) and its final sweep."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    lines = sorted({(t["model"], t["config"]) for t in table})
    for i, (model, config) in enumerate(lines):
        color = f"C{i}"
        mine = [t for t in table if (t["model"], t["config"]) == (model, config)]
        curve = sorted((t for t in mine if t["kind"].startswith("curve")), key=lambda t: float(t["train_flops"]))
        # The U-Net width is the same for every line; name what else differs.
        extra = " ".join(f for f in config.split() if not f.startswith(("base_channels=", "channel_mults=")))
        name = f"{model}{' ' + extra if extra else ''}"
        if curve:
            ax.plot([float(t["train_flops"]) for t in curve], [float(t["fid_lenet"]) for t in curve],
                    marker="o", color=color, label=f"{name}, {curve[0]['sampling']} (NFE {curve[0]['nfe']:g})")
        for t in mine:
            if t["kind"] == "final":
                ax.scatter([float(t["train_flops"])], [float(t["fid_lenet"])], marker="x", color=color)
                ax.annotate(f"{t['sampling']} (NFE {t['nfe']:g})", (float(t["train_flops"]), float(t["fid_lenet"])),
                            fontsize=7, xytext=(4, 0), textcoords="offset points", color=color)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("FID (LeNet features, lower is better)")
    ax.set_title("EDM vs DDPM, quick preset (mnist-5k, 128 kimg)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


if __name__ == "__main__":
    sys.exit(main())
