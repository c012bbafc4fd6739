"""zoo bench --tune: declared search spaces, seeded trials kept in the store, resume, identity."""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
import sys

import pytest

from tests.helpers import zoo_in_process
from zoo.bench.store import ResultRow, ResultsStore
from zoo.config import ModelConfig
from zoo.registry import get_registry
from zoo.search import Choice, Float, Int, check_search_space, search_space, space_hash

pytest.importorskip("optuna")

BUILT_INS = ("gan", "dcgan", "wgan-gp", "vae", "vaegan", "ddpm", "flow")
TUNE = ("bench", "--models", "gan", "--preset", "smoke", "--tune", "2", "--no-progress")


@pytest.mark.parametrize("name", BUILT_INS)
def test_every_built_in_declares_a_valid_space_holding_its_defaults(name):
    config = get_registry().entry(name).cls.Config
    space = search_space(config)
    assert space, f"{name} declares no search space"
    check_search_space(config, name)
    defaults = config()
    for field_name, param in space.items():
        value = getattr(defaults, field_name)
        if isinstance(param, Choice):
            assert value in param.values, (field_name, value)
        else:
            assert param.low <= value <= param.high, (field_name, value)


@dataclasses.dataclass
class _Cfg(ModelConfig):
    lr: float = 1e-3
    depth: int = 2
    kind: str = "a"

    def validate(self) -> None:
        self.require(self.depth >= 1, "depth", "must be at least 1")


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"nope": Float(0.1, 1.0)}, "no field 'nope'"),
        ({"lr": Int(1, 3)}, "Int range on a field"),
        ({"lr": Float(1.0, 0.1)}, "low must be below high"),
        ({"lr": Float(0.0, 1.0, log=True)}, "log-scale range needs low > 0"),
        ({"depth": Choice(0, 1)}, "refuses 0"),
        ({"kind": Choice()}, "at least one value"),
        ({"kind": "a"}, "expected Float"),
    ],
)
def test_a_malformed_search_space_is_refused_naming_the_class(space, message):
    cfg = type("Bad", (_Cfg,), {"search_space": space})
    with pytest.raises(TypeError, match=message):
        check_search_space(cfg, "Bad")


def test_space_hash_changes_with_any_bound_and_not_with_order():
    a = {"lr": Float(1e-4, 1e-2, log=True), "depth": Int(1, 4)}
    assert space_hash(a) == space_hash(dict(reversed(a.items())))
    assert space_hash(a) != space_hash({**a, "lr": Float(1e-4, 1e-2)})
    assert space_hash(a) != space_hash({**a, "depth": Int(1, 5)})


def _trials(path):
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT number, state, params, value FROM tuning_trials ORDER BY number"
        ).fetchall()


