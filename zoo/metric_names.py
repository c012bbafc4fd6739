"""Metric names and directions, in one place and free of torch (the CLI and leaderboards use them).

Result keys are ``<metric>_<feature space>`` (``fid_lenet``, ``precision_inception``), with spreads
as ``<key>_std``; the metric prefix says whether larger is better.
"""

from __future__ import annotations

# The vocabulary lives at the ground floor (zoo.vocabulary); these names stay importable here.
from zoo.vocabulary import (  # noqa: F401
    BACKBONES,
    CLIP_BACKBONES,
    DINOV2_BACKBONES,
    HIGHER_IS_BETTER,
    higher_is_better,
)


def metric_tag(backbone: str) -> str:
    """The feature space's name in result keys: ``lenet``, ``inception``, ``dinov2``, ``clip``.

    Every DINOv2 (CLIP) size shares the tag ``dinov2`` (``clip``): a board holds one protocol, and
    the protocol records which network and weights; keys never call a non-Inception distance FID.
    """
    for family in ("dinov2", "clip"):
        if backbone.startswith(family + "-"):
            return family
    return backbone


#: Below these, a number is dominated by its estimator (see `protocol_warnings`).
MIN_IMAGES_PER_IS_SPLIT = 100
MIN_KID_SUBSET = 100


def protocol_warnings(protocol: dict) -> list[str]:
    """Why some numbers of a protocol (a ``Protocol.to_dict()`` record) mean little, and what to change.

    * IS with fewer than 100 images per split: the split's class marginal is estimated from too
      few images (below one image per split IS is exactly 1.0 for any input);
    * KID with subsets under 100 images: the unbiased estimate's spread swamps the differences;
    * FID/FD with fewer images than feature dimensions on either side: the covariance estimate is
      singular and the distance depends on the count more than on the model.
    """
    out: list[str] = []
    tag = protocol.get("metric_tag") or protocol.get("backbone", "")
    num_fake, num_real = int(protocol.get("num_fake") or 0), int(protocol.get("num_real") or 0)
    splits = int(protocol.get("isc_splits") or 0)
    has_is = protocol.get("backbone") in ("lenet", "inception")
    if has_is and splits and num_fake < MIN_IMAGES_PER_IS_SPLIT * splits:
        out.append(
            f"is_{tag} on {num_fake:,} images in {splits} splits ({num_fake // splits} per split) is biased low "
            f"(1.000 for any input below one image per split); score at least {MIN_IMAGES_PER_IS_SPLIT * splits:,} "
            f"generated images (--num-fake)"
        )
    subset = int(protocol.get("kid_subset_size") or 0)
    if subset and subset < MIN_KID_SUBSET:
        out.append(
            f"kid_{tag} uses subsets of {subset} images: its spread over subsets swamps differences between models; "
            f"score at least {MIN_KID_SUBSET} generated and reference images (--num-fake, --num-real)"
        )
    dim = int(protocol.get("feature_dim") or 0)
    fd = "fid" if has_is else "fd"
    if dim and min(num_fake, num_real) < dim:
        out.append(
            f"{fd}_{tag} with {min(num_fake, num_real):,} images in a {dim}-dimensional feature space: the covariance "
            f"estimate is singular and the value depends on the image count more than on the model; use at least "
            f"{dim:,} images on each side or read kid_{tag}"
        )
    return out
