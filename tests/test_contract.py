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


def test_the_optional_hooks_are_declared_on_the_contract_with_their_defaults(tmp_path):
    """bf16_inference, compile_targets and export_spec are part of GenerativeModel (issue 23): a
    model that sets none of them gets the documented defaults, and the core reads them directly."""
    from zoo_ppca.model import PPCA

    from zoo import GenerativeModel, accel
    from zoo.errors import UsageError
    from zoo.export import export_model
    from zoo.factory import create_model

    assert GenerativeModel.bf16_inference is False and GenerativeModel.compile_targets == ()
    plain = type("Plain", (PPCA,), {"name": "plain", "export_spec": GenerativeModel.export_spec})
    model = create_model(plain, (1, 8, 8), plain.tiny_config)
    assert model.export_spec() is None and not accel.bf16_inference_ok(model)
    assert accel.compile_for_inference(model, warmup=[2]) == 0.0
    with pytest.raises(UsageError, match="does not support export"):
        export_model(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("attribute", "value"), [("bf16_inference", "yes"), ("compile_targets", "ema")])
def test_a_wrongly_typed_hook_attribute_is_refused_at_registration(attribute, value):
    from zoo_ppca.model import PPCA

    from zoo.model import validate_model_class

    with pytest.raises(TypeError, match=attribute):
        validate_model_class(type("Bad", (PPCA,), {"name": "bad", attribute: value}))
