"""Every registered model honours the contract (as timm tests every registered model)."""

from __future__ import annotations

import pytest

from zoo.registry import build_registry
from zoo.testing import check_model

MODELS = sorted(build_registry().models)


def test_the_builtin_models_are_registered():
    assert {"gan", "dcgan", "vae", "ddpm"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_contract(name):
    check_model(name)


@pytest.mark.parametrize("name", MODELS)
def test_rgb_32(name):
    from zoo.registry import get_registry

    cls = get_registry().model(name)
    if 3 in cls.supported_channels and (cls.supported_sizes is None or 32 in cls.supported_sizes):
        check_model(name, image_shape=(3, 32, 32), steps=1)
    else:
        pytest.skip(f"{name} does not support 3x32x32")


def test_the_example_plugin_passes_the_contract():
    from zoo_ppca.model import PPCA

    check_model(PPCA)
