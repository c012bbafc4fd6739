"""Concurrent processes computing the same reference statistics leave exactly one valid cache file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.helpers import ROOT


def test_concurrent_cache_writers_leave_one_valid_file(tmp_path):
    cache = tmp_path / "cache"
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(ROOT)!r})
        import torch
        torch.set_num_threads(1)
        from zoo.factory import load_dataset
        from zoo.metrics import compute_floor, make_protocol
        ds = load_dataset("mnist-5k")
        protocol = make_protocol(ds, num_real=300, num_fake=100)
        print(json.dumps(compute_floor(ds, protocol)))
    """)
    env = {**os.environ, "ZOO_CACHE_DIR": str(cache)}
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(4)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r == results[0] for r in results)
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.endswith(".tmp")], files
    stats = [p for p in files if p.suffix in (".npz", ".json")]
    assert stats, files
    names = [p.name for p in stats]
    assert len(names) == len(set(names))  # one file per key, however many writers
    again = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert json.loads(again.stdout.strip().splitlines()[-1]) == results[0]
    assert "recomput" not in again.stderr.lower()  # the file left behind is valid and reused
