"""Training images/s of one model across precisions and batch sizes, measured side by side.

    python benchmarks/train_throughput.py [--model ddpm] [--precisions fp32,bf16] [--batch-sizes 64,128]
                                          [--threads 2] [--rounds 3] [--set KEY=VALUE ...] [--json]

This is how the CPU recipe in docs/samples.md was chosen (bf16, the default batch 128). Settings
are measured in interleaved rounds, so a neighbour's load hits them all alike, and each is
reported as the median over rounds and as a ratio to the first setting. Absolute numbers on a
shared machine are noisy; quote the ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],  # the first line; the module docstring has the rest
        epilog=f"Method and published results: docs/benchmarks.md; details: the docstring atop benchmarks/{Path(__file__).name}"
    )
    parser.add_argument("--model", default="ddpm")
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--batch-sizes", default="64,128")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10, help="timed steps per setting and round")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true", help="print JSON for machines")
    args = parser.parse_args()

    from zoo.bench.costs import measure_train
    from zoo.config import parse_assignments
    from zoo.device import (
        autocast_factory,
        check_precision,
        environment,
        make_scaler,
        resolve_device,
    )
    from zoo.errors import ZooError
    from zoo.factory import create_model, load_dataset

    try:
        torch.set_num_threads(args.threads)
        device = resolve_device(args.device)
        precisions = [check_precision(p.strip(), device) for p in args.precisions.split(",")]
        batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
        dataset = load_dataset(args.dataset).to(device)
        torch.manual_seed(0)
        model = create_model(args.model, dataset.image_shape, parse_assignments(args.overrides)).to(device)
    except (ZooError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    settings = [(p, b) for p in precisions for b in batch_sizes]
    samples: dict[tuple[str, int], list[float]] = {s: [] for s in settings}
    for _ in range(args.rounds):
        for precision, batch in settings:
            autocast = autocast_factory(precision, device)
            scaler = make_scaler(precision, device)
            result = measure_train(model, dataset.train, batch, autocast, scaler, iters=args.iters)
            samples[(precision, batch)].append(result["train_images_per_s"])

    baseline = statistics.median(samples[settings[0]])
    rows = [
        {
            "precision": p,
            "batch_size": b,
            "images_per_s": statistics.median(samples[(p, b)]),
            "steps_per_s": statistics.median(samples[(p, b)]) / b,
            "ratio": statistics.median(samples[(p, b)]) / baseline,
            "rounds": samples[(p, b)],
        }
        for p, b in settings
    ]
    env = environment(device)
    if args.json:
        print(
            json.dumps(
                {"model": args.model, "threads": args.threads, "environment": env, "rows": rows},
                indent=2,
            )
        )
        return 0
    print(
        f"{args.model} training on {env.get('device_name', device)}, {args.threads} threads, "
        f"median of {args.rounds} interleaved rounds x {args.iters} steps"
    )
    print(f"{'precision':<10}{'batch':>6}{'images/s':>10}{'steps/s':>9}{'ratio':>7}")
    for r in rows:
        print(
            f"{r['precision']:<10}{r['batch_size']:>6}{r['images_per_s']:>10.0f}{r['steps_per_s']:>9.2f}{r['ratio']:>7.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
