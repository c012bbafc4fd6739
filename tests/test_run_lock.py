"""One writer per run directory: a second train, resume or bench job gets one line naming the holder."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, run_zoo
from zoo.fileio import RunLockedError, run_lock


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path):
    with run_lock(tmp_path / "run"), pytest.raises(RunLockedError, match=f"PID {os.getpid()}"), run_lock(tmp_path / "run"):
        pass
    with run_lock(tmp_path / "run"):  # released when the block ends
        pass


def test_a_dead_holder_never_blocks(tmp_path):
    code = f"from zoo.fileio import run_lock\nimport os\nwith run_lock({str(tmp_path / 'run')!r}):\n    os._exit(0)\n"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    assert (tmp_path / "run" / ".lock").read_text().strip()  # the dead process's PID is still written
    with run_lock(tmp_path / "run"):
        pass


def test_train_and_resume_beside_a_live_trainer_are_refused(tmp_path):
    run = tmp_path / "shared"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from zoo.fileio import run_lock\nimport time\nwith run_lock({str(run)!r}):\n"
                               "    print('held', flush=True)\n    time.sleep(60)\n"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        out = run_zoo("train", "gan", "--steps", "2", "--seed", "1", "--run-dir", str(run), "--no-progress", cwd=tmp_path)
        assert out.returncode == 2 and f"PID {holder.pid}" in out.stderr and len(out.stderr.strip().splitlines()) == 1
        assert not (run / "config.json").exists()  # nothing of the second run was written
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    assert run_zoo("train", "gan", "--steps", "2", "--run-dir", str(run), "--no-progress", cwd=tmp_path).returncode == 0


def test_resume_from_a_loose_checkpoint_file(tmp_path):
    run = tmp_path / "run"
    assert run_zoo("train", "gan", "--steps", "2", "--run-dir", str(run), "--no-progress", cwd=tmp_path).returncode == 0
    loose = tmp_path / "elsewhere" / "model.pt"
    loose.parent.mkdir()
    loose.write_bytes(sorted((run / "checkpoints").glob("*.pt"))[-1].read_bytes())
    out = run_zoo("train", "--resume", str(loose), "--steps", "3", "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (loose.parent / "checkpoints" / "step-00000003.pt").is_file()
