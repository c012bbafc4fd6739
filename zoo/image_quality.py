"""PSNR and SSIM of image batches: the two reconstruction scores VAE-family models report.

SSIM is Wang, Bovik, Sheikh and Simoncelli 2004 ("Image quality assessment: from error visibility
to structural similarity") with their constants, computed as torchmetrics'
``structural_similarity_index_measure`` does (a test compares the two where torchmetrics is
installed): an 11-tap Gaussian window of sigma 1.5, K1 0.01, K2 0.03, local statistics over the
image reflect-padded by 5 pixels, the SSIM map averaged per image, then over the batch. A dozen
lines of torch were not worth a core dependency.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["psnr", "ssim"]


def psnr(preds: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each image: ``float (N,)`` from two ``(N, C, H, W)``
    batches of the same shape (values in ``[0, data_range]``); ``inf`` where an image is exact."""
    mse = (preds.float() - target.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)


def _gaussian_window(size: int, sigma: float, channels: int, dtype: torch.dtype) -> torch.Tensor:
    dist = torch.arange((1 - size) / 2, (1 + size) / 2, 1, dtype=dtype)
    gauss = torch.exp(-((dist / sigma) ** 2) / 2)
    gauss = gauss / gauss.sum()
    return torch.outer(gauss, gauss).expand(channels, 1, size, size)


def ssim(preds: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Mean SSIM (a 0-dim float tensor, 1 for identical batches) of two ``(N, C, H, W)`` batches
    of the same shape, values in ``[0, data_range]``; H and W must exceed 5 (the reflect padding)
    (else ``RuntimeError`` from torch)."""
    preds, target = preds.float(), target.float()
    channels = preds.shape[1]
    size = int(3.5 * sigma + 0.5) * 2 + 1
    pad = (size - 1) // 2
    preds = F.pad(preds, (pad, pad, pad, pad), mode="reflect")
    target = F.pad(target, (pad, pad, pad, pad), mode="reflect")
    window = _gaussian_window(size, sigma, channels, preds.dtype).to(preds.device)
    n = preds.shape[0]
    stats = F.conv2d(torch.cat((preds, target, preds * preds, target * target, preds * target)),
                     window, groups=channels)
    mu_p, mu_t, e_pp, e_tt, e_pt = stats.split(n)
    var_p = (e_pp - mu_p**2).clamp(min=0)
    var_t = (e_tt - mu_t**2).clamp(min=0)
    cov = e_pt - mu_p * mu_t
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    index = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    return index.reshape(n, -1).mean(-1).mean()
