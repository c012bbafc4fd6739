"""``--config FILE`` for commands: settings from a TOML file (or a run's ``config.json``), with the
options given on the command line winning. The reading and mapping live in `zoo.configfile`;
this module only merges the file's values into click's parameters, converted and checked by each
parameter's own type (so ``steps = 0`` in a file fails exactly like ``--steps 0``)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

#: Parameters given as repeated ``KEY=VALUE`` options; a file gives them as a table.
ASSIGNMENTS = ("overrides", "options")


def _assignment(key: str, value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (list, tuple)):
        text = ",".join(str(v) for v in value)
    else:
        text = str(value)
    return f"{key}={text}"


def merge_config(ctx: click.Context, params: dict[str, Any], file_values: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with every value of ``file_values`` (keyed by parameter name) that the command
    line did not set; ``KEY=VALUE`` tables are merged key by key, the command line's last."""
    known = {p.name: p for p in ctx.command.params}
    merged = dict(params)
    for name, value in file_values.items():
        param = known[name]
        if name == "overrides":  # config fields stay typed: the model's config checks each value's kind
            merged[name] = tuple((k, v) for k, v in value.items()) + tuple(params.get(name) or ())
            continue
        if name in ASSIGNMENTS:
            merged[name] = tuple(_assignment(k, v) for k, v in value.items()) + tuple(params.get(name) or ())
            continue
        if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            continue
        if param.multiple and not isinstance(value, (list, tuple)):
            value = [value]
        for item in value if param.multiple else [value]:
            _check_kind(ctx, param, item)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(param.type, click.types.StringParamType):
            value = str(value)  # time = 90 in a file is --time 90
        try:
            merged[name] = param.type_cast_value(ctx, value)
        except click.BadParameter as exc:
            raise click.BadParameter(f"{exc.message} (from --config)", ctx=ctx, param=param) from None
    return merged


def _check_kind(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """A file's value must have the option's kind: click's own conversion takes ``true`` as 1 and
    truncates ``2.7`` to 2, which is right for command-line text but hides a mistake in a file."""
    kind, wrong = param.type, None
    if isinstance(value, (dict, list)) or (isinstance(value, bool) and not isinstance(kind, click.types.BoolParamType)):
        wrong = f"got {type(value).__name__} {value!r}"
    elif isinstance(kind, click.types.IntParamType) and isinstance(value, float) and not (
            value.is_integer() and abs(value) <= 2**53):
        wrong = f"expected a whole number, got {value!r}"
    elif isinstance(kind, click.types.BoolParamType) and not isinstance(value, bool):
        wrong = f"expected true or false, got {value!r}"
    elif isinstance(kind, (click.Path, click.Choice)) and not isinstance(value, str):
        wrong = f"expected a string, got {value!r}"
    if wrong:
        text = wrong if len(wrong) <= 80 else f"{wrong[:77]}..."
        raise click.BadParameter(f"{text} (from --config)", ctx=ctx, param=param)


def config_option(read: Callable[[str | Path], dict[str, Any]], help_text: str) -> Callable[[Callable[..., Any]], Any]:
    """Add ``--config FILE`` to a command: ``read(path)`` returns the file's values by parameter
    name; they fill every option the command line left at its default. Put it right above ``def``."""

    def decorate(fn: Callable[..., Any]) -> Any:
        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            path = kwargs.pop("config_path", None)
            if path is not None:
                kwargs = merge_config(click.get_current_context(), kwargs, read(path))
            return fn(**kwargs)

        return click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
                            help=help_text)(wrapper)

    return decorate
