"""The Vendi score and the generalisation gap (docs/metrics.md): checked against independent code
(the authors' ``vendi-score`` package; a NumPy/SciPy Frechet distance) and on known cases."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from vendi_score import vendi  # the authors' package (the test extra)

from zoo.factory import load_dataset
from zoo.metric_names import higher_is_better
from zoo.metrics import (
    backbone_features,
    compute_floor,
    evaluate,
    floor_images,
    make_protocol,
    reference_images,
)
from zoo.metrics.engine import heldout_stats
from zoo.metrics.gap import gap_split
from zoo.metrics.vendi import vendi_score


@pytest.fixture(scope="module")
def ds():
    return load_dataset("mnist-5k")


# -- Vendi -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(50, 8), (8, 50), (300, 128)])
def test_vendi_agrees_with_the_authors_package(shape):
    rng = np.random.default_rng(sum(shape))
    x = np.abs(rng.normal(size=shape)) * (rng.random(shape) > 0.3)  # ReLU-like, some zero entries
    ours = vendi_score(torch.from_numpy(x).float())
    assert ours == pytest.approx(vendi.score_X(x.astype(np.float32).astype(np.float64)), abs=1e-6)
    assert ours == pytest.approx(vendi.score_dual(x.astype(np.float32).astype(np.float64)), abs=1e-6)


def test_vendi_on_known_cases():
    one = torch.tensor([[0.3, -1.0, 2.0]])
    assert vendi_score(one.repeat(40, 1)) == pytest.approx(1.0, abs=1e-9)  # n identical samples
    assert vendi_score(one.repeat(40, 1) * torch.linspace(0.5, 3, 40)[:, None]) == pytest.approx(1.0, abs=1e-9)
    assert vendi_score(torch.eye(16) * 5) == pytest.approx(16.0, abs=1e-9)  # n orthogonal samples
    q, _ = torch.linalg.qr(torch.randn(32, 32, dtype=torch.float64))
    assert vendi_score(q[:, :20].T.contiguous()) == pytest.approx(20.0, abs=1e-9)  # rotated, still orthogonal
    # Two equal halves of 10 identical samples: 2 distinct samples.
    assert vendi_score(torch.eye(2).repeat_interleave(10, dim=0)) == pytest.approx(2.0, abs=1e-9)
    with pytest.raises(ValueError):
        vendi_score(torch.zeros(0, 3))


def test_vendi_in_the_protocol_features_matches_the_package_and_sees_collapse(ds):
    p = make_protocol(ds, num_real=1000, num_fake=300)
    fresh = floor_images(ds, p)
    ev = evaluate(fresh, ds, p)
    feats = backbone_features(fresh, ds, p)["penultimate"].double().numpy()
    assert ev.metrics["vendi_lenet"] == pytest.approx(vendi.score_X(feats), abs=1e-6)
    ones = ds.test[ds.test_labels == 1][:1].repeat(300, 1, 1, 1)
    assert evaluate(ones, ds, p).metrics["vendi_lenet"] == pytest.approx(1.0, abs=1e-6)
    assert higher_is_better("vendi_lenet") and "vendi_lenet" in p.metric_names()


# -- generalisation gap ------------------------------------------------------------------------------


def frechet_scipy(a: np.ndarray, b: np.ndarray) -> float:
    """The Frechet distance of two feature sets, written out with scipy.linalg.sqrtm."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with np.errstate(all="ignore"), warnings.catch_warnings():  # LeNet has dead units: singular covariances
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_gap_split_reuses_the_floor_draw_and_keeps_the_held_out_reference_disjoint():
    split = gap_split(1000, 1000, seed=3)
    perm = torch.randperm(1000, generator=torch.Generator().manual_seed(3))  # floor_images' permutation
    assert split.count == 500 and torch.equal(split.floor, perm[:500]) and torch.equal(split.heldout, perm[500:])
    assert len(split.generated) == 500 and len(set(split.generated.tolist())) == 500
    assert not set(split.floor.tolist()) & set(split.heldout.tolist())
    small = gap_split(10_000, 1000, seed=0)  # plenty of held-out images: all generated, 1000 a side
    assert small.count == 1000 and torch.equal(small.generated, torch.arange(1000)) and len(small.heldout) == 1000


