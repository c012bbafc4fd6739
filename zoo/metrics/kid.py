"""KID with every kernel entry computed once: torch-fidelity's estimator and subsets, less work.

KID (Binkowski et al. 2018, arXiv:1801.01401) averages an unbiased MMD^2 with the polynomial
kernel ``k(x, y) = (x.y / d + 1)^3`` over ``subsets`` random subsets of ``subset_size`` rows of each
feature set. ``torch_fidelity.metric_kid.kid_features_to_metric`` rebuilds three
``subset_size x subset_size`` kernel matrices per subset: with 1,000 generated and 4,000 reference
images, 100 subsets recompute each entry of the reference kernel about six times over, and KID was
a third of a warm ``zoo eval``.

`kid_features_to_metric` draws the very same subsets (the same ``RandomState`` calls in the
same order) and needs only three sums per subset (``a' K_11 a``, ``b' K_22 b``, ``a' K_12 b`` for
the subsets' indicator vectors ``a``, ``b``, plus the diagonals). It computes each kernel entry
once, in row blocks (bounded memory), in float32 like torch-fidelity, and takes the sums of all
subsets at once as float64 matrix products. The sums are exact where torch-fidelity's float32
sums round, so the two agree to about 1e-6 relative
(``tests/test_kid.py``). Where that would cost more
arithmetic than the subsets themselves (large reference sets with wide features, e.g. 50,000
Inception features), torch-fidelity's own function runs.
"""
from __future__ import annotations

import numpy as np
import torch
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kernel_poly
from torch_fidelity.metric_kid import kid_features_to_metric as _torch_fidelity_kid

#: Row block of a kernel matrix held at once (bytes, float64).
BLOCK_BYTES = 64 << 20


def kid_features_to_metric(
    features_1: torch.Tensor, features_2: torch.Tensor, *, kid_subsets: int, kid_subset_size: int, rng_seed: int,
) -> dict[str, float]:
    """``{KEY_METRIC_KID_MEAN: mean, KEY_METRIC_KID_STD: std}`` of the unbiased polynomial-kernel
    MMD^2 over ``kid_subsets`` subsets of ``kid_subset_size`` rows, the subsets torch-fidelity draws
    with ``RandomState(rng_seed)``.

    ``features_1`` (generated) and ``features_2`` (reference) are ``N x D`` float tensors (any
    device; read on the CPU in their own dtype, as torch-fidelity does). Raises ``ValueError``
    (torch-fidelity's) when either set has fewer than ``kid_subset_size`` rows.
    """
    n1, n2 = len(features_1), len(features_2)
    if n1 < kid_subset_size or n2 < kid_subset_size or features_1.dim() != 2 or kid_subsets < 1:
        return _torch_fidelity_kid(features_1, features_2, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
                                   rng_seed=rng_seed, verbose=False)
    rng = np.random.RandomState(rng_seed)
    draws = [(rng.choice(n1, kid_subset_size, replace=False), rng.choice(n2, kid_subset_size, replace=False))
             for _ in range(kid_subsets)]
    rows_1 = np.unique(np.concatenate([a for a, _ in draws]))
    rows_2 = np.unique(np.concatenate([b for _, b in draws]))
    m, d, s = kid_subset_size, features_1.shape[1], kid_subsets
    shared = (len(rows_1) + len(rows_2)) ** 2 * (d + s)
    if shared > s * 3 * m * m * d:  # recomputing per subset is cheaper
        return _torch_fidelity_kid(features_1, features_2, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
                                   rng_seed=rng_seed, verbose=False)
    x, y = features_1.cpu().numpy()[rows_1], features_2.cpu().numpy()[rows_2]
    mask_x = np.zeros((len(rows_1), s))
    mask_y = np.zeros((len(rows_2), s))
    for i, (a, b) in enumerate(draws):
        mask_x[np.searchsorted(rows_1, a), i] = 1.0
        mask_y[np.searchsorted(rows_2, b), i] = 1.0
    xx, diag_x = _subset_sums(x, x, mask_x, mask_x)
    yy, diag_y = _subset_sums(y, y, mask_y, mask_y)
    xy, _ = _subset_sums(x, y, mask_x, mask_y)
    mmds = ((xx - diag_x) + (yy - diag_y)) / (m * (m - 1)) - 2 * xy / (m * m)
    return {KEY_METRIC_KID_MEAN: float(np.mean(mmds)), KEY_METRIC_KID_STD: float(np.std(mmds))}


