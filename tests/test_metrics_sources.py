"""Scoring sources (issue 27 items 3 and 5): a source holding more images than the protocol scores
is drawn from at random, never in file order, and a source is identified by its content."""

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


def test_three_spellings_of_one_npz_give_one_protocol_and_one_cached_lenet(tmp_path, monkeypatch):
    import shutil

    from zoo.factory import load_dataset
    from zoo.metrics import backbones, make_protocol
    from zoo.metrics.lenet import Recipe

    recipe = Recipe(steps=5, batch_size=16)  # a token classifier: this test is about its cache key
    monkeypatch.setattr(backbones, "DEFAULT_RECIPE", recipe)
    trained = []
    train = backbones.train_lenet_for
    monkeypatch.setattr(backbones, "train_lenet_for", lambda ds, path, r=None, **kw: trained.append(path)
                        or train(ds, path, r, **kw))

    images, labels = _digits_by_class(per_class=12)
    (tmp_path / "a").mkdir()
    np.savez(tmp_path / "a" / "digits.npz", images=images, labels=labels)
    shutil.copy(tmp_path / "a" / "digits.npz", tmp_path / "copy.npz")
    monkeypatch.chdir(tmp_path)
    spellings = ["npz:a/digits.npz", f"npz:{tmp_path / 'a' / 'digits.npz'}", "npz:./a/../copy.npz"]
    datasets = [load_dataset(name) for name in spellings]
    assert len({ds.identity_name for ds in datasets}) == 1
    protocols = [make_protocol(ds, num_real=30, num_fake=10) for ds in datasets]
    assert len({p.hash for p in protocols}) == 1
    assert len(trained) == 1  # one cached lenet serves all three spellings
    assert protocols[0].dataset == f"npz:{datasets[0].fingerprint()}"
    # A folder dataset is named by content too.
    _write_folder(tmp_path / "f1", images[:20], labels[:20], [f"{i}" for i in range(20)])
    shutil.copytree(tmp_path / "f1", tmp_path / "f2")
    assert load_dataset("folder:f1").identity_name == load_dataset(f"folder:{tmp_path / 'f2'}").identity_name


def test_relabelled_data_gets_another_lenet_and_another_protocol_hash(tmp_path, monkeypatch):
    from zoo.factory import load_dataset
    from zoo.metrics import backbones, make_protocol
    from zoo.metrics.lenet import Recipe

    monkeypatch.setattr(backbones, "DEFAULT_RECIPE", Recipe(steps=5, batch_size=16))  # a token net
    images, labels = _digits_by_class(per_class=8)
    np.savez(tmp_path / "a.npz", images=images, labels=labels)
    np.savez(tmp_path / "b.npz", images=images, labels=labels + 1)  # 0-9 relabelled 1-10
    np.savez(tmp_path / "c.npz", images=images)
    a, b, c = (load_dataset(f"npz:{tmp_path / n}") for n in ("a.npz", "b.npz", "c.npz"))
    # The images' fingerprint (the protocol's dataset identity) is the same; the labelled one not.
    assert a.fingerprint() == b.fingerprint() and a.identity_name == b.identity_name
    assert a.labelled_fingerprint() != b.labelled_fingerprint()
    assert c.labelled_fingerprint() == c.fingerprint()  # unlabelled: nothing to add
    pa, pb = (backbones.resolve_backbone("lenet", ds).path for ds in (a, b))
    assert pa != pb and pa.is_file() and pb.is_file()  # each labelling trains its own classifier
    protocols = [make_protocol(ds, num_real=30, num_fake=10) for ds in (a, b)]
    assert protocols[0].weights_sha256 != protocols[1].weights_sha256
    assert protocols[0].hash != protocols[1].hash


def test_mnist_5k_keeps_its_fingerprint_and_shipped_lenet_only_for_its_own_labels(monkeypatch):
    from zoo.data import ImageDataset
    from zoo.factory import load_dataset
    from zoo.metrics import backbones

    ds = load_dataset("mnist-5k")
    # Published results (benchmarks/results, protocol f9d5027522fe) name this images-only hash.
    assert ds.fingerprint() == "30c05f1f48cc1a75"
    assert backbones.resolve_backbone("lenet", ds).path == backbones.SHIPPED_LENET["mnist-5k"]
    trained = []
    monkeypatch.setattr(backbones, "train_lenet_for", lambda d, path, r=None, **kw: trained.append(d)
                        or backbones.SHIPPED_LENET["mnist-5k"])
    relabelled = ImageDataset("mnist-5k", ds.train, ds.test, (ds.train_labels + 1) % 10,
                              ds.test_labels, 10)
    assert relabelled.fingerprint() == ds.fingerprint()
    backbones.resolve_backbone("lenet", relabelled)
    assert trained == [relabelled]  # the shipped weights were not used for other labels
