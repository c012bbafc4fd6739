"""Bounded resources (issue 27 item 8): a closed stdout, config files, temp files of a killed
`zoo sample` (sampling batch sizes: tests/test_memory_cap.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import train_tiny_gan, zoo_in_process

# -- bounded resources ------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--version"], ["list"], ["leaderboard", "--format", "json"]])
def test_with_stdout_closed_every_command_is_one_line_on_stderr(tmp_path, args):
    import shlex
    import subprocess
    import sys

    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "zoo", *args])
    proc = subprocess.run(["bash", "-c", f"{command} >&-"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 1
    assert proc.stderr == "zoo: error: standard output is closed (redirect it to a file or /dev/null)\n"


def test_config_files_must_be_regular_and_small(tmp_path, capsys):
    import os

    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * 2**20 + "\n")
    os.mkfifo(tmp_path / "fifo.toml")
    for path in ("/dev/zero", str(tmp_path / "fifo.toml"), str(big)):
        code, out, err = zoo_in_process(capsys, "train", "--config", path)
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert "not a regular file" in err or "over the limit of 1 MiB" in err


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> Path:
    return train_tiny_gan(tmp_path_factory.mktemp("gan-run"))


def test_a_killed_sample_npz_temp_file_is_removed_on_the_next_start_but_a_live_one_is_kept(tmp_path, capsys,
                                                                                             gan_run):
    import fcntl
    import os

    dead = tmp_path / ".x.npz.abcd1234.tmp"  # what SIGKILL during `zoo sample --out x.npz` leaves
    dead.write_bytes(b"\0" * 4096)
    live = tmp_path / ".x.npz.live5678.tmp"
    live.write_bytes(b"\0" * 16)
    other = tmp_path / ".y.npz.abcd1234.tmp"  # another output's: not this command's to remove
    other.write_bytes(b"")
    with open(live, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # a writer still at work
        code, _, err = zoo_in_process(capsys, "sample", str(gan_run), "-n", "5", "--out", str(tmp_path / "x.npz"))
    assert code == 0, err
    assert not dead.exists() and live.exists() and other.exists()
    assert np.load(tmp_path / "x.npz")["images"].shape[0] == 5
    assert sorted(os.listdir(tmp_path)) == sorted([".x.npz.live5678.tmp", ".y.npz.abcd1234.tmp", "x.npz"])
