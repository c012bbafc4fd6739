"""Configuration files for ``zoo train --config`` and ``zoo bench --config``.

A configuration file holds the same settings as the command's options, so a run can be described
once, kept under version control and repeated; options given on the command line override it.
TOML is read with the standard library's `tomllib` (``tomli`` on Python 3.10); a ``.json``
file is read as JSON, so the ``config.json`` a training run writes can be passed back to
``zoo train --config`` to train the same model, config and budget again.

``run.toml`` for ``zoo train`` (keys are the long option names, ``-`` or ``_``):

    model = "ddpm"
    dataset = "mnist-5k"
    steps = 2000            # or time = "5m", or epochs = 3
    batch-size = 128
    seed = 1
    precision = "bf16"
    logger = ["csv", "tensorboard"]
    compile = false         # --compile

    [set]                   # model config overrides, as --set KEY=VALUE
    base_channels = 32
    lr = 2e-4

``bench.toml`` for ``zoo bench``:

    models = ["gan", "vae", "ddpm"]
    preset = "quick"
    seeds = [0, 1, 2]

    [set.ddpm]              # as --set ddpm.KEY=VALUE
    lr = 1e-4

    [option.ddpm]           # as --option ddpm.KEY=VALUE
    steps = 50

Errors (a missing or unreadable file, bad TOML, an unknown key) are [`zoo.errors.UsageError`][zoo.errors.UsageError]
with one line naming the file; values are checked by the command exactly like its options, and must
have the option's kind (``steps = true`` or ``steps = 2.5`` is refused, not read as 1 or 2).
Values under ``[set]`` stay typed and are checked by the model's config (a bool is not an int).
"""

from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoo.errors import UsageError
from zoo.fileio import parse_json, parse_toml

__all__ = ["BENCH_KEYS", "TRAIN_KEYS", "bench_settings", "read_config", "train_settings"]

#: ``zoo train`` file keys and the option (click parameter) each one sets.
TRAIN_KEYS = {
    "model": "model_name", "dataset": "dataset", "data_dir": "data_dir", "image_size": "image_size",
    "steps": "steps", "epochs": "epochs", "time": "time_budget", "batch_size": "batch_size", "set": "overrides",
    "seed": "seed", "device": "device", "precision": "precision", "run_dir": "run_dir",
    "checkpoint_every": "checkpoint_every", "progress": "progress", "logger": "loggers", "compile": "compile_networks",
}
#: ``zoo bench`` file keys and the option each one sets.
BENCH_KEYS = {
    "models": "models", "dataset": "dataset", "data_dir": "data_dir", "preset": "preset", "seeds": "seeds",
    "budget": "budget", "steps": "steps", "time": "time_budget", "batch_size": "batch_size", "set": "overrides",
    "option": "options", "num_fake": "num_fake", "curve_points": "curve_points", "backbone": "backbone",
    "backbone_weights": "backbone_weights", "inception_weights": "inception_weights", "device": "device",
    "precision": "precision", "results": "results",
    "runs_dir": "runs_dir", "html": "html_path", "rerun": "rerun", "fail_fast": "fail_fast", "progress": "progress",
    "executor": "executor", "jobs": "jobs", "slurm_partition": "slurm_partition",
    "slurm_gpus_per_job": "slurm_gpus_per_job", "slurm_timeout": "slurm_timeout_min",
    "samples": "samples", "tune": "tune", "tune_budget": "tune_budget", "tune_seed": "tune_seed",
}


