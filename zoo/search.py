"""Hyperparameter search spaces, declared on a model's config class (``zoo bench --tune``).

A config class names the ranges of its key hyperparameters in one class attribute:

    @dataclass
    class DCGANConfig(ModelConfig):
        lr: float = 2e-4
        beta1: float = 0.5
        search_space = {"lr": Float(5e-5, 2e-3, log=True), "beta1": Choice(0.0, 0.5, 0.9)}

Keys are config fields; `Float` and `Int` are ranges (``log=True``: sampled
uniformly in log scale, for learning rates and weights), `Choice` a list of values.
Declarations are checked when the model registers (`check_search_space`): an unknown field,
a range on a field of another type, an empty or inverted range, or a value the config refuses is a
``TypeError`` naming the class. The space's `space_hash` goes into every tuned row's
identity, so rows tuned over different spaces never rank together. This module needs neither
torch nor Optuna.
"""

from __future__ import annotations

import hashlib
import json
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Choice",
    "Float",
    "Int",
    "Param",
    "check_search_space",
    "describe_space",
    "search_space",
    "space_hash",
]


@dataclass(frozen=True)
class Float:
    """A float in ``[low, high]``; ``log``: uniform in log scale (``low`` must be positive)."""

    low: float
    high: float
    log: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "float",
            "low": float(self.low),
            "high": float(self.high),
            "log": bool(self.log),
        }


@dataclass(frozen=True)
class Int:
    """An int in ``[low, high]`` (both included); ``log``: uniform in log scale."""

    low: int
    high: int
    log: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"type": "int", "low": int(self.low), "high": int(self.high), "log": bool(self.log)}


class Choice:
    """One of ``values`` (ints, floats, strings, bools or None), e.g. ``Choice(0.0, 0.5, 0.9)``."""

    def __init__(self, *values: Any):
        self.values = tuple(values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Choice) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __repr__(self) -> str:
        return f"Choice({', '.join(map(repr, self.values))})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "choice",
            "values": [list(v) if isinstance(v, tuple) else v for v in self.values],
        }


Param = Float | Int | Choice


def search_space(config_cls: type) -> dict[str, Param]:
    """The declared space of a config class (``{}`` when it declares none), in field order."""
    declared = getattr(config_cls, "search_space", None) or {}
    order = {name: i for i, name in enumerate(getattr(config_cls, "__dataclass_fields__", {}))}
    return dict(sorted(dict(declared).items(), key=lambda kv: order.get(kv[0], len(order))))


def describe_space(space: Mapping[str, Param]) -> str:
    """``lr 0.0001..0.003 (log); beta1 0.0 | 0.5 | 0.9`` (``none`` for an empty space)."""
    parts = []
    for name, p in space.items():
        if isinstance(p, Choice):
            parts.append(f"{name} " + " | ".join("none" if v is None else str(v) for v in p.values))
        else:
            parts.append(f"{name} {p.low:g}..{p.high:g}" + (" (log)" if p.log else ""))
    return "; ".join(parts) or "none"


def space_hash(space: Mapping[str, Param]) -> str:
    """12 hex digits of the canonical JSON of ``space`` (its fields, kinds, bounds, scales)."""
    text = json.dumps(
        {k: v.to_dict() for k, v in sorted(space.items())}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def check_search_space(config_cls: type, owner: str) -> None:
    """Raise ``TypeError`` naming ``owner`` for a malformed ``search_space`` on ``config_cls``."""
    import dataclasses

    declared = getattr(config_cls, "search_space", None)
    if declared is None:
        return
    if not isinstance(declared, Mapping):
        raise TypeError(
            f"{owner}.search_space must be a dict of field name -> Float/Int/Choice, "
            f"got {declared!r}"
        )
    fields = {f.name for f in dataclasses.fields(config_cls)}
    hints = typing.get_type_hints(config_cls)
    for name, param in declared.items():
        where = f"{owner}.search_space[{name!r}]"
        if name not in fields:
            raise TypeError(f"{where}: {config_cls.__name__} has no field {name!r}")
        hint = hints[name]
        if isinstance(param, (Float, Int)):
            kind = float if isinstance(param, Float) else int
            if hint is not kind:
                raise TypeError(
                    f"{where}: a {type(param).__name__} range on a field of type {hint}"
                )
            values = [param.low, param.high]
            if any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                for v in values
            ):
                raise TypeError(f"{where}: bounds must be finite numbers, got {param!r}")
            if kind is int and any(not float(v).is_integer() for v in values):
                raise TypeError(f"{where}: an Int range needs whole bounds, got {param!r}")
            if not param.low < param.high:
                raise TypeError(f"{where}: low must be below high, got {param!r}")
            if param.log and param.low <= 0:
                raise TypeError(f"{where}: a log-scale range needs low > 0, got {param!r}")
        elif isinstance(param, Choice):
            values = list(param.values)
            if not values:
                raise TypeError(f"{where}: a Choice needs at least one value")
            if len({json.dumps(v) for v in param.to_dict()["values"]}) != len(values):
                raise TypeError(f"{where}: repeated values in {param!r}")
        else:
            raise TypeError(f"{where}: expected Float(...), Int(...) or Choice(...), got {param!r}")
        for value in values:  # every value must pass the config's own checks, alone
            try:
                config_cls(**{name: value})
            except Exception as exc:  # ConfigError, or a plugin's own validate
                raise TypeError(
                    f"{where}: {config_cls.__name__} refuses {value!r} ({exc})"
                ) from None
