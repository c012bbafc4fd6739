"""zoo.blocks: the network blocks and losses GAN, DCGAN, WGAN-GP and VAE-GAN share. Moving them
out of the plugins changed no parameter name, shape, creation order or initialisation, so
checkpoints load and seeded results are unchanged (numbers recorded before the move)."""

from __future__ import annotations

import hashlib

import pytest
import torch

from zoo.factory import create_model
from zoo.randomness import ImageGenerators
from zoo.registry import get_registry

# name, image shape, sha256 of "key:shape" lines (first 16 hex), number of state_dict entries,
# sum over entries of (position * mean |value|) after torch.manual_seed(0), mean |sample| of
# images 0-2 of seed 3 (None where the sampler's EMA/BN output is ~0 at initialisation).
BEFORE = [
    ("gan", (1, 28, 28), "0787f7d3c2d4a2b8", 19, 18.050887, 0.105638),
    ("dcgan", (3, 32, 32), "8650502bedfcd8fd", 56, 445.656835, None),
    ("wgan-gp", (1, 28, 28), "b6ae075af6201582", 39, 195.782023, 0.244828),
    ("vaegan", (1, 28, 28), "e51a77d5a71dedd4", 54, 388.480809, None),
]


@pytest.mark.parametrize(("name", "shape", "keys", "count", "init", "sample"), BEFORE, ids=[b[0] for b in BEFORE])
def test_moving_the_shared_blocks_changed_no_checkpoint_or_seeded_result(name, shape, keys, count, init, sample):
    torch.manual_seed(0)
    cls = get_registry().model(name)
    model = create_model(name, shape, dict(cls.tiny_config)).eval()
    state = model.state_dict()
    lines = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in state.items())
    assert (hashlib.sha256(lines.encode()).hexdigest()[:16], len(state)) == (keys, count)
    weighted = sum((i + 1) * float(t.double().abs().mean()) for i, t in enumerate(state.values())
                   if t.is_floating_point())
    assert weighted == pytest.approx(init, rel=1e-6)  # initialisation order and values
    if sample is not None:
        images = model.sample(3, generator=ImageGenerators.for_range(3, 0, 3)).double()
        assert float(images.abs().mean()) == pytest.approx(sample, abs=1e-5)


def test_the_gan_losses_are_the_non_saturating_objective():
    from zoo.blocks import discriminator_loss, generator_loss

    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    by_hand = -(torch.log(torch.sigmoid(real)).mean() + torch.log(1 - torch.sigmoid(fake)).mean())
    assert float(discriminator_loss(real, fake)) == pytest.approx(float(by_hand), rel=1e-6)
    assert float(generator_loss(fake)) == pytest.approx(float(-torch.log(torch.sigmoid(fake)).mean()), rel=1e-6)


def test_torch_free_specs_agree_with_the_dcgan_generator_start_sizes():
    from zoo_dcgan.spec import START_SIZE as dcgan
    from zoo_vaegan.spec import START_SIZE as vaegan

    from zoo.blocks import DCGAN_START_SIZE

    assert dcgan == vaegan == DCGAN_START_SIZE
