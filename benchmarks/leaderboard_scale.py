"""How ``zoo leaderboard`` scales with the size of the results store.

    python benchmarks/leaderboard_scale.py                     # 100,000 rows, every format
    python benchmarks/leaderboard_scale.py -n 20000 --seeds 1  # 20,000 lines of one seed each
    python benchmarks/leaderboard_scale.py --store /tmp/s.sqlite --keep --formats table,html
    python benchmarks/leaderboard_scale.py --against ../genzoo-old --repeat 2   # ratio to a checkout

Builds a synthetic store of ``-n`` rows with the store's own writer (``ResultsStore.add_many``,
in batches): ``--boards`` protocols, lines (model x config x sampler setting) of ``--seeds``
seeds each, one row in 20 failed, realistic protocol, metric, cost, environment and curve fields.
Then runs ``zoo leaderboard --format F -o FILE`` for each format in a subprocess and prints its
wall time, peak RSS (the child's ``ru_maxrss``) and output size, one line per format, so runs
before and after a change compare directly. A store already at ``--store`` with the same row
count is reused.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROTOCOL = {
    "dataset": "mnist-5k", "dataset_fingerprint": "30c05f1f48cc1a75", "image_shape": [1, 28, 28],
    "reference_split": "train", "floor_split": "test", "num_real": 4000, "num_fake": 1000,
    "backbone": "lenet", "feature_extractor": "genzoo-lenet", "weights_sha256": "ab" * 32,
    "metrics": ["fid", "kid", "isc", "prc"], "kid_subset_size": 1000, "kid_subsets": 100,
    "prc_neighborhood": 3, "seed": 0, "primary_metric": "fid_lenet",
    "resize": "channel mean, bilinear antialiased to 28x28 when the images differ (genzoo LeNet input)",
    "torch_fidelity_version": "0.4.0", "num_classes": 10, "mode_min_share": 0.01,
}
METRICS = ("fid_lenet", "kid_lenet", "kid_lenet_std", "is_lenet", "is_lenet_std", "precision_lenet",
           "recall_lenet", "density_lenet", "coverage_lenet", "modes_lenet", "memorisation_lenet")
MODELS = ("gan", "vae", "dcgan", "wgan_gp", "ddpm", "vaegan", "flow", "cvae")
FAMILY = {"gan": "gan", "dcgan": "gan", "wgan_gp": "gan", "vaegan": "gan", "vae": "vae", "cvae": "vae",
          "ddpm": "diffusion", "flow": "flow"}


def synthetic_rows(n: int, boards: int, seeds: int, folder: Path):  # noqa: ANN201 - ResultRow
    """``n`` ResultRows over ``boards`` protocols, ``seeds`` rows per line (deterministic)."""
    from zoo.bench.store import ResultRow

    rng = random.Random(0)
    lines = max(1, n // seeds)
    for i in range(n):
        line, seed = divmod(i, seeds)
        if line >= lines:
            line, seed = lines - 1, seed + (i - lines * seeds) + seeds
        board = line % boards
        model = MODELS[(line // boards) % len(MODELS)]
        variant = line // (boards * len(MODELS))
        ok = rng.random() >= 0.05
        base = 5 + (line * 7919) % 200 / 4
        metrics = {m: base + rng.gauss(0, 1) if m.startswith("fid") else rng.random() for m in METRICS}
        yield ResultRow(
            model=model, family=FAMILY[model], plugin="genzoo", plugin_version="0.1.0",
            dataset="mnist-5k" if board % 2 == 0 else "fashion-mnist", dataset_fingerprint="30c05f1f48cc1a75",
            seed=seed, preset="quick", protocol_hash=f"{board:04d}" + "f9d5027522fe" * 5,
            protocol={**PROTOCOL, "num_fake": 1000 + board},
            config={"lr": 1e-4 * (1 + variant % 7), "latent_dim": 64 + variant, "hidden": [256, 256]},
            config_hash=f"{variant:012x}", config_label=f"lr={1e-4 * (1 + variant % 7):g} v{variant}",
            sample_options={"steps": 10 + variant % 3} if model == "ddpm" else {},
            metrics=metrics if ok else {}, status="ok" if ok else "failed",
            error="" if ok else "RuntimeError: CUDA out of memory\nTraceback ...",
            floor={"fid_lenet": 1.9, "is_lenet": 9.6, "kid_lenet": 0.0002},
            costs={"train_images_per_s": 1000 + rng.random() * 100, "params": 100_000 + variant,
                   "peak_memory_mb": 210.0, "memory_kind": "cpu rss", "train_seconds": 60.0,
                   "train_flops": 1e12, "sample_images_per_s": 5000.0, "device": "cpu"} if ok else {},
            environment={"device": "cpu", "torch": "2.15.0", "python": "3.11.7", "cpu": "x86_64 2 cores",
                         "hostname": "bench", "git": "0123456789ab"},
            budget_kind="steps", budget_amount=2000.0, precision="fp32",
            curve=[{"fraction": f, "train_steps": int(2000 * f), "train_seconds": 60 * f, "train_flops": 1e12 * f,
                    "metrics": {"fid_lenet": base * (1 + 1 / f)}} for f in (0.1, 0.25, 0.5, 1.0)] if ok else [],
            grid_path=str(folder / "bench" / f"line{line}" / f"seed{seed}" / "grid.png"),
            run_dir=str(folder / "bench" / f"line{line}" / f"seed{seed}"),
            created_at=f"2026-01-01T00:{(i // 60) % 60:02d}:{i % 60:02d}.{i:06d}+00:00",
        )


def build_store(path: Path, n: int, boards: int, seeds: int, batch: int = 2000) -> float:
    """Write the synthetic rows with the store's writer, ``batch`` rows per transaction; seconds."""
    from zoo.bench.store import ResultsStore

    start = time.perf_counter()
    store = ResultsStore(path)
    pending = []
    for row in synthetic_rows(n, boards, seeds, path.parent):
        pending.append(row)
        if len(pending) == batch:
            store.add_many(pending)
            pending = []
    if pending:
        store.add_many(pending)
    return time.perf_counter() - start