def _subset_sums(left: np.ndarray, right: np.ndarray, mask_left: np.ndarray, mask_right: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per subset (column of the masks): the sum of ``K(left, right)`` over the subset's rows and
    columns, and (``left is right``) the sum of its diagonal entries; both float64, shape ``S``."""
    total = np.zeros(mask_left.shape[1])
    diag = np.zeros(mask_left.shape[1])
    block = max(1, BLOCK_BYTES // (8 * len(right)))
    for start in range(0, len(left), block):
        stop = min(start + block, len(left))
        k = kernel_poly(left[start:stop], right).astype(np.float64)  # torch-fidelity's kernel, float32
        total += np.einsum("is,is->s", mask_left[start:stop], k @ mask_right)
        if left is right:
            rows = np.arange(stop - start)
            diag += k[rows, start + rows] @ mask_left[start:stop]
    return total, diag


#: Resamples of the generated images behind ``kid_<b>_std`` (protocol version 3).
KID_BOOTSTRAP = 100


def kid_bootstrap_std(
    features_1: torch.Tensor, features_2: torch.Tensor, *, resamples: int = KID_BOOTSTRAP, rng_seed: int = 0,
) -> float:
    """The uncertainty of KID that comes from the generated images: the standard deviation
    (ddof=1) of the all-pairs unbiased MMD^2 over ``resamples`` bootstrap resamples (with
    replacement, ``RandomState(rng_seed)``) of the generated features ``features_1``.

    torch-fidelity's ``kid_std`` is the spread over subsets; when a subset holds every generated
    image (``kid_subset_size == num_fake``) it measures the reference subsets only, and it was
    several times the spread of KID over fresh generated sets. A resample's pairs of the same image
    are left out (``w'Kw - sum(w^2 K_ii)`` over ``sum(w)^2 - sum(w^2)`` pairs), so duplicates do
    not inflate it. The reference term is the same in every resample and drops out of the spread;
    the cross term needs only each generated image's mean kernel value against the reference set.
    Inputs are ``N x D`` float tensors (``N >= 2``); kernel entries in float64. Returns NaN for
    fewer than 2 generated images or resamples.
    """
    n = len(features_1)
    if n < 2 or resamples < 2:
        return float("nan")
    x = features_1.detach().cpu().double().numpy()
    y = features_2.detach().cpu().double().numpy()
    d = x.shape[1]
    rng = np.random.RandomState(rng_seed)
    weights = np.stack([np.bincount(rng.randint(0, n, n), minlength=n) for _ in range(resamples)], axis=1)
    weights = weights.astype(np.float64)  # n x resamples: how often each image is drawn
    quad = np.zeros(resamples)
    cross = np.zeros(n)
    diag = np.zeros(n)
    block = max(1, BLOCK_BYTES // (8 * max(n, len(y))))
    for start in range(0, n, block):
        stop = min(start + block, n)
        k = (x[start:stop] @ x.T / d + 1.0) ** 3
        quad += np.einsum("is,is->s", weights[start:stop], k @ weights)
        diag[start:stop] = k[np.arange(stop - start), np.arange(start, stop)]
        cross[start:stop] = ((x[start:stop] @ y.T / d + 1.0) ** 3).mean(axis=1)
    w2 = weights**2
    pairs = weights.sum(0) ** 2 - w2.sum(0)
    within = (quad - diag @ w2) / pairs
    between = cross @ weights / weights.sum(0)
    return float(np.std(within - 2 * between, ddof=1))
