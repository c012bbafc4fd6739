"""The metric numbers are right: FID, IS, KID and precision/recall against independent references.

Uses the shipped mnist-5k LeNet backbone at small counts so the file runs in seconds.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import scipy.linalg
import torch
import torch_fidelity
from threadpoolctl import threadpool_limits
from torchvision.transforms.functional import gaussian_blur

from zoo.data import ImageDataset
from zoo.errors import DataError, MetricsError, UnknownNameError
from zoo.factory import load_dataset
from zoo.metrics import (
    CacheWarning,
    Protocol,
    backbone_features,
    compute_floor,
    compute_metrics,
    floor_images,
    frechet_distance,
    make_protocol,
    metrics_from_features,
    reference_images,
    stats_cache,
)
from zoo.metrics.floors import floor_means


@pytest.fixture(scope="module")
def ds() -> ImageDataset:
    return load_dataset("mnist-5k")


@pytest.fixture(scope="module")
def small(ds) -> Protocol:
    return make_protocol(ds, num_real=500, num_fake=200)


def blurred(images: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    return gaussian_blur(images, kernel_size=7, sigma=sigma)


def scipy_fid(f1: np.ndarray, f2: np.ndarray) -> float:
    """Frechet distance written out independently: float64 moments and scipy's matrix square root."""
    f1, f2 = f1.astype(np.float64), f2.astype(np.float64)
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


# -- FID --------------------------------------------------------------------------------------------


def test_fid_of_the_reference_set_against_itself_is_zero(ds):
    protocol = make_protocol(ds, num_real=300, num_fake=300)
    scores = compute_metrics(reference_images(ds, protocol), ds, protocol)
    assert abs(scores["fid_lenet"]) < 1e-3
    assert scores["precision_lenet"] == 1.0 and scores["recall_lenet"] == 1.0


def test_fid_between_gaussians_equals_the_closed_form():
    rng = np.random.default_rng(0)
    d = 6
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s1, s2 = a @ a.T + 0.1 * np.eye(d), b @ b.T + 0.1 * np.eye(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    # Closed form: |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)
    r1 = scipy.linalg.sqrtm(s1).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(r1 @ s2 @ r1).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    # Diagonal covariances: |mu1 - mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2, by hand.
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    m1, m2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    assert frechet_distance(m1, np.diag(v1), m2, np.diag(v2)) == pytest.approx(1 + 4 + (1 + 0 + 4), rel=1e-12)


def test_fid_from_sampled_gaussian_features_approaches_the_closed_form(small):
    rng = np.random.default_rng(1)
    n, d = 40_000, 4
    std1, std2 = np.array([1.0, 2.0, 0.5, 1.0]), np.array([1.5, 1.0, 0.5, 3.0])
    x1 = rng.normal(size=(n, d)) * std1
    x2 = rng.normal(size=(n, d)) * std2 + np.array([1.0, 0.0, 0.0, 0.0])
    expected = 1.0 + ((std1 - std2) ** 2).sum()  # 1 + 0.25 + 1 + 0 + 4 = 6.25
    proto = dataclasses.replace(small, kid_subset_size=100, kid_subsets=2)
    feats = lambda x: {layer: torch.from_numpy(x.astype(np.float32)) for _, layer in proto.feature_layers}  # noqa: E731
    scores = metrics_from_features(feats(x1[:2000]), feats(x2[:2000]), proto)  # runs the whole pipeline
    assert scores["fid_lenet"] > 5
    from torch_fidelity.metric_fid import fid_features_to_statistics

    big = frechet_distance(
        **{k + "1": v for k, v in fid_features_to_statistics(torch.from_numpy(x1.astype(np.float32))).items()},
        **{k + "2": v for k, v in fid_features_to_statistics(torch.from_numpy(x2.astype(np.float32))).items()},
    )
    assert big == pytest.approx(expected, rel=0.02)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # dead ReLU units: a singular covariance
def test_fid_equals_an_independent_scipy_frechet_distance_on_the_same_features(ds, small):
    fake = blurred(floor_images(ds, small))
    ours = compute_metrics(fake, ds, small)["fid_lenet"]
    f_fake = backbone_features(fake, ds, small)["penultimate"].numpy()
    f_real = backbone_features(reference_images(ds, small), ds, small)["penultimate"].numpy()
    assert ours == pytest.approx(scipy_fid(f_fake, f_real), rel=1e-6)


def test_genzoo_agrees_with_torch_fidelity_calculate_metrics(ds, small):
    from zoo.metrics.engine import _weights_path, to_rgb

    class Images(torch.utils.data.Dataset):
        def __init__(self, x):
            self.x = to_rgb(x)

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i]

    fake = blurred(floor_images(ds, small), sigma=1.0)
    ours = compute_metrics(fake, ds, small)
    with threadpool_limits(limits=1, user_api="blas"):  # as genzoo does; OpenBLAS thrashes on busy machines
        theirs = torch_fidelity.calculate_metrics(
            input1=Images(fake), input2=Images(reference_images(ds, small)),
            feature_extractor="genzoo-lenet", feature_extractor_weights_path=_weights_path(small, ds),
            isc=True, fid=True, kid=True, prc=True, kid_subset_size=small.kid_subset_size, rng_seed=small.seed,
            cuda=False, cache=False, verbose=False, save_cpu_ram=True, datasets_download=False, batch_size=64,
        )
    assert ours["fid_lenet"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-6)
    assert ours["is_lenet"] == pytest.approx(theirs["inception_score_mean"], rel=1e-6)
    assert ours["kid_lenet"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-5, abs=1e-9)
    assert ours["precision_lenet"] == theirs["precision"] and ours["recall_lenet"] == theirs["recall"]


