"""Option names, config-file keys and request fields, compared: each command's click options feed
its zoo.api request (same names, same defaults, or a rename listed here), and a config file can set
everything the command line can, under the option's own name. One output option (-o/--output)
and one meaning of --format across commands; the old spellings still work, hidden."""

from __future__ import annotations

import dataclasses

import click
import pytest

from tests.helpers import zoo_in_process

#: click parameter -> request field, where the names differ (the command line's words, the
#: library's types: --time is text like 5m, ``time_limit`` seconds; --steps and --time are
#: ``budget`` text for bench; the --slurm-* options fill ``slurm``).
RENAMED = {
    "train": {"model_name": "model", "time_budget": "time_limit", "compile_networks": "compile",
              "resume_from": "source"},
    "sample": {"n": "num", "compile_networks": "compile"},
    "eval": {},
    "bench": {"steps": "budget", "time_budget": "budget", "slurm_partition": "slurm",
              "slurm_gpus_per_job": "slurm", "slurm_timeout_min": "slurm"},
}
#: Request fields no option sets: filled in by genzoo itself (an executor pins a tuned job's config
#: and effort in the child process's request), never by users.
INTERNAL = {"tuned"}
#: Options about how the command prints or runs, not about what is computed (no request field).
PRESENTATION = {"as_json", "progress", "config_path", "nproc_per_node", "html_path", "collect_dir"}
#: Options a config file does not take: how to print, the file itself, and other modes.
NOT_IN_FILE = {"as_json", "config_path", "nproc_per_node", "resume_from", "collect_dir", "dry_run"}


def _command(name: str) -> click.Command:
    from zoo.cli.app import cli

    return cli.commands[name]


def _requests(name: str) -> list[type]:
    from zoo import api

    return {"train": [api.TrainRequest, api.ResumeRequest], "sample": [api.SampleRequest],
            "eval": [api.EvalRequest], "bench": [api.BenchRequest]}[name]


@pytest.mark.parametrize("name", ["train", "sample", "eval", "bench"])
def test_every_option_feeds_a_request_field_and_every_field_has_an_option(name):
    params = {p.name for p in _command(name).params}
    fields = {f.name for r in _requests(name) for f in dataclasses.fields(r)}
    fed = {RENAMED[name].get(p, p) for p in params - PRESENTATION}
    assert fed <= fields, f"zoo {name} options with no request field: {sorted(fed - fields)}"
    assert fields - INTERNAL <= fed, f"request fields of zoo {name} no option sets: {sorted(fields - fed)}"


@pytest.mark.parametrize("name", ["train", "sample", "eval", "bench"])
def test_options_and_request_fields_share_their_defaults(name):
    defaults = {f.name: f.default for r in _requests(name) for f in dataclasses.fields(r)
                if f.default is not dataclasses.MISSING}
    for param in _command(name).params:
        field = RENAMED[name].get(param.name, param.name)
        default = param.default
        if param.name in RENAMED[name] and RENAMED[name][param.name] in ("budget", "slurm", "source"):
            continue  # several options make one field
        if field in defaults and isinstance(default, (str, int, float, bool)) and param.name != "seeds":
            assert default == defaults[field], f"zoo {name} {param.opts[-1]}: {default!r} vs {defaults[field]!r}"


@pytest.mark.parametrize("name", ["train", "bench"])
def test_a_config_file_sets_every_option_under_its_own_name(name):
    from zoo.configfile import BENCH_KEYS, TRAIN_KEYS

    keys = {"train": TRAIN_KEYS, "bench": BENCH_KEYS}[name]
    params = {p.name: p for p in _command(name).params}
    for key, param_name in keys.items():
        param = params[param_name]
        spelled = {o.lstrip("-").replace("-", "_") for o in param.opts}
        assert key in spelled or (key == "model" and param_name == "model_name"), (key, param.opts)
    missing = set(params) - set(keys.values()) - NOT_IN_FILE
    assert not missing, f"zoo {name} options a config file cannot set: {sorted(missing)}"


def test_a_config_file_chooses_the_executor(tmp_path):
    from zoo.configfile import bench_settings

    (tmp_path / "b.toml").write_text('models = ["vae"]\nexecutor = "local"\njobs = 2\nslurm-timeout = 30\n')
    assert bench_settings(tmp_path / "b.toml") == {"models": "vae", "executor": "local", "jobs": 2,
                                                   "slurm_timeout_min": 30}


def test_num_fake_help_states_the_real_minimum():
    from zoo.cli.bench import MIN_IMAGES
    from zoo.metrics.protocol import MIN_IMAGES as PROTOCOL_MIN

    assert MIN_IMAGES == PROTOCOL_MIN
    param = next(p for p in _command("bench").params if p.name == "num_fake")
    assert param.type.min == PROTOCOL_MIN
    assert f"x>={PROTOCOL_MIN}" in " ".join(param.get_help_record(click.Context(_command("bench"))))


# -- one output option, one --format ------------------------------------------------------------


@pytest.mark.parametrize("name", ["sample", "export", "leaderboard"])
def test_every_output_is_dash_o_output_and_out_is_a_hidden_alias(name):
    command = _command(name)
    param = next(p for p in command.params if p.name == "output")
    assert {"-o", "--output", "--out"} <= set(param.opts)
    shown = param.get_help_record(click.Context(command))[0]
    assert shown.startswith("-o, --output") and "--out " not in shown + " "


