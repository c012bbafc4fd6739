"""Fault injection: signals, crashes mid-write, non-finite losses and hostile input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from tests.helpers import EXAMPLE_SRC, ROOT, zoo_in_process
from zoo.checkpoint import list_checkpoints, load_checkpoint
from zoo.data import ImageDataset
from zoo.errors import TrainingError
from zoo.testing import synthetic_images
from zoo.trainer import Trainer, TrainSettings


def _zoo_process(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXAMPLE_SRC)])}
    return subprocess.Popen([sys.executable, "-m", "zoo", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_steps(losses, n, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if losses.exists() and len(losses.read_text().splitlines()) > n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"training ended early: {proc.communicate()}")
        time.sleep(0.2)
    raise AssertionError("training did not start in time")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_a_checkpoint_at_the_step_boundary(tmp_path, signum, code):
    run = tmp_path / "run"
    proc = _zoo_process("train", "gan", "--set", "g_hidden=32", "--set", "d_units=16", "--steps", "1000000", "--checkpoint-every", "1000000", "--batch-size", "16",
                        "--run-dir", str(run), "--no-progress", cwd=tmp_path)
    _wait_for_steps(run / "losses.csv", 3, proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert f"interrupted by {signal.Signals(signum).name}" in err and "Traceback" not in err
    (ckpt,) = list_checkpoints(run)
    state = load_checkpoint(ckpt)
    assert state["step"] >= 3 and ckpt.name == f"step-{state['step']:08d}.pt"
    assert len((run / "losses.csv").read_text().splitlines()) == state["step"] + 1  # the log matches the checkpoint


def test_killed_while_writing_a_checkpoint_keeps_the_last_complete_one(tmp_path):
    """SIGKILL a process that rewrites a large checkpoint in a loop; what is on disk always loads."""
    target = tmp_path / "checkpoints" / "step-00000001.pt"
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(ROOT)!r})
        from zoo.checkpoint import save_checkpoint
        big = torch.randn(4_000_000)
        i = 0
        while True:
            save_checkpoint({str(target)!r}, {{"step": i, "w": big}})
            print(i, flush=True)
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()  # one complete write
    time.sleep(0.3)  # likely mid-write now
    proc.kill()
    proc.wait()
    state = load_checkpoint(target)
    assert state["w"].numel() == 4_000_000
    # The next training run on that directory removes the orphaned temp file.
    images = synthetic_images(24, (1, 28, 28))
    from zoo.testing import tiny_model

    Trainer(tiny_model("gan"), ImageDataset("s", images[:16], images[16:]),
            TrainSettings(steps=1, batch_size=8, device="cpu", sample_grid=0), tmp_path, progress=False).fit()
    leftovers = [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    from zoo_ppca.model import PPCA, PPCAConfig

    class Diverges(PPCA):
        def train_step(self, batch, step):
            loss = self.nll(batch)
            if step.step == 5:
                loss = loss * float("inf")
            step.optimize("main", loss)
            return {"nll": loss}

    images = synthetic_images(40, (1, 28, 28))
    data = ImageDataset("s", images[:32], images[32:])
    model = Diverges(PPCAConfig(latent_dim=2), (1, 28, 28))
    trainer = Trainer(model, data, TrainSettings(steps=10, batch_size=8, device="cpu", checkpoint_every=2, sample_grid=0),
                      tmp_path, progress=False)
    with pytest.raises(TrainingError, match=r"non-finite loss at step 5.*last good checkpoint: .*step-00000004\.pt"):
        trainer.fit()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000002.pt", "step-00000004.pt"]
    state = load_checkpoint(list_checkpoints(tmp_path)[-1])
    assert state["step"] == 4 and all(torch.isfinite(t).all() for t in state["model_state"].values())


# -- hostile input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((10, 28, 28), dtype=np.complex64), "unsupported image dtype"),
        (np.full((10, 28, 28), np.nan, dtype=np.float32), "NaN"),
        (np.full((10, 28, 28), 3.0, dtype=np.float32), "must lie in [0, 1]"),
        (np.zeros((10, 5, 28, 28), dtype=np.uint8), "channels"),
        (np.zeros((10, 28), dtype=np.uint8), "expected N x H x W"),
        (np.zeros((1, 28, 28), dtype=np.uint8), "at least 2 images"),
        (np.zeros((10, 2, 2), dtype=np.uint8), "too small"),
    ],
)
def test_bad_npz_arrays_are_one_line_usage_errors(capsys, tmp_path, array, message):
    path = tmp_path / "bad.npz"
    np.savez(path, images=array)
    code, _, err = zoo_in_process(capsys, "train", "gan", "--dataset", f"npz:{path}", "--steps", "1")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_pickled_npz_is_refused_without_running_it(capsys, tmp_path):
    path = tmp_path / "evil.npy"
    np.save(path, np.array([object()], dtype=object), allow_pickle=True)
    code, _, err = zoo_in_process(capsys, "train", "gan", "--dataset", f"npz:{path}", "--steps", "1")
    assert code == 2 and "cannot read the array" in err


@pytest.mark.parametrize("content", ["empty", "corrupt", "not-images"])
def test_bad_image_folders(capsys, tmp_path, content):
    folder = tmp_path / "imgs"
    folder.mkdir()
    if content == "corrupt":
        (folder / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
        (folder / "b.png").write_bytes(b"")
    elif content == "not-images":
        (folder / "notes.txt").write_text("hello")
    code, _, err = zoo_in_process(capsys, "train", "gan", "--dataset", f"folder:{folder}", "--steps", "1")
    assert code == 2 and "folder:" in err and len(err.strip().splitlines()) == 1, err


def test_wrong_size_for_a_model_is_refused(capsys, tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((20, 20), i * 40, dtype=np.uint8)).save(folder / f"{i}.png")
    code, _, err = zoo_in_process(capsys, "train", "dcgan", "--dataset", f"folder:{folder}", "--steps", "1")
    assert code == 2 and "20x20" in err, err


def test_resuming_after_a_crash_does_not_duplicate_logged_steps(tmp_path):
    from zoo.testing import tiny_model

    images = synthetic_images(24, (1, 28, 28))
    data = ImageDataset("s", images[:16], images[16:])
    Trainer(tiny_model("gan"), data, TrainSettings(steps=6, batch_size=8, device="cpu", checkpoint_every=4, sample_grid=0),
            tmp_path, progress=False).fit()
    for ckpt in list_checkpoints(tmp_path)[1:]:  # as if the process died after step 6 but before that save
        ckpt.unlink()
    state = load_checkpoint(list_checkpoints(tmp_path)[-1])
    assert state["step"] == 4
    trainer = Trainer(tiny_model("gan"), data, TrainSettings(steps=8, batch_size=8, device="cpu", checkpoint_every=4, sample_grid=0),
                      tmp_path, progress=False)
    trainer.load_state_dict(state)
    trainer.fit()
    steps = [int(line.split(",")[0]) for line in (tmp_path / "losses.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 9))
