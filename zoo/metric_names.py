"""Metric names and directions, in one place and free of torch (the CLI and leaderboards use them).

Result keys are ``<metric>_<feature space>`` (``fid_lenet``, ``precision_inception``), with spreads
as ``<key>_std``; the metric prefix says whether larger is better.
"""

from __future__ import annotations

#: Backbones genzoo knows; ``auto`` picks one per dataset (see :func:`zoo.metrics.default_backbone`).
BACKBONES = ("lenet", "inception")

#: Metric prefixes where a larger value is better; every other metric (FID, FD, KID, ...) is a distance.
HIGHER_IS_BETTER = ("is", "isc", "precision", "recall", "density", "coverage", "accuracy", "classes", "psnr", "ssim")


def higher_is_better(key: str) -> bool:
    """Whether a larger value of result key ``key`` (``is_lenet``, ``fid_inception``...) is better."""
    return key.lower().split("_", 1)[0] in HIGHER_IS_BETTER
