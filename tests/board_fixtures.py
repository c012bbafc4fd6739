"""A small results store for the leaderboard's format and browser tests: three models with three
seeds each (a DDIM sweep for ddpm), curves along the budget, sample grids, and one failed run with
a long error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torchvision.utils import save_image

from zoo.bench.store import ResultRow, ResultsStore

P = {"primary_metric": "fid_lenet", "dataset": "mnist-5k", "num_real": 200, "num_fake": 100, "backbone": "lenet",
     "resize": "none", "torch_fidelity_version": "0.4.0", "version": 2}


#: The quick board's further metrics (issue 24's page had ten metric columns and was clipped).
MORE_METRICS = ("precision_lenet", "recall_lenet", "density_lenet", "coverage_lenet", "memorised_lenet",
                "classes_lenet", "kl_classes_lenet")


def make_store(root: Path, many_metrics: bool = False) -> Path:
    """Three models with three seeds each (a DDIM sweep for ddpm), curves and grids; one failure.
    ``many_metrics``: the quick board's ten metric columns and a long sampler label."""
    torch.manual_seed(0)
    store = ResultsStore(root / "runs" / "results.sqlite")
    rows = []
    for m, (model, base, family) in enumerate((("gan", 40.0, "gan"), ("vae", 60.0, "vae"), ("ddpm", 25.0, "diffusion"))):
        for seed in range(3):
            grid = root / "runs" / f"{model}-{seed}" / "samples.png"
            grid.parent.mkdir(parents=True, exist_ok=True)
            save_image(torch.rand(64, 1, 28, 28), grid, nrow=8)
            settings = [{"sampler": "ddim", "steps": s} for s in (10, 50)] if model == "ddpm" else [{}]
            if many_metrics and model == "ddpm":
                settings = [{**o, "eta": 0.0, "spacing": "uniform", "precision": "fp32"} for o in settings]
            for i, options in enumerate(settings):
                fid = base + seed + (5.0 if options.get("steps") == 10 else 0.0)
                costs = {"train_seconds": 30.0 * (m + 1), "train_flops": 1e12 * (m + 1), "train_steps": 500,
                         "train_images_per_s": 900.0 / (m + 1), "sample_images_per_s": 5e4 / (m + 1) ** 3,
                         "params": 1.2e6 * (m + 1), "peak_memory_mb": 300.0, "memory_kind": "process_peak_rss",
                         "budget_stopped_by": "steps"}
                final = {"fraction": 1.0, "train_seconds": costs["train_seconds"], "train_flops": costs["train_flops"],
                         "train_steps": 500, "train_kimg": 32.0, "metrics": {"fid_lenet": fid}}
                curve = [{**final, "fraction": f, "train_seconds": final["train_seconds"] * f,
                          "train_flops": final["train_flops"] * f, "metrics": {"fid_lenet": fid * (1 + 4 * (1 - f))}}
                         for f in (0.25, 0.5)] + [final] if i == 0 else [final]
                metrics = {"fid_lenet": fid, "is_lenet": 8.0 - m, "kid_lenet": fid / 1e3}
                if many_metrics:
                    metrics.update({name: 0.5 + 0.01 * (k + seed + m) for k, name in enumerate(MORE_METRICS)})
                rows.append(ResultRow(model=model, dataset="mnist-5k", seed=seed, protocol_hash="3bb635b91b25", protocol=P,
                                      family=family, metrics=metrics,
                                      floor={"fid_lenet": 1.2, "is_lenet": 9.8, "kid_lenet": 1e-4}, costs=costs,
                                      sample_options=options, grid_path=str(grid), curve=curve,
                                      budget_kind="steps", budget_amount=500.0))
    if "images" in {f.name for f in dataclasses.fields(ResultRow)}:  # nearest-neighbour pairs, shown on the card
        pairs = root / "runs" / "ddpm-0" / "nearest.png"
        save_image(torch.rand(8, 1, 28, 28), pairs, nrow=2)
        for r in rows:
            if r.model == "ddpm" and r.seed == 0:
                r.images = {"nearest training images": str(pairs)}
    error = "RuntimeError: " + "a very long error message from a broken plugin " * 8 + "\nTraceback (most recent call last): ..."
    rows.append(ResultRow(model="broken-plugin-model", dataset="mnist-5k", seed=0, protocol_hash="3bb635b91b25",
                          protocol=P, status="failed", error=error, budget_kind="steps", budget_amount=500.0))
    store.add_many(rows)
    return store.path
