"""Findings of a new-user trial, each now one clean line: markup in paths, huge seeds, unwritable
paths, non-finite sampling options, plugin names that would shadow a built-in."""

from __future__ import annotations

import pytest

from tests.helpers import zoo_in_process
from zoo.errors import ConfigError
from zoo.text import printable


def _one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_run_folder_with_markup_is_printed_literally(capsys, tmp_path):
    run = tmp_path / "a[/]b[red]"
    code, out, err = zoo_in_process(capsys, "train", "gan", "--steps", "2", "--run-dir", str(run), "--no-progress")
    assert code == 0, err
    assert f"run directory: {run}" in out


@pytest.mark.parametrize("command", [["train", "gan", "--steps", "1"], ["sample", "nowhere"]], ids=["train", "sample"])
def test_seeds_beyond_what_torch_accepts_are_usage_errors(capsys, command):
    code, _, err = zoo_in_process(capsys, *command, "--seed", str(2**64))
    assert code == 2 and _one_line(err) and "--seed" in err


def test_an_unwritable_output_is_one_line(capsys, tmp_path):
    code, _, err = zoo_in_process(capsys, "leaderboard", "--results", str(tmp_path / "none.sqlite"),
                                  "--format", "csv", "-o", "/proc/version")
    errors = [line for line in err.splitlines() if not line.startswith("zoo: warning:")]  # the empty store's note
    assert code == 1 and errors == [errors[0]] and errors[0].startswith("zoo: error:") and "Traceback" not in err


def test_non_finite_sampling_options_are_refused():
    from zoo_ddpm.model import DDPM

    for value in ("nan", "inf", "-inf"):
        with pytest.raises(ConfigError, match="finite"):
            DDPM.parse_sample_options({"eta": value})


def test_new_plugin_refuses_a_name_that_shadows_a_builtin(capsys, tmp_path):
    code, _, err = zoo_in_process(capsys, "new-plugin", "gan", "--dir", str(tmp_path))
    assert code == 2 and _one_line(err) and "taken" in err
    assert not any(tmp_path.iterdir())


def test_control_characters_are_shown_escaped():
    assert printable("a\x1b]0;owned\x07b\r") == "a\\x1b]0;owned\\x07b\\x0d"


# -- second trial: arguments, config kinds, list fields, resume names, eval counts, COLUMNS, warnings --

def _train_gan(capsys, tmp_path, name="run"):
    run = tmp_path / name
    code, _, err = zoo_in_process(capsys, "train", "gan", "--steps", "2", "--set", "g_hidden=16", "--set", "d_units=8",
                                  "--run-dir", str(run), "--no-progress")
    assert code == 0, err
    return run


def _snapshot(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))


def test_resume_under_another_model_name_is_refused_and_the_same_name_is_accepted(capsys, tmp_path):
    run = _train_gan(capsys, tmp_path)
    before = _snapshot(run)
    code, _, err = zoo_in_process(capsys, "train", "vae", "--resume", str(run), "--steps", "3", "--no-progress")
    assert code == 2 and _one_line(err) and "'gan'" in err and "'vae'" in err
    assert _snapshot(run) == before
    code, _, err = zoo_in_process(capsys, "train", "--resume", str(run), "--set", "lr=nan", "--steps", "3")
    assert code == 2 and _one_line(err) and "--set" in err  # not silently ignored
    assert _snapshot(run) == before
    code, _, err = zoo_in_process(capsys, "train", "gan", "--resume", str(run), "--steps", "3", "--no-progress")
    assert code == 0, err


@pytest.mark.parametrize("budget", [["--epochs", "nan"], ["--epochs", "inf"], ["--time", "9" * 400 + "h"]])
def test_non_finite_budgets_on_resume_are_one_line_before_training(capsys, tmp_path, budget):
    run = _train_gan(capsys, tmp_path)
    before = _snapshot(run)
    code, _, err = zoo_in_process(capsys, "train", "--resume", str(run), *budget, "--no-progress")
    assert code == 2 and _one_line(err) and ("finite" in err or "positive number" in err), err
    assert _snapshot(run) == before


def test_list_fields_take_list_syntax_and_name_a_bad_item():
    from zoo_ddpm.model import DDPM

    for text in ("[1, 2]", "[1,2,]", "(1, 2)", "1,2"):
        assert DDPM.Config.from_overrides({"channel_mults": text}).channel_mults == (1, 2)
    assert DDPM.Config.from_overrides({"channel_mults": [1, 2]}).channel_mults == (1, 2)  # a file's array
    for text, message in (("[1, 'a']", r"channel_mults\[1\]: expected int"), ("[1, 2", "expected a list like"),
                          ("[1, [2]]", r"channel_mults\[1\]"), ("[true]", r"channel_mults\[0\]"), ("[1.5]", r"\[0\]")):
        with pytest.raises(ConfigError, match=message):
            DDPM.Config.from_overrides({"channel_mults": text})


def test_set_with_a_list_value_trains(capsys, tmp_path):
    code, _, err = zoo_in_process(capsys, "train", "ddpm", "--set", "channel_mults=[1,2]", "--set", "base_channels=8",
                                  "--steps", "1", "--batch-size", "4", "--run-dir", str(tmp_path / "r"), "--no-progress")
    assert code == 0, err
    import json

    assert json.loads((tmp_path / "r" / "config.json").read_text())["config"]["channel_mults"] == [1, 2]


