"""Named benchmark presets: one budget, one set of sample counts and one sampler sweep for all models.

Budgets are counted in the field's units of work, not seconds: images seen (kimg, the GAN
literature's unit) or training FLOPs. A wall-clock budget makes the ranking depend on the machine
and on its load (a busy second core slowed GAN training several times over and moved it from
first to last); images seen give every model the same data on every machine, so the same command
gives the same ranking anywhere. Every row still records all four measures of what it spent
(seconds, steps, kimg, FLOPs), and the quality-versus-compute curves plot them.

Sample counts are capped by the dataset (``mnist-5k`` has 1,000 held-out images, so its floor and
generated sets hold at most 1,000); the protocol records the counts actually used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zoo.errors import UnknownNameError


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    budget: str  # per model and seed: "128kimg", "2e13flops", "1000steps", "2m"
    num_fake: int  # generated images per evaluation (capped by the dataset's held-out split)
    num_real: int  # reference images (capped by the training split)
    #: sampling settings to evaluate, per model family; each entry becomes its own leaderboard row
    sample_sweeps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: evaluations along the budget (log-spaced, the last at the full budget), with the cheapest
    #: sampler setting of the sweep; the full sweep runs at the end
    curve_points: int = 3
    use_tiny_config: bool = False  # smoke tests only: tiny networks, numbers meaningless
    use_recipes: bool = True  # apply each model's declared CPU/GPU recipe (precision, loss weighting, batch)
    grid_size: int = 64


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        "smoke", "seconds per model: tiny networks, for tests and plugin CI (numbers are meaningless)",
        budget="4steps", num_fake=100, num_real=200, curve_points=2,
        sample_sweeps={"diffusion": [{"sampler": "ddim", "steps": 5}]}, use_tiny_config=True, use_recipes=False,
        grid_size=16,
    ),
    "quick": Preset(
        "quick", "the default: 128 kimg of training per model (128,000 images seen), 500 samples, "
        "DDIM at 10 and 50 steps and DPM-Solver++(2M) at 10; about 10 minutes for gan, vae and ddpm on a 2-core CPU",
        budget="128kimg", num_fake=500, num_real=4000,
        # DPM-Solver++ at 10 network evaluations costs a sixth of the sweep's 60 (about 20 s on a
        # 2-core CPU); its 20-step point is in `standard`, to keep this preset near 10 minutes.
        sample_sweeps={"diffusion": [{"sampler": "ddim", "steps": 10}, {"sampler": "ddim", "steps": 50},
                                     {"sampler": "dpmpp2m", "steps": 10}]},
    ),
    "standard": Preset(
        "standard", "for a GPU: 6,400 kimg per model, 10,000 samples, DDIM 10/50/100, DPM-Solver++(2M) 10/20 "
        "and ancestral 1000",
        budget="6400kimg", num_fake=10_000, num_real=50_000, curve_points=5,
        sample_sweeps={"diffusion": [{"sampler": "ddim", "steps": s} for s in (10, 50, 100)]
                       + [{"sampler": "dpmpp2m", "steps": s} for s in (10, 20)]
                       + [{"sampler": "ddpm", "steps": 1000}]},
    ),
    "paper": Preset(
        "paper", "for a GPU: paper-length runs (102,400 kimg, DDPM's 800k steps at batch 128), 50,000 "
        "samples, the papers' samplers",
        budget="102400kimg", num_fake=50_000, num_real=50_000, curve_points=6,
        sample_sweeps={"diffusion": [{"sampler": "ddpm", "steps": 1000}] + [{"sampler": "ddim", "steps": s} for s in (10, 20, 50, 100)]
                       + [{"sampler": "dpmpp2m", "steps": s} for s in (10, 20)]},
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UnknownNameError("preset", name, list(PRESETS))
    return PRESETS[name]
