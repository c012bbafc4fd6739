"""One rule for reading images (zoo.data's readers), for training folders and zoo eval alike.

Every file here is made by the test: 16-bit PNGs, RGBA PNGs and arrays, JPEG and WebP files, and the
odd files a real folder holds (hidden, empty, mislabelled, broken links, palette/LA/CMYK/I;16 modes,
EXIF rotation, animations, mixed sizes).
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.data import ImageReadWarning, ReadReport, images_from_array, read_image_folder
from zoo.errors import DataError
from zoo.metrics.sources import match_channels


def _digits(n: int = 6, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size), dtype=np.uint8)


def _read(folder, **kwargs) -> tuple[torch.Tensor, ReadReport, list[str]]:
    report = ReadReport(str(folder))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = read_image_folder(folder, report=report, **kwargs)
    return images, report, [str(w.message) for w in caught if issubclass(w.category, ImageReadWarning)]


def test_16_bit_pngs_are_scaled_to_8_bits_for_training_and_eval_alike(tmp_path):
    eight = _digits()
    for i, img in enumerate(eight):
        Image.fromarray(img.astype(np.uint16) * 257).save(tmp_path / f"{i}.png")  # 16-bit: v * 257 = v in 0..65535
    assert Image.open(tmp_path / "0.png").mode == "I;16"
    scored, report, notes = _read(tmp_path)  # zoo eval's reading: sizes kept
    trained, _, _ = _read(tmp_path, square_size="first")  # zoo train --dataset folder:...
    assert scored.shape == (6, 1, 16, 16) and torch.equal(scored[:, 0], torch.from_numpy(eight))
    assert torch.equal(trained, scored)
    assert report.converted == {"16-bit scaled to 8 bits": [f"{i}.png" for i in range(6)]}
    assert notes and "6 images read" in notes[0] and "16-bit scaled to 8 bits" in notes[0]
    # One RGB file among them: every image becomes RGB, the 16-bit ones still scaled, never clipped.
    Image.fromarray(np.stack([eight[0]] * 3, -1)).save(tmp_path / "rgb.png")
    mixed, _, _ = _read(tmp_path)
    assert mixed.shape == (7, 3, 16, 16) and torch.equal(mixed[0, 0], torch.from_numpy(eight[0]))
    gray, note = match_channels(mixed, 1)  # against a gray reference: gray again, said so
    assert gray.shape[1] == 1 and note and torch.equal(gray[:6, 0], torch.from_numpy(eight))
    # uint16 arrays follow the same rule.
    assert torch.equal(images_from_array(eight.astype(np.uint16) * 257, "a")[:, 0], torch.from_numpy(eight))


def test_rgba_is_kept_when_transparent_and_matched_to_the_reference(tmp_path):
    rgba = np.random.default_rng(1).integers(0, 256, size=(4, 8, 8, 4), dtype=np.uint8)
    for i, img in enumerate(rgba):
        Image.fromarray(img, "RGBA").save(tmp_path / f"{i}.png")
    images, report, _ = _read(tmp_path)
    assert images.shape == (4, 4, 8, 8)
    assert torch.equal(images, torch.from_numpy(rgba).permute(0, 3, 1, 2))
    same, note = match_channels(images, 4)
    assert same is images and note is None
    rgb, note = match_channels(images, 3)  # a 3-channel reference: alpha dropped, as the metrics drop it
    assert torch.equal(rgb, images[:, :3]) and "alpha" in note
    # An all-opaque alpha channel carries nothing: read as RGB, counted.
    opaque = tmp_path / "opaque"
    opaque.mkdir()
    for i, img in enumerate(rgba):
        img = img.copy()
        img[..., 3] = 255
        Image.fromarray(img, "RGBA").save(opaque / f"{i}.png")
    images, report, _ = _read(opaque)
    assert images.shape == (4, 3, 8, 8) and len(report.converted["fully opaque alpha channels dropped"]) == 4
    padded, note = match_channels(images, 4)  # a 4-channel reference: opaque alpha added
    assert padded.shape[1] == 4 and bool((padded[:, 3] == 255).all()) and note


def test_lossy_files_are_warned_about_once(tmp_path):
    img = _digits(1, 32)[0]
    for i in range(3):
        Image.fromarray(img).save(tmp_path / f"{i}.jpg", quality=75)
    Image.fromarray(img).save(tmp_path / "lossless.webp", lossless=True)
    Image.fromarray(img).save(tmp_path / "lossy.webp", quality=80)
    _, report, notes = _read(tmp_path)
    assert sorted(report.lossy) == ["0.jpg", "1.jpg", "2.jpg", "lossy.webp"]
    lossy_notes = [n for n in notes if "lossy" in n]
    assert len(lossy_notes) == 1 and "4 of 5 images are lossy" in lossy_notes[0]


def test_odd_files_on_a_real_disk_are_skipped_or_converted_and_counted(tmp_path):
    base = _digits(1, 12)[0]
    Image.fromarray(base).save(tmp_path / "a.png")
    (tmp_path / ".DS_Store").write_bytes(b"\0\1")
    Image.fromarray(base).save(tmp_path / "._a.png")  # macOS resource fork: hidden
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("%!PS-Adobe-3.0 EPSF-3.0\n")  # not an image, image extension
    (tmp_path / "labels.csv").write_text("a,0\n")
    (tmp_path / "truncated.png").write_bytes((tmp_path / "a.png").read_bytes()[:60])
    os.symlink(tmp_path / "missing.png", tmp_path / "broken.png")
    os.symlink(tmp_path / "a.png", tmp_path / "link.png")  # a link to a file is read
    (tmp_path / ".git").mkdir()
    Image.fromarray(base).save(tmp_path / ".git" / "x.png")
    sub = tmp_path / "sub"
    sub.mkdir()
    Image.fromarray(base).convert("P").save(sub / "palette.png")
    Image.fromarray(np.stack([base, base], -1), "LA").save(sub / "la.png")  # opaque? no: alpha = base
    Image.fromarray(np.stack([base] * 3, -1)).convert("CMYK").save(sub / "cmyk.tiff")
    Image.fromarray(base.astype(np.uint16) * 257).save(sub / "wide.png")
    frames = [Image.fromarray(base), Image.fromarray(255 - base)]
    frames[0].save(sub / "anim.gif", save_all=True, append_images=frames[1:])
    rotated = Image.fromarray(np.ascontiguousarray(np.rot90(base)))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display 90 degrees clockwise
    rotated.save(sub / "exif.jpg", exif=exif, quality=100)
    images, report, notes = _read(tmp_path)
    assert set(report.skipped) >= {"hidden files", "hidden folders", "empty files", "broken links"}
    assert report.skipped["hidden files"] == [".DS_Store", "._a.png"]
    unreadable = [k for k in report.skipped if k.startswith("not readable")]
    assert sorted(report.skipped[unreadable[0]]) == ["notes.png", "truncated.png"]
    assert any(k.startswith("other files") for k in report.skipped)
    for reason in ("16-bit scaled to 8 bits", "animations (first frame used)", "rotated upright per EXIF orientation",
                   "palette images expanded", "CMYK converted to RGB"):
        assert reason in report.converted, reason
    # a.png, link.png, and the six in sub/; LA has transparency, so the folder is RGBA.
    assert report.read == len(images) == 8 and images.shape[1] == 4
    assert notes and "8 images read" in notes[0] and "skipped" in notes[0]
    by_name = dict(zip(["a.png", "link.png", *sorted(p.name for p in sub.iterdir())], images, strict=True))
    assert torch.equal(by_name["anim.gif"][0], torch.from_numpy(base))  # first frame
    upright = by_name["exif.jpg"][0].int()
    assert (upright - torch.from_numpy(np.rot90(np.rot90(np.rot90(np.rot90(base))))).int()).abs().float().mean() < 8


def test_mixed_sizes_are_refused_for_scoring_and_resized_for_training(tmp_path):
    Image.fromarray(_digits(1, 16)[0]).save(tmp_path / "a.png")
    Image.fromarray(_digits(1, 20)[0]).save(tmp_path / "b.png")
    with pytest.raises(DataError, match="b.png is 20x20"):
        read_image_folder(tmp_path)
    assert read_image_folder(tmp_path, square_size="first").shape == (2, 1, 16, 16)


def test_a_folder_without_a_readable_image_is_one_clear_error(tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(DataError, match="no readable images.*1 empty files"):
        read_image_folder(tmp_path)


def test_zoo_eval_scores_rgba_samples_against_an_rgba_npz_and_warns_about_jpeg(tmp_path, capsys):
    """zoo sample writes RGBA PNGs for RGBA data; zoo eval FOLDER --dataset npz:rgba.npz must score them."""
    from zoo.cli.app import run
    from zoo.factory import load_dataset
    from zoo.metrics.backbones import SHIPPED_LENET
    from zoo.sampling import write_folder

    digits = load_dataset("mnist-5k").train[:200]
    rgba = torch.cat([digits, 255 - digits, digits // 2, torch.where(digits > 0, 255, 128).to(torch.uint8)], dim=1)
    np.savez(tmp_path / "rgba.npz", images=rgba.permute(0, 2, 3, 1).numpy())
    samples = write_folder(rgba[:30], tmp_path / "samples")
    assert Image.open(next(samples.iterdir())).mode == "RGBA"
    args = ["--dataset", f"npz:{tmp_path / 'rgba.npz'}", "--backbone", "lenet", "--backbone-weights",
            str(SHIPPED_LENET["mnist-5k"]), "--num-real", "100", "--num-fake", "20", "--json"]
    code = run(["eval", str(samples), *args])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert json.loads(out.out)["protocol"]["image_shape"] == [4, 28, 28]
    # The same images as JPEG (no alpha: RGB against the 4-channel reference): scored, and warned about.
    jpegs = tmp_path / "jpegs"
    jpegs.mkdir()
    for i, img in enumerate(rgba[:30, :3]):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(jpegs / f"{i}.jpg", quality=75)
    code = run(["eval", str(jpegs), *args])
    out = capsys.readouterr()
    assert code == 0, out.err
    err = " ".join(out.err.split())
    assert "30 of 30 images are lossy" in err and "opaque alpha channel added" in err
