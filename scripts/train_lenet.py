"""Train the domain classifier behind the ``lenet`` metrics backbone and write its weights.

    python scripts/train_lenet.py                      # rebuilds zoo/assets/lenet-mnist-5k.safetensors
    python scripts/train_lenet.py --dataset mnist --out /tmp/lenet-mnist.safetensors

Training is deterministic for a given recipe (seeded initialisation, shuffling, augmentation and
dropout, one CPU thread by default), so re-running it on the same torch version reproduces the
weights; their content hash (``zoo.metrics.lenet.weights_digest``) is the backbone's weights hash in
every protocol that uses them. The held-out accuracy is
measured on the dataset's test split, which training never sees, and stored in the file's metadata.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from zoo.factory import load_dataset
from zoo.metrics import lenet
from zoo.metrics.backbones import SHIPPED_LENET, file_sha256, train_lenet_for


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist-5k", help="a labelled genzoo dataset (default: mnist-5k)")
    parser.add_argument("--out", type=Path, help="output .safetensors (default: the shipped asset for mnist-5k)")
    parser.add_argument("--steps", type=int, default=lenet.Recipe.steps, help="optimiser steps (default: the recipe's)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 keeps the result bit-reproducible)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    out = args.out or SHIPPED_LENET.get(args.dataset)
    if out is None:
        parser.error(f"--out is required for {args.dataset} (only mnist-5k weights ship with genzoo)")
    ds = load_dataset(args.dataset)
    recipe = lenet.Recipe(steps=args.steps)
    print(f"training lenet on {ds.name}: {len(ds.train)} train images, recipe {recipe}", file=sys.stderr)
    start = time.perf_counter()
    train_lenet_for(ds, out, recipe, progress=lambda task, done, total: print(f"  {done}/{total} steps", file=sys.stderr))
    meta = lenet.read_metadata(out)
    print(f"wrote {out} in {time.perf_counter() - start:.0f} s")
    print(f"test accuracy on {meta['test_images']} held-out images: {float(meta['test_accuracy']):.4f}")
    print(f"file sha256 {file_sha256(out)}")
    print(f"weights hash (recorded in protocols) {lenet.weights_digest(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
