"""The Vendi score: the effective number of distinct samples (Friedman and Dieng 2023).

"The Vendi Score: A Diversity Evaluation Metric for Machine Learning" (TMLR 2023,
arXiv:2210.02410) defines, for ``n`` samples and a positive semi-definite similarity matrix ``K``
with ``K_ii = 1``, ``VS = exp(-sum_i l_i log l_i)`` over the eigenvalues ``l_i`` of ``K / n``: the
exponential of their Shannon entropy (the order-1 score). It is 1 when all samples are identical
and ``n`` when they are pairwise dissimilar (``K = I``).

genzoo uses the cosine similarity of the protocol's features, ``K = X X^T`` with each row of ``X``
scaled to unit length, as the authors' ``score_X`` / ``score_dual`` do. The non-zero eigenvalues
of ``X X^T / n`` are the squared singular values of ``X / sqrt(n)``, so the score comes from the
``n x d`` feature matrix without building the ``n x n`` kernel. A feature row of zeros has no
direction; it stays zero (as in the authors' code, through scikit-learn's ``normalize``) and
adds nothing to the spectrum.
"""

from __future__ import annotations

import math

import torch


def vendi_score(features: torch.Tensor) -> float:
    """Order-1 Vendi score of ``N x D`` features under cosine similarity, in ``[1, min(N, D)]``.

    Computed in float64 from the singular values of the row-normalised features. Raises
    `ValueError` for fewer than one row or a tensor that is not 2-D.
    """
    if features.ndim != 2 or len(features) < 1:
        raise ValueError(f"the Vendi score needs N x D features with N >= 1, got shape {tuple(features.shape)}")
    x = features.double()
    norms = x.norm(dim=1, keepdim=True)
    x = torch.where(norms > 0, x / norms.clamp_min(1e-300), torch.zeros_like(x))
    eig = torch.linalg.svdvals(x) ** 2 / len(x)  # the non-zero eigenvalues of K / n
    eig = eig[eig > 0]
    entropy = float(-(eig * eig.log()).sum())
    return math.exp(entropy)
