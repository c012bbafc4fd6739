"""zoo bench end to end on the smoke preset, and its behaviour when models fail."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
import torch

import zoo.registry as registry_module
from tests.helpers import zoo_in_process
from zoo import hookimpl
from zoo.bench.store import ResultsStore
from zoo.registry import build_registry


def _with_models(monkeypatch, *classes):
    module = types.ModuleType("fault_plugin")
    module.zoo_register_models = hookimpl(lambda register: [register(c) for c in classes])
    monkeypatch.setattr(registry_module, "_REGISTRY", build_registry(extra_plugins=[("faults", module)]))


def _ppca(name, train_step=None):
    from zoo_ppca.model import PPCA

    attrs = {"name": name}
    if train_step is not None:
        attrs["train_step"] = train_step
    return type(name.title(), (PPCA,), attrs)


def test_unknown_model_fails_before_any_work(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = zoo_in_process(capsys, "bench", "--models", "gan,nope")
    assert code == 2 and "unknown model 'nope'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "fast"], "unknown preset 'fast'"),
        (["--set", "gan.nope=1"], "unknown config key"),
        (["--set", "lr=1"], "MODEL.KEY=VALUE"),
        (["--option", "steps=0"], "steps"),
        (["--seeds", "a,b"], "--seeds"),
    ],
)
def test_bad_requests_exit_2_before_training(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = zoo_in_process(capsys, "bench", "--models", "gan,ddpm", "--preset", "smoke", *args)
    assert code == 2 and message in err, err
    assert not (tmp_path / "runs" / "bench").exists()


def test_smoke_bench_writes_rows_leaderboard_and_html(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = zoo_in_process(capsys, "bench", "--models", "gan,ddpm", "--preset", "smoke", "--seeds", "0,1")
    assert code == 0, err
    rows = ResultsStore(tmp_path / "runs" / "results.sqlite").rows()
    assert sorted((r.model, r.seed) for r in rows) == [("ddpm", 0), ("ddpm", 1), ("gan", 0), ("gan", 1)]
    for row in rows:
        assert row.status == "ok"
        assert set(row.metrics) >= {"fid_lenet", "is_lenet", "kid_lenet", "precision_lenet", "recall_lenet"}
        assert row.floor["fid_lenet"] > 0 and row.protocol["num_fake"] == 100
        for key in ("train_images_per_s", "sample_images_per_s", "params", "train_flops_per_image", "batch_size"):
            assert row.costs[key] > 0, key
        assert row.environment["torch"] == torch.__version__
        # Memorisation, density/coverage and mode coverage in every row; the nearest pairs beside the grid.
        assert {"memorised_lenet", "density_lenet", "coverage_lenet", "classes_lenet", "kl_classes_lenet"} <= set(row.metrics)
        pairs = Path(row.images["nearest_neighbours"])
        assert pairs.is_file() and pairs.parent == Path(row.grid_path).parent
    ddpm = [r for r in rows if r.model == "ddpm"][0]
    assert ddpm.sample_options["sampler"] == "ddim" and ddpm.sample_options["steps"] == 5
    assert ddpm.costs["sample_steps"] == 5
    assert len({r.protocol_hash for r in rows}) == 1
    assert "real vs real" in out and "gan" in out and "ddpm" in out
    html = (tmp_path / "runs" / "leaderboard.html").read_text()
    assert "data:image/png;base64," in html and "ddpm" in html

    again, out_json, _ = zoo_in_process(capsys, "bench", "--models", "gan", "--preset", "smoke", "--json")
    assert again == 0 and json.loads(out_json)[0]["model"] == "gan"
    assert len(ResultsStore(tmp_path / "runs" / "results.sqlite").rows()) == 4  # a re-run replaces its row


def test_a_failing_model_is_recorded_and_the_others_carry_on(capsys, tmp_path, monkeypatch):
    def explode(self, batch, step):
        raise RuntimeError("kaboom")

    def diverge(self, batch, step):
        loss = self.nll(batch) * float("nan")
        step.optimize("main", loss)
        return {"nll": loss}

    _with_models(monkeypatch, _ppca("exploding", explode), _ppca("diverging", diverge))
    monkeypatch.chdir(tmp_path)
    code, _, err = zoo_in_process(capsys, "bench", "--models", "exploding,diverging,gan", "--preset", "smoke")
    assert code == 1
    rows = {r.model: r for r in ResultsStore(tmp_path / "runs" / "results.sqlite").rows()}
    assert rows["gan"].status == "ok"
    assert rows["exploding"].status == "failed" and "RuntimeError: kaboom" in rows["exploding"].error
    assert rows["diverging"].status == "failed" and "non-finite loss at step 0" in rows["diverging"].error
    assert "2 run(s) failed" in err and "Traceback" not in err

    code, _, err = zoo_in_process(capsys, "bench", "--models", "exploding,gan", "--preset", "smoke", "--seeds", "5", "--fail-fast")
    assert code == 1 and "--fail-fast" in err
    assert not any(r.seed == 5 and r.model == "gan" for r in ResultsStore(tmp_path / "runs" / "results.sqlite").rows())


def test_out_of_memory_halves_the_batch_and_records_it(capsys, tmp_path, monkeypatch):
    from zoo_ppca.model import PPCA

    def picky(self, batch, step):
        if batch.shape[0] > 8:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return PPCA.train_step(self, batch, step)

    def never(self, batch, step):
        raise ValueError("not memory")

    _with_models(monkeypatch, _ppca("picky", picky), _ppca("other-error", never))
    monkeypatch.chdir(tmp_path)
    code, _, err = zoo_in_process(capsys, "bench", "--models", "picky,other-error", "--preset", "smoke", "--batch-size", "32")
    assert code == 1
    rows = {r.model: r for r in ResultsStore(tmp_path / "runs" / "results.sqlite").rows()}
    assert rows["picky"].status == "ok" and rows["picky"].costs["batch_size"] == 8
    assert "retrying with batch 16" in err and "retrying with batch 8" in err
    assert rows["other-error"].status == "failed" and "ValueError: not memory" in rows["other-error"].error
