"""Configuration files: TOML settings for zoo train and zoo bench, the command line wins, a run's
config.json trains the same run again, errors are one line; cache folders follow platformdirs."""

from __future__ import annotations

import json

import click
import pytest

from tests.helpers import zoo_in_process
from zoo.cli.configuration import merge_config
from zoo.config import parse_assignments
from zoo.configfile import bench_settings, train_settings
from zoo.errors import UsageError


def write(path, text: str):
    path.write_text(text)
    return path


def test_train_file_maps_to_options(tmp_path):
    path = write(tmp_path / "run.toml", 'model = "gan"\nbatch-size = 16\ntime = "5m"\nlogger = "tensorboard"\n'
                                        "[set]\ng_hidden = 32\nbetas = [0.5, 0.999]\n")
    assert train_settings(path) == {"model_name": "gan", "batch_size": 16, "time_budget": "5m", "loggers": ["tensorboard"],
                                    "overrides": {"g_hidden": 32, "betas": [0.5, 0.999]}}


def test_bench_file_flattens_model_tables(tmp_path):
    path = write(tmp_path / "bench.toml", 'models = ["gan", "ddpm"]\nseeds = [0, 1, 2]\npreset = "smoke"\n'
                                          "[set.ddpm]\nlr = 1e-4\n[option.ddpm]\nsteps = 50\n")
    assert bench_settings(path) == {"models": "gan,ddpm", "seeds": "0,1,2", "preset": "smoke",
                                    "overrides": {"ddpm.lr": 1e-4}, "options": {"ddpm.steps": 50}}


@pytest.mark.parametrize(("text", "message"), [
    ('modle = "gan"\n', "unknown setting 'modle' for zoo train (did you mean 'model'?)"),
    ("steps = \n", "not valid TOML"),
    ("set = 3\n", "'set' must be a table"),
])
def test_bad_files_are_one_line_usage_errors(tmp_path, text, message):
    with pytest.raises(UsageError, match="run.toml") as info:
        train_settings(write(tmp_path / "run.toml", text))
    assert message in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UsageError, match="cannot read"):
        train_settings(tmp_path / "missing.toml")


def test_run_config_json_maps_model_config_and_budget(tmp_path):
    run = {"model": "vae", "config": {"lr": 0.002, "latent": 16}, "dataset": "mnist-5k",
           "dataset_args": {"name": "mnist-5k", "data_dir": None, "image_size": None},
           "train": {"steps": 40, "epochs": None, "time_limit": None, "budget": None, "batch_size": 32, "seed": 3,
                     "device": "auto", "precision": "fp32", "checkpoint_every": 20, "loggers": ["csv", "tensorboard"]}}
    path = write(tmp_path / "config.json", json.dumps(run))
    assert train_settings(path) == {"model_name": "vae", "overrides": {"lr": 0.002, "latent": 16}, "dataset": "mnist-5k",
                                    "steps": 40, "batch_size": 32, "seed": 3, "device": "auto", "precision": "fp32",
                                    "checkpoint_every": 20, "loggers": ["csv", "tensorboard"]}
    run["train"]["budget"] = "64kimg"
    with pytest.raises(UsageError, match="64 kimg budget cannot be given to zoo train|kimg"):
        train_settings(write(tmp_path / "config.json", json.dumps(run)))
    run["train"]["budget"] = "90s"
    assert train_settings(write(tmp_path / "config.json", json.dumps(run)))["time_budget"] == "90s"


def test_command_line_wins_and_values_are_checked_by_the_option_type():
    @click.command()
    @click.option("--steps", type=click.IntRange(min=1))
    @click.option("--seed", type=int, default=0)
    @click.option("--time", "time_budget")
    @click.option("--set", "overrides", multiple=True)
    def command(**_kwargs):
        pass

    ctx = command.make_context("command", ["--seed", "7", "--set", "lr=0.1"])
    merged = merge_config(ctx, dict(ctx.params), {"steps": 5, "seed": 1, "time_budget": 90, "overrides": {"lr": 0.5, "depth": 2}})
    assert merged["steps"] == 5 and merged["seed"] == 7 and merged["time_budget"] == "90"
    # A file's config values stay typed (so a bool cannot pass as an int); later wins: the command line's lr.
    assert merged["overrides"] == (("lr", 0.5), ("depth", 2), "lr=0.1")
    assert parse_assignments(merged["overrides"]) == {"lr": "0.1", "depth": 2}
    with pytest.raises(click.BadParameter, match="from --config"):
        merge_config(ctx, dict(ctx.params), {"steps": 0})


def test_zoo_train_config_then_its_config_json_again(tmp_path, capsys):
    toml = write(tmp_path / "run.toml", 'model = "gan"\nsteps = 50\nbatch-size = 16\nseed = 4\n[set]\ng_hidden = 32\n')
    code, out, err = zoo_in_process(capsys, "train", "--config", str(toml), "--steps", "3", "--run-dir",
                                    str(tmp_path / "a"), "--no-progress", "--json")
    assert code == 0, err
    first = json.loads(out)
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert first["steps"] == 3 and saved["train"]["steps"] == 3  # the command line won
    assert saved["config"]["g_hidden"] == 32 and saved["train"]["batch_size"] == 16 and saved["train"]["seed"] == 4

    code, out, err = zoo_in_process(capsys, "train", "--config", str(tmp_path / "a" / "config.json"), "--run-dir",
                                    str(tmp_path / "b"), "--no-progress", "--json")
    assert code == 0, err
    again = json.loads((tmp_path / "b" / "config.json").read_text())
    assert again["config"] == saved["config"] and again["train"] == saved["train"] and json.loads(out)["steps"] == 3


def test_zoo_train_config_errors_are_one_line(tmp_path, capsys):
    bad = write(tmp_path / "bad.toml", 'model = "gan"\nsteps = 0\n')
    code, _, err = zoo_in_process(capsys, "train", "--config", str(bad))
    assert code == 2 and "--steps" in err and "from --config" in err and len(err.strip().splitlines()) == 1


def test_zoo_bench_config_sets_the_request(tmp_path, capsys, monkeypatch):
    from zoo.bench import api

    seen = {}

    def fake_run_benchmark(request, **_kwargs):
        seen["request"] = request
        raise UsageError("stop here")

    monkeypatch.setattr(api, "run_benchmark", fake_run_benchmark)
    toml = write(tmp_path / "bench.toml", 'models = ["gan", "vae"]\nseeds = [0, 1]\npreset = "smoke"\n[set.gan]\ng_hidden = 32\n')
    code, _, err = zoo_in_process(capsys, "bench", "--config", str(toml), "--preset", "quick")
    assert code == 2 and "stop here" in err
    request = seen["request"]
    assert request.models == ["gan", "vae"] and request.seeds == [0, 1] and request.preset == "quick"
    assert dict(request.overrides) == {"gan.g_hidden": 32}  # typed, as the file wrote it


def test_cache_folders_follow_platformdirs_and_zoo_variables_win(monkeypatch, tmp_path):
    from zoo.factory import default_data_dir
    from zoo.metrics.stats_cache import cache_dir

    monkeypatch.delenv("ZOO_CACHE_DIR", raising=False)
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if not str(cache_dir()).startswith(str(tmp_path / "xdg")):
        pytest.skip("platformdirs uses the XDG variables on Linux only")
    assert cache_dir() == tmp_path / "xdg" / "genzoo" and default_data_dir() == tmp_path / "xdg" / "genzoo" / "data"
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("ZOO_DATA_DIR", str(tmp_path / "d"))
    assert cache_dir() == tmp_path / "c" and default_data_dir() == tmp_path / "d"
