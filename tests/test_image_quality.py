"""zoo.image_quality: PSNR and SSIM give torchmetrics' numbers (torchmetrics is in the test extra)."""

from __future__ import annotations

import pytest
import torch

from zoo.image_quality import psnr, ssim


@pytest.mark.parametrize("shape", [(6, 1, 28, 28), (3, 3, 32, 32), (2, 1, 17, 23)])
def test_ssim_and_psnr_equal_torchmetrics(shape):
    from torchmetrics.functional.image import (
        peak_signal_noise_ratio,
        structural_similarity_index_measure,
    )

    g = torch.Generator().manual_seed(0)
    target = torch.rand(shape, generator=g)
    preds = (target + 0.1 * torch.randn(shape, generator=g)).clamp(0, 1)
    expected = structural_similarity_index_measure(preds, target, data_range=1.0)
    assert float(ssim(preds, target)) == pytest.approx(float(expected), abs=1e-6)
    expected = peak_signal_noise_ratio(preds, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
    assert torch.allclose(psnr(preds, target), expected, atol=1e-5)


def test_identical_batches_score_one_and_noise_scores_low():
    g = torch.Generator().manual_seed(1)
    image = torch.rand(4, 1, 28, 28, generator=g)
    assert float(ssim(image, image)) == pytest.approx(1.0, abs=1e-6)
    assert float(ssim(torch.rand(4, 1, 28, 28, generator=g), image)) < 0.1