@pytest.mark.parametrize("body", [
    'steps = true', 'steps = 2.7', 'batch-size = 1e400', 'progress = 1', 'run_dir = 5', 'logger = [["csv"]]',
    'compile = "yes"', '[set]\ng_hidden = true', '[set]\nlr = true', '[set]\nlr = 1e400', '[set]\nlr = nan',
    f'[set]\nlr = {"9" * 400}', '[set]\ng_hidden = 2.5',
], ids=lambda b: b.replace("\n", " ")[:30])
def test_config_file_values_must_have_their_kind_and_be_finite(capsys, tmp_path, monkeypatch, body):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.toml").write_text(f'model = "gan"\n{body}\n')
    code, out, err = zoo_in_process(capsys, "train", "--config", "run.toml", "--steps", "1") if body.startswith("[set]") \
        else zoo_in_process(capsys, "train", "--config", "run.toml")
    assert code == 2 and _one_line(err) and err.startswith("zoo: error:"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.toml"]  # no run folder


def test_every_float_config_value_is_finite_unless_the_field_says_otherwise():
    import dataclasses
    import math

    from zoo.config import ModelConfig

    @dataclasses.dataclass
    class Clipped(ModelConfig):
        lr: float = 1e-3
        clip: float = dataclasses.field(default=math.inf, metadata={"finite": False})
        weights: tuple[float, ...] = (1.0,)

    assert Clipped().clip == math.inf and Clipped.from_overrides({"clip": "-inf"}).clip == -math.inf
    for key, value in (("lr", "nan"), ("lr", "inf"), ("lr", 10**400), ("weights", "[1.0, nan]"), ("weights", [math.inf])):
        with pytest.raises(ConfigError, match="finite"):
            Clipped.from_overrides({key: value})


def test_config_file_can_set_compile(tmp_path):
    from zoo.configfile import train_settings

    (tmp_path / "run.toml").write_text('model = "gan"\ncompile = true\n')
    assert train_settings(tmp_path / "run.toml")["compile_networks"] is True


def test_eval_and_bench_counts_below_the_protocol_are_usage_errors(capsys, tmp_path, monkeypatch):
    run = _train_gan(capsys, tmp_path)
    for args in (["--num-fake", "8"], ["--num-real", "3"], ["--num-fake", "100000"], ["--seed", str(2**64)]):
        code, out, err = zoo_in_process(capsys, "eval", str(run), *args)
        assert code == 2 and _one_line(err) and out == "", (args, err)
    monkeypatch.chdir(tmp_path)
    code, _, err = zoo_in_process(capsys, "bench", "--models", "gan", "--preset", "smoke", "--num-fake", "5",
                                  "--results", "r.sqlite")
    assert code == 2 and _one_line(err) and "--num-fake" in err
    assert not (tmp_path / "r.sqlite").exists() and not (tmp_path / "bench").exists()


@pytest.mark.parametrize("columns", ["0", "-4", "abc", "99999999999", "5"])
def test_absurd_columns_still_print_a_readable_table(columns):
    from tests.helpers import run_zoo

    out = run_zoo("list", env={"COLUMNS": columns})
    assert out.returncode == 0 and "gan" in out.stdout, out.stderr
    widths = [len(line) for line in out.stdout.splitlines()]
    assert 40 <= max(widths) <= 80


def test_image_read_warnings_are_one_zoo_warning_line(capsys, tmp_path):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(12):
        Image.fromarray((np.random.default_rng(i).random((8, 8)) * 255).astype("uint8")).save(folder / f"{i}.png")
    (folder / "bad.png").write_bytes(b"not a png")
    code, _, err = zoo_in_process(capsys, "train", "gan", "--dataset", f"folder:{folder}", "--steps", "1", "--batch-size", "4",
                                  "--set", "g_hidden=16", "--set", "d_units=8", "--run-dir", str(tmp_path / "r"), "--no-progress")
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert any(line.startswith("zoo: warning:") and "bad.png" in line for line in lines), err
    assert "ImageReadWarning" not in err and ".py:" not in err, err


@pytest.mark.parametrize("command", [["train", "gan"], ["bench", "--models", "gan", "--preset", "smoke"]],
                         ids=["train", "bench"])
def test_a_duration_that_overflows_a_float_is_named_as_such(capsys, tmp_path, monkeypatch, command):
    monkeypatch.setenv("ZOO_RESULTS", str(tmp_path / "results.db"))
    code, _, err = zoo_in_process(capsys, *command, "--time", "9" * 400 + "h", "--run-dir" if command[0] == "train" else
                                  "--runs-dir", str(tmp_path / "runs"))
    assert code == 2 and _one_line(err) and "finite duration" in err and "infs" not in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "results.db").exists()


@pytest.mark.parametrize(("body", "message"), [("[]", "must hold a JSON object"), ("{", "not readable JSON"),
                                               ("", "not readable JSON")], ids=["list", "truncated", "empty"])
def test_a_damaged_run_config_is_one_line_on_resume(capsys, tmp_path, body, message):
    run = tmp_path / "r"
    assert zoo_in_process(capsys, "train", "gan", "--steps", "2", "--batch-size", "8", "--set", "g_hidden=16",
                          "--set", "d_units=16", "--run-dir", str(run), "--no-progress")[0] == 0
    (run / "config.json").write_text(body)
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    code, _, err = zoo_in_process(capsys, "train", "--resume", str(run), "--steps", "3", "--no-progress")
    assert code == 1 and _one_line(err) and message in err
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before and (run / "config.json").read_text() == body
