"""Command-line conventions: '-o -' is stdout for every format, --json on commands that report,
zoo sample never overwrites without --force, an empty store is [] / a CSV header."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from tests.helpers import zoo_in_process
from zoo.bench.store import ResultRow, ResultsStore


@pytest.fixture()
def store(tmp_path):
    path = tmp_path / "results.sqlite"
    ResultsStore(path).add_many([
        ResultRow(model=m, dataset="mnist-5k", seed=0, protocol_hash="p1", protocol={"primary_metric": "fid_lenet"},
                  metrics={"fid_lenet": v}, floor={"fid_lenet": 1.0},
                  costs={"peak_memory_mb": 300.0, "memory_kind": "process_peak_rss", "budget_stopped_by": "steps"})
        for m, v in (("gan", 10.0), ("vae", 20.0))])
    return path


@pytest.mark.parametrize("fmt", ["table", "csv", "markdown", "json", "html"])
def test_dash_is_stdout_for_every_format(store, tmp_path, capsys, monkeypatch, fmt):
    monkeypatch.chdir(tmp_path)
    code, out, err = zoo_in_process(capsys, "leaderboard", "--results", str(store), "--format", fmt, "-o", "-")
    assert code == 0, err
    assert not (tmp_path / "-").exists()
    assert "gan" in out and "vae" in out
    if fmt == "html":
        assert out.startswith("<!doctype html>")
    if fmt == "json":
        assert [line["model"] for line in json.loads(out)[0]["lines"]] == ["gan", "vae"]


def test_csv_and_json_mark_the_floor_and_carry_memory_kind_and_stop(store, capsys):
    code, out, _ = zoo_in_process(capsys, "leaderboard", "--results", str(store), "--format", "csv")
    frame = pd.read_csv(io.StringIO(out))
    assert frame["kind"].tolist() == ["floor", "model", "model"]
    models = frame[frame["kind"] == "model"]  # how docs/benchmarks.md tells pandas users to drop the floor
    assert models["model"].tolist() == ["gan", "vae"]
    assert models["memory_kind"].tolist() == ["process_peak_rss"] * 2 and models["budget_stopped_by"].tolist() == ["steps"] * 2
    code, out, _ = zoo_in_process(capsys, "leaderboard", "--results", str(store), "--format", "json")
    line = json.loads(out)[0]["lines"][0]
    assert line["memory_kind"] == "process_peak_rss" and line["budget_stopped_by"] == "steps"


def test_empty_store_gives_empty_json_and_a_csv_header(tmp_path, capsys):
    empty = tmp_path / "empty.sqlite"
    ResultsStore(empty)
    assert json.loads(zoo_in_process(capsys, "leaderboard", "--results", str(empty), "--format", "json", "-o", "-")[1]) == []
    header = zoo_in_process(capsys, "leaderboard", "--results", str(empty), "--format", "csv")[1]
    assert header.count("\n") == 1 and "kind" in header.split(",")


def test_sample_json_and_no_overwrite_without_force(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = zoo_in_process(capsys, "train", "gan", "--steps", "2", "--batch-size", "16", "--set", "g_hidden=16",
                                    "--run-dir", "run", "--no-progress", "--json")
    assert code == 0, err
    trained = json.loads(out)
    assert trained["steps"] == 2 and trained["run_dir"] == "run" and set(trained["losses"]) and trained["files"]["losses"]

    code, out, err = zoo_in_process(capsys, "sample", "run", "-n", "4", "--json")
    assert code == 0, err
    sampled = json.loads(out)
    assert sampled["path"] == "samples.png" and sampled["num"] == 4 and sampled["model"] == "gan" and sampled["step"] == 2
    before = (tmp_path / "samples.png").read_bytes()

    code, out, err = zoo_in_process(capsys, "sample", "run", "-n", "4", "--seed", "1")
    assert code == 2 and "already exists" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "samples.png").read_bytes() == before

    code, _, err = zoo_in_process(capsys, "sample", "run", "-n", "4", "--seed", "1", "--force")
    assert code == 0, err
    assert (tmp_path / "samples.png").read_bytes() != before