def test_gap_agrees_with_a_scipy_frechet_distance_of_both_sides(ds):
    p = make_protocol(ds, num_real=600, num_fake=400)
    fake = ds.test.flip(3)[:400]  # mirrored digits: any images will do
    ev = evaluate(fake, ds, p)
    split = gap_split(len(ds.test), p.num_fake, p.seed)
    feats = lambda x: backbone_features(x, ds, p)["penultimate"].double().numpy()  # noqa: E731
    tested, train, held = feats(fake[split.generated]), feats(reference_images(ds, p)), feats(ds.test[split.heldout])
    expected = frechet_scipy(tested, train) - frechet_scipy(tested, held)
    assert ev.metrics["gap_lenet"] == pytest.approx(expected, rel=1e-5, abs=1e-4)
    floor = compute_floor(ds, p)
    g = feats(floor_images(ds, p)[: split.count])
    assert floor["gap_lenet"] == pytest.approx(frechet_scipy(g, train) - frechet_scipy(g, held), rel=1e-5, abs=1e-4)
    cached = heldout_stats(ds, p)  # second call: from genzoo's cache, same numbers
    assert np.allclose(cached["mu"], held.mean(0), atol=1e-4)


def test_a_copy_of_the_training_images_has_a_gap_far_below_the_floor(ds):
    # A model that memorised its (500-image) training reference and returns it.
    p = make_protocol(ds, num_real=500, num_fake=500)
    floor = compute_floor(ds, p)
    copy = evaluate(reference_images(ds, p), ds, p).metrics
    fresh = evaluate(floor_images(ds, p), ds, p).metrics
    assert fresh["gap_lenet"] == pytest.approx(floor["gap_lenet"])  # the floor is fresh images, scored alike
    assert copy["gap_lenet"] < floor["gap_lenet"] - 5  # clearly negative, beyond the floor
    assert copy["memorised_lenet"] > 0.99  # the per-sample test agrees


def test_vendi_and_gap_reach_the_board_with_their_floor_and_direction():
    from zoo.bench.leaderboard import build_leaderboard, to_json, to_text
    from zoo.bench.store import ResultRow

    protocol = {"primary_metric": "fid_lenet", "backbone": "lenet"}
    floor = {"fid_lenet": 3.1, "vendi_lenet": 9.9, "gap_lenet": -10.3}

    def row(model: str, seed: int, vendi: float, gap: float) -> ResultRow:
        return ResultRow(model=model, dataset="mnist-5k", seed=seed, protocol_hash="p", protocol=protocol,
                         status="ok", metrics={"fid_lenet": 5.0 + seed, "vendi_lenet": vendi, "gap_lenet": gap},
                         floor=floor, family="gan", costs={})

    (lb,) = build_leaderboard([row("copier", 0, 9.8, -20.0), row("copier", 1, 9.6, -22.0), row("fresh", 0, 9.0, -10.0)])
    assert {"vendi_lenet", "gap_lenet"} <= set(lb.shown_metrics)
    line = lb.table.set_index("model").loc["copier"]
    assert line["vendi_lenet_mean"] == pytest.approx(9.7) and line["gap_lenet_mean"] == pytest.approx(-21.0)
    text = to_text([lb])
    assert "vendi_lenet" in text and "gap_lenet" in text and "-10.3" in text  # the gap's floor is shown
    board = json.loads(to_json([lb]))[0]
    assert board["floor"]["gap_lenet"] == -10.3 and "vendi_lenet_mean" in board["lines"][0]


def test_adding_vendi_and_the_gap_moved_no_protocol_hash_and_no_published_number(ds):
    p = make_protocol(ds)  # the default mnist-5k protocol (version 3), published in docs/metrics.md
    assert p.hash == "d8af8140e62f"
    floor = compute_floor(ds, p)
    published = {"fid_lenet": 4.30, "precision_lenet": 0.898, "recall_lenet": 0.895, "coverage_lenet": 0.662}
    assert {k: round(floor[k], 3 if k != "fid_lenet" else 2) for k in published} == published
    assert floor["memorised_lenet"] == pytest.approx(0.002, abs=5e-4) and floor["classes_lenet"] == 10
    assert round(floor["vendi_lenet"], 2) == 9.89 and round(floor["gap_lenet"], 2) == -10.30
    assert "gap_lenet" not in floor["spread"]  # one draw, disjoint from the held-out reference
