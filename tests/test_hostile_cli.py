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
