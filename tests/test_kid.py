"""zoo.metrics.kid: torch-fidelity's KID, each kernel entry computed once."""

from __future__ import annotations

import pytest
import torch
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD
from torch_fidelity.metric_kid import kid_features_to_metric as torch_fidelity_kid

from zoo.metrics import kid


def _features(n: int, d: int, shift: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) + shift


@pytest.mark.parametrize(("n1", "n2", "size", "subsets", "seed"), [
    (400, 1600, 400, 100, 0),  # every generated image in every subset (zoo eval's default shape)
    (300, 500, 100, 40, 7),    # partial subsets of both sets
    (120, 120, 119, 5, 3),     # almost everything, few subsets
])
def test_kid_agrees_with_torch_fidelity(n1, n2, size, subsets, seed, monkeypatch):
    calls = []
    monkeypatch.setattr(kid, "_torch_fidelity_kid", lambda *a, **k: calls.append(1) or torch_fidelity_kid(*a, **k))
    fake, real = _features(n1, 64, 0.2, 1), _features(n2, 64, 0.0, 2)
    ours = kid.kid_features_to_metric(fake, real, kid_subsets=subsets, kid_subset_size=size, rng_seed=seed)
    theirs = torch_fidelity_kid(fake, real, kid_subsets=subsets, kid_subset_size=size, rng_seed=seed, verbose=False)
    assert not calls, "the shared-kernel path should have run"
    assert ours[KEY_METRIC_KID_MEAN] == pytest.approx(theirs[KEY_METRIC_KID_MEAN], rel=1e-5)
    assert ours[KEY_METRIC_KID_STD] == pytest.approx(theirs[KEY_METRIC_KID_STD], rel=1e-4)
    # A different seed draws different subsets: the seed is honoured, not ignored.
    other = kid.kid_features_to_metric(fake, real, kid_subsets=subsets, kid_subset_size=size, rng_seed=seed + 1)
    assert other[KEY_METRIC_KID_STD] != ours[KEY_METRIC_KID_STD]


def test_small_row_blocks_give_the_same_sums(monkeypatch):
    fake, real = _features(200, 16, 0.3, 3), _features(500, 16, 0.0, 4)
    whole = kid.kid_features_to_metric(fake, real, kid_subsets=10, kid_subset_size=150, rng_seed=0)
    monkeypatch.setattr(kid, "BLOCK_BYTES", 8 * 500 * 7)  # 7 rows at a time, a ragged last block
    blocked = kid.kid_features_to_metric(fake, real, kid_subsets=10, kid_subset_size=150, rng_seed=0)
    assert blocked[KEY_METRIC_KID_MEAN] == pytest.approx(whole[KEY_METRIC_KID_MEAN], rel=1e-9)


def test_wide_features_over_many_rows_run_torch_fidelity_itself(monkeypatch):
    """Where one shared kernel costs more arithmetic than the subsets, torch-fidelity's own code runs."""
    calls = []
    monkeypatch.setattr(kid, "_torch_fidelity_kid", lambda *a, **k: calls.append(1) or torch_fidelity_kid(*a, **k))
    fake, real = _features(100, 256, 0.1, 5), _features(2000, 256, 0.0, 6)
    ours = kid.kid_features_to_metric(fake, real, kid_subsets=3, kid_subset_size=20, rng_seed=0)
    theirs = torch_fidelity_kid(fake, real, kid_subsets=3, kid_subset_size=20, rng_seed=0, verbose=False)
    assert calls and ours == theirs


def test_too_few_rows_is_torch_fidelitys_error():
    with pytest.raises(ValueError, match="KID subset size"):
        kid.kid_features_to_metric(_features(10, 8, 0, 0), _features(50, 8, 0, 1), kid_subsets=2, kid_subset_size=20,
                                   rng_seed=0)