# -- IS ---------------------------------------------------------------------------------------------


def confident_logits(classes: torch.Tensor, k: int = 10) -> torch.Tensor:
    return torch.nn.functional.one_hot(classes, k).float() * 60.0


def test_is_is_10_for_confident_balanced_samples_and_1_for_a_single_class(small):
    proto = dataclasses.replace(small, isc_splits=1, kid_subset_size=50, kid_subsets=2)
    feats = lambda logits: {"logits": logits, "penultimate": torch.randn(len(logits), 8, generator=torch.Generator().manual_seed(0))}  # noqa: E731
    balanced = confident_logits(torch.arange(1000) % 10)
    one = confident_logits(torch.full((1000,), 3))
    assert metrics_from_features(feats(balanced), feats(balanced), proto)["is_lenet"] == pytest.approx(10.0, rel=1e-6)
    assert metrics_from_features(feats(one), feats(balanced), proto)["is_lenet"] == pytest.approx(1.0, rel=1e-6)
    # With the protocol's 10 shuffled splits a confident, balanced set is still near 10.
    ten = dataclasses.replace(proto, isc_splits=10)
    assert metrics_from_features(feats(balanced), feats(balanced), ten)["is_lenet"] > 9.3


def test_real_digits_score_a_high_is_with_the_domain_classifier(ds):
    # 1000 held-out digits in 10 splits of 100: nearly every digit is classified confidently.
    protocol = make_protocol(ds, num_real=500, num_fake=1000)
    assert compute_floor(ds, protocol)["is_lenet"] > 9.0


# -- determinism ------------------------------------------------------------------------------------


def test_results_do_not_depend_on_batch_size_and_the_seed_fixes_them(ds, small, tmp_path, monkeypatch):
    fake = blurred(floor_images(ds, small))
    a = compute_metrics(fake, ds, small, batch_size=200)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))  # recompute the reference features at another batch size
    b = compute_metrics(fake, ds, small, batch_size=37)
    for key in a:
        assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), key
    assert compute_metrics(fake, ds, small, batch_size=37) == b
    other = make_protocol(ds, num_real=500, num_fake=200, seed=1)
    assert other.hash != small.hash
    assert compute_metrics(fake, ds, other)["kid_lenet"] != a["kid_lenet"]


# -- the protocol -------------------------------------------------------------------------------------


def test_protocol_records_everything_and_its_hash_moves_with_each_field(ds, small):
    d = small.to_dict()
    for key in ("dataset", "num_real", "num_fake", "backbone", "weights_sha256", "resize",
                "torch_fidelity_version", "seed", "kid_subset_size", "reference_split", "dataset_fingerprint"):
        assert key in d
    assert d["hash"] == small.hash and len(small.hash) == 12
    assert small.primary_metric == "fid_lenet" and small.backbone == "lenet"
    assert small.kid_subset_size == 200 and small.torch_fidelity_version == torch_fidelity.__version__
    assert Protocol.from_dict(json.loads(json.dumps(d))) == small
    for change in ({"num_real": 501}, {"seed": 3}, {"weights_sha256": "0" * 64}, {"resize": "x"}):
        assert dataclasses.replace(small, **change).hash != small.hash
    assert dataclasses.replace(small, weights_path="/elsewhere").hash == small.hash
    with pytest.raises(dataclasses.FrozenInstanceError):
        small.num_fake = 5  # type: ignore[misc]
    with pytest.raises(MetricsError, match="does not match"):
        Protocol.from_dict({**d, "seed": 9})


