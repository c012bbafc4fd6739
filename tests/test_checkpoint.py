"""Checkpoints: never unpickle code, catch corruption, write atomically."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from zoo.checkpoint import atomic_write, latest_checkpoint, load_checkpoint, save_checkpoint
from zoo.errors import CheckpointError


def _state():
    return {"model_state": {"w": torch.arange(1000, dtype=torch.float32)}, "step": 3, "note": ("a", 1)}


def test_round_trip(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", _state())
    state = load_checkpoint(path)
    assert torch.equal(state["model_state"]["w"], torch.arange(1000, dtype=torch.float32)) and state["step"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp files left


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# torch warns about the payload's pickle protocol before refusing it; the refusal is what is tested.
@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_a_checkpoint_that_runs_code_is_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "genzoo-checkpoint", "payload": _Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match="not a safe checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["empty", "truncated", "bitflip", "garbage"])
def test_damaged_checkpoints_give_one_clear_error(tmp_path, damage):
    path = save_checkpoint(tmp_path / "c.pt", _state())
    data = bytearray(path.read_bytes())
    if damage == "empty":
        data = bytearray()
    elif damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "bitflip":
        # Flip one bit inside the tensor payload: the zip structure still reads, the weights change.
        offset = bytes(data).find(torch.arange(1000, dtype=torch.float32)[500:502].numpy().tobytes())
        assert offset > 0
        data[offset] ^= 0x01
    else:
        data = bytearray(b"not a checkpoint at all" * 10)
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt checkpoint|not a safe checkpoint"):
        load_checkpoint(path)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, _state())
    before = path.read_bytes()

    def fail(f):
        f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(path, fail)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


def test_latest_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no run directory or checkpoint"):
        latest_checkpoint(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="has no checkpoints"):
        latest_checkpoint(tmp_path)