def test_format_means_the_output_format_and_export_takes_to():
    for name in ("leaderboard",):
        assert any("--format" in p.opts for p in _command(name).params)
    export = _command("export")
    fmt = next(p for p in export.params if p.name == "fmt")
    shown = fmt.get_help_record(click.Context(export))[0]
    assert shown.startswith("--to") and "--format" not in shown


def test_the_old_spellings_still_work(tmp_path, capsys, monkeypatch):
    from zoo import api

    monkeypatch.chdir(tmp_path)
    api.train(api.TrainRequest("vae", steps=1, overrides={"hidden": 8, "latent_dim": 2, "width": 4},
                               run_dir=tmp_path / "run"))
    code, _, err = zoo_in_process(capsys, "export", "run", "--format", "torchscript", "--out", "ts")
    assert code == 0, err
    assert (tmp_path / "ts" / "model.pt").is_file()
    code, _, err = zoo_in_process(capsys, "sample", "run", "-n", "2", "--out", "g.npz")
    assert code == 0 and (tmp_path / "g.npz").is_file(), err
    code, _, err = zoo_in_process(capsys, "leaderboard", "--results", "r.sqlite", "--format", "csv",
                                  "--out", "board.csv")
    assert code == 0 and (tmp_path / "board.csv").is_file(), err


# -- outputs that are refused before any work ---------------------------------------------------


def _one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1


def test_sample_refuses_a_suffix_it_cannot_write(tmp_path, capsys):
    code, out, err = zoo_in_process(capsys, "sample", str(tmp_path / "nothing"), "--out", str(tmp_path / "g.jpg"))
    assert code == 2 and _one_line(err) and ".jpg" in err and out == ""
    assert not (tmp_path / "g.jpg").exists()


@pytest.mark.parametrize("args", [
    ["leaderboard", "--format", "markdown", "-o", "{missing}/x.md"],
    ["sample", "nothing", "-o", "{missing}/x.png"],
    ["export", ".", "-o", "{missing}/onnx"],
    ["bench", "--models", "vae", "--preset", "smoke", "--html", "{missing}/x.html", "--results", "r.sqlite"],
], ids=lambda a: a[0])
def test_a_missing_output_folder_is_refused_not_made(args, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "missing" / "dir"
    code, out, err = zoo_in_process(capsys, *[a.format(missing=missing) for a in args])
    assert code == 2 and _one_line(err) and str(missing) in err, err
    assert not (tmp_path / "missing").exists() and not (tmp_path / "r.sqlite").exists()


@pytest.mark.parametrize("fmt", ["csv", "json", "html"])
def test_an_output_onto_the_results_store_is_refused_and_the_store_kept(fmt, tmp_path, capsys):
    """A newcomer's -o pointing at the store itself replaced the SQLite file with a report: every
    result lost, exit 0. Any SQLite file is refused as an output, for the leaderboard and bench."""
    from zoo.bench.store import ResultRow, ResultsStore

    store_path = tmp_path / "r.sqlite"
    ResultsStore(store_path).add(ResultRow(dataset="mnist-5k", protocol_hash="p", model="gan", seed=0,
                                           status="ok", metrics={"fid_lenet": 1.0}))
    before = store_path.read_bytes()
    code, _, err = zoo_in_process(capsys, "leaderboard", "--results", str(store_path), "--format", fmt,
                                  "-o", str(store_path))
    assert code == 2 and _one_line(err) and "results store" in err, err
    code, _, err = zoo_in_process(capsys, "bench", "--models", "gan", "--preset", "smoke", "--results",
                                  str(store_path), "--html", str(store_path))
    assert code == 2 and _one_line(err) and "results store" in err, err
    assert store_path.read_bytes() == before and ResultsStore(store_path).count() == 1


def test_an_unwritable_output_names_the_users_path_not_a_temp_file(tmp_path, capsys, monkeypatch):
    import tempfile

    def refuse(*args, dir=None, prefix="", suffix="", **kwargs):  # what mkstemp raises in a read-only folder
        raise PermissionError(13, "Permission denied", f"{dir}/{prefix}abc123{suffix}")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    code, _, err = zoo_in_process(capsys, "leaderboard", "--results", "r.sqlite", "--format", "csv", "-o", "x.csv")
    error = err.strip().splitlines()[-1]  # after the warning that the store is empty
    assert code == 1 and error == "zoo: error: Permission denied: x.csv", err


def test_the_output_kind_follows_the_name(tmp_path):
    from zoo.api.sampling import output_kind
    from zoo.errors import UsageError

    (tmp_path / "made.v2").mkdir()
    assert output_kind("g.png") == "grid" and output_kind("G.PNG") == "grid" and output_kind("a.npz") == "npz"
    assert output_kind("pngs") == "folder" and output_kind("run.v3/") == "folder"
    assert output_kind(tmp_path / "made.v2") == "folder"  # an existing folder, whatever its name
    for name in ("g.jpg", "g.npy", "run.v3"):
        with pytest.raises(UsageError, match="cannot write"):
            output_kind(name)
