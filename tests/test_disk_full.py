"""A full disk (issue 27): a checkpoint, a sample archive or a results-store write that runs out of
room is one line, replaces nothing and leaves the run resumable.

The child processes run under ``RLIMIT_FSIZE``: a write past the limit fails with ``EFBIG`` (the
child ignores ``SIGXFSZ``, which would otherwise kill it), which genzoo treats like ``ENOSPC`` and
``EDQUOT``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import zoo_in_process

resource = pytest.importorskip("resource")

LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.argv = sys.argv[2:]  # [code, args...]
exec(sys.argv[0])
"""
TINY_GAN = ["--set", "latent_dim=8", "--set", "g_hidden=32", "--set", "d_units=16", "--set", "d_pieces=2"]


def _limited(limit: int, code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", LIMITED, str(limit), code, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _zoo_limited(limit: int, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return _limited(limit, "from zoo.cli import main; sys.exit(main(sys.argv[1:]))", *args, cwd=cwd)


def _one_line(err: str) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err and "inline_container" not in err, err


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_full_disk_at_a_checkpoint_is_one_line_keeps_the_last_one_and_resumes(tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = zoo_in_process(capsys, "train", "gan", *TINY_GAN, "--steps", "2", "--checkpoint-every", "1",
                                  "--run-dir", str(run), "--no-progress")
    assert code == 0, err
    before = _snapshot(run / "checkpoints")
    size = len(next(iter(before.values())))
    done = _zoo_limited(size // 2, "train", "gan", "--resume", str(run), "--steps", "4", "--checkpoint-every", "1",
                        "--no-progress", cwd=tmp_path)
    assert done.returncode == 1
    _one_line(done.stderr)
    assert "step 3 not saved (file size limit reached)" in done.stderr and "resumes from step 2" in done.stderr
    assert _snapshot(run / "checkpoints") == before  # nothing replaced, no temp file left
    code, _, err = zoo_in_process(capsys, "train", "gan", "--resume", str(run), "--steps", "4", "--no-progress")
    assert code == 0, err
    assert "step-00000004.pt" in os.listdir(run / "checkpoints")


def test_sample_out_npz_past_the_limit_is_one_line_and_leaves_no_temp_file(tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = zoo_in_process(capsys, "train", "gan", *TINY_GAN, "--steps", "1", "--run-dir", str(run),
                                  "--no-progress")
    assert code == 0, err
    (tmp_path / "x.npz").write_bytes(b"old")
    done = _zoo_limited(50_000, "sample", str(run), "-n", "2000", "--out", "x.npz", "--force", cwd=tmp_path)
    assert done.returncode == 1
    _one_line(done.stderr)
    assert "x.npz: file size limit reached" in done.stderr
    assert (tmp_path / "x.npz").read_bytes() == b"old"  # the old file stays
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_results_store_past_the_limit_keeps_its_rows_and_the_new_ones_aside(tmp_path):
    from tests.test_store import make_row
    from zoo.bench.executors import read_job_rows
    from zoo.bench.store import ResultsStore

    store = ResultsStore(tmp_path / "results.sqlite")
    store.add(make_row(model="old"))
    (tmp_path / "bench" / "job").mkdir(parents=True)
    code = (
        "from tests.test_store import make_row\n"
        "from zoo.bench.store import ResultsStore\n"
        "from zoo.errors import ZooError\n"
        "rows = [make_row(model=f'm{i}', run_dir=sys.argv[1]) for i in range(10)]\n"
        "store = ResultsStore(sys.argv[2])  # opened with room (its -shm file), then the disk fills\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))\n"
        "try:\n"
        "    store.add_many(rows, keep_side_file=True)\n"
        "except ZooError as exc:\n"
        "    print(type(exc).__name__, exc, file=sys.stderr)\n"
        "    sys.exit(1)\n"
    )
    env_root = str(Path(__file__).resolve().parent.parent)
    done = _limited(1 << 40, f"sys.path.insert(0, {env_root!r})\n{code}", str(tmp_path / "bench" / "job"),
                    str(tmp_path / "results.sqlite"), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    _one_line(done.stderr)
    assert done.stderr.startswith("StoreWriteError") and "rows.json" in done.stderr
    assert [r.model for r in ResultsStore(tmp_path / "results.sqlite").rows()] == ["old"]
    assert len(read_job_rows(tmp_path / "bench" / "job")) == 10
