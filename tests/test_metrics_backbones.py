"""The backbones: the shipped domain classifier works, first-use training is cached and
deterministic, and the Inception plumbing runs offline from a local weights file."""

from __future__ import annotations

import urllib.error

import pytest
import torch
from torchvision.transforms.functional import gaussian_blur

from zoo.data import ImageDataset
from zoo.errors import MetricsError
from zoo.factory import load_dataset
from zoo.metrics import (
    CacheWarning,
    backbone_features,
    backbones,
    compute_floor,
    compute_metrics,
    floor_images,
    lenet,
    make_protocol,
)
from zoo.metrics.backbones import SHIPPED_LENET, file_sha256


@pytest.fixture(scope="module")
def ds() -> ImageDataset:
    return load_dataset("mnist-5k")


# -- the shipped LeNet ------------------------------------------------------------------------------


def test_shipped_lenet_reaches_its_accuracy_on_held_out_digits(ds):
    path = SHIPPED_LENET["mnist-5k"]
    meta = lenet.read_metadata(path)
    assert meta["dataset_fingerprint"] == ds.fingerprint()  # trained on exactly this data's train split
    net = lenet.load_weights(path)
    acc = lenet.accuracy(net, ds.test, ds.test_labels)  # the 1000 test images training never saw
    assert acc >= 0.98
    assert acc == pytest.approx(float(meta["test_accuracy"]), abs=1e-4)
    assert make_protocol(ds, num_real=100, num_fake=100).weights_sha256 == lenet.weights_digest(path)


def test_lenet_fid_separates_real_digits_from_blurred_digits_and_noise(ds):
    protocol = make_protocol(ds, num_real=1000, num_fake=300)
    held_out = floor_images(ds, protocol)
    real = compute_floor(ds, protocol)["fid_lenet"]
    blur = compute_metrics(gaussian_blur(held_out, kernel_size=7, sigma=1.5), ds, protocol)["fid_lenet"]
    noise = torch.randint(0, 256, held_out.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    noisy = compute_metrics(noise, ds, protocol)["fid_lenet"]
    # Measured: floor ~18, blurred ~400, noise ~850.
    assert blur > 10 * real
    assert noisy > 10 * real and noisy > blur


# -- training on first use --------------------------------------------------------------------------


def bars_dataset(n_train: int = 240, n_test: int = 60) -> ImageDataset:
    """Two labelled classes of 16x16 gray images: horizontal or vertical bars at random places."""
    g = torch.Generator().manual_seed(0)

    def make(n):
        x = torch.randint(0, 40, (n, 1, 16, 16), generator=g, dtype=torch.uint8)
        y = torch.arange(n) % 2
        pos = torch.randint(2, 14, (n,), generator=g)
        for i in range(n):
            if y[i] == 0:
                x[i, 0, pos[i] - 1 : pos[i] + 1, :] = 255
            else:
                x[i, 0, :, pos[i] - 1 : pos[i] + 1] = 255
        return x, y

    (xtr, ytr), (xte, yte) = make(n_train), make(n_test)
    return ImageDataset("bars", xtr, xte, ytr, yte, 2)


@pytest.fixture
def quick_recipe(monkeypatch):
    monkeypatch.setattr(backbones, "DEFAULT_RECIPE", lenet.Recipe(steps=40, batch_size=32))


def test_lenet_is_trained_on_first_use_deterministically_and_cached(quick_recipe, tmp_path, monkeypatch):
    bars = bars_dataset()
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "a"))
    first = make_protocol(bars, num_real=200, num_fake=50)
    cached = list((tmp_path / "a" / "backbones").glob("lenet-bars-*.safetensors"))
    assert len(cached) == 1 and lenet.weights_digest(cached[0]) == first.weights_sha256
    assert float(lenet.read_metadata(cached[0])["test_accuracy"]) > 0.9  # bars are easy

    def no_training(*args, **kwargs):
        raise AssertionError("retrained although the weights were cached")

    with monkeypatch.context() as m:
        m.setattr(lenet, "train_lenet", no_training)
        assert make_protocol(bars, num_real=200, num_fake=50) == first

    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "b"))
    assert make_protocol(bars, num_real=200, num_fake=50).weights_sha256 == first.weights_sha256

    cached[0].write_bytes(cached[0].read_bytes()[:100])
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "a"))
    with pytest.warns(CacheWarning, match="retraining"):
        assert make_protocol(bars, num_real=200, num_fake=50).weights_sha256 == first.weights_sha256


