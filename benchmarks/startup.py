"""Time to the first line of genzoo's listing commands, on the machine it runs on.

    python benchmarks/startup.py [--repeat 5] [--target 1.0] [--json]

Each command (``zoo list``, ``zoo plugins``, ``zoo describe ddpm``, ``zoo data list``,
``zoo leaderboard`` on a small store of synthetic rows) runs as a user would run it, in a fresh
``python -m zoo`` process; the clock stops when its first line of standard output arrives. One
untimed run per command warms the disk cache first (a *warm* machine), then the commands are run
``--repeat`` times in interleaved rounds and each is reported as the median, with its ratio to the
target (issue 21: 1 s). On a shared machine the numbers are noisy: quote the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "zoo list": ["list"],
    "zoo plugins": ["plugins"],
    "zoo describe ddpm": ["describe", "ddpm"],
    "zoo data list": ["data", "list"],
    "zoo leaderboard": ["leaderboard", "--results", "{store}"],
}


def first_line_seconds(args: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Seconds from starting ``python -m zoo ARGS`` to its first stdout line, and its exit code."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "zoo", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    proc.stdout.readline()
    seconds = time.perf_counter() - start
    proc.stdout.read()  # drain, so a long table cannot block the child
    return seconds, proc.wait()


def small_store(path: Path) -> Path:
    """A results store of a few synthetic rows (two models, two seeds), as ``zoo bench`` writes."""
    from zoo.bench.store import ResultRow, ResultsStore

    protocol = {"primary_metric": "fid_lenet", "n_gen": 1000, "backbone": "lenet"}
    rows = [ResultRow(model=model, dataset="mnist-5k", seed=seed, protocol_hash="startup", protocol=protocol,
                      status="ok", family="gan", metrics={"fid_lenet": fid + seed},
                      costs={"train_seconds": 60.0, "params": 1000})
            for model, fid in (("gan", 20.0), ("vae", 30.0)) for seed in (0, 1)]
    ResultsStore(path).add_many(rows)
    return path


def measure(repeat: int) -> list[dict]:
    env = {**os.environ, "COLUMNS": "80"}  # the installed plugins, as the user has them
    with tempfile.TemporaryDirectory() as tmp:
        store = small_store(Path(tmp) / "results.sqlite")
        commands = {name: [a.format(store=store) for a in args] for name, args in COMMANDS.items()}
        times: dict[str, list[float]] = {name: [] for name in commands}
        codes: dict[str, int] = {}
        for name, args in commands.items():  # warm-up: disk cache, .pyc files
            codes[name] = first_line_seconds(args, env)[1]
        for _ in range(repeat):  # interleaved, so a neighbour's load hits every command alike
            for name, args in commands.items():
                seconds, code = first_line_seconds(args, env)
                times[name].append(seconds)
                codes[name] = code or codes[name]
    return [{"command": name, "median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts),
             "runs": len(ts), "exit_code": codes[name]} for name, ts in times.items()]


def _cpu_model() -> str:
    from zoo.device import capabilities  # the one reader of the hardware (imports torch: fine here)

    return capabilities().cpu_name


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],  # the first line; the module docstring has the rest
        epilog=f"Details: the docstring atop benchmarks/{Path(__file__).name}")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per command (default 5)")
    parser.add_argument("--target", type=float, default=1.0, help="seconds to the first line (default 1)")
    parser.add_argument("--json", action="store_true", help="print JSON for machines")
    args = parser.parse_args()
    if args.repeat < 1 or not args.target > 0:
        parser.error("--repeat must be >= 1 and --target > 0")
    rows = measure(args.repeat)
    for row in rows:
        row["ratio_to_target"] = row["median_s"] / args.target
    machine = {"cpu": _cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version()}
    if args.json:
        print(json.dumps({"target_s": args.target, "repeat": args.repeat, "machine": machine, "commands": rows},
                         indent=2))
    else:
        print(f"time to first line, median of {args.repeat} warm runs (target {args.target:g} s)")
        print(f"{'command':<20} {'median s':>9} {'min s':>7} {'max s':>7} {'x target':>9}  exit")
        for r in rows:
            print(f"{r['command']:<20} {r['median_s']:>9.2f} {r['min_s']:>7.2f} {r['max_s']:>7.2f} "
                  f"{r['ratio_to_target']:>9.2f}  {r['exit_code']}")
    return 1 if any(r["exit_code"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
