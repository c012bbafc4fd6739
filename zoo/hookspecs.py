"""The hooks a genzoo plugin may implement.

A plugin is any module or object registered under the ``zoo`` entry-point group whose functions
are decorated with :data:`zoo.hookimpl`. Implementations may accept fewer arguments than the spec
lists, so new arguments can be added here without breaking existing plugins; arguments are never
removed. Every hookspec must be documented in ``docs/plugins.md`` (a test enforces it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from zoo.data import DatasetSpec
    from zoo.model import GenerativeModel

PROJECT = "zoo"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorator for plugin hook implementations: ``@zoo.hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def zoo_register_models(register: Callable[[type[GenerativeModel]], None]) -> None:
    """Register model classes.

    Call ``register(ModelClass)`` once per model; ``ModelClass`` must subclass
    :class:`zoo.GenerativeModel` and set ``name``, ``family``, ``summary``, ``paper`` and ``Config``.
    A name that another plugin already registered is rejected and reported against this plugin.
    """


@hookspec
def zoo_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register datasets.

    Call ``register(DatasetSpec(name=..., load=..., summary=...))`` once per dataset. ``load`` is
    called lazily with the options described in :class:`zoo.data.DatasetSpec` and returns a
    :class:`zoo.data.ImageDataset`.
    """


@hookspec
def zoo_register_commands(cli: Any) -> None:
    """Add commands to the ``zoo`` command-line interface.

    ``cli`` is the root :class:`click.Group`; decorate new commands with ``@cli.command()``.
    """
