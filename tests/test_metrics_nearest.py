"""Metrics beyond FID: density/coverage, memorisation, mode coverage, warnings, DINOv2/CLIP wiring.

Density and coverage are checked against an independent NumPy/SciPy computation written from
Naeem et al. 2020's definitions; memorisation against a model that returns training images and
against held-out real images; the DINOv2 path with a tiny stand-in network (no downloads here).
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats
import torch

from zoo.errors import MetricsError
from zoo.factory import load_dataset
from zoo.metric_names import higher_is_better, protocol_warnings
from zoo.metrics import (
    backbone_features,
    compute_floor,
    evaluate,
    floor_images,
    make_protocol,
    nearest_pairs,
    reference_images,
    stats_cache,
)
from zoo.metrics import nearest as nn_metrics
from zoo.metrics.protocol import PROTOCOL_VERSION, Protocol


@pytest.fixture(scope="module")
def ds():
    return load_dataset("mnist-5k")


@pytest.fixture(scope="module")
def small(ds) -> Protocol:
    return make_protocol(ds, num_real=500, num_fake=200)


def prdc_reference(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Density and coverage written out from the paper's equations with SciPy's full distance matrices."""
    rr = scipy.spatial.distance.cdist(real, real)
    radii = np.sort(rr, axis=1)[:, k]  # column 0 is the point itself
    rf = scipy.spatial.distance.cdist(real, fake)  # N x M
    density = (rf < radii[:, None]).sum() / (k * fake.shape[0])
    coverage = (rf.min(axis=1) < radii).mean()
    return float(density), float(coverage)


# -- density and coverage ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_density_and_coverage_agree_with_an_independent_computation(seed):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(1500, 7))  # more rows than one block, to cross the block boundary
    fake = rng.normal(loc=0.3, scale=1.2, size=(1100, 7))
    k = 5
    radii = nn_metrics.knn_radii(torch.from_numpy(real), k)
    density, coverage = nn_metrics.density_coverage(torch.from_numpy(fake), torch.from_numpy(real), radii, k)
    ref_density, ref_coverage = prdc_reference(real, fake, k)
    assert density == pytest.approx(ref_density, abs=1e-6)
    assert coverage == pytest.approx(ref_coverage, abs=1e-6)
    assert density > 0 and 0 < coverage < 1


def test_density_and_coverage_on_the_protocol_features(ds, small):
    fake = floor_images(ds, small)
    ev = evaluate(fake, ds, small)
    real = backbone_features(reference_images(ds, small), ds, small)["penultimate"].double().numpy()
    feats = backbone_features(fake, ds, small)["penultimate"].double().numpy()
    density, coverage = prdc_reference(real, feats, small.prdc_neighborhood)
    assert ev.metrics["density_lenet"] == pytest.approx(density, abs=1e-6)
    assert ev.metrics["coverage_lenet"] == pytest.approx(coverage, abs=1e-6)
    # One image repeated: precision can still be 1.0, but density and coverage collapse.
    blank = fake[:1].expand(small.num_fake, -1, -1, -1).contiguous()
    collapsed = evaluate(blank, ds, small).metrics
    assert collapsed["coverage_lenet"] < 0.02


# -- memorisation ------------------------------------------------------------------------------------


