"""Hostile image folders and label arrays: bounded before they cost anything, one line each.

Every input is built here and is tiny on disk: PNGs of blank rows are written through ``zlib`` row
by row (a 20000x20000 bomb is about 400 KB, and is never held whole in memory while it is made).
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.helpers import zoo_in_process
from zoo.data import ImageReadWarning, read_image_folder
from zoo.errors import DataError, UsageError


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def blank_png(path, width: int, height: int) -> None:
    """A valid 8-bit gray PNG of ``width x height`` zeros, compressed row by row (tiny on disk)."""
    z = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then the pixels
    parts = [z.compress(row) for _ in range(height)]
    data = b"".join(parts) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b""))


def _digits(folder, n: int = 4, size: int = 16) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(folder / f"d{i}.png")


def _one_line(text: str) -> bool:
    lines = [line for line in text.strip().splitlines() if not line.startswith("zoo: warning:")]
    return len(lines) == 1 and "Traceback" not in text


def test_a_folder_is_never_upsampled_to_its_first_or_largest_image(tmp_path, monkeypatch):
    blank_png(tmp_path / "a_big.png", 3000, 3000)  # first by name: the old reader resized all to 3000x3000
    _digits(tmp_path, 3, 16)
    Image.fromarray(np.zeros((40, 24), np.uint8)).save(tmp_path / "z_tall.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageReadWarning)
        assert read_image_folder(tmp_path, square_size="first").shape == (5, 1, 16, 16)  # the old name
        assert read_image_folder(tmp_path, square_size="smallest").shape == (5, 1, 16, 16)
        from zoo.factory import load_dataset

        assert load_dataset(f"folder:{tmp_path}").image_shape == (1, 16, 16)  # how training reads a folder
        # The side is bounded by the one limit genzoo shares with checkpoints.
        import zoo.data
        import zoo.factory

        assert zoo.factory.MAX_IMAGE_SIDE is zoo.data.MAX_IMAGE_SIDE == 4096
        monkeypatch.setattr(zoo.data, "MAX_IMAGE_SIDE", 8)
        assert read_image_folder(tmp_path, square_size="smallest").shape == (5, 1, 8, 8)
        with pytest.raises(DataError, match="square size must be 1 to 8"):
            read_image_folder(tmp_path, square_size=9)


def test_a_folder_over_the_pixel_budget_is_refused_before_decoding(tmp_path, monkeypatch):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(4):
        blank_png(folder / f"{i}.png", 600, 600)  # 360,000 bytes each once decoded
    with pytest.raises(DataError) as caught:
        read_image_folder(folder, square_size="smallest", max_bytes=2**20)
    message = str(caught.value)
    assert "\n" not in message and str(folder) in message
    assert "4 images would decode to 1.4 MiB, over the limit of 1.0 MiB" in message

    monkeypatch.setenv("ZOO_MAX_DECODED_BYTES", "1_048_576")
    with pytest.raises(DataError, match="over the limit of 1.0 MiB"):
        read_image_folder(folder)
    # Nothing was decoded: refused even though every file's pixel data is truncated away.
    for p in folder.iterdir():
        p.write_bytes(p.read_bytes()[:60])
    with pytest.raises(DataError, match="over the limit"):
        read_image_folder(folder)
    monkeypatch.setenv("ZOO_MAX_DECODED_BYTES", "lots")
    with pytest.raises(UsageError, match="ZOO_MAX_DECODED_BYTES must be a positive whole number"):
        read_image_folder(folder)


def test_the_budget_counts_what_the_reader_returns_too(tmp_path):
    _digits(tmp_path, 4, 16)  # 1 KiB of pixels, but 4 x 1 x 512 x 512 once resized up on request
    with pytest.raises(DataError, match="4 images would decode to 1.0 MiB, over the limit of 512.0 KiB"):
        read_image_folder(tmp_path, square_size=512, max_bytes=2**19)


@pytest.mark.parametrize(("width", "height"), [(13000, 13000), (20000, 20000)])
def test_a_decompression_bomb_is_one_line_naming_the_file(tmp_path, width, height):
    # 13000^2 is over Pillow's limit (a warning in Pillow); 20000^2 over twice it (Pillow's error,
    # which the old reader skipped silently).
    _digits(tmp_path, 3)
    blank_png(tmp_path / "bomb.png", width, height)
    assert (tmp_path / "bomb.png").stat().st_size < 1_000_000
    with pytest.raises(DataError) as caught:
        read_image_folder(tmp_path, square_size="smallest")
    message = str(caught.value)
    assert "\n" not in message and "bomb.png" in message and "decompression bomb" in message
    assert "over the limit of 89,478,485 pixels" in message


def test_corrupt_files_are_still_skipped_and_reported(tmp_path):
    _digits(tmp_path, 2)
    blank_png(tmp_path / "cut.png", 64, 64)
    (tmp_path / "cut.png").write_bytes((tmp_path / "cut.png").read_bytes()[:45])  # header whole, pixels cut
    with pytest.warns(ImageReadWarning, match="1 not readable"):
        assert read_image_folder(tmp_path, square_size="smallest").shape == (2, 1, 16, 16)


@pytest.mark.parametrize("hostile", ["bomb", "budget"])
def test_train_and_eval_on_a_hostile_folder_print_one_line(tmp_path, capsys, monkeypatch, hostile):
    folder = tmp_path / "data"
    folder.mkdir()
    _digits(folder, 4)
    if hostile == "bomb":
        blank_png(folder / "bomb.png", 20000, 20000)
        expected = "bomb.png"
    else:
        monkeypatch.setenv("ZOO_MAX_DECODED_BYTES", "500")
        expected = "over the limit"
    code, _, err = zoo_in_process(capsys, "train", "ddpm", "--dataset", f"folder:{folder}", "--steps", "1",
                                  "--run-dir", str(tmp_path / "run"), "--no-progress")
    assert code == 2 and _one_line(err) and expected in err, err
    assert not (tmp_path / "run").exists()
    samples = tmp_path / "samples"
    samples.mkdir()
    _digits(samples, 4, 28)
    code, _, err = zoo_in_process(capsys, "eval", str(samples), "--dataset", f"folder:{folder}")
    assert code == 2 and _one_line(err) and expected in err, err
    code, _, err = zoo_in_process(capsys, "eval", str(folder), "--dataset", "mnist-5k")  # as the scored images
    assert code == 2 and _one_line(err) and expected in err, err


@pytest.mark.parametrize("labels", [np.array([10**12] * 8), np.array([-1, 0] * 4), np.array([0.5] * 8),
                                    np.array(["a"] * 8), np.array(3)])
def test_hostile_labels_are_one_line(tmp_path, capsys, labels):
    from zoo.factory import load_dataset

    path = tmp_path / "d.npz"
    np.savez(path, images=np.zeros((8, 16, 16), np.uint8), labels=labels)
    with pytest.raises(DataError) as caught:
        load_dataset(f"npz:{path}")
    assert "\n" not in str(caught.value) and "labels" in str(caught.value)
    code, _, err = zoo_in_process(capsys, "train", "gan", "--dataset", f"npz:{path}", "--steps", "1",
                                  "--run-dir", str(tmp_path / "run"), "--no-progress")
    assert code == 2 and _one_line(err) and "labels" in err, err


def test_good_labels_still_load(tmp_path):
    from zoo.factory import load_dataset

    path = tmp_path / "d.npz"
    np.savez(path, images=np.zeros((8, 16, 16), np.uint8), labels=np.array([0, 1] * 4, np.uint8))
    ds = load_dataset(f"npz:{path}")
    assert ds.num_classes == 2 and ds.train_labels.dtype.is_floating_point is False


def test_a_postscript_file_named_png_never_reaches_ghostscript(tmp_path, monkeypatch):
    """Issue 17, case 1: Pillow would hand an EPS document to `gs` (known -dSAFER bypasses make that
    code execution). A fake `gs` first on PATH records any call; the folder reader must never make one."""
    from PIL import EpsImagePlugin

    bin_dir, marker = tmp_path / "bin", tmp_path / "gs-ran"
    bin_dir.mkdir()
    (bin_dir / "gs").write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    (bin_dir / "gs").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None, raising=False)  # Pillow caches its gs lookup
    monkeypatch.setattr(EpsImagePlugin, "gs_windows_binary", None, raising=False)
    folder = tmp_path / "data"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "ok.png")
    (folder / "x.png").write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nnewpath 0 0 moveto showpage\n%%EOF\n")
    images = read_image_folder(folder)
    assert images.shape[0] == 1 and not marker.exists()
