"""Model recipes as presets apply them: the recipe where its precision is native, its fallback where
``--precision auto`` had to fall back (DDPM's narrower fp32 U-Net), and an explicit precision that
keeps the recipe's network."""

from __future__ import annotations

import pytest
import torch

from zoo import Recipe


def _plan(precision: str, models=("ddpm",)):
    from zoo.bench.presets import get_preset
    from zoo.bench.runner import plan_models
    from zoo.factory import load_dataset
    from zoo.registry import get_registry

    return {p.name: p for p in plan_models(get_registry(), list(models), preset=get_preset("quick"),
                                            dataset=load_dataset("mnist-5k"), device=torch.device("cpu"),
                                            precision=precision, batch_size=None, overrides={}, options={})}


@pytest.fixture
def bf16(cpu_profile, no_cuda):
    """Simulate a CPU that runs bf16 natively (True) or only emulates it (False)."""
    return lambda native: cpu_profile("native-bf16" if native else "no-bf16")


def test_for_precision_picks_the_fallback_only_for_auto():
    fallback = Recipe(precision="fp32", overrides={"width": 8})
    recipe = Recipe(precision="bf16", overrides={"width": 16}, fallback=fallback)
    assert recipe.for_precision("bf16") is recipe
    assert recipe.for_precision("fp32") is fallback
    assert recipe.for_precision("fp32", auto=False) is recipe  # the user chose fp32: same network
    assert Recipe(precision="bf16").for_precision("fp32") == Recipe(precision="bf16")  # no fallback


@pytest.mark.hardware
def test_ddpm_trains_its_recipe_where_bf16_is_native(bf16):
    bf16(True)
    plan = _plan("auto")["ddpm"]
    assert plan.precision == "bf16"
    assert plan.config["base_channels"] == 16 and tuple(plan.config["channel_mults"]) == (1, 2, 4)
    assert plan.config_label == "snr_gamma=5.0"


@pytest.mark.hardware
def test_ddpm_falls_back_to_a_narrower_fp32_unet_where_bf16_is_emulated(bf16):
    bf16(False)
    plans = _plan("auto", ("ddpm", "gan"))
    ddpm = plans["ddpm"]
    assert ddpm.precision == "fp32"
    assert ddpm.config["base_channels"] == 12 and tuple(ddpm.config["channel_mults"]) == (1, 2, 2)
    assert ddpm.config["snr_gamma"] == 5.0 and ddpm.batch_size == 128
    # Named as a different recipe: its label and identity differ from the native recipe's.
    assert "base_channels=12" in ddpm.config_label and "channel_mults=1,2,2" in ddpm.config_label
    bf16(True)
    assert _plan("auto")["ddpm"].config_hash != ddpm.config_hash
    assert plans["gan"].config_label == ""  # models without a fallback are unchanged


@pytest.mark.hardware
@pytest.mark.parametrize("native", [True, False])
def test_an_explicit_precision_keeps_the_recipes_network(bf16, native):
    bf16(native)
    plan = _plan("fp32")["ddpm"]
    assert plan.precision == "fp32" and plan.config["base_channels"] == 16
