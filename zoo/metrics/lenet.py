"""The domain classifier behind the ``lenet`` backbone: network, deterministic training, weight files.

A LeNet-5-style convolutional network (LeCun et al. 1998, "Gradient-based learning applied to
document recognition"), slightly widened: two 5x5 convolutions with max pooling, a 128-unit hidden
layer (the *penultimate features* that FID, KID and precision/recall use) and a linear classifier
(the *logits* the Inception Score uses). This is the usual stand-in for Inception-v3 on MNIST-like
data, where Inception's ImageNet features say little about digits.

Weights are stored as safetensors (tensors and a string-to-string metadata header only, so a weight
file cannot execute code). The metadata records the architecture, the dataset it was trained on
(name and content fingerprint), the training recipe and the held-out accuracy.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import MetricsError
from zoo.metrics.weightfile import read_header, tensor_digest

WEIGHTS_FORMAT = "genzoo-lenet"
WEIGHTS_FORMAT_VERSION = "1"


class LeNet(nn.Module):
    """LeNet-5-style classifier taking ``uint8`` images; returns (penultimate features, logits).

    Inputs may have any channel count the data has: a single-channel network averages the channels
    (torch-fidelity hands gray images over repeated to 3 channels, so this recovers them exactly),
    and images of another size are resized (bilinear, antialiased) to ``input_size`` first.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size: int = 28, feature_dim: int = 128):
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"LeNet supports 1 or 3 input channels, not {in_channels}")
        self.in_channels, self.num_classes = in_channels, num_classes
        self.input_size, self.feature_dim = input_size, feature_dim
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=5)
        # 28x28 input gives 5x5 maps here already; other sizes are pooled to the same shape.
        self.pool = nn.AdaptiveAvgPool2d(5)
        self.fc1 = nn.Linear(32 * 5 * 5, feature_dim)
        self.dropout = nn.Dropout(0.5)
        self.fc2 = nn.Linear(feature_dim, num_classes)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """``uint8`` (or float in ``[0, 255]``) ``B x C x H x W`` to the network's float input in ``[-1, 1]``."""
        x = images.float()
        if x.shape[1] != self.in_channels:
            if self.in_channels == 1:
                x = x.mean(dim=1, keepdim=True)
            elif x.shape[1] == 1:
                x = x.expand(-1, self.in_channels, -1, -1)
            else:
                raise ValueError(f"LeNet expects {self.in_channels} channels, got {x.shape[1]}")
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", antialias=True, align_corners=False)
        return x / 127.5 - 1.0

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.prepare(images)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        features = F.relu(self.fc1(torch.flatten(self.pool(x), 1)))
        logits = self.fc2(self.dropout(features))
        return features, logits

    def architecture(self) -> dict[str, int]:
        return {
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "input_size": self.input_size,
            "feature_dim": self.feature_dim,
        }


@dataclass(frozen=True)
class Recipe:
    """How the classifier is trained; part of the cache key of weights trained on first use.

    The number of optimiser steps is fixed rather than the number of epochs, so a 4,000-image set
    sees many epochs and a 60,000-image set a few, at a similar cost.
    """

    steps: int = 2000
    batch_size: int = 128
    lr: float = 1e-3  # Adam (Kingma & Ba 2015) with cosine decay to 0
    weight_decay: float = 1e-4
    max_shift: int = 2  # random translation in pixels, the classic MNIST augmentation
    seed: int = 0

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def input_size_for(image_size: int) -> int:
    """28 for the MNIST family; other data keeps its size within [28, 64]."""
    return min(max(image_size, 28), 64)


def train_lenet(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    recipe: Recipe | None = None,
    *,
    progress: Any = None,
) -> LeNet:
    """Train a `LeNet` on ``uint8`` ``images``, deterministically for a given recipe.

    Initialisation, shuffling, augmentation and dropout all draw from RNGs seeded by
    ``recipe.seed`` inside a forked RNG state, so the caller's global RNG is left untouched.
    ``progress(step, total)`` is called every 10 steps when given.
    """
    recipe = recipe or Recipe()
    if labels is None or len(labels) != len(images):
        raise MetricsError("training the lenet backbone needs one label per training image")
    c, h, _ = images.shape[1:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        net = LeNet(in_channels=1 if c == 1 else 3, num_classes=num_classes, input_size=input_size_for(int(h)))
        opt = torch.optim.Adam(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / recipe.steps)))
        gen = torch.Generator().manual_seed(recipe.seed)
        labels = labels.long()
        order, pos = torch.randperm(len(images), generator=gen), 0
        net.train()
        for step in range(recipe.steps):
            if pos + recipe.batch_size > len(order):
                order, pos = torch.randperm(len(images), generator=gen), 0
            idx = order[pos : pos + recipe.batch_size]
            pos += recipe.batch_size
            batch = random_shift(images[idx], recipe.max_shift, gen)
            loss = F.cross_entropy(net(batch)[1], labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if progress is not None and ((step + 1) % 10 == 0 or step + 1 == recipe.steps):
                progress(step + 1, recipe.steps)
    net.eval()
    return net


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels (zero padding), one offset per image."""
    if max_shift <= 0:
        return images
    n, c, h, w = images.shape
    s = max_shift
    padded = F.pad(images, (s, s, s, s))
    dy = torch.randint(0, 2 * s + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * s + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(n, c, h, w + 2 * s)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(n, c, h, w)
    return padded.gather(2, rows).gather(3, cols)


@torch.no_grad()
def accuracy(net: LeNet, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``net`` on ``uint8`` images."""
    net.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = net(images[start : start + batch_size])[1]
        correct += int((logits.argmax(dim=1) == labels[start : start + batch_size]).sum())
    return correct / len(images)


def save_weights(net: LeNet, path: str | Path, metadata: dict[str, Any]) -> Path:
    """Write ``net`` as safetensors with its architecture and ``metadata`` in the header, atomically."""
    from safetensors.torch import save

    from zoo.fileio import atomic_write_bytes

    header = {
        "format": WEIGHTS_FORMAT,
        "format_version": WEIGHTS_FORMAT_VERSION,
        **{k: str(v) for k, v in net.architecture().items()},
        **{k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()},
    }
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    return atomic_write_bytes(Path(path), save(state, metadata=header))


def read_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors header of a lenet weight file (no tensors read); `MetricsError` if it is
    not one."""
    return read_header(path, "lenet", WEIGHTS_FORMAT)


def weights_digest(path: str | Path) -> str:
    """SHA-256 over the architecture and the tensors of a lenet weight file
    (`zoo.metrics.weightfile.tensor_digest`), not over the file's bytes."""
    return tensor_digest(path, "lenet", read_metadata(path), ("in_channels", "num_classes", "input_size", "feature_dim"))


def load_weights(path: str | Path, device: torch.device | str = "cpu") -> LeNet:
    """Rebuild a `LeNet` from a safetensors file written by `save_weights`."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    try:
        arch = {k: int(meta[k]) for k in ("in_channels", "num_classes", "input_size", "feature_dim")}
        net = LeNet(**arch)
        net.load_state_dict(load_file(str(path), device="cpu"), strict=True)
    except (KeyError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MetricsError(f"lenet weights {path} do not fit the network ({first})") from None
    return net.to(device).eval()