def test_lenet_needs_labels():
    x = torch.zeros(40, 1, 16, 16, dtype=torch.uint8)
    with pytest.raises(MetricsError, match="no labels"):
        make_protocol(ImageDataset("unlabelled", x, x), num_real=20, num_fake=20, backbone="lenet")


# -- Inception --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_inception_weights(tmp_path_factory) -> str:
    """A state dict of torch-fidelity's Inception-v3 architecture with random weights (no download)."""
    import torch_fidelity.feature_extractor_inceptionv3 as fei

    with pytest.MonkeyPatch.context() as m:
        m.setattr(fei, "load_state_dict_from_url", lambda *a, **k: None)
        m.setattr(fei.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        torch.manual_seed(0)
        net = fei.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path_factory.mktemp("inception") / "inception-random.pth"
    torch.save(net.state_dict(), path)
    return str(path)


@pytest.fixture
def no_local_inception(tmp_path, monkeypatch):
    monkeypatch.delenv("ZOO_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def rgb_dataset() -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (30, 3, 16, 16), generator=g, dtype=torch.uint8)
    return ImageDataset("rgb-tiny", x[:20], x[20:])


def test_inception_offline_without_weights_is_one_clear_error(no_local_inception, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(MetricsError, match="not available offline.*ZOO_INCEPTION_WEIGHTS=PATH") as err:
        make_protocol(rgb_dataset(), num_real=10, num_fake=10)
    assert "\n" not in str(err.value)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("downloaded while offline"))
    with pytest.raises(MetricsError, match="ZOO_OFFLINE is set"):
        make_protocol(rgb_dataset(), num_real=10, num_fake=10)
    with pytest.raises(MetricsError, match="not found"):
        make_protocol(rgb_dataset(), num_real=10, num_fake=10, weights_path="/nonexistent/inception.pth")


class _Planted:
    """Pickled into a weights file; unpickling it would call ``_planted_code_ran``."""

    def __reduce__(self):
        return (_planted_code_ran, ())


RAN: list[bool] = []


def _planted_code_ran():
    RAN.append(True)
    return {}


def test_inception_weights_that_carry_code_are_refused(no_local_inception, tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(1), "payload": _Planted()}, path)
    protocol = make_protocol(rgb_dataset(), num_real=10, num_fake=10, weights_path=str(path))
    with pytest.raises(MetricsError, match="not a plain state dict"):
        compute_metrics(rgb_dataset().test, rgb_dataset(), protocol)
    assert not RAN


def test_inception_backbone_builds_offline_from_a_local_weights_file(random_inception_weights, no_local_inception, monkeypatch):
    data = rgb_dataset()
    monkeypatch.setenv("ZOO_INCEPTION_WEIGHTS", random_inception_weights)
    protocol = make_protocol(data, num_real=10, num_fake=10)
    assert protocol.backbone == "inception" and protocol.feature_extractor == "inception-v3-compat"
    assert protocol.weights_sha256 == file_sha256(random_inception_weights)
    assert protocol.primary_metric == "fid_inception" and "299x299" in protocol.resize
    assert dict(protocol.feature_layers) == {"isc": "logits_unbiased", "fid": "2048", "kid": "2048", "prc": "2048"}
    feats = backbone_features(data.test[:2], data, protocol)
    assert feats["2048"].shape == (2, 2048) and feats["logits_unbiased"].shape == (2, 1008)
    assert torch.isfinite(feats["2048"]).all()
    # The explicit option wins over the environment variable, and the hash follows the file.
    other = make_protocol(data, num_real=10, num_fake=10, weights_path=random_inception_weights)
    assert other == protocol


@pytest.mark.slow
def test_inception_metrics_run_end_to_end_from_a_local_weights_file(random_inception_weights, no_local_inception, monkeypatch):
    data = rgb_dataset()
    monkeypatch.setenv("ZOO_INCEPTION_WEIGHTS", random_inception_weights)
    protocol = make_protocol(data, num_real=10, num_fake=10)
    assert protocol.backbone == "inception" and protocol.feature_extractor == "inception-v3-compat"
    assert protocol.weights_sha256 == file_sha256(random_inception_weights)
    assert protocol.primary_metric == "fid_inception" and "299x299" in protocol.resize
    scores = compute_metrics(torch.flip(data.test, dims=[2]), data, protocol, batch_size=10)
    expected = {"fid_inception", "is_inception", "is_inception_std", "kid_inception",
                "kid_inception_std", "precision_inception", "recall_inception", "density_inception",
                "coverage_inception", "memorised_inception", "vendi_inception", "gap_inception"}
    assert set(scores) == expected == set(protocol.metric_names())
    assert all(v == v and abs(v) != float("inf") for v in scores.values())
    assert scores["fid_inception"] > 0
