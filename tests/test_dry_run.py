"""``zoo bench --dry-run`` shows what the real run would do: its --samples sources, checked as the
run checks them, and each job's sampling settings, in 80 columns; it writes nothing."""

from __future__ import annotations

import json

import numpy as np

from tests.helpers import zoo_in_process


def test_the_dry_run_lists_and_checks_samples_and_shows_sampling_settings(capsys, tmp_path):
    good, small = tmp_path / "mine.npz", tmp_path / "small.npz"
    rng = np.random.default_rng(0)
    np.savez(good, images=(rng.random((120, 28, 28)) * 255).astype(np.uint8))
    np.savez(small, images=(rng.random((20, 28, 28)) * 255).astype(np.uint8))
    store = tmp_path / "r.sqlite"
    args = ["bench", "--models", "gan,ddpm", "--preset", "smoke", "--dry-run", "--results", str(store)]
    code, out, err = zoo_in_process(capsys, *args, "--samples", f"mine={good}")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("dry run: 3 job(s)")
    assert any(line.split()[:2] == ["mine", "external:"] for line in lines)  # the path, cut to fit
    assert any("sampling: sampler=ddim, steps=5" in line for line in lines)
    assert all(len(line) <= 80 for line in lines)
    code, out, err = zoo_in_process(capsys, *args, "--samples", f"mine={good}", "--json")
    assert code == 0, err
    external = [j for j in json.loads(out) if j["kind"] == "external"]
    assert [(j["model"], j["seed"], j["stored"]) for j in external] == [("mine", 0, False)]
    code, out, err = zoo_in_process(capsys, *args, "--samples", f"mine={small}")  # too few: as the real run
    assert code == 2 and out == "" and "holds 20 images" in err and err.count("\n") == 1
    assert not store.exists()
