"""Fuzz (Hypothesis) over the two kinds of file genzoo reads from strangers: checkpoint headers and
configuration files. Whatever the file holds, loading it either gives a valid object or raises one
of genzoo's own one-line errors (zoo.errors.*, or a click usage error the CLI prints as one line),
never anything else, and never allocates what a crafted number asks for.
"""

from __future__ import annotations

import json
import math
import resource
from pathlib import Path

import click
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoo.checkpoint import content_hash, load_model, save_checkpoint
from zoo.config import ModelConfig, parse_assignments
from zoo.errors import ZooError
from zoo.factory import create_model

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
TINY = {"latent_dim": 4, "g_hidden": 8, "d_units": 4, "d_pieces": 2}
SHAPE = (1, 8, 8)

# Values a crafted file can hold: the edge numbers, every type, unicode and control text, nesting.
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 10**30, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, 2.5, 0.5]),
)
TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12) | st.sampled_from(["", "gan", "ddpm", "[/]", "\x1b]0;x\x07", "1e400", "nan"])
SCALARS = NUMBERS | TEXT | st.booleans() | st.none()
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=6)


def _one_line_error(exc: BaseException) -> None:
    """Only genzoo's errors (and click's usage errors, which the CLI prints as one line) may escape."""
    assert isinstance(exc, (ZooError, click.ClickException)), f"{type(exc).__name__}: {exc}"
    text = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
    assert text and "\n" not in text.strip(), text


# -- checkpoint headers ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def genuine(tmp_path_factory) -> tuple[Path, dict]:
    """A real (tiny) GAN checkpoint's state, written by genzoo's own writer."""
    model = create_model("gan", SHAPE, TINY)
    state = {"step": 3, "model": "gan", "dataset": "mnist-5k", "config": model.config.to_dict(),
             "image_shape": list(SHAPE), "model_state": model.state_dict(), "train": {"steps": 4}}
    path = tmp_path_factory.mktemp("ckpt") / "step-00000003.pt"
    save_checkpoint(path, state)
    return path, state


HEADER_FIELDS = ["format_version", "step", "model", "config", "image_shape", "dataset", "train", "model_state", "format"]


@FAST
@given(field=st.sampled_from(HEADER_FIELDS), value=VALUES, config_key=st.none() | st.sampled_from([*TINY, "lr", "beta1"]) | TEXT)
def test_any_checkpoint_header_loads_or_is_one_line(genuine, tmp_path_factory, field, value, config_key):
    path, state = genuine
    crafted = dict(state)
    if config_key is not None and field == "config":  # one config field changed, the rest genuine
        crafted["config"] = {**state["config"], config_key: value}
    else:
        crafted[field] = value
    target = tmp_path_factory.mktemp("crafted") / path.name
    if field in ("format", "format_version"):  # save_checkpoint writes its own; craft them with a valid checksum
        payload = {"format": "genzoo-checkpoint", "format_version": 1, **crafted}
        payload[field] = value
        payload["checksum"] = content_hash(payload)
        torch.save(payload, target)
    else:
        save_checkpoint(target, crafted)
    try:
        model, meta = load_model(target)
    except BaseException as exc:  # noqa: BLE001 - the point: what escapes
        _one_line_error(exc)
        return
    assert meta["model"] == "gan" and isinstance(model.config, ModelConfig)
    assert all(math.isfinite(v) for v in model.config.to_dict().values() if isinstance(v, float))


def test_crafted_headers_never_cost_memory(genuine, tmp_path):
    """Sizes a crafted header asks for (layers of 10^6..10^18 units, a 4096^2 image) are refused
    before anything is allocated: the process's peak grows by far less than one such layer."""
    path, state = genuine
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for key, value in (("g_hidden", 10**6), ("g_hidden", 2**62), ("latent_dim", 10**9), ("d_units", 10**18)):
        save_checkpoint(tmp_path / "x.pt", {**state, "config": {**state["config"], key: value}})
        with pytest.raises(ZooError):
            load_model(tmp_path / "x.pt")
    save_checkpoint(tmp_path / "x.pt", {**state, "image_shape": [3, 4096, 4096]})
    with pytest.raises(ZooError):
        load_model(tmp_path / "x.pt")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 300, f"peak memory grew by {grown_mb:.0f} MB"


# -- configuration files -----------------------------------------------------------------------

def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if value is None:  # TOML has no null: the file is invalid, which must be one line too
        return "null"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"


TRAIN_NAMES = ["model", "dataset", "steps", "epochs", "time", "batch-size", "batch_size", "seed", "precision", "run_dir",
               "checkpoint_every", "progress", "logger", "compile", "set", "image_size", "device", "train", "config"]
BENCH_NAMES = ["models", "seeds", "preset", "budget", "steps", "time", "num_fake", "curve_points", "set", "option", "rerun"]
SET_TABLE = st.dictionaries(st.sampled_from([*TINY, "lr", "beta1", "ema_decay", "nope"]) | TEXT, VALUES, max_size=3)


def _config_file(tmp_path: Path, data: dict, as_json: bool) -> Path:
    path = tmp_path / ("c.json" if as_json else "c.toml")
    if as_json:
        path.write_text(json.dumps(data))  # NaN and Infinity as JavaScript literals, which Python reads back
    else:
        path.write_text("\n".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in data.items()))
    return path


def _load(command: click.Command, read, path: Path) -> dict:
    """What ``zoo COMMAND --config PATH`` does before any work: read, merge into the options
    (each checked by its type), and build the model config from ``set``."""
    from zoo.cli.configuration import merge_config
    from zoo.registry import get_registry

    ctx = command.make_context(command.name, [])
    with ctx:
        merged = merge_config(ctx, dict(ctx.params), read(path))
    name = merged.get("model_name") or "gan"
    if command.name == "train" and isinstance(name, str):
        get_registry().entry(name).cls.Config.from_overrides(parse_assignments(merged.get("overrides") or ()))
    return merged


@FAST
@given(data=st.dictionaries(st.sampled_from(TRAIN_NAMES) | TEXT, VALUES, max_size=4), overrides=SET_TABLE,
       as_json=st.booleans())
def test_any_train_config_file_loads_or_is_one_line(tmp_path_factory, data, overrides, as_json):
    from zoo.cli.train import train_command
    from zoo.configfile import train_settings

    if overrides:
        data = {**data, "model": "gan", "set": overrides}
    path = _config_file(tmp_path_factory.mktemp("cfg"), data, as_json)
    try:
        merged = _load(train_command, train_settings, path)
    except BaseException as exc:  # noqa: BLE001
        _one_line_error(exc)
        return
    for key in ("steps", "batch_size", "checkpoint_every"):  # what got through has the option's kind
        assert merged.get(key) is None or (type(merged[key]) is int and merged[key] >= 1)


@FAST
@given(data=st.dictionaries(st.sampled_from(BENCH_NAMES) | TEXT, VALUES, max_size=4), as_json=st.booleans())
def test_any_bench_config_file_loads_or_is_one_line(tmp_path_factory, data, as_json):
    from zoo.bench.api import _check_seeds
    from zoo.cli.bench import bench_command
    from zoo.cli.options import parse_seeds
    from zoo.configfile import bench_settings

    path = _config_file(tmp_path_factory.mktemp("cfg"), data, as_json)
    try:
        merged = _load(bench_command, bench_settings, path)
        _check_seeds(parse_seeds(merged["seeds"]))
        parse_assignments(merged.get("overrides") or ())
    except BaseException as exc:  # noqa: BLE001
        _one_line_error(exc)