def test_a_model_that_returns_training_images_is_flagged_and_held_out_images_are_not(ds, small):
    copies = reference_images(ds, small)[: small.num_fake]
    ev = evaluate(copies, ds, small)
    assert ev.metrics["memorised_lenet"] >= 0.99
    # The FID of copies is as good as the floor's: FID alone would not notice.
    assert ev.metrics["fid_lenet"] < 2 * compute_floor(ds, small)["fid_lenet"]
    # The most suspicious samples point at the training images they copy.
    assert len(ev.nearest) == nn_metrics.SUSPICIOUS and all(p["memorised"] for p in ev.nearest)
    for pair in ev.nearest:
        assert torch.equal(copies[pair["sample"]], ds.train[pair["train"]])
    pairs = nearest_pairs(copies, ds, ev.nearest)
    assert pairs.shape == (2 * nn_metrics.SUSPICIOUS, 1, 28, 28) and torch.equal(pairs[0], pairs[1])

    # Held-out real images the threshold was not set on: about the quantile (1%), far from 100%.
    floor_set = {bytes(x.numpy()) for x in floor_images(ds, small)}
    others = torch.stack([x for x in ds.test if bytes(x.numpy()) not in floor_set][: small.num_fake])
    held = evaluate(others, ds, small)
    assert held.metrics["memorised_lenet"] <= 0.05
    assert compute_floor(ds, small)["memorised_lenet"] == pytest.approx(small.memorisation_quantile, abs=0.01)
    # Half copies, half held-out: about half.
    half = torch.cat([copies[: small.num_fake // 2], others[: small.num_fake // 2]])
    assert 0.45 <= evaluate(half, ds, small).metrics["memorised_lenet"] <= 0.56


def test_memorisation_threshold_is_the_held_out_quantile():
    d = torch.arange(101, dtype=torch.float64)
    assert nn_metrics.memorisation_threshold(d, 0.01) == pytest.approx(1.0)
    result = nn_metrics.memorisation(torch.tensor([[0.0], [9.0]]), torch.tensor([[0.5], [10.0]]), threshold=1.0)
    assert result.share == 0.5 and result.indices.tolist() == [0, 1] and result.distances.tolist() == [0.5, 1.0]


# -- mode coverage -----------------------------------------------------------------------------------


def test_mode_coverage_counts_classes_and_the_kl_of_the_class_histogram(ds, small):
    assert small.num_classes == 10 and small.mode_min_share == pytest.approx(0.01)
    real = evaluate(floor_images(ds, small), ds, small).metrics
    assert real["classes_lenet"] == 10 and real["kl_classes_lenet"] < 0.05
    ones = ds.train[ds.train_labels == 1][: small.num_fake]
    collapsed = evaluate(ones, ds, small).metrics
    assert collapsed["classes_lenet"] <= 2
    # Independent KL: scipy's entropy(p, q) = sum p log(p / q), the real histogram with half counts.
    feats_fake = backbone_features(ones, ds, small)["logits"]
    feats_real = backbone_features(reference_images(ds, small), ds, small)["logits"]
    p = np.bincount(feats_fake.argmax(1).numpy(), minlength=10) / len(ones)
    q = np.bincount(feats_real.argmax(1).numpy(), minlength=10) + 0.5
    assert collapsed["kl_classes_lenet"] == pytest.approx(scipy.stats.entropy(p, q / q.sum()), abs=1e-9)
    assert collapsed["kl_classes_lenet"] > 2.0  # about -log(share of ones among the reference predictions)
    assert higher_is_better("classes_lenet") and not higher_is_better("kl_classes_lenet")
    assert not higher_is_better("memorised_lenet") and higher_is_better("density_lenet")


# -- the protocol ------------------------------------------------------------------------------------


def test_protocol_records_the_new_settings_and_reference_features_ignore_num_fake(ds, small, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    d = small.to_dict()
    assert d["version"] == PROTOCOL_VERSION == 3
    assert (d["prdc_neighborhood"], d["memorisation_quantile"], d["feature_dim"], d["metric_tag"]) == (5, 0.01, 128, "lenet")
    assert Protocol.from_dict(d) == small
    other = make_protocol(ds, num_real=500, num_fake=150)
    assert other.hash != small.hash and other.reference_hash == small.reference_hash
    evaluate(floor_images(ds, small), ds, small)
    evaluate(floor_images(ds, other)[:150], ds, other)
    refs = list((tmp_path / "metrics").glob("reference-*.npz"))
    assert [p.name for p in refs] == [stats_cache.reference_path(small.reference_hash, ds.fingerprint()).name]
    # A version-1 record keeps its hash.
    v1 = {k: v for k, v in d.items() if k in {f for f in Protocol.__dataclass_fields__} and k not in
          ("metric_tag", "feature_dim", "prdc_neighborhood", "memorisation_quantile", "num_classes", "mode_min_share")}
    v1["version"] = 1
    old = Protocol.from_dict(v1)
    assert Protocol.from_dict(old.to_dict()).hash == old.hash != small.hash


def test_version_3_floor_rules_are_part_of_the_identity_and_a_version_2_record_keeps_its_hash(ds):
    """The floor's draws, the memorisation split and KID's spread changed stored numbers: they are
    in the hash (version 3), and the default mnist-5k protocol's version-2 record still hashes
    as published (docs/metrics.md: cb70fb397979)."""
    current = make_protocol(ds)
    d = current.to_dict()
    for name, other in (("floor_draws", 10), ("floor_rule", "stratified"), ("memorisation_split", "all"),
                        ("kid_std", "subsets")):
        assert dataclasses.replace(current, **{name: other}).hash != current.hash
    v2 = {k: v for k, v in d.items() if k not in ("hash", "floor_draws", "floor_rule", "memorisation_split", "kid_std")}
    v2["version"] = 2
    old = Protocol.from_dict(v2)
    assert old.hash == "cb70fb397979" != current.hash
    assert Protocol.from_dict(old.to_dict()) == old
    with pytest.raises(MetricsError, match="version 2"):  # its numbers are no longer computed
        compute_floor(ds, old)


def test_warnings_say_where_a_number_means_little_and_what_to_change(small):
    notes = small.warnings()  # 200 images in 10 IS splits
    assert any(n.startswith("is_lenet on 200 images in 10 splits") and "--num-fake" in n for n in notes)
    tiny = {**small.to_dict(), "num_fake": 50, "kid_subset_size": 50, "feature_dim": 2048, "backbone": "inception",
            "metric_tag": "inception"}
    notes = protocol_warnings(tiny)
    assert any(n.startswith("kid_inception uses subsets of 50") for n in notes)
    assert any(n.startswith("fid_inception with 50 images in a 2048-dimensional") for n in notes)
    full = {**small.to_dict(), "num_fake": 1000, "num_real": 4000, "kid_subset_size": 1000}
    assert protocol_warnings(full) == []


# -- DINOv2 and CLIP ----------------------------------------------------------------------------------

HUBCONF = '''
dependencies = ["torch"]
import torch
from torch import nn


class TinyViT(nn.Module):
    """A stand-in with DINOv2-S's output width (384): pooled pixels through one linear layer."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.proj = nn.Linear(48, 384)

    def forward(self, x):
        return self.proj(self.pool(x).flatten(1))


def dinov2_vits14(pretrained=True, **kwargs):
    assert not pretrained, "genzoo loads the weights itself"
    return TinyViT()
'''


def _stand_in(tmp_path, seed: int = 0):
    repo = tmp_path / "dinov2-repo"
    repo.mkdir(exist_ok=True)
    (repo / "hubconf.py").write_text(HUBCONF)
    torch.manual_seed(seed)
    state = {"pool": None}
    import importlib.util

    spec = importlib.util.spec_from_file_location("stand_in_hubconf", repo / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    state = module.TinyViT().state_dict()
    weights = tmp_path / f"dinov2_vits14_pretrain-{seed}.pth"
    torch.save(state, weights)
    return repo, weights


def test_dinov2_backbone_is_wired_with_local_code_and_weights(ds, tmp_path, monkeypatch):
    repo, weights = _stand_in(tmp_path)
    monkeypatch.setenv("ZOO_DINOV2_REPO", str(repo))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    protocol = make_protocol(ds, num_real=200, num_fake=100, backbone="dinov2-vit-s-14", weights_path=str(weights))
    assert protocol.weights_sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert (protocol.feature_extractor, protocol.feature_dim, protocol.primary_metric) == ("genzoo-dinov2-vit-s-14", 384, "fd_dinov2")
    ev = evaluate(floor_images(ds, protocol), ds, protocol)
    assert set(ev.metrics) == set(protocol.metric_names()) == {
        "fd_dinov2", "kid_dinov2", "kid_dinov2_std", "precision_dinov2", "recall_dinov2", "density_dinov2",
        "coverage_dinov2", "memorised_dinov2", "vendi_dinov2", "gap_dinov2",
    }
    assert not any(k.startswith(("fid", "is_")) for k in ev.metrics)  # never called FID; no IS on embeddings
    assert any(n.startswith("fd_dinov2 with 100 images in a 384-dimensional") for n in ev.warnings)
    # Other weights are another protocol.
    _, other = _stand_in(tmp_path, seed=1)
    assert make_protocol(ds, num_real=200, num_fake=100, backbone="dinov2-vit-s-14", weights_path=str(other)).hash != protocol.hash


@pytest.mark.parametrize("backbone", ["dinov2-vit-s-14", "clip-vit-b-32"])
def test_offline_without_weights_is_one_line_naming_the_fix(ds, tmp_path, monkeypatch, backbone, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    monkeypatch.delenv("ZOO_BACKBONE_WEIGHTS", raising=False)
    monkeypatch.delenv("ZOO_DINOV2_REPO", raising=False)
    with pytest.raises(MetricsError, match="not available offline.*--backbone-weights PATH") as info:
        make_protocol(ds, num_real=200, num_fake=100, backbone=backbone)
    assert "\n" not in str(info.value)
    from zoo.cli.app import run

    np.savez(tmp_path / "x.npz", images=ds.test[:100].numpy())
    code = run(["eval", str(tmp_path / "x.npz"), "--backbone", backbone, "--num-real", "200"])
    err = capsys.readouterr().err
    assert code != 0 and "not available offline" in err and "Traceback" not in err
