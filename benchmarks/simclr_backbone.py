"""Time the simclr backbone's training and check that its feature space sees differences.

    python benchmarks/simclr_backbone.py [--images 2000] [--threads 2] [--compare 1000]

Makes ``--images`` 64x64 RGB pictures of coloured shapes (a circle, square or diamond of one
colour on another), trains the default simclr recipe on their 90% training split as ``zoo eval
--backbone simclr`` would (on a ``folder:`` dataset), and prints the training time, then
``fd_simclr`` / ``kid_simclr`` / ``vendi_simclr`` / ``gap_simclr`` of fresh shapes (the floor),
squares only, shapes blurred, one image repeated, and a copy of the training images. Then, with
``--compare N`` sets of N images against all training images, the Frechet distance in the
trained encoder's space and in the same encoder untrained, as multiples of a fresh draw's.
Set ``ZOO_CACHE_DIR`` to reuse an encoder trained before.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch


def shapes(n: int, size: int = 64, seed: int = 0, kinds: tuple[int, ...] = (0, 1, 2)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    out = torch.empty(n, 3, size, size, dtype=torch.uint8)
    for i in range(n):
        bg, fg = torch.randint(0, 256, (3,), generator=g), torch.randint(0, 256, (3,), generator=g)
        cx, cy = torch.randint(size // 4, 3 * size // 4, (2,), generator=g)
        r = int(torch.randint(size // 10, size // 4, (1,), generator=g))
        kind = kinds[int(torch.randint(0, len(kinds), (1,), generator=g))]
        dx, dy = (xx - cx).abs(), (yy - cy).abs()
        mask = [dx**2 + dy**2 < r * r, (dx < r) & (dy < r), dx + dy < r][kind]
        out[i] = torch.where(mask, fg[:, None, None], bg[:, None, None])
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compare", type=int, default=1000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("ZOO_CACHE_DIR", tempfile.mkdtemp(prefix="simclr-bench-"))
    from torchvision.transforms.functional import gaussian_blur

    from zoo.data import ImageDataset, split_holdout
    from zoo.metrics import evaluate, make_protocol

    train, test, _, _ = split_holdout(shapes(args.images), None, test_fraction=0.1, seed=0)  # as folder: splits
    data = ImageDataset("shapes", train, test)
    start = time.perf_counter()
    protocol = make_protocol(data, backbone="simclr")
    seconds = time.perf_counter() - start
    print(f"simclr training: {len(train)} images, {seconds:.1f} s on {args.threads} thread(s); "
          f"protocol {protocol.hash}, {protocol.num_fake} generated vs {protocol.num_real} real", flush=True)
    n = protocol.num_fake
    cases = {
        "fresh shapes (held-out)": test[:n],
        "new draw of shapes": shapes(n, seed=7),
        "squares only": shapes(n, seed=8, kinds=(1,)),
        "shapes blurred (sigma 2)": gaussian_blur(shapes(n, seed=9), kernel_size=9, sigma=2.0),
        "one image repeated": test[:1].repeat(n, 1, 1, 1),
        "copies of training images": train[:n],
    }
    print(f"{'images':28s} {'fd':>8s} {'kid':>9s} {'vendi':>7s} {'gap':>8s} {'memorised':>9s}")
    for name, images in cases.items():
        m = evaluate(images, data, protocol).metrics
        print(f"{name:28s} {m['fd_simclr']:8.3f} {m['kid_simclr']:9.4f} {m['vendi_simclr']:7.2f} "
              f"{m['gap_simclr']:8.3f} {m['memorised_simclr']:9.3f}")
    if args.compare:
        compare(args.compare, train, protocol)
    return 0


@torch.no_grad()
def compare(n: int, train: torch.Tensor, protocol) -> None:  # noqa: ANN001 - a Protocol
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torchvision.transforms.functional import gaussian_blur

    from zoo.metrics.simclr import Encoder, load_weights

    cases = {
        "fresh draw A": shapes(n, seed=7), "fresh draw B": shapes(n, seed=17),
        "squares only": shapes(n, seed=8, kinds=(1,)), "circles and diamonds only": shapes(n, seed=11, kinds=(0, 2)),
        "blurred, sigma 2": gaussian_blur(shapes(n, seed=9), kernel_size=9, sigma=2.0),
        "blurred, sigma 4": gaussian_blur(shapes(n, seed=9), kernel_size=17, sigma=4.0),
        "10% darker": (shapes(n, seed=10).float() * 0.9).to(torch.uint8), "copies of training images": train[:n],
    }
    torch.manual_seed(0)
    encoders = {"trained": load_weights(protocol.weights_path), "untrained": Encoder().eval()}
    print(f"\n{n} images vs {len(train)} training images: FD as a multiple of the fresh draws' mean")
    print(f"{'images':28s} " + " ".join(f"{k:>10s}" for k in encoders))
    values = {}
    for name, enc in encoders.items():
        ref = fid_features_to_statistics(enc(train).double())
        values[name] = {k: fid_statistics_to_metric(fid_features_to_statistics(enc(v).double()), ref, False)
                        ["frechet_inception_distance"] for k, v in cases.items()}
    for case in cases:
        row = [values[e][case] / ((values[e]["fresh draw A"] + values[e]["fresh draw B"]) / 2) for e in encoders]
        print(f"{case:28s} " + " ".join(f"{v:10.2f}" for v in row))


if __name__ == "__main__":
    sys.exit(main())
