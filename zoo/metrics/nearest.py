"""Metrics on nearest neighbours and classifier outputs, computed on the protocol's features.

* **Density and coverage** (Naeem, Oh, Uh, Choi and Yoo 2020, "Reliable Fidelity and Diversity
  Metrics for Generative Models", arXiv:2002.09797), the authors' definitions with their default
  k = 5: each real feature ``x_i`` gets a ball of radius ``r_i``, the distance to its k-th nearest
  other real feature;

  - ``density = 1/(k M) * sum_j #{i : |y_j - x_i| < r_i}`` over the M generated features ``y_j``
    (can exceed 1; about 1 for samples distributed like the data);
  - ``coverage = 1/N * #{i : min_j |y_j - x_i| < r_i}`` (share of real balls holding at least one
    generated sample, in [0, 1]).

  Unlike precision, density counts how many real balls hold a sample, so a few real outliers with
  huge balls no longer make one blank image "precise".

* **Memorisation**: for each generated feature, the distance to its nearest *training* (reference)
  feature, tested against the same distance for held-out real images. The held-out images are
  fresh draws from the data distribution that the model never saw, so their nearest-training
  distances are the null distribution of "a new image, not a copy" (the comparison at the heart of
  Meehan, Chaudhuri and Dasgupta 2020, "A Non-Parametric Test to Detect Data-Copying in Generative
  Models", arXiv:2004.05675, whose C_T statistic compares exactly these two distance samples). The
  reported number is the share of generated images whose nearest-training distance lies below the
  ``q``-quantile of the held-out distances (``q = 0.01``, a one-sided test of each sample at level
  1%): about ``q`` for a model that draws fresh images, 1.0 for a model that returns training
  images, and in between for partial copying.

* **Mode coverage** for labelled data (the measure of Metz et al. 2017, "Unrolled GANs",
  arXiv:1611.02163 and Srivastava et al. 2017, VEEGAN, arXiv:1705.07761): the domain classifier's
  predicted class of every generated image; the number of classes that receive at least
  ``min_share`` of the samples, and ``KL(p_generated || p_real)`` of the predicted class histograms
  (natural log), with the real histogram from the same classifier on the reference images.

All functions take float features ``N x D`` (torch tensors) and use float64 Euclidean distances,
computed in blocks so that memory stays at ``block x N``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: Density/coverage's k (Naeem et al.'s default, also the ``prdc`` package's).
PRDC_NEIGHBORHOOD = 5
#: The held-out quantile below which a generated image counts as memorised.
MEMORISATION_QUANTILE = 0.01
#: How many of the most suspicious samples are kept for the (sample | nearest training image) pairs.
SUSPICIOUS = 8
BLOCK = 1024


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a.double(), b.double())


def knn_radii(real: torch.Tensor, k: int = PRDC_NEIGHBORHOOD) -> torch.Tensor:
    """Distance of every real feature to its k-th nearest *other* real feature (float64, ``N``).

    As in Naeem et al.'s code: the (k+1)-th smallest distance with the point itself included.
    """
    if len(real) <= k:
        raise ValueError(f"density and coverage with k={k} need more than {k} real images, got {len(real)}")
    out = []
    for start in range(0, len(real), BLOCK):
        d = _distances(real[start : start + BLOCK], real)
        out.append(d.kthvalue(k + 1, dim=1).values)
    return torch.cat(out)


def density_coverage(fake: torch.Tensor, real: torch.Tensor, radii: torch.Tensor, k: int = PRDC_NEIGHBORHOOD) -> tuple[float, float]:
    """``(density, coverage)`` of generated features ``fake`` against ``real`` with `knn_radii`."""
    radii = radii.double()
    inside = 0
    nearest = torch.full((len(real),), math.inf, dtype=torch.float64)
    for start in range(0, len(fake), BLOCK):
        d = _distances(fake[start : start + BLOCK], real)  # B x N
        inside += int((d < radii[None, :]).sum())
        nearest = torch.minimum(nearest, d.min(dim=0).values)
    density = inside / (k * len(fake))
    coverage = float((nearest < radii).double().mean())
    return density, coverage


def nearest_distances(fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(distance, index)`` of every fake feature's nearest real feature (float64 and int64, ``M``)."""
    dists, idx = [], []
    for start in range(0, len(fake), BLOCK):
        value, index = _distances(fake[start : start + BLOCK], real).min(dim=1)
        dists.append(value)
        idx.append(index)
    return torch.cat(dists), torch.cat(idx)


def memorisation_threshold(heldout_distances: torch.Tensor, quantile: float = MEMORISATION_QUANTILE) -> float:
    """The ``quantile`` of held-out images' nearest-training distances (linear interpolation)."""
    return float(torch.quantile(heldout_distances.double(), quantile))


@dataclass(frozen=True)
class Memorisation:
    """Nearest-training distances of generated images, tested against the held-out threshold."""

    share: float  # of generated images closer to a training image than the threshold
    threshold: float
    distances: torch.Tensor  # M, float64
    indices: torch.Tensor  # M, index into the reference set

    def suspicious(self, n: int = SUSPICIOUS) -> list[dict[str, float | int | bool]]:
        """The ``n`` generated images nearest to a training image, nearest first."""
        order = torch.argsort(self.distances)[:n]
        return [
            {"sample": int(j), "reference": int(self.indices[j]), "distance": float(self.distances[j]),
             "memorised": bool(self.distances[j] < self.threshold)}
            for j in order
        ]


def memorisation(fake: torch.Tensor, train: torch.Tensor, threshold: float) -> Memorisation:
    """Share of ``fake`` features nearer to a ``train`` feature than ``threshold`` (strictly)."""
    d, idx = nearest_distances(fake, train)
    return Memorisation(float((d < threshold).double().mean()), float(threshold), d, idx)


def class_histogram(logits: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Share of images predicted as each class (argmax of ``logits``), float64 ``num_classes``."""
    pred = logits.argmax(dim=1)
    return torch.bincount(pred, minlength=num_classes)[:num_classes].double() / len(pred)


def mode_coverage(fake_logits: torch.Tensor, real_logits: torch.Tensor, min_share: float) -> tuple[int, float]:
    """``(classes covered, KL(p_fake || p_real))`` of the classifier's predicted class histograms.

    A class is covered when at least ``min_share`` of the generated images are predicted as it.
    The real histogram gets half a count per class (so a class the classifier never predicts for a
    real image keeps the KL finite); on thousands of reference images this moves the KL by < 1e-3.
    """
    c = real_logits.shape[1]
    p_fake = class_histogram(fake_logits, c)
    real_counts = torch.bincount(real_logits.argmax(dim=1), minlength=c)[:c].double() + 0.5
    p_real = real_counts / real_counts.sum()
    covered = int((p_fake >= min_share - 1e-12).sum())
    mask = p_fake > 0
    kl = float((p_fake[mask] * (p_fake[mask] / p_real[mask]).log()).sum())
    return covered, kl
