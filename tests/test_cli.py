"""The command line as a user meets it: data on stdout, one-line errors, exit codes."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_zoo, zoo_in_process
from zoo import __version__


def test_version():
    out = run_zoo("--version")
    assert out.returncode == 0 and __version__ in out.stdout


def test_list_json_and_family_filter():
    out = run_zoo("list", "--json")
    assert out.returncode == 0
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert {"gan", "dcgan", "vae", "ddpm"} <= set(rows)
    assert rows["ddpm"]["family"] == "diffusion" and rows["vae"]["family"] == "vae" and rows["gan"]["family"] == "gan"
    assert rows["gan"]["distribution"] == "genzoo" and rows["gan"]["summary"]
    assert "steps" in rows["ddpm"]["sample_options"]



def test_list_family_filter_and_table(capsys):
    gans = json.loads(zoo_in_process(capsys, "list", "--family", "gan", "--json")[1])
    assert {r["name"] for r in gans} == {"gan", "dcgan", "wgan-gp"}
    code, table, _ = zoo_in_process(capsys, "list")
    assert code == 0 and "ddpm" in table and "diffusion" in table


def test_plugins_json(capsys):
    rows = json.loads(zoo_in_process(capsys, "plugins", "--all", "--json")[1])
    by_name = {r["name"]: r for r in rows}
    assert by_name["ddpm"]["hooks"] == ["zoo_register_models"] and by_name["ddpm"]["models"] == ["ddpm"]
    assert "mnist-5k" in by_name["datasets"]["datasets"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "--family", "nope"], "unknown family 'nope'"),
        (["train", "nope"], "unknown model 'nope'"),
        (["train", "dcgn"], "did you mean 'dcgan'"),
        (["train", "gan", "--dataset", "mnist-6k"], "unknown dataset 'mnist-6k'"),
        (["train", "gan", "--set", "lr=-1"], "lr"),
        (["train", "gan", "--set", "nonsense=1"], "unknown config key"),
        (["train", "gan", "--set", "novalue"], "expected key=value"),
        (["train", "gan", "--steps", "0"], "--steps"),
        (["train", "gan", "--time", "soon"], "duration"),
        (["train", "gan", "--device", "cuda:7"], "cuda"),
        (["train", "gan", "--dataset", "folder:/does/not/exist"], "no such directory"),
        (["sample", "/does/not/exist"], "no run directory or checkpoint"),
        (["bogus-command"], "No such command"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, args, message):
    code, _out, err = zoo_in_process(capsys, *args)
    assert code == 2, (code, err)
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_bad_input_through_the_real_entry_point():
    out = run_zoo("train", "nope")
    from zoo.registry import build_registry

    available = ", ".join(sorted(build_registry().models))  # every built-in model and variant
    assert out.returncode == 2 and out.stderr.strip() == f"zoo: error: unknown model 'nope' (available: {available})"


def test_corrupt_checkpoint_is_one_line_exit_1(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    out = run_zoo("sample", str(bad))
    assert out.returncode == 1 and "corrupt checkpoint" in out.stderr and "Traceback" not in out.stderr


def test_train_sample_resume_round_trip(tmp_path):
    run = tmp_path / "run"
    out = run_zoo("train", "gan", "--steps", "6", "--batch-size", "16", "--checkpoint-every", "3",
                  "--set", "g_hidden=32", "--run-dir", str(run), "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "trained 6 steps" in out.stdout
    for name in ("config.json", "environment.json", "losses.csv", "samples.png"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "gan" and config["config"]["g_hidden"] == 32 and config["train"]["steps"] == 6
    assert len((run / "losses.csv").read_text().splitlines()) == 7  # header + 6 steps

    again = run_zoo("train", "gan", "--run-dir", str(run), cwd=tmp_path)
    assert again.returncode == 2 and "--resume" in again.stderr  # never overwrite a run

    more = run_zoo("train", "--resume", str(run), "--steps", "9", "--no-progress", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    assert "trained 9 steps" in more.stdout

    grid = tmp_path / "grid.png"
    sampled = run_zoo("sample", str(run), "-n", "9", "--out", str(grid), "--seed", "3")
    assert sampled.returncode == 0 and grid.is_file()
    npz = tmp_path / "s.npz"
    assert run_zoo("sample", str(run), "-n", "5", "--out", str(npz)).returncode == 0
    import numpy as np

    assert np.load(npz)["images"].shape == (5, 1, 28, 28)