def test_tune_smoke_picks_the_same_trials_resumes_and_records_the_effort(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    code, out, err = zoo_in_process(capsys, *TUNE, "--results", "a/r.sqlite", "--json")
    assert code == 0, err
    first = _trials(tmp_path / "a/r.sqlite")
    assert [t[:2] for t in first] == [
        (0, "complete"),
        (1, "complete"),
    ]  # 1-step trials: no rung to prune at
    [row] = json.loads(out)
    tuning = row["tuning"]
    space = search_space(get_registry().entry("gan").cls.Config)
    assert (
        tuning["n_trials"] == 2
        and tuning["trial_budget"] == "1steps"
        and tuning["space"] == space_hash(space)
    )
    best = min((t for t in first if t[1] == "complete"), key=lambda t: (t[3], t[0]))
    assert (
        row["config"] | json.loads(best[2]) == row["config"]
    )  # the final run trains the best trial's config

    # The same command on a fresh store picks the same trials.
    code, _, err = zoo_in_process(capsys, *TUNE, "--results", "b/r.sqlite", "--json")
    assert code == 0, err
    assert [t[2] for t in _trials(tmp_path / "b/r.sqlite")] == [t[2] for t in first]

    # Again on the first store: nothing is trained again.
    code, _, err = zoo_in_process(capsys, *TUNE, "--results", "a/r.sqlite")
    assert (
        code == 0
        and "2 of 2 trials already in the store" in err
        and "already in the store; skipped" in err
    )
    assert _trials(tmp_path / "a/r.sqlite") == first

    # An interrupted study (its last trial lost) resumes with the trial it would have run.
    with sqlite3.connect(tmp_path / "b/r.sqlite") as conn:
        conn.execute("DELETE FROM tuning_trials WHERE number = 1")
    code, _, err = zoo_in_process(capsys, *TUNE, "--results", "b/r.sqlite")
    assert code == 0 and "1 of 2 trials already in the store; resuming" in err
    assert [t[2] for t in _trials(tmp_path / "b/r.sqlite")] == [t[2] for t in first]

    # The tuned row and an untuned run of the very same config are separate runs on separate boards.
    params = json.loads(best[2])
    sets = [a for k, v in params.items() for a in ("--set", f"gan.{k}={v}")]
    code, _, err = zoo_in_process(
        capsys,
        "bench",
        "--models",
        "gan",
        "--preset",
        "smoke",
        "--no-progress",
        "--results",
        "a/r.sqlite",
        *sets,
    )
    assert code == 0, err
    store = ResultsStore(tmp_path / "a/r.sqlite")
    rows = store.rows()
    assert len(rows) == 2 and rows[0].config_hash == rows[1].config_hash
    assert rows[0].identity != rows[1].identity
    from zoo.bench.leaderboard import leaderboards, to_markdown

    boards = leaderboards(store)
    assert sorted(bool(b.tuning) for b in boards) == [False, True]
    tuned = next(b for b in boards if b.tuning)
    assert [t["number"] for t in tuned.trials["gan"]] == [0, 1]
    assert "tuned: 2 trials at 1steps each" in tuned.title
    assert "| gan | 2 / 0 / 0 |" in to_markdown([tuned])
    from zoo.bench.leaderboard import to_json

    [doc] = json.loads(to_json([tuned]))
    assert doc["tuning"]["n_trials"] == 2 and [
        t["number"] for t in doc["trials"]["by_model"]["gan"]
    ] == [0, 1]
    from zoo.bench.trialplot import plot_trials

    assert plot_trials(tuned)[:8] == b"\x89PNG\r\n\x1a\n"


def test_dry_run_lists_trials_and_tuned_jobs_without_training(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = zoo_in_process(capsys, *TUNE, "--results", "r.sqlite", "--dry-run", "--json")
    assert code == 0, err
    jobs = json.loads(out)
    assert [(j["kind"], j["stored"]) for j in jobs] == [
        ("trial", False),
        ("trial", False),
        ("tuned", False),
    ]
    assert not (tmp_path / "r.sqlite").exists()


def test_boards_never_mix_tuning_efforts_but_models_with_their_own_spaces_share_one():
    from zoo.bench.leaderboard import build_leaderboard

    def row(model, tuning, value):
        return ResultRow(
            model=model,
            dataset="d",
            seed=0,
            protocol_hash="p",
            metrics={"fid": value},
            protocol={"primary_metric": "fid"},
            tuning=tuning,
            budget_kind="steps",
            budget_amount=4,
        )

    effort = {"n_trials": 8, "trial_budget": "1steps", "sampler": "s", "pruner": "p", "seed": 0}
    boards = build_leaderboard(
        [
            row("a", {}, 1.0),
            row("a", {**effort, "space": "x"}, 2.0),
            row("b", {**effort, "space": "y"}, 3.0),
            row("b", {**effort, "n_trials": 4, "space": "y"}, 4.0),
        ]
    )
    assert sorted(len(b.table) for b in boards) == [1, 1, 2]
    assert sorted(b.tuning.get("n_trials", 0) for b in boards) == [0, 4, 8]


def test_successive_halving_sees_the_stored_trials():
    import optuna

    from zoo.bench.trials import TrialRecord
    from zoo.bench.tuning import TuneSettings, _study

    space = {"lr": Float(1e-4, 1e-2, log=True)}
    settings = TuneSettings(4, __import__("zoo.budget", fromlist=["Budget"]).Budget("steps", 8))
    study, dists = _study(optuna, "k", 0, settings, space, [], lower=True)
    trial = study.ask(dists)
    trial.report(10.0, 1)
    assert not trial.should_prune()
    study.tell(trial, 10.0)
    frozen = study.trials[-1]
    record = TrialRecord(
        "k",
        0,
        "m",
        "d",
        "p",
        {},
        "complete",
        dict(frozen.params),
        value=10.0,
        intermediate={"1": 10.0},
        system_attrs=dict(frozen.system_attrs),
    )
    again, dists = _study(optuna, "k", 1, settings, space, [record], lower=True)
    worse = again.ask(dists)
    worse.report(100.0, 1)
    assert worse.should_prune()  # the replayed trial's rung value prunes a worse one


def test_tune_errors_are_one_line_before_any_work(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = [
        (["--set", "gan.lr=1e-3", "--set", "gan.lr=2e-3"], "drop the sweep over gan.lr"),
        (
            [
                "--set",
                "gan.lr=1e-3",
                "--set",
                "gan.beta1=0.5",
                "--set",
                "gan.beta2=0.9",
                "--set",
                "gan.d_dropout=0.1",
            ],
            "declares no search space",
        ),
    ]
    for args, message in cases:
        code, _, err = zoo_in_process(capsys, *TUNE, *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    code, _, err = zoo_in_process(
        capsys, "bench", "--models", "gan", "--preset", "smoke", "--tune-budget", "1steps"
    )
    assert code == 2 and "--tune-budget needs --tune" in err
    monkeypatch.setitem(sys.modules, "optuna", None)
    code, _, err = zoo_in_process(capsys, *TUNE)
    assert (
        code == 2 and "pip install 'genzoo[tune]'" in err and len(err.strip().splitlines()) == 1
    ), err
    assert not (tmp_path / "runs").exists()


def test_rounded_parameters_stay_in_range():
    from zoo.bench.tuning import _rounded

    space = {"lr": Float(1.23456e-4, 2e-3, log=True), "b": Choice(0.0, 0.5)}
    got = _rounded({"lr": 1.234561e-4, "b": 0.5}, space)
    assert got == {"lr": 1.23456e-4, "b": 0.5} and not math.isnan(got["lr"])


def test_a_tuned_job_run_by_an_executor_keeps_its_config_and_effort(tmp_path, monkeypatch):
    """Trials run here; the final job's spec pins the tuned config and effort for the child."""
    pytest.importorskip("submitit")
    from zoo.bench import tuning
    from zoo.bench.api import BenchRequest, run_benchmark

    calls = []
    real = tuning._run_trial
    monkeypatch.setattr(tuning, "_run_trial", lambda *a, **k: calls.append(1) or real(*a, **k))
    common = dict(models=["gan"], preset="smoke", device="cpu", tune=2)
    serial = run_benchmark(BenchRequest(**common, results=tmp_path / "a" / "r.sqlite"))
    slurm = run_benchmark(
        BenchRequest(
            **common,
            results=tmp_path / "b" / "r.sqlite",
            executor="slurm",
            slurm={"submitit_cluster": "debug"},
        )
    )
    assert (
        len(calls) == 4
    )  # 2 trials per store; the executor's job (run in this process) tuned nothing
    [want], [got] = serial.rows, slurm.rows
    assert got.status == "ok" and got.identity == want.identity and got.tuning["n_trials"] == 2


def test_describe_shows_the_search_space(capsys):
    code, out, _ = zoo_in_process(capsys, "describe", "dcgan", "--json")
    assert code == 0 and json.loads(out)["search_space"]["lr"] == {
        "type": "float",
        "low": 5e-5,
        "high": 2e-3,
        "log": True,
    }
    code, out, _ = zoo_in_process(capsys, "describe", "dcgan")
    assert (
        code == 0
        and "search space (zoo bench --tune): lr 5e-05..0.002 (log); beta1 0.0 | 0.5 | 0.9" in out
    )


def test_failed_trials_are_kept_and_a_model_with_no_completed_trial_is_one_line(
    capsys, tmp_path, monkeypatch
):
    import types

    from zoo_ppca.model import PPCA, PPCAConfig

    import zoo.registry as registry_module
    from zoo import hookimpl
    from zoo.registry import build_registry

    @dataclasses.dataclass
    class PickyConfig(PPCAConfig):
        search_space = {"latent_dim": Choice(3, 4)}

    def explode(self, batch, step):
        raise RuntimeError(f"boom at latent_dim={self.config.latent_dim}")

    picky = type("Picky", (PPCA,), {"name": "picky", "Config": PickyConfig, "train_step": explode})
    module = types.ModuleType("picky_plugin")
    module.zoo_register_models = hookimpl(lambda register: [register(picky)])
    monkeypatch.setattr(
        registry_module, "_REGISTRY", build_registry(extra_plugins=[("picky", module)])
    )
    monkeypatch.chdir(tmp_path)
    code, _, err = zoo_in_process(
        capsys,
        "bench",
        "--models",
        "picky",
        "--preset",
        "smoke",
        "--tune",
        "2",
        "--no-progress",
        "--results",
        "r.sqlite",
    )
    assert code == 1, err
    assert (
        "picky: none of its 2 trials completed (2 failed, 0 pruned); last error: RuntimeError: boom"
        in err
    )
    assert [(n, s) for n, s, _, _ in _trials(tmp_path / "r.sqlite")] == [
        (0, "failed"),
        (1, "failed"),
    ]
