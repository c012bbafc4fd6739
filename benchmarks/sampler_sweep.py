"""Quality against network evaluations (NFE) for every sampler of a diffusion run, and what bf16 costs.

    python benchmarks/sampler_sweep.py RUN [--quick | --full] [--num-fake 1000] [--num-real 4000]
                                           [--threads 1] [--out benchmarks/results]

``RUN`` is a run directory or checkpoint of a model with a ``sampler`` option (``zoo train ddpm``).
Every setting of the grid samples the same ``--num-fake`` images (image ``i`` from seed ``(0, i)``,
:func:`zoo.sampling.generate`) and scores them under one protocol (:func:`zoo.metrics.make_protocol`,
the run's dataset, LeNet on the MNIST family): FID, KID, precision/recall, with the floor (held-out
real images) as the line no sampler can cross. The grid is every sampler at several step counts in
bf16 (``--option precision=bf16``, the fast path) and the reference settings again in fp32, so the
table states the quality change of bf16 sampling beside its speed (images/s, timed per setting,
sampling only).

Writes ``sampler-nfe-<dataset>-<device><threads>-torch<version>.csv``, a plot ``.png`` (FID
against NFE, log scale, one line per sampler and precision) and a Markdown table ``.md`` under
``--out``; ``--from-csv FILE`` redraws the plot and table of an earlier sweep.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

#: (sampler, steps, precision): the default grid (about 17 minutes for 1,000 images of the default
#: DDPM on one CPU thread); --full adds the paper's 1,000-step ancestral sampler (another 18 or so),
#: --quick keeps a few points of each line and the bf16-versus-fp32 pairs.
GRID: list[tuple[str, int, str]] = (
    [("ddim", s, "bf16") for s in (10, 20, 50, 100)]
    + [("dpmpp2m", s, "bf16") for s in (5, 10, 20)]
    + [("ddpm", s, "bf16") for s in (50, 100, 250)]
    + [("ddim", 50, "fp32"), ("dpmpp2m", 10, "fp32"), ("ddpm", 100, "fp32")]
)
FULL_EXTRA: list[tuple[str, int, str]] = [("ddpm", 1000, "bf16")]
QUICK: list[tuple[str, int, str]] = [
    ("ddim", 10, "bf16"), ("ddim", 50, "bf16"), ("dpmpp2m", 10, "bf16"), ("dpmpp2m", 20, "bf16"),
    ("ddpm", 100, "bf16"), ("ddim", 50, "fp32"), ("dpmpp2m", 10, "fp32"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],  # the first line; the module docstring has the rest
        epilog=f"Method and published results: docs/benchmarks.md; details: the docstring atop benchmarks/{Path(__file__).name}")
    parser.add_argument("run", type=Path, help="a run directory or checkpoint of a diffusion model")
    parser.add_argument("--quick", action="store_true", help="fewer settings (about a quarter of the time)")
    parser.add_argument("--full", action="store_true", help="also ancestral DDPM with 1,000 steps")
    parser.add_argument("--num-fake", type=int, default=1000)
    parser.add_argument("--num-real", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (more than the idle cores "
                        "makes torch wait on busy ones: several times slower on a shared machine)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--from-csv", type=Path, help="redraw the plot and Markdown of a sweep's CSV (RUN is then the title)")
    args = parser.parse_args(argv)
    if args.from_csv:
        with args.from_csv.open() as f:
            rows = [_typed(r) for r in csv.DictReader(f)]
        fid = next(k for k in rows[0] if k.startswith(("fid_", "fd_")))
        _publish(rows, fid, args.from_csv, str(args.run))
        return 0

    from zoo.checkpoint import load_model
    from zoo.device import resolve_device
    from zoo.errors import ZooError
    from zoo.factory import load_dataset
    from zoo.metrics import compute_floor, evaluate, make_protocol
    from zoo.sampling import generate

    torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
        model, meta = load_model(args.run, map_location=device)
        if "sampler" not in {o.name for o in getattr(model, "sample_options", ())}:
            raise ZooError(f"{args.run}: {meta['model']} has no sampler option")
        dataset = load_dataset(meta["dataset"], image_size=int(meta["image_shape"][1]))
        protocol = make_protocol(dataset, num_real=args.num_real, num_fake=args.num_fake, seed=0)
    except ZooError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    floor = compute_floor(dataset, protocol, device=device)
    fid = protocol.primary_metric
    rows: list[dict[str, Any]] = []
    grid = QUICK if args.quick else GRID + (FULL_EXTRA if args.full else [])
    for sampler, steps, precision in grid:
        start = time.perf_counter()
        try:  # a setting the model refuses (more steps than its T, bf16 on a device without it) is skipped
            options = model.parse_sample_options({"sampler": sampler, "steps": steps, "precision": precision})
            images = generate(model, protocol.num_fake, seed=0, options=options)
        except ZooError as exc:
            print(f"{sampler}-{steps} {precision} skipped: {exc}", file=sys.stderr)
            continue
        seconds = time.perf_counter() - start
        scores = evaluate(images, dataset, protocol, device=device).metrics
        b = protocol.tag
        rows.append({
            "sampler": sampler, "steps": steps, "nfe": model.sample_nfe(**options), "precision": precision,
            fid: round(scores[fid], 3), f"kid_{b}": f"{scores[f'kid_{b}']:.5f}",
            f"precision_{b}": round(scores[f"precision_{b}"], 4), f"recall_{b}": round(scores[f"recall_{b}"], 4),
            "images_per_s": round(protocol.num_fake / seconds, 2), "sample_seconds": round(seconds, 1),
            "floor": round(floor[fid], 3), "protocol": protocol.hash, "step": meta.get("step"),
        })
        print(json.dumps(rows[-1]), flush=True)
    tag = f"{meta['dataset']}-{device.type}{args.threads}-torch{torch.__version__.split('+')[0]}"
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"sampler-nfe-{'quick-' if args.quick else 'full-' if args.full else ''}{tag}.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _publish(rows, fid, path, f"{meta['model']} step {meta.get('step')}, {meta['dataset']}")
    return 0


def _typed(row: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


def _publish(rows: list[dict[str, Any]], fid: str, path: Path, title: str) -> None:
    """The plot (``.png``) and a Markdown table (``.md``) beside the CSV at ``path``."""
    _plot(rows, fid, float(rows[0]["floor"]), path.with_suffix(".png"), title)
    changes = _bf16_changes(rows, fid)
    lines = [f"# Quality against network evaluations: {title}", "",
             f"`python benchmarks/sampler_sweep.py RUN` (CSV: `{path.name}`). Every setting draws the same "
             f"images (seed 0) and is scored under protocol `{rows[0]['protocol']}`; the floor (held-out real "
             f"images) is {float(rows[0]['floor']):.2f}. images/s is sampling alone, timed per setting "
             "(not interleaved: read speed ratios from `benchmarks/peers.py`).", "",
             f"| sampler | steps | NFE | precision | {fid} | KID | precision | recall | images/s |",
             "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    kid = next(k for k in rows[0] if k.startswith("kid_"))
    prec = next(k for k in rows[0] if k.startswith("precision_"))
    rec = next(k for k in rows[0] if k.startswith("recall_"))
    for r in sorted(rows, key=lambda r: (r["sampler"], r["precision"], r["nfe"])):
        lines.append(f"| {r['sampler']} | {r['steps']} | {r['nfe']} | {r['precision']} | {float(r[fid]):.2f} | "
                     f"{float(r[kid]):.4g} | {float(r[prec]):.3f} | {float(r[rec]):.3f} | {float(r['images_per_s']):.3g} |")
    if changes:
        lines += ["", "What bf16 sampling changes (same noise, same protocol):", ""] + [f"- {c}" for c in changes]
    lines += ["", f"![{fid} against NFE]({path.with_suffix('.png').name})", ""]
    path.with_suffix(".md").write_text("\n".join(lines))
    for change in changes:
        print(change)
    print(f"wrote {path}, {path.with_suffix('.png').name} and {path.with_suffix('.md').name}")


def _bf16_changes(rows: list[dict[str, Any]], fid: str) -> list[str]:
    by_key = {(r["sampler"], int(r["steps"]), r["precision"]): r for r in rows}
    out = []
    for (sampler, steps, precision), row in by_key.items():
        other = by_key.get((sampler, steps, "fp32"))
        if precision == "bf16" and other is not None:
            a, b = float(row[fid]), float(other[fid])
            out.append(f"{sampler}-{steps}: {fid} {a:.2f} in bf16 against {b:.2f} in fp32 ({a - b:+.2f}), "
                       f"at {float(row['images_per_s']) / float(other['images_per_s']):.2f}x the images/s")
    return out


def _plot(rows: list[dict[str, Any]], fid: str, floor: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    lines: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        lines.setdefault((row["sampler"], row["precision"]), []).append(row)
    colours = {s: f"C{i}" for i, s in enumerate(sorted({r["sampler"] for r in rows}))}  # one colour per sampler
    for (sampler, precision), points in sorted(lines.items()):
        points.sort(key=lambda r: r["nfe"])
        ax.plot([p["nfe"] for p in points], [p[fid] for p in points], marker="o" if precision == "bf16" else "s",
                linestyle="-" if precision == "bf16" else "none", color=colours[sampler],
                markerfacecolor=None if precision == "bf16" else "none", markersize=6 if precision == "bf16" else 9,
                label=f"{sampler} ({precision})")
    ax.axhline(floor, color="grey", linestyle=":", label="floor (held-out real)")
    ax.set_xscale("log")
    ax.set_xlabel("network evaluations per image (NFE)")
    ax.set_ylabel(fid.replace("_", " ").upper().replace("FID LENET", "FID (LeNet)"))
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})  # no tool name or address in a committed file
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
