"""The generalisation gap: does a model score better against its training images than against
images it never saw?

As in FLD's generalisation gap (Jiralerspong, Bose, Gemp, Qin, Bengio, Gidel and Jiralerspong
2023, "Feature Likelihood Divergence: Evaluating the Generalization of Generative Models Using
Samples", arXiv:2302.04440), with the protocol's primary distance (FID, or FD in DINOv2/CLIP
space) in place of FLD:

    gap = D(samples, training images) - D(samples, held-out images).

A model that copies its training set sits closer to the training images than to fresh ones, so
its gap is negative; a model that draws fresh samples scores the same against both, up to the
estimator's bias at the two reference sizes. That bias is why the gap is read against its
**floor**: the same statistic for real held-out images, which no model saw.

The split reuses the protocol's draws. The training side is the protocol's reference set (the
``num_real`` training images FID is measured against). The held-out split is cut with the floor's
seeded permutation ``perm = randperm(len(test), seed)``: ``k = min(num_fake, len(test) // 2)``; the
floor's draw for the gap is ``test[perm[:k]]`` (the first ``k`` images of the floor), the held-out
reference is ``test[perm[k : k + min(len(test) - k, num_fake)]]``, disjoint from it. Generated
images enter with ``k`` of the scored images (a seeded draw when ``k < num_fake``), so samples and
floor are measured at exactly the same counts: ``k`` against ``num_real`` and ``k`` against the
held-out reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class GapSplit:
    """Indices of one protocol's gap: ``floor`` and ``heldout`` index the held-out split,
    ``generated`` indexes the ``num_fake`` scored images (and ``floor`` rows of the floor draw)."""

    floor: torch.Tensor
    heldout: torch.Tensor
    generated: torch.Tensor

    @property
    def count(self) -> int:
        """``k``: images per side of each distance."""
        return len(self.floor)


def gap_split(num_heldout: int, num_fake: int, seed: int) -> GapSplit:
    """The gap's draws for a held-out split of ``num_heldout`` images (see the module docstring).

    The permutation is the floor's (`zoo.metrics.engine.floor_images`), so ``floor`` is the
    first ``k`` images of the floor draw. Raises `ValueError` below 4 held-out images.
    """
    if num_heldout < 4 or num_fake < 2:
        raise ValueError(f"the generalisation gap needs >= 4 held-out and >= 2 generated images, "
                         f"got {num_heldout} and {num_fake}")
    perm = torch.randperm(num_heldout, generator=torch.Generator().manual_seed(seed))
    k = min(num_fake, num_heldout // 2)
    size = min(num_heldout - k, num_fake)
    generated = torch.arange(num_fake) if k == num_fake else \
        torch.randperm(num_fake, generator=torch.Generator().manual_seed(seed))[:k].sort().values
    return GapSplit(floor=perm[:k], heldout=perm[k : k + size], generated=generated)


def generalisation_gap(
    features: torch.Tensor, train_stats: dict[str, np.ndarray], heldout_stats: dict[str, np.ndarray]
) -> float:
    """``D(features, train) - D(features, held-out)`` with torch-fidelity's Frechet distance.

    ``features``: ``k x D`` float features of the images tested (generated, or the floor's draw);
    ``*_stats``: ``{"mu": D, "sigma": D x D}`` of the two references. Negative: closer to the
    training images. Compare with the floor's value, never with 0.
    """
    from torch_fidelity.metric_fid import (
        KEY_METRIC_FID,
        fid_features_to_statistics,
        fid_statistics_to_metric,
    )

    stats = fid_features_to_statistics(features)
    to_train = float(fid_statistics_to_metric(stats, train_stats, False)[KEY_METRIC_FID])
    to_heldout = float(fid_statistics_to_metric(stats, heldout_stats, False)[KEY_METRIC_FID])
    return to_train - to_heldout
