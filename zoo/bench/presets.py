"""Named benchmark presets: one budget, one set of sample counts and one sampler sweep for all models.

Budgets are wall-clock per model and seed (with a step cap), because the question genzoo answers is
"which family is better here, and at what cost": every model gets the same time on the same
hardware. Sample counts are capped by the dataset (``mnist-5k`` has 1,000 held-out images, so its
floor and generated sets hold at most 1,000); the protocol records the counts actually used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zoo.errors import UnknownNameError


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    time_limit: float | None  # seconds of training per model and seed
    max_steps: int | None  # step cap (the budget is whichever comes first)
    num_fake: int  # generated images per evaluation (capped by the dataset's held-out split)
    num_real: int  # reference images (capped by the training split)
    #: sampling settings to evaluate, per model family; each entry becomes its own leaderboard row
    sample_sweeps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    use_tiny_config: bool = False  # smoke tests only: tiny networks, numbers meaningless
    grid_size: int = 64


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        "smoke", "seconds per model: tiny networks, for tests and plugin CI (numbers are meaningless)",
        time_limit=None, max_steps=4, num_fake=100, num_real=200,
        sample_sweeps={"diffusion": [{"sampler": "ddim", "steps": 5}]}, use_tiny_config=True, grid_size=16,
    ),
    "quick": Preset(
        "quick", "the default: 2 minutes of training per model, 500 samples, DDIM at 10 and 50 steps; "
        "about 10 minutes for gan, vae and ddpm on a 2-core CPU",
        time_limit=120.0, max_steps=20_000, num_fake=500, num_real=4000,
        sample_sweeps={"diffusion": [{"sampler": "ddim", "steps": 10}, {"sampler": "ddim", "steps": 50}]},
    ),
    "standard": Preset(
        "standard", "for a GPU: 20 minutes per model, 10,000 samples, DDIM 10/50/100 and ancestral 1000",
        time_limit=1200.0, max_steps=None, num_fake=10_000, num_real=50_000,
        sample_sweeps={"diffusion": [{"sampler": "ddim", "steps": s} for s in (10, 50, 100)]
                       + [{"sampler": "ddpm", "steps": 1000}]},
    ),
    "paper": Preset(
        "paper", "for a GPU: long runs (8 hours per model), 50,000 samples, the papers' samplers",
        time_limit=8 * 3600.0, max_steps=None, num_fake=50_000, num_real=50_000,
        sample_sweeps={"diffusion": [{"sampler": "ddpm", "steps": 1000}] + [{"sampler": "ddim", "steps": s} for s in (10, 20, 50, 100)]},
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UnknownNameError("preset", name, list(PRESETS))
    return PRESETS[name]
