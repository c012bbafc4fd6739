"""What genzoo costs on the machine this runs on: one file per machine class.

    python benchmarks/machine.py [--models gan,vae,ddpm] [--rounds 3] [--threads N]
                                 [--main-job] [--out benchmarks/results] [--json]

Measures, for each model as ``zoo bench``'s quick preset builds it here (its recipe, or the
recipe's fallback where the recipe's precision is only emulated), training images/s at the
preset's batch size and sampling images/s for each sampler setting of the preset, in interleaved
rounds (median reported). With ``--main-job`` it also runs the README's main job, ``zoo bench
--models gan,vae,ddpm``, in a fresh folder with empty caches, and records its wall time and
each row's FID_lenet.

The file is named by machine class (instruction set, cores, torch), e.g.
``machine-avx2-2c-torch2.14.1.csv``, and records the CPU's model name, the flags that decide
precision (avx2, avx512f, avx512_bf16, amx_bf16), the thread count and the precision each model
trained in. A JSON file beside it holds the same rows and the environment.

Absolute times on a shared machine are noisy: compare machine classes by these files, each
measured on a quiet machine, and quote ratios measured side by side within one file.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: The CPU flags that decide which precision genzoo picks (docs/benchmarks.md, "Machine classes").
DECIDING_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
MAIN_JOB = ["bench", "--models", "gan,vae,ddpm", "--no-progress", "--json"]


def measure_models(names: list[str], rounds: int, iters: int, n_sample: int) -> list[dict[str, Any]]:
    """Training and sampling images/s of each model as the quick preset plans it, interleaved."""
    import torch

    from zoo.bench.costs import measure_train
    from zoo.bench.presets import get_preset
    from zoo.bench.runner import plan_models
    from zoo.device import Precision
    from zoo.factory import create_model, load_dataset
    from zoo.registry import get_registry
    from zoo.sampling import generate

    device = torch.device("cpu")
    dataset = load_dataset("mnist-5k")
    plans = plan_models(get_registry(), names, preset=get_preset("quick"), dataset=dataset, device=device,
                        precision="auto", batch_size=None, overrides={}, options={})
    models = {}
    for plan in plans:
        torch.manual_seed(0)
        models[plan.name] = create_model(plan.entry.cls, dataset.image_shape, plan.overrides)
    train: dict[str, list[float]] = {p.name: [] for p in plans}
    sample: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for plan in plans:
            model = models[plan.name]
            result = measure_train(model, dataset.train, plan.batch_size, Precision.create(plan.precision, device),
                                   warmup=2, iters=iters)
            train[plan.name].append(result["train_images_per_s"])
            model.eval()
            for options in plan.sample_settings:
                generate(model, 2, seed=0, options=options)  # warm-up
                start = time.perf_counter()
                generate(model, n_sample, seed=0, options=options)
                key = (plan.name, ",".join(f"{k}={v}" for k, v in options.items()))
                sample.setdefault(key, []).append(n_sample / (time.perf_counter() - start))
            model.train()
    rows = []
    for plan in plans:
        rows.append({"kind": "train", "model": plan.name, "setting": plan.config_label, "precision": plan.precision,
                     "batch_size": plan.batch_size, "images_per_s": round(statistics.median(train[plan.name]), 1)})
        for (name, setting), values in sample.items():
            if name == plan.name:
                rows.append({"kind": "sample", "model": name, "setting": setting, "precision": plan.precision,
                             "batch_size": n_sample, "images_per_s": round(statistics.median(values), 1)})
    return rows


def run_main_job(threads: int | None) -> list[dict[str, Any]]:
    """The README's main job in a fresh folder with empty caches: wall seconds and each row's FID."""
    with tempfile.TemporaryDirectory(prefix="zoo-main-job-") as tmp:
        env = {**os.environ, "ZOO_CACHE_DIR": str(Path(tmp) / "cache"), "ZOO_RESULTS": str(Path(tmp) / "results.sqlite")}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "zoo", *MAIN_JOB], cwd=tmp, env=env, capture_output=True,
                              text=True, check=False)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"error: the main job failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    rows = [{"kind": "main_job", "model": "gan,vae,ddpm", "setting": "zoo bench --models gan,vae,ddpm",
             "seconds": round(seconds, 1)}]
    for row in json.loads(done.stdout):
        if row.get("kind", "model") != "model" or row.get("status") != "ok":
            continue
        options = row.get("sample_options") or {}
        setting = ",".join(f"{k}={v}" for k, v in options.items()) if isinstance(options, dict) else str(options)
        rows.append({"kind": "main_job_row", "model": row.get("model"), "setting": setting,
                     "precision": row.get("precision"), "fid_lenet": row.get("metrics", {}).get("fid_lenet"),
                     "seconds": row.get("costs", {}).get("train_seconds")})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=f"Method and published results: docs/benchmarks.md; details: the docstring atop benchmarks/{Path(__file__).name}",
    )
    parser.add_argument("--models", default="gan,vae,ddpm")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=5, help="timed training steps per model and round")
    parser.add_argument("--sample", type=int, default=64, help="images per timed sampling run")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--main-job", action="store_true", help="also time the README's main job (minutes)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()

    import torch

    from zoo.device import capabilities

    if args.threads:
        torch.set_num_threads(args.threads)
    caps = capabilities()
    flags, cores = caps.cpu_flags, caps.cores
    klass = caps.machine_class
    machine = {"machine_class": klass, "cpu": caps.cpu_name, "cores": cores, "threads": torch.get_num_threads(),
               "flags": " ".join(f for f in DECIDING_FLAGS if f in flags) or "none", "torch": torch.__version__}
    rows = measure_models([m.strip() for m in args.models.split(",") if m.strip()], args.rounds, args.iters, args.sample)
    if args.main_job:
        rows += run_main_job(args.threads)
    rows = [{**machine, **row} for row in rows]

    stem = f"machine-{klass}-torch{torch.__version__.split('+')[0]}"
    args.out.mkdir(parents=True, exist_ok=True)
    columns = [*machine, "kind", "model", "setting", "precision", "batch_size", "images_per_s", "seconds", "fid_lenet"]
    with open(args.out / f"{stem}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (args.out / f"{stem}.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1) + "\n")
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{klass}: {machine['cpu']}, {machine['threads']} threads, flags: {machine['flags']}")
    for row in rows:
        value = f"{row['images_per_s']:>8.1f} img/s" if "images_per_s" in row else f"{row.get('seconds') or 0:>8.1f} s"
        extra = f"  FID_lenet {row['fid_lenet']:.1f}" if row.get("fid_lenet") is not None else ""
        print(f"{row['kind']:<13}{row['model']:<14}{row.get('precision') or '':<6}{value}{extra}  {row['setting'][:24]}")
    print(f"wrote {args.out / stem}.csv and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
