"""The hooks a genzoo plugin may implement.

A plugin is any module or object registered under the ``zoo`` entry-point group whose functions
are decorated with `zoo.hookimpl`. Implementations may accept fewer arguments than the spec
lists, so new arguments can be added here without breaking existing plugins; arguments are never
removed. Every hookspec must be documented in ``docs/plugins.md`` (a test enforces it).

This module imports nothing heavy: ``zoo --help`` loads every plugin module to find its commands,
so plugin modules should import torch inside their hook functions, not at the top.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from zoo.dataspec import DatasetSpec

PROJECT = "zoo"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorator for plugin hook implementations: ``@zoo.hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def zoo_register_models(register: Callable[[Any], None]) -> None:
    """Register model classes and named variants.

    Call ``register(ModelClass)`` once per model; ``ModelClass`` must subclass
    [`zoo.GenerativeModel`][zoo.GenerativeModel] and set ``name``, ``family``, ``summary``, ``paper`` and ``Config``.
    Or register lazily, without importing the class (and torch): ``register("name",
    "package.module:Class", family=..., summary=..., config=..., ...)`` or
    ``register(zoo.ModelSpec(...))``; the class is imported when a model is built and must agree
    with every declared attribute (`zoo.modelspec`).
    Call ``register(zoo.Variant(name, model, overrides, summary))`` for a named variant of a
    registered model (``ddpm-small``: the ``ddpm`` class with a narrower U-Net), resolved by
    [`zoo.create_model`][zoo.create_model] like any model name. A name that another plugin already registered is
    rejected and reported against this plugin.
    """


@hookspec
def zoo_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register datasets.

    Call ``register(DatasetSpec(name=..., load=..., summary=...))`` once per dataset. ``load`` is
    called lazily with the options described in `zoo.data.DatasetSpec` and returns a
    `zoo.data.ImageDataset`.
    """


@hookspec
def zoo_register_formats(register: Callable[[Any], None]) -> None:
    """Register leaderboard output formats (``zoo leaderboard --format NAME``).

    Call ``register(OutputFormat(name=..., suffix=..., summary=..., render=...))`` (from
    [`zoo.bench.formats`][zoo.bench.formats]); ``render(leaderboards)`` returns the whole document as ``str`` or
    ``bytes``. genzoo's own csv, markdown, json and html formats are registered this way.
    """


@hookspec
def zoo_register_loggers(register: Callable[[Any], None]) -> None:
    """Register training loggers (``zoo train --logger NAME``).

    Call ``register(LoggerSpec(name=..., summary=..., open=...))`` (from [`zoo.loggers`][zoo.loggers]);
    ``open(context)`` gets a [`zoo.loggers.LoggerContext`][zoo.loggers.LoggerContext] (run directory, trainer, resume
    step) and returns an object with ``write(step, seconds, losses)`` and ``close()``. genzoo's own
    csv and tensorboard loggers are registered this way.
    """


@hookspec
def zoo_register_commands(cli: Any) -> None:
    """Add commands to the ``zoo`` command-line interface.

    ``cli`` is the root `click.Group`; decorate new commands with ``@cli.command()``.
    """
