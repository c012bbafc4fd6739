"""Reliability, third round (issue 27, items 3-6 and 8): inputs that silently changed the numbers or
the identity, hostile export files, faulty plugin hooks, a full disk and unbounded resources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import zoo_in_process


def _digits_by_class(per_class: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """``uint8 N x 1 x 28 x 28`` mnist-5k training digits, sorted by class (0 first), and labels."""
    from zoo.factory import load_dataset

    ds = load_dataset("mnist-5k")
    images, labels = [], []
    for c in range(10):
        idx = torch.nonzero(ds.train_labels == c).flatten()[:per_class]
        images.append(ds.train[idx])
        labels.append(torch.full((len(idx),), c))
    return torch.cat(images).numpy(), torch.cat(labels).numpy()


def _write_folder(root: Path, images: np.ndarray, labels: np.ndarray, names: list[str]) -> None:
    from PIL import Image

    for image, label, name in zip(images, labels, names, strict=True):
        folder = root / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0]).save(folder / f"{name}.png")


def _eval_json(capsys, source: Path) -> dict:
    code, out, err = zoo_in_process(capsys, "eval", str(source), "--dataset", "mnist-5k", "--num-fake", "100",
                                    "--num-real", "300", "--json")
    assert code == 0, err
    return json.loads(out)


def test_a_class_ordered_folder_and_npz_score_like_their_shuffled_copies(tmp_path, capsys):
    images, labels = _digits_by_class()  # 300 digits, 0s first: the first 100 hold classes 0-3 only
    rng = np.random.default_rng(1)
    perm = rng.permutation(len(images))
    _write_folder(tmp_path / "ordered", images, labels, [f"{i:04d}" for i in range(len(images))])
    # The shuffled copy: the same files under random names, so sorted order mixes the classes.
    _write_folder(tmp_path / "shuffled-folder", images, labels, [f"{int(k):04d}" for k in np.argsort(perm)])
    np.savez(tmp_path / "ordered.npz", images=images)
    np.savez(tmp_path / "shuffled.npz", images=images[perm])

    results = {name: _eval_json(capsys, tmp_path / name)
               for name in ("ordered", "shuffled-folder", "ordered.npz", "shuffled.npz")}
    for name, result in results.items():
        classes = result["metrics"]["classes_lenet"]
        assert classes >= 9, (name, classes)  # file order would cover 4 classes
        assert result["source"]["num_images"] == 100 and result["source"]["source_images"] == 300
        assert any("scored 100 of the 300 images" in w for w in result["warnings"]), name
        assert result["protocol"]["fake_draw"].startswith("random")
    fids = [r["metrics"]["fid_lenet"] for r in results.values()]
    assert max(fids) < 2 * min(fids), fids  # within sampling noise of one another
    # The draw is part of the identity only where it applies: one protocol for all four sources.
    assert len({r["protocol"]["hash"] for r in results.values()}) == 1


def test_the_draw_enters_the_protocol_only_when_a_source_holds_more(tmp_path):
    from zoo.errors import MetricsError
    from zoo.factory import load_dataset
    from zoo.metrics import make_protocol
    from zoo.metrics.engine import fake_order

    ds = load_dataset("mnist-5k")
    plain = make_protocol(ds, num_real=100, num_fake=50)
    same = make_protocol(ds, num_real=100, num_fake=50, source_images=50)
    drawn = make_protocol(ds, num_real=100, num_fake=50, source_images=80)
    assert "fake_draw" not in plain.identity() and plain.hash == same.hash  # no existing hash moves
    assert drawn.hash != plain.hash and drawn.fake_draw
    assert torch.equal(fake_order(50, plain), torch.arange(50))
    picked = fake_order(80, drawn)
    assert len(set(picked.tolist())) == 50 and picked.max() >= 50  # drawn from the whole source
    with pytest.raises(MetricsError, match="records no draw"):
        fake_order(80, plain)  # more images than a protocol without a draw: never the first ones silently
