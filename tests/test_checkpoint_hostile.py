"""Crafted checkpoints are refused before they cost anything (memory, files), with one line each."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT, run_zoo
from zoo.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint


def _train_gan(tmp_path):
    run = tmp_path / "run"
    out = run_zoo("train", "gan", "--steps", "2", "--set", "g_hidden=32", "--set", "d_units=16", "--run-dir", str(run),
                  "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return run, sorted((run / "checkpoints").glob("step-*.pt"))[-1]


def _rewrite(path, **changes):
    """Re-save a checkpoint with changed fields and a valid checksum (what an attacker would do)."""
    state = load_checkpoint(path)
    state.update(changes)
    for key in ("format", "format_version"):
        state.pop(key, None)
    save_checkpoint(path, state)
    if "format_version" in changes:  # save_checkpoint writes its own; put the crafted one back
        import torch

        from zoo.checkpoint import content_hash

        payload = torch.load(path, weights_only=True)
        payload.pop("checksum")
        payload["format_version"] = changes["format_version"]
        payload["checksum"] = content_hash(payload)
        torch.save(payload, path)


def test_a_config_asking_for_a_huge_network_is_refused_without_allocating_it(tmp_path):
    run, ckpt = _train_gan(tmp_path)
    config = load_checkpoint(ckpt)["config"]
    _rewrite(ckpt, config={**config, "g_hidden": 40_000})  # a 40,000 x 40,000 layer: 6.4 GB if it were built
    probe = (
        "import resource, sys\n"
        "from zoo.checkpoint import load_model\n"
        "from zoo.errors import CheckpointError\n"
        f"try:\n    load_model({str(run)!r})\nexcept CheckpointError as exc:\n    print('refused:', exc)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-1500:]
    message, peak_mb = out.stdout.strip().splitlines()
    assert "refused:" in message and "weights do not match gan's config" in message
    assert int(peak_mb) < 4000, f"peak memory {peak_mb} MB: the network was allocated"  # ~0.6-2 GB: imports
    sample = run_zoo("sample", str(run), "-n", "4", "--out", str(tmp_path / "x.png"), cwd=tmp_path)
    assert sample.returncode == 1 and len(sample.stderr.strip().splitlines()) == 1 and "Traceback" not in sample.stderr


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"image_shape": [1, -28, 28]}, "image shape"),
        ({"image_shape": [1, 28]}, "image shape"),
        ({"config": ["not", "a", "dict"]}, "does not record its model, config"),
        ({"model": None}, "does not record its model"),
        ({"format_version": "1"}, "unknown checkpoint format version"),
        ({"step": -1}, "step must be a non-negative integer"),
    ],
    ids=["negative-side", "two-sides", "config-list", "no-model", "version-text", "negative-step"],
)
def test_malformed_checkpoint_fields_are_one_line_errors(tmp_path, changes, message):
    run, ckpt = _train_gan(tmp_path)
    _rewrite(ckpt, **changes)
    for args in (["sample", str(run), "-n", "2", "--out", str(tmp_path / "x.png")], ["train", "--resume", str(run), "--steps", "4"]):
        out = run_zoo(*args, cwd=tmp_path)
        assert out.returncode != 0 and message in out.stderr, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert not list((run / "checkpoints").glob("step--*"))


def test_negative_steps_never_name_a_file(tmp_path):
    with pytest.raises(Exception, match="must be >= 0"):
        checkpoint_path(tmp_path, -1)
