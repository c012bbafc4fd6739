"""Sweeps (repeated --set values, TOML lists) and ``zoo bench --dry-run``."""

from __future__ import annotations

import json

import pytest

from tests.helpers import zoo_in_process
from zoo.bench.sweep import Sweep, collect_assignments
from zoo.errors import ConfigError

SMOKE = ("--preset", "smoke", "--results", "r.sqlite")


def _dry(capsys, *args):
    code, out, err = zoo_in_process(capsys, "bench", *SMOKE, "--dry-run", "--json", *args)
    assert code == 0, err
    return json.loads(out)


def test_collect_assignments_turns_repeats_into_a_sweep_and_the_command_line_wins():
    got = collect_assignments(
        ["a.lr=1", "a.lr=2", "a.lr=1", "a.x=3", ("a.y", [1, 2]), ("a.x", 9), ("a.z", 4)]
    )
    assert got == {
        "a.lr": Sweep(("1", "2")),
        "a.x": "3",
        "a.y": Sweep((1, 2), listed=True),
        "a.z": 4,
    }


def test_repeated_set_is_a_sweep_each_its_own_row_and_dry_run_says_what_is_stored(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    sweep = (
        "--models",
        "dcgan",
        "--set",
        "dcgan.lr=1e-4",
        "--set",
        "dcgan.lr=2e-4",
        "--steps",
        "1",
    )
    before = _dry(capsys, *sweep)
    assert [(j["model"], j["config_label"], j["stored"]) for j in before] == [
        ("dcgan", "lr=0.0001", False),
        ("dcgan", "lr=0.0002", False),
    ]
    assert (
        not (tmp_path / "r.sqlite").exists() and not (tmp_path / "bench").exists()
    )  # wrote nothing
    code, out, err = zoo_in_process(capsys, "bench", *SMOKE, "--json", *sweep)
    assert code == 0, err
    rows = json.loads(out)
    assert sorted(r["config_label"] for r in rows) == ["lr=0.0001", "lr=0.0002"]
    assert len({r["config_hash"] for r in rows}) == 2
    after = _dry(capsys, *sweep, "--seeds", "0,1")
    assert [(j["config_label"], j["seed"], j["stored"]) for j in after] == [
        ("lr=0.0001", 0, True),
        ("lr=0.0001", 1, False),
        ("lr=0.0002", 0, True),
        ("lr=0.0002", 1, False),
    ]
    code, out, _ = zoo_in_process(capsys, "bench", *SMOKE, "--dry-run", *sweep, "--seeds", "0,1")
    assert code == 0 and "4 job(s), 2 already in the store" in out
    assert all(len(line) <= 80 for line in out.splitlines())


def test_a_toml_list_is_a_sweep_and_the_command_line_replaces_it(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "b.toml").write_text(
        'models = ["dcgan"]\n[set.dcgan]\nlr = [1e-4, 2e-4, 1e-4]\nbeta1 = [0.0, 0.5]\n'
    )
    jobs = _dry(capsys, "--config", "b.toml")
    assert sorted(j["config_label"] for j in jobs) == [
        "beta1=0.0 lr=0.0001",
        "beta1=0.0 lr=0.0002",
        "lr=0.0001",
        "lr=0.0002",
    ]  # 0.5 is the default
    assert len({j["config_hash"] for j in jobs}) == 4
    jobs = _dry(capsys, "--config", "b.toml", "--set", "dcgan.lr=3e-4")
    assert sorted(j["config_label"] for j in jobs) == ["beta1=0.0 lr=0.0003", "lr=0.0003"]


def test_a_list_field_takes_a_toml_list_as_one_value_and_a_list_of_lists_as_a_sweep(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "one.toml").write_text('models = ["ddpm"]\n[set.ddpm]\nchannel_mults = [2, 2]\n')
    (tmp_path / "two.toml").write_text(
        'models = ["ddpm"]\n[set.ddpm]\nchannel_mults = [[2, 2], [1, 2, 2]]\n'
    )
    assert [j["config_label"] for j in _dry(capsys, "--config", "one.toml")] == [
        "channel_mults=2,2"
    ]
    assert [j["config_label"] for j in _dry(capsys, "--config", "two.toml")] == [
        "channel_mults=2,2",
        "channel_mults=1,2,2",
    ]


def test_repeated_option_is_a_sampling_sweep_of_one_trained_model(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    jobs = _dry(capsys, "--models", "ddpm", "--option", "ddpm.steps=3", "--option", "ddpm.steps=5")
    assert len(jobs) == 1
    assert [o["steps"] for o in jobs[0]["sample_options"]] == [3, 5]


def test_equal_values_are_one_job(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    jobs = _dry(capsys, "--models", "dcgan", "--set", "dcgan.lr=1e-4", "--set", "dcgan.lr=0.0001")
    assert [j["config_label"] for j in jobs] == ["lr=0.0001"]


def test_a_bad_sweep_value_fails_before_any_work(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = zoo_in_process(
        capsys,
        "bench",
        *SMOKE,
        "--models",
        "dcgan",
        "--set",
        "dcgan.lr=1e-4",
        "--set",
        "dcgan.lr=-1",
        "--dry-run",
    )
    assert code == 2 and "lr" in err and len(err.strip().splitlines()) == 1, err


def test_zoo_train_refuses_repeated_set_instead_of_keeping_the_last(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = zoo_in_process(
        capsys, "train", "gan", "--steps", "1", "--set", "lr=1e-4", "--set", "lr=2e-4"
    )
    assert code == 2 and "given twice" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_parse_assignments_lets_the_command_line_replace_a_file_value():
    from zoo.config import parse_assignments

    assert parse_assignments([("lr", 0.1), "lr=0.2"]) == {"lr": "0.2"}
    with pytest.raises(ConfigError, match="given twice"):
        parse_assignments(["lr=0.1", "lr=0.2"])


def test_a_sweep_run_by_an_executor_gives_each_job_its_own_value(tmp_path):
    """Each job's spec pins its own value (not the whole sweep), through submitit's in-process executor."""
    pytest.importorskip("submitit")
    from zoo.bench.api import BenchRequest, run_benchmark

    request = BenchRequest(
        models=["dcgan"],
        preset="smoke",
        results=tmp_path / "r.sqlite",
        device="cpu",
        budget="1steps",
        overrides={"dcgan.lr": Sweep(("1e-4", "2e-4"))},
        options={},
        executor="slurm",
        slurm={"submitit_cluster": "debug"},
    )
    result = run_benchmark(request)
    assert sorted((r.config_label, r.status) for r in result.rows) == [
        ("lr=0.0001", "ok"),
        ("lr=0.0002", "ok"),
    ]
    assert len({r.run_dir for r in result.rows}) == 2


def test_dry_run_says_unknown_when_the_backbone_is_not_here_and_fetches_nothing(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no Inception weights here
    monkeypatch.delenv("ZOO_INCEPTION_WEIGHTS", raising=False)
    args = ("--models", "gan", "--backbone", "inception")
    jobs = _dry(capsys, *args)
    assert [(j["model"], j["stored"]) for j in jobs] == [("gan", None)]
    assert "not here yet" in jobs[0]["note"]
    code, out, _ = zoo_in_process(capsys, "bench", *SMOKE, "--dry-run", *args)
    assert code == 0 and "1 unknown" in out and "note: the inception backbone" in out
    assert not (tmp_path / "torch").exists() and not (tmp_path / "r.sqlite").exists()
