"""``zoo sample`` streams large requests: batch by batch to a folder or .npz, bit for bit the images
``generate`` returns, no half file under a final name, and a grid too large for memory refused up front."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import train_tiny_gan, zoo_in_process


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return train_tiny_gan(tmp_path_factory.mktemp("sampling"))


def _model(run_dir):
    from zoo.checkpoint import load_model

    return load_model(run_dir)[0]


def _folder_images(folder: Path) -> np.ndarray:
    arrays = [np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))]
    return np.stack(arrays)[:, None]


def test_streamed_npz_and_folder_equal_the_in_memory_images_bit_for_bit(run_dir, tmp_path, capsys):
    from zoo.sampling import generate, generate_batches

    expected = generate(_model(run_dir), 7, seed=5, batch_size=256).numpy()
    code, _, err = zoo_in_process(capsys, "sample", str(run_dir), "-n", "7", "--seed", "5", "--batch-size", "2",
                                  "--out", str(tmp_path / "s.npz"))
    assert code == 0, err
    with np.load(tmp_path / "s.npz") as f:
        assert f["images"].dtype == np.uint8 and np.array_equal(f["images"], expected)
    code, _, err = zoo_in_process(capsys, "sample", str(run_dir), "-n", "7", "--seed", "5", "--batch-size", "3",
                                  "--out", str(tmp_path / "pngs"))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == [f"{i:06d}.png" for i in range(7)]
    assert np.array_equal(_folder_images(tmp_path / "pngs"), expected)
    batches = list(generate_batches(_model(run_dir), 7, seed=5, batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 1] and np.array_equal(torch.cat(batches).numpy(), expected)


def test_the_npz_member_is_written_as_batches_come_and_each_batch_is_released(tmp_path):
    from zoo.sampling import stream_npz

    alive: list[weakref.ref] = []

    def batches():
        for i in range(6):
            gc.collect()
            assert sum(r() is not None for r in alive) <= 2, "earlier batches are still held"
            batch = torch.full((4, 3, 8, 8), i, dtype=torch.uint8)
            alive.append(weakref.ref(batch))
            yield batch

    stream_npz(batches(), tmp_path / "x.npz", (24, 3, 8, 8))
    with np.load(tmp_path / "x.npz") as f:
        images = f["images"]
    assert images.shape == (24, 3, 8, 8) and [int(images[4 * i, 0, 0, 0]) for i in range(6)] == list(range(6))
    import zipfile

    with zipfile.ZipFile(tmp_path / "x.npz") as z:
        assert z.namelist() == ["images.npy"] and z.infolist()[0].compress_type == zipfile.ZIP_DEFLATED


@pytest.mark.parametrize("kind", ["npz", "folder"])
def test_an_interrupted_write_leaves_no_half_file_under_a_final_name(tmp_path, kind, monkeypatch):
    from zoo.sampling import stream_folder, stream_npz

    def batches():
        yield torch.zeros((3, 1, 8, 8), dtype=torch.uint8)
        raise KeyboardInterrupt

    out = tmp_path / ("x.npz" if kind == "npz" else "pngs")
    if kind == "npz":
        out.write_bytes(b"the previous file")
        with pytest.raises(KeyboardInterrupt):
            stream_npz(batches(), out, (6, 1, 8, 8))
        assert out.read_bytes() == b"the previous file"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npz"]  # no temp file left
        with pytest.raises(ValueError, match="3 images written, the header promises 4"):
            stream_npz(iter([torch.zeros((3, 1, 8, 8), dtype=torch.uint8)]), out, (4, 1, 8, 8))
        assert out.read_bytes() == b"the previous file"
    else:
        with pytest.raises(KeyboardInterrupt):
            stream_folder(batches(), out)
        assert sorted(p.name for p in out.iterdir()) == ["000000.png", "000001.png", "000002.png"]
        # Killed inside an image's write: that image is neither under its name nor left as a temp file.
        real_save = Image.Image.save

        def half_save(self, fp, *args, **kwargs):
            Path(fp).write_bytes(b"\x89PNG half")
            raise KeyboardInterrupt

        monkeypatch.setattr(Image.Image, "save", half_save)
        with pytest.raises(KeyboardInterrupt):
            stream_folder([torch.zeros((1, 1, 8, 8), dtype=torch.uint8)], tmp_path / "other")
        monkeypatch.setattr(Image.Image, "save", real_save)
        assert list((tmp_path / "other").iterdir()) == []


def test_a_huge_grid_is_refused_up_front_naming_the_limit(tmp_path, capsys):
    # The source does not exist: the limit is checked before anything is loaded or sampled.
    code, _, err = zoo_in_process(capsys, "sample", str(tmp_path / "nothing"), "-n", "10000000",
                                  "--out", str(tmp_path / "g.png"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "4,096" in err and ".npz" in err
    assert not (tmp_path / "g.png").exists()


def test_a_grid_too_large_in_bytes_is_refused_before_sampling(run_dir, tmp_path, capsys, monkeypatch):
    import zoo.api.sampling
    import zoo.sampling

    monkeypatch.setattr(zoo.api.sampling, "MAX_GRID_BYTES", 1000)  # the limit moved with the verb
    monkeypatch.setattr(zoo.sampling, "generate", lambda *a, **k: pytest.fail("sampled before refusing"))
    code, _, err = zoo_in_process(capsys, "sample", str(run_dir), "-n", "4", "--out", str(tmp_path / "g.png"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "over the limit" in err


def test_large_requests_never_take_the_in_memory_path(run_dir, tmp_path, capsys, monkeypatch):
    import zoo.sampling

    monkeypatch.setattr(zoo.sampling, "generate", lambda *a, **k: pytest.fail("held every image in memory"))
    for out in ("s.npz", "pngs"):
        code, _, err = zoo_in_process(capsys, "sample", str(run_dir), "-n", "5", "--batch-size", "2",
                                      "--out", str(tmp_path / out))
        assert code == 0, err


def test_sigterm_during_a_streamed_write_removes_the_temp_file_and_exits_143(run_dir, tmp_path):
    """SIGTERM ended `zoo sample` at once (exit 143, no word), leaving a hidden temp file of up to
    gigabytes beside the output; it now unwinds like Ctrl-C."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out" / "x.npz"
    out.parent.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-m", "zoo", "sample", str(run_dir), "-n", "20000000", "--out", str(out),
                              "--batch-size", "256"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not any(out.parent.iterdir()) and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.1)  # the temp file exists: images are being written
        assert child.poll() is None, child.communicate()
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:  # never left writing 15 GB when the test fails
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 143, err
    assert err.strip().splitlines()[-1] == "zoo: terminated" and "Traceback" not in err
    assert list(out.parent.iterdir()) == []