#: A config file is a few settings: anything larger is not one (and is not read whole).
MAX_CONFIG_BYTES = 2**20


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The top-level table of a TOML file (or the object of a ``.json`` file) at ``path``."""
    path = Path(path).expanduser()
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer before it can be refused.
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):  # /dev/zero, a FIFO, a terminal: never ends
                raise UsageError(f"--config {path}: not a regular file")
            raw = f.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise UsageError(f"--config {path}: over the limit of {MAX_CONFIG_BYTES // 2**20} MiB for a config file")
    except OSError as exc:
        raise UsageError(f"--config {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        if path.suffix.lower() == ".json":
            data = parse_json(raw.decode("utf-8"))
        else:
            data = parse_toml(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"--config {path}: not UTF-8 text") from None
    except ValueError as exc:  # TOMLDecodeError is a ValueError; so is "nested too deeply"
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise UsageError(f"--config {path}: not valid {kind} ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a table of settings, got {type(data).__name__}")
    return data


def _normalise(data: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _check_keys(data: Mapping[str, Any], known: Mapping[str, str], path: Path, command: str) -> None:
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"--config {path}: unknown setting {key!r} for zoo {command}{hint}; "
                             f"known: {', '.join(sorted(known))}")


def _table(value: Any, key: str, path: Path) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise UsageError(f"--config {path}: {key!r} must be a table of KEY = VALUE, got {value!r}")
    return dict(value)


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"ddpm": {"lr": 1e-4}, "steps": 50}`` -> ``{"ddpm.lr": 1e-4, "steps": 50}``."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _run_config(data: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The settings of a run's ``config.json`` (written by [`zoo.trainer.Trainer`][zoo.trainer.Trainer])."""
    from zoo.budget import Budget

    train = _table(data.get("train", {}), "train", path)
    dataset = _table(data.get("dataset_args") or {"name": data.get("dataset")}, "dataset_args", path)
    out: dict[str, Any] = {"model": data["model"], "set": _table(data.get("config", {}), "config", path)}
    for key, value in (("dataset", dataset.get("name")), ("data_dir", dataset.get("data_dir")),
                       ("image_size", dataset.get("image_size"))):
        if value is not None:
            out[key] = value
    for key, name in (("steps", "steps"), ("epochs", "epochs"), ("time_limit", "time"), ("batch_size", "batch_size"),
                      ("seed", "seed"), ("device", "device"), ("precision", "precision"),
                      ("checkpoint_every", "checkpoint_every"), ("compile", "compile")):
        if train.get(key) is not None:
            out[name] = train[key]
    if train.get("loggers"):
        out["logger"] = list(train["loggers"])
    if train.get("budget"):  # a benchmark run's budget: the units zoo train takes
        budget = Budget.parse(str(train["budget"]))
        if budget.kind == "steps":
            out["steps"] = int(budget.amount)
        elif budget.kind == "time":
            out["time"] = f"{budget.amount:g}s"
        else:
            raise UsageError(f"--config {path}: its {budget} budget cannot be given to zoo train (use steps or time)")
    return out


def train_settings(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``zoo train`` options a file sets, keyed by click parameter name (see `TRAIN_KEYS`).

    ``set`` becomes a dict of config overrides and ``logger`` a list of logger names; a run's
    ``config.json`` (it has ``model``, ``config`` and ``train``) is mapped to the same options.
    """
    path = Path(path)
    data = _normalise(read_config(path))
    if isinstance(data.get("train"), Mapping) and "model" in data and isinstance(data.get("config"), Mapping):
        data = _run_config(data, path)
    _check_keys(data, TRAIN_KEYS, path, "train")
    if "set" in data:
        data["set"] = _flatten(_table(data["set"], "set", path))
    if isinstance(data.get("logger"), str):
        data["logger"] = [data["logger"]]
    return {TRAIN_KEYS[k]: v for k, v in data.items()}


def bench_settings(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``zoo bench`` options a file sets, keyed by click parameter name (see `BENCH_KEYS`).

    ``models`` and ``seeds`` may be lists; ``set`` and ``option`` are tables (``[set.ddpm]``)
    flattened to ``model.key`` names; ``samples`` is a table of name -> source or list of sources
    (``[samples]`` ``mine = ["out/seed0", "out/seed1"]``), as ``--samples mine=out/seed0,out/seed1``.
    """
    path = Path(path)
    data = _normalise(read_config(path))
    _check_keys(data, BENCH_KEYS, path, "bench")
    for key in ("models", "seeds"):
        if isinstance(data.get(key), list):
            data[key] = ",".join(str(v) for v in data[key])
    for key in ("set", "option"):
        if key in data:
            data[key] = _flatten(_table(data[key], key, path))
    if "samples" in data:
        sources = _table(data["samples"], "samples", path)
        data["samples"] = tuple(f"{name}={','.join(map(str, v)) if isinstance(v, list) else v}"
                                for name, v in sources.items())
    return {BENCH_KEYS[k]: v for k, v in data.items()}
