"""The plugin contract (zoo.testing.check_model) for every model, on one device, in each precision.

    python benchmarks/gpu_contract.py [--device cuda] [--precisions fp32,bf16,fp16]
                                      [--models gan,vae] [--out DIR] [--dry-run | --environment]

benchmarks/gpu_check.sh runs it on a GPU: each (model, precision) pair trains a tiny model a few
steps through the core's Trainer (fp16 with the gradient scaler), samples, checks that the noise
of an image does not depend on the batch size, and round-trips a checkpoint. One pair's failure is
recorded and the rest still run. Every built-in model is checked, variants left out (they share
their model's class). ``--dry-run`` lists the pairs without running them (what the check would do
on a machine without the device); ``--environment`` prints the device and the settings that change
numbers on it (TF32, cuDNN autotuning). Writes ``contract-<device>.csv`` (model,
precision, status, seconds, error) under ``--out``; exit 1 if any pair failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=f"Details: the docstring atop benchmarks/{Path(__file__).name}",
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precisions", default="fp32,bf16,fp16")
    parser.add_argument(
        "--models", default="", help="comma-separated (default: every registered model)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the CSV (default: none written)"
    )
    parser.add_argument("--dry-run", action="store_true", help="list the pairs, run nothing")
    parser.add_argument(
        "--environment",
        action="store_true",
        help="print the device, torch, CUDA, bf16, TF32 and cuDNN settings, run nothing",
    )
    args = parser.parse_args(argv)

    from zoo.device import PRECISIONS
    from zoo.registry import get_registry

    registry = get_registry()
    if args.environment:
        return _environment(args.device)
    # Variants share their model's class, and check_model builds the tiny config anyway.
    models = [m for m in args.models.split(",") if m] or sorted(
        m for m in registry.models if registry.entry(m).variant is None
    )
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    unknown = [m for m in models if m not in registry.models] + [
        p for p in precisions if p not in PRECISIONS
    ]
    if unknown or not precisions:
        print(
            "gpu_contract: error: unknown model or precision: " + (", ".join(unknown) or "(none)"),
            file=sys.stderr,
        )
        return 2
    pairs = [(m, p) for m in models for p in precisions]
    if args.dry_run:
        print(
            f"gpu_contract: would check {len(pairs)} pairs on {args.device}: "
            f"{len(models)} models x {', '.join(precisions)}"
        )
        for model, precision in pairs:
            print(f"  check_model({model!r}, device={args.device!r}, precision={precision!r})")
        return 0

    from zoo.errors import UsageError
    from zoo.testing import check_model

    rows = []
    for model, precision in pairs:
        start = time.perf_counter()
        try:
            check_model(model, device=args.device, precision=precision)
            status, error = "ok", ""
        except UsageError as exc:  # the device or precision is not usable here: say so, once
            print(f"gpu_contract: error: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # noqa: BLE001 - one model's failure must not hide the others'
            status, error = "failed", f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        seconds = time.perf_counter() - start
        rows.append(
            {
                "model": model,
                "precision": precision,
                "device": args.device,
                "status": status,
                "seconds": f"{seconds:.2f}",
                "error": error,
            }
        )
        print(f"{model:<16} {precision:<5} {status:<6} {seconds:6.1f} s  {error}", flush=True)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"contract-{args.device.replace(':', '')}.csv"
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"gpu_contract: wrote {path}")
    failed = [r for r in rows if r["status"] != "ok"]
    print(f"gpu_contract: {len(rows) - len(failed)} of {len(rows)} pairs passed")
    return 1 if failed else 0


def _environment(device: str) -> int:
    """One line: what the device is and the settings that change numbers on it."""
    import torch

    from zoo.device import capabilities, resolve_device
    from zoo.errors import UsageError

    try:
        target = resolve_device(device)
    except UsageError as exc:
        print(f"gpu_contract: error: {exc}", file=sys.stderr)
        return 2
    if target.type != "cuda":
        print(f"{capabilities().describe()}, torch {torch.__version__}")
        return 0
    p = torch.cuda.get_device_properties(target)
    backends = torch.backends
    print(
        f"{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, "
        f"CUDA {torch.version.cuda}, bf16 {capabilities().cuda_bf16}, "
        f"TF32 matmul {backends.cuda.matmul.allow_tf32}, TF32 cuDNN {backends.cudnn.allow_tf32}, "
        f"cudnn.benchmark {backends.cudnn.benchmark}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