def row_count(path: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])
    except sqlite3.Error:
        return -1


def time_format(store: Path, fmt: str, out: Path, timeout: float,
                checkout: Path | None = None) -> tuple[str, float, float, int]:
    """``zoo leaderboard --format fmt``: (outcome, seconds, the child's peak RSS in MiB, output bytes).
    ``checkout``: run the genzoo in that source folder (first on PYTHONPATH) instead of this one."""
    args = [sys.executable, "-m", "zoo", "leaderboard", "--results", str(store.resolve()), "--format", fmt]
    if fmt != "table":  # the table goes to stdout (a file: the 80-column rendering)
        args += ["--output", str(out.resolve())]
    out.unlink(missing_ok=True)
    env = {**os.environ, "COLUMNS": "80"}
    # `python -m` imports from its working folder first: run in the checkout whose genzoo is timed.
    folder = (checkout or Path(__file__).resolve().parent.parent).resolve()
    env["PYTHONPATH"] = os.pathsep.join([str(folder), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        child = subprocess.Popen(args, stdout=stdout, stderr=stderr, env=env, cwd=folder)
        while True:  # wait4: this child's own rusage (RUSAGE_CHILDREN keeps the largest so far)
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            seconds = time.perf_counter() - start
            if pid:
                break
            if seconds > timeout:
                child.kill()
                _, status, usage = os.wait4(child.pid, 0)
                return f"timeout after {timeout:.0f} s", seconds, usage.ru_maxrss / 1024, 0
            time.sleep(0.05)
        child.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        outcome = "ok" if child.returncode == 0 else f"exit {child.returncode}: {stderr.read()[-200:]!r}"
        size = stdout.seek(0, 2) if fmt == "table" else (out.stat().st_size if out.exists() else 0)
    return outcome, seconds, usage.ru_maxrss / 1024, size


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rows", type=_positive, default=100_000, help="rows in the store (default 100000)")
    parser.add_argument("--seeds", type=_positive, default=5, help="rows (seeds) per leaderboard line (default 5)")
    parser.add_argument("--boards", type=_positive, default=4, help="protocols, i.e. leaderboards (default 4)")
    parser.add_argument("--formats", default="table,csv,json,html", help="comma-separated (default: all four)")
    parser.add_argument("--store", type=Path, help="store path (default: a temp folder); reused if it has -n rows")
    parser.add_argument("--keep", action="store_true", help="keep the temp store")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per format (default 600)")
    parser.add_argument("--against", type=Path, metavar="CHECKOUT",
                        help="also time the genzoo in this source folder (e.g. a `git worktree` of an older "
                             "commit), interleaved with this one format by format, and print the ratio")
    parser.add_argument("--repeat", type=_positive, default=1, help="runs per format and checkout (default 1); the "
                        "fastest counts")
    args = parser.parse_args(argv)
    known = {"table", "csv", "json", "markdown", "latex", "html"}
    unknown = [f for f in args.formats.split(",") if f not in known]
    if unknown:
        parser.error(f"--formats: unknown {', '.join(unknown)} (known: {', '.join(sorted(known))})")

    folder = Path(tempfile.mkdtemp(prefix="zoo-lb-scale-")) if args.store is None else args.store.parent
    store = args.store or folder / "results.sqlite"
    if row_count(store) != args.rows:
        store.unlink(missing_ok=True)
        seconds = build_store(store, args.rows, args.boards, args.seeds)
        print(f"built {args.rows} rows ({args.seeds} seed(s) per line, {args.boards} boards) in {seconds:.1f} s: "
              f"{store.stat().st_size / 2**20:.0f} MiB")
    else:
        print(f"reusing {store} ({args.rows} rows)")
    if args.against is None:
        print(f"{'format':<8}{'seconds':>9}{'peak MiB':>10}{'output':>12}  outcome")
    else:
        print(f"{'format':<8}{'seconds':>9}{'against':>9}{'ratio':>7}{'peak MiB':>10}{'against':>9}  outcome")
    failed = False
    for fmt in args.formats.split(","):
        out = folder / f"leaderboard.{fmt}"
        mine, theirs = [], []
        for _ in range(max(1, args.repeat)):  # interleaved: both see the same machine load
            mine.append(time_format(store, fmt, out, args.timeout))
            if args.against is not None:
                theirs.append(time_format(store, fmt, out, args.timeout, checkout=args.against))
        outcome, seconds, rss, size = min(mine, key=lambda result: result[1])
        failed = failed or any(result[0] != "ok" for result in mine)
        if args.against is None:
            print(f"{fmt:<8}{seconds:>9.1f}{rss:>10.0f}{size:>12,}  {outcome}", flush=True)
            continue
        other, other_seconds, other_rss, _ = min(theirs, key=lambda result: result[1])
        outcome = outcome if other == "ok" else f"{outcome}; against: {other}"
        print(f"{fmt:<8}{seconds:>9.1f}{other_seconds:>9.1f}{other_seconds / seconds:>7.1f}{rss:>10.0f}"
              f"{other_rss:>9.0f}  {outcome}", flush=True)
    if args.store is None and not args.keep:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"store kept at {store}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
