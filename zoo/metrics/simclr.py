"""The ``simclr`` backbone: a small self-supervised encoder trained on the dataset's own images.

For data with no labels and no downloaded network (an offline machine, a folder of your own RGB
images) genzoo trains a feature space on the reference split itself, the way SimCLR does (Chen,
Kornblith, Norouzi and Hinton 2020, "A Simple Framework for Contrastive Learning of Visual
Representations", arXiv:2002.05709): two random augmentations of each image (resized crop,
horizontal flip, colour jitter, grayscale) are pulled together and pushed away from every other
image of the batch by the NT-Xent loss (temperature-scaled cross-entropy over cosine
similarities). The encoder is a tiny ConvNet (three 3x3 convolutions with batch norm, max pooling
and a global average), whose pooled 64 features feed FD, KID, precision/recall, density/coverage,
memorisation, Vendi and the gap; the projection head used by the loss is dropped after training.

It is **not** Inception or DINOv2: its numbers are named ``fd_simclr``, ``kid_simclr``, ... and
mean something only among results scored with the same weights (the protocol's ``weights_sha256``).
Training is deterministic for a recipe on one machine (seeded initialisation, batches and
augmentations inside a forked RNG state), short on a CPU, and cached like the lenet backbone's
weights, keyed by the dataset's content fingerprint and the recipe.

Weights are safetensors (tensors and string metadata only).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import MetricsError
from zoo.metrics.weightfile import read_header, tensor_digest

WEIGHTS_FORMAT = "genzoo-simclr"
WEIGHTS_FORMAT_VERSION = "1"
_ARCH_KEYS = ("in_channels", "input_size", "feature_dim")


class Encoder(nn.Module):
    """Tiny ConvNet taking ``uint8`` (or float in ``[0, 255]``) ``B x C x H x W`` images and
    returning ``B x feature_dim`` float features.

    A 1-channel encoder averages colour channels (torch-fidelity hands gray images over repeated
    to 3); a 3-channel one repeats gray and drops alpha. Images are resized (bilinear, antialiased)
    to ``input_size`` first.
    """

    def __init__(self, in_channels: int = 3, input_size: int = 32, feature_dim: int = 64):
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"the simclr encoder takes 1 or 3 channels, not {in_channels}")
        self.in_channels, self.input_size, self.feature_dim = in_channels, input_size, feature_dim
        widths = (in_channels, 32, 64, feature_dim)
        layers: list[nn.Module] = []
        for cin, cout in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout),
                       nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Images to the network's float input: channels matched, resized, in ``[0, 1]``."""
        x = images.float()
        if x.shape[1] == 4:
            x = x[:, :3]
        if x.shape[1] != self.in_channels:
            x = x.mean(dim=1, keepdim=True) if self.in_channels == 1 else x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", antialias=True,
                              align_corners=False)
        return x / 255.0

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Features of prepared (float ``[0, 1]``) images."""
        return self.body((x - 0.5) / 0.25).mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed(self.prepare(images))

    def architecture(self) -> dict[str, int]:
        return {"in_channels": self.in_channels, "input_size": self.input_size, "feature_dim": self.feature_dim}


@dataclass(frozen=True)
class Recipe:
    """How the encoder is trained; part of the cache key. A fixed number of steps (not epochs),
    so the cost does not grow with the dataset: about 0.1 s of one core's CPU time a step
    (measured on an AMD EPYC core), so about 30 s for the default 300 steps."""

    steps: int = 300
    batch_size: int = 128  # images per step (two views each)
    lr: float = 2e-3  # Adam with cosine decay to 0
    weight_decay: float = 1e-5
    temperature: float = 0.2  # NT-Xent's
    min_crop: float = 0.3  # smallest share of the image a resized crop keeps
    input_size: int = 32
    feature_dim: int = 64
    seed: int = 0

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def augment(x: torch.Tensor, recipe: Recipe, gen: torch.Generator) -> torch.Tensor:
    """One random view of each prepared image (float ``B x C x S x S`` in ``[0, 1]``): a resized
    crop (area share in ``[min_crop, 1]``, aspect ratio in ``[3/4, 4/3]``) with a horizontal flip
    half of the time, then, for colour images, colour jitter (80%) and grayscale (20%)."""
    n, c = x.shape[:2]
    area = recipe.min_crop + (1 - recipe.min_crop) * torch.rand(n, generator=gen)
    ratio = torch.exp((torch.rand(n, generator=gen) * 2 - 1) * math.log(4 / 3))
    sx = torch.sqrt(area * ratio).clamp(max=1.0)
    sy = torch.sqrt(area / ratio).clamp(max=1.0)
    tx = (torch.rand(n, generator=gen) * 2 - 1) * (1 - sx)
    ty = (torch.rand(n, generator=gen) * 2 - 1) * (1 - sy)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = sx * flip, tx
    theta[:, 1, 1], theta[:, 1, 2] = sy, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if c == 1:
        return out
    jitter = (torch.rand(n, 1, 1, 1, generator=gen) < 0.8).float()
    factors = 1 + (torch.rand(n, 3, 1, 1, generator=gen) * 2 - 1) * 0.4  # brightness, contrast, saturation
    f = jitter * factors + (1 - jitter)
    out = out * f[:, :1]
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * f[:, 1:2] + mean
    gray = out.mean(dim=1, keepdim=True)
    out = (out - gray) * f[:, 2:3] + gray
    to_gray = torch.rand(n, 1, 1, 1, generator=gen) < 0.2
    out = torch.where(to_gray, out.mean(dim=1, keepdim=True).expand_as(out), out)
    return out.clamp(0, 1)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent loss of two ``B x D`` batches of projections (row i of each: one image)."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))  # an image is not its own negative
    b = len(z1)
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)])
    return F.cross_entropy(sim, target)


def train_encoder(
    images: torch.Tensor, recipe: Recipe | None = None, *, progress: Callable[[int, int], None] | None = None
) -> Encoder:
    """Train an `Encoder` on ``uint8`` ``N x C x H x W`` images, deterministically for a recipe.

    Every random draw comes from RNGs seeded by ``recipe.seed`` inside a forked RNG state (the
    caller's global RNG is untouched). ``progress(step, total)`` is called after every step.
    Raises `MetricsError` for fewer than 2 images.
    """
    recipe = recipe or Recipe()
    if len(images) < 2:
        raise MetricsError("training the simclr backbone needs at least 2 images")
    channels = 1 if images.shape[1] == 1 else 3
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        enc = Encoder(channels, recipe.input_size, recipe.feature_dim)
        head = nn.Sequential(nn.Linear(recipe.feature_dim, recipe.feature_dim), nn.ReLU(),
                             nn.Linear(recipe.feature_dim, 32))
        params = [*enc.parameters(), *head.parameters()]
        opt = torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / recipe.steps)))
        gen = torch.Generator().manual_seed(recipe.seed)
        with torch.no_grad():  # resized once: every view is cut from these
            prepared = torch.cat([enc.prepare(images[i : i + 500]) for i in range(0, len(images), 500)])
        batch = min(recipe.batch_size, len(prepared))
        order, pos = torch.randperm(len(prepared), generator=gen), 0
        enc.train()
        head.train()
        for step in range(recipe.steps):
            if pos + batch > len(order):
                order, pos = torch.randperm(len(prepared), generator=gen), 0
            x = prepared[order[pos : pos + batch]]
            pos += batch
            v1, v2 = augment(x, recipe, gen), augment(x, recipe, gen)
            z = head(enc.embed(torch.cat([v1, v2])))
            loss = nt_xent(z[:batch], z[batch:], recipe.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if progress is not None:
                progress(step + 1, recipe.steps)
    enc.eval()
    return enc


def save_weights(enc: Encoder, path: str | Path, metadata: dict[str, Any]) -> Path:
    """Write ``enc`` as safetensors with its architecture and ``metadata`` in the header, atomically."""
    from safetensors.torch import save

    from zoo.fileio import atomic_write_bytes

    header = {
        "format": WEIGHTS_FORMAT, "format_version": WEIGHTS_FORMAT_VERSION,
        **{k: str(v) for k, v in enc.architecture().items()},
        **{k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()},
    }
    state = {k: v.detach().cpu().contiguous() for k, v in enc.state_dict().items()}
    return atomic_write_bytes(Path(path), save(state, metadata=header))


def read_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors header of a simclr weight file (no tensors read); `MetricsError` if it is
    not one."""
    return read_header(path, "simclr", WEIGHTS_FORMAT)


def weights_digest(path: str | Path) -> str:
    """SHA-256 over the architecture and the tensors of a simclr weight file
    (`zoo.metrics.weightfile.tensor_digest`), not over the file's bytes."""
    return tensor_digest(path, "simclr", read_metadata(path), _ARCH_KEYS)


def load_weights(path: str | Path, device: torch.device | str = "cpu") -> Encoder:
    """Rebuild an `Encoder` (eval mode) from `save_weights`' file; `MetricsError`
    for a file that is not one or does not fit."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    try:
        enc = Encoder(**{k: int(meta[k]) for k in _ARCH_KEYS})
        enc.load_state_dict(load_file(str(path), device="cpu"), strict=True)
    except (KeyError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MetricsError(f"simclr weights {path} do not fit the encoder ({first})") from None
    return enc.to(device).eval()
