"""Eight real `zoo bench` processes writing to one results store at once lose no row."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import EXAMPLE_SRC, ROOT
from zoo.bench.store import ResultsStore


@pytest.mark.slow
def test_eight_concurrent_bench_processes_keep_every_row(tmp_path):
    store = tmp_path / "results.sqlite"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXAMPLE_SRC)]), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-m", "zoo", "bench", "--models", "gan,vae", "--preset", "smoke", "--seeds", str(seed),
                          "--results", str(store), "--runs-dir", str(tmp_path / "runs"), "--json"],
                         cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for seed in range(8)
    ]
    for p in procs:
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err
    rows = ResultsStore(store).rows()
    assert sorted((r.model, r.seed) for r in rows) == sorted((m, s) for m in ("gan", "vae") for s in range(8))
    assert all(r.status == "ok" for r in rows)