def test_protocol_defaults_and_limits(ds):
    p = make_protocol(ds)
    assert (p.num_real, p.num_fake, p.kid_subset_size, p.backbone) == (4000, 1000, 1000, "lenet")
    with pytest.raises(MetricsError, match="held-out"):
        make_protocol(ds, num_fake=1001)
    with pytest.raises(MetricsError, match="num_real"):
        make_protocol(ds, num_real=5)
    with pytest.raises(UnknownNameError):
        make_protocol(ds, backbone="vgg")


def test_rgb_data_defaults_to_inception():
    from zoo.metrics import default_backbone

    x = torch.zeros(20, 3, 8, 8, dtype=torch.uint8)
    assert default_backbone(ImageDataset("rgb", x, x)) == "inception"
    gray = torch.zeros(20, 1, 8, 8, dtype=torch.uint8)
    assert default_backbone(ImageDataset("gray-unlabelled", gray, gray)) == "inception"


# -- inputs -----------------------------------------------------------------------------------------


def test_bad_generated_images_are_clear_errors(ds, small):
    good = floor_images(ds, small)
    with pytest.raises(DataError, match="1x28x28"):
        compute_metrics(torch.zeros(200, 1, 32, 32, dtype=torch.uint8), ds, small)
    with pytest.raises(DataError, match="uint8"):
        compute_metrics(good.float(), ds, small)
    with pytest.raises(MetricsError, match="200 generated images, got only 150"):
        compute_metrics(good[:150], ds, small)
    other = ImageDataset("mnist-5k", ds.train[:100], ds.test[:50], ds.train_labels[:100], ds.test_labels[:50], 10)
    with pytest.raises(MetricsError, match="fingerprint"):
        compute_metrics(good[:50], other, small)
    # Extra images beyond num_fake are never dropped silently by their order (issue 27): a protocol
    # made for a larger source records a seeded draw; one that records none refuses them.
    with pytest.raises(MetricsError, match="records no draw"):
        compute_metrics(torch.cat([good, good[:10]]), ds, small)


# -- the caches ---------------------------------------------------------------------------------------


def test_corrupt_cache_files_are_recomputed_not_fatal(ds, small, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    fake = blurred(floor_images(ds, small))
    first = compute_metrics(fake, ds, small)
    floor = compute_floor(ds, small)
    ref = stats_cache.reference_path(small.reference_hash, ds.fingerprint())
    flo = stats_cache.floor_path(small.hash)
    assert ref.is_file() and flo.is_file()

    ref.write_bytes(ref.read_bytes()[:500])  # truncated
    with pytest.warns(CacheWarning):
        assert compute_metrics(fake, ds, small) == first
    flo.write_text("{not json")  # (compute_metrics reads the floor too: it holds the memorisation threshold)
    with pytest.warns(CacheWarning):
        assert compute_floor(ds, small) == floor

    # An object array would need unpickling: refused, never executed.
    np.savez(ref, key=np.array([object()], dtype=object), mu=np.zeros(1), sigma=np.zeros((1, 1)))
    with pytest.warns(CacheWarning, match="corrupt"):
        assert compute_metrics(fake, ds, small) == first
    # A cache file written for another key is not trusted.
    layers = ["logits", "penultimate", stats_cache.RADII]
    features, mu, sigma = stats_cache.load_reference(ref, f"{small.reference_hash}-{ds.fingerprint()}", layers, 500, "penultimate")
    stats_cache.save_reference(ref, "another-key", features, mu, sigma)
    with pytest.warns(CacheWarning, match="key mismatch"):
        assert compute_metrics(fake, ds, small) == first


def test_floor_is_cached_and_disjoint_from_the_reference(ds, small):
    ref = {bytes(x.numpy()) for x in reference_images(ds, small)}
    held = floor_images(ds, small)
    assert len(held) == small.num_fake
    # mnist-5k's splits are disjoint, so no floor image is in the reference set.
    assert not any(bytes(x.numpy()) in ref for x in held)
    floor = compute_floor(ds, small)
    assert set(floor_means(floor)) == set(small.metric_names())
    assert set(floor["spread"]) == set(small.metric_names()) - {f"gap_{small.tag}"}  # the gap: one draw
    assert floor["draws"] == small.floor_draws == 5
    assert stats_cache.floor_path(small.hash).is_file()
    assert compute_floor(ds, small) == floor
