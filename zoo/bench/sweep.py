"""Sweeps: one ``zoo bench`` key given several values runs every value, each its own identity.

``--set dcgan.lr=1e-4 --set dcgan.lr=2e-4`` (or ``lr = [1e-4, 2e-4]`` under ``[set.dcgan]`` in a
``--config`` file) plans one job per value: each has its own config hash (so its own rows, run
folder and leaderboard line) and its own config label (``lr=0.0001``, ``lr=0.0002``). Several swept
keys of one model give every combination. Repeated ``--option`` values are a sampling sweep: one
row per value, from the same trained model. A value given once is no sweep; the same value twice is
one value. A list-typed config field (``channel_mults = [1, 2, 4]``) takes a TOML list as its one
value; a list of lists (``channel_mults = [[1, 2], [1, 2, 4]]``) sweeps it.

Never a silent last-wins: where a sweep makes no sense (``zoo train``, ``--tune``), repeated values
are a one-line error (`zoo.config.parse_assignments`, `zoo.bench.tuning`).
"""

from __future__ import annotations

import itertools
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from zoo.config import parse_assignments

__all__ = ["Sweep", "collect_assignments", "has_sweeps", "plan_sweeps"]


@dataclass(frozen=True)
class Sweep:
    """The values of one swept key, in the order given. ``listed``: the values came as one list
    from a config file, which a list-typed field takes as a single value instead (see module)."""

    values: tuple[Any, ...]
    listed: bool = False


def collect_assignments(
    items: Iterable[str | tuple[str, Any]], what: str = "--set"
) -> dict[str, Any]:
    """``["k=v", ("k", value), ...]`` -> ``{key: value or Sweep}``.

    Text items are the command line's (``--set k=v``), pairs a config file's typed values. A key
    given on the command line replaces the file's value for it; repeated command-line values
    become a `Sweep` (duplicates dropped); a file's list becomes a ``Sweep(listed=True)``.
    Malformed items raise [`ConfigError`][zoo.errors.ConfigError] (as
    `zoo.config.parse_assignments`).
    """
    cli: dict[str, list[Any]] = {}
    typed: dict[str, Any] = {}
    for item in items:
        if isinstance(item, tuple):
            typed.update(parse_assignments([item], what))
            continue
        ((key, value),) = parse_assignments([item], what).items()
        values = cli.setdefault(key, [])
        if value not in values:
            values.append(value)
    out: dict[str, Any] = {}
    for key, value in typed.items():
        if key not in cli:
            out[key] = Sweep(tuple(value), listed=True) if isinstance(value, list) else value
    for key, values in cli.items():
        out[key] = values[0] if len(values) == 1 else Sweep(tuple(values))
    return out


def has_sweeps(values: Mapping[str, Any]) -> bool:
    return any(isinstance(v, Sweep) for v in values.values())


def _field_hint(cls: Any, field_name: str) -> Any:
    try:
        return typing.get_type_hints(cls.Config).get(field_name)
    except Exception:  # a plugin's config whose annotations do not resolve: treat as scalar
        return None


def _is_list_hint(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is_list_hint(a) for a in typing.get_args(hint) if a is not type(None))
    return origin in (list, tuple)


def _resolve_listed(overrides: Mapping[str, Any], entries: Mapping[str, Any]) -> dict[str, Any]:
    """A file's list for a list-typed field is its one value, unless it is a list of lists."""
    out = dict(overrides)
    for key, value in overrides.items():
        if not (isinstance(value, Sweep) and value.listed):
            continue
        model, _, field_name = key.rpartition(".")
        entry = entries.get(model)
        if entry is None or not _is_list_hint(_field_hint(entry.cls, field_name)):
            continue
        if value.values and all(isinstance(v, (list, tuple)) for v in value.values):
            out[key] = (
                Sweep(tuple(list(v) for v in value.values))
                if len(value.values) > 1
                else list(value.values[0])
            )
        else:
            out[key] = list(value.values)
    return out


def _first(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.values[0] if isinstance(v, Sweep) and v.values else v for k, v in values.items()}


def _combos(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the swept keys (the fixed ones in each), in the order given."""
    keys = list(values)
    choices = [list(v.values) if isinstance(v, Sweep) else [v] for v in values.values()]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*choices)]


def _applies(key: str, name: str, declared: set[str]) -> bool:
    model, sep, option = key.rpartition(".")
    return model == name if sep else option in declared


def plan_sweeps(
    registry: Any,
    names: list[str],
    *,
    overrides: Mapping[str, Any],
    options: Mapping[str, Any],
    **kwargs: Any,
) -> list[Any]:
    """`zoo.bench.runner.plan_models` for overrides and options that may hold `Sweep`
    values: one plan per model and combination of its swept ``--set`` values (plans of an equal
    resolved config merged: ``1e-4`` and ``0.0001`` are one job), each holding every sampling
    setting of its swept ``--option`` values. Everything is validated before any work, with the
    errors ``plan_models`` raises. ``kwargs`` are ``plan_models``' other keyword arguments."""
    from zoo.bench.runner import plan_models

    entries = {e.name: e for e in registry.resolve_models(names)}
    overrides = _resolve_listed(overrides, entries)
    if not has_sweeps(overrides) and not has_sweeps(options):
        return plan_models(
            registry, names, overrides=dict(overrides), options=dict(options), **kwargs
        )
    base = plan_models(
        registry, names, overrides=_first(overrides), options=_first(options), **kwargs
    )
    plans = []
    for plan in base:
        declared = {o.name for o in plan.cls.sample_options}
        mine = {k: v for k, v in overrides.items() if k.rpartition(".")[0] == plan.name}
        opts = {k: v for k, v in options.items() if _applies(k, plan.name, declared)}
        seen: dict[str, Any] = {}
        for combo in _combos(mine):
            merged = None
            for option_combo in _combos(opts):
                (one,) = plan_models(
                    registry, [plan.name], overrides=combo, options=option_combo, **kwargs
                )
                if merged is None:
                    merged = one
                else:
                    merged.sample_settings += [
                        s for s in one.sample_settings if s not in merged.sample_settings
                    ]
            assert merged is not None
            merged.curve_setting = min(merged.sample_settings, key=lambda s: s.get("steps") or 0)
            if merged.config_hash not in seen:
                seen[merged.config_hash] = merged
                plans.append(merged)
    return plans


def values_to_json(values: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides or options for a job spec file: a `Sweep` as ``{"__sweep__": [...]}``."""
    return {
        k: {"__sweep__": list(v.values), "listed": v.listed} if isinstance(v, Sweep) else v
        for k, v in values.items()
    }


def values_from_json(values: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of `values_to_json`."""
    return {
        k: Sweep(tuple(v["__sweep__"]), bool(v.get("listed")))
        if isinstance(v, dict) and "__sweep__" in v
        else v
        for k, v in values.items()
    }


def pin_to_plan(request_json: Mapping[str, Any], plan: Any) -> dict[str, Any]:
    """A request (as JSON) that plans exactly ``plan`` for its model: its resolved overrides in
    place of the request's (so one value of a sweep, or a tuned config, and no ``--tune``), and its
    tuning effort. What an executor's job spec holds, so a child process trains this job only."""
    return {
        **request_json,
        "overrides": {f"{plan.name}.{k}": v for k, v in plan.overrides.items()},
        "tune": None,
        "tune_budget": None,
        "tuned": dict(plan.tuning),
    }
