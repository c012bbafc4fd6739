"""Discovers plugins through the ``zoo`` entry-point group and collects what they register.

Each entry point is loaded, registered and called on its own (pluggy's
``load_setuptools_entrypoints`` would let one broken plugin take every command down). A plugin that
fails to import, has an invalid hookimpl or an unknown hook name, raises inside a hook, registers
something that is not a model, or claims a name already taken is recorded with its error and
skipped as a whole; everything else keeps working. ``ZOO_STRICT_PLUGINS=1`` makes any such error
fatal, for plugin authors' CI.

Environment variables:

* ``ZOO_LOAD_PLUGINS=a,b``: load only these external plugins (entry-point or distribution names);
  set but empty loads none. Built-in plugins always load.
* ``ZOO_TRACE_PLUGINS=1``: print every hook call and its result to stderr.
* ``ZOO_STRICT_PLUGINS=1``: raise :class:`zoo.errors.PluginError` on the first plugin error.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from zoo import hookspecs
from zoo.errors import PluginError, UnknownNameError
from zoo.model import FAMILIES, GenerativeModel, validate_model_class

CORE_DISTRIBUTION = "genzoo"
ENTRY_POINT_GROUP = hookspecs.PROJECT


@dataclass
class PluginRecord:
    """What ``zoo plugins`` shows for one plugin."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False
    hooks: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "hooks": self.hooks,
            "models": self.models,
            "datasets": self.datasets,
            "error": self.error,
        }


@dataclass(frozen=True)
class ModelEntry:
    cls: type[GenerativeModel]
    plugin: PluginRecord

    @property
    def name(self) -> str:
        return self.cls.name


@dataclass(frozen=True)
class DatasetEntry:
    spec: Any  # zoo.data.DatasetSpec
    plugin: PluginRecord

    @property
    def name(self) -> str:
        return self.spec.name


class Registry:
    """Everything the installed plugins contributed."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm
        self.plugins: dict[str, PluginRecord] = {}
        self.models: dict[str, ModelEntry] = {}
        self.datasets: dict[str, DatasetEntry] = {}

    # -- lookups ---------------------------------------------------------------------------

    def model(self, name: str) -> type[GenerativeModel]:
        if name not in self.models:
            raise UnknownNameError("model", name, list(self.models))
        return self.models[name].cls

    def dataset(self, name: str) -> Any:
        key = name.split(":", 1)[0] + ":" if ":" in name else name
        if key not in self.datasets:
            raise UnknownNameError("dataset", name, list(self.datasets))
        return self.datasets[key].spec

    def list_models(self, family: str | None = None) -> list[ModelEntry]:
        if family is not None and family not in FAMILIES:
            raise UnknownNameError("family", family, list(FAMILIES))
        entries = sorted(self.models.values(), key=lambda e: e.name)
        return [e for e in entries if family is None or e.cls.family == family]

    def resolve_models(self, names: Iterable[str]) -> list[type[GenerativeModel]]:
        """Look up every name first, so a typo fails before any work starts."""
        names = [n.strip() for n in names if n.strip()]
        if not names:
            raise UnknownNameError("model", "", list(self.models))
        return [self.model(n) for n in names]

    @property
    def errors(self) -> list[PluginRecord]:
        return [p for p in self.plugins.values() if not p.ok]


# -- loading -------------------------------------------------------------------------------


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {'; '.join(lines)}" if lines else type(exc).__name__


def _allowed_external() -> set[str] | None:
    raw = os.environ.get("ZOO_LOAD_PLUGINS")
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


def _entry_points() -> list[md.EntryPoint]:
    eps = list(md.entry_points(group=ENTRY_POINT_GROUP))
    # Built-ins first so they keep their names; then externals in a stable order.
    eps.sort(key=lambda ep: (_dist_name(ep) != CORE_DISTRIBUTION, ep.name))
    seen, unique = set(), []
    for ep in eps:  # the same distribution found twice on sys.path
        key = (ep.name, ep.value)
        if key not in seen:
            seen.add(key)
            unique.append(ep)
    return unique


def _dist_name(ep: md.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else None


def _hook_names_of(plugin: object) -> list[str]:
    marker = f"{ENTRY_POINT_GROUP}_impl"
    return sorted(
        name for name in dir(plugin) if not name.startswith("_") and hasattr(getattr(plugin, name, None), marker)
    )


class _Loader:
    def __init__(self, strict: bool, trace: bool):
        self.strict = strict
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        if trace:
            self.pm.trace.root.setwriter(lambda msg: sys.stderr.write(f"[zoo trace] {msg}"))
            self.pm.enable_tracing()
        self.registry = Registry(self.pm)
        self.spec_names = {n for n in dir(hookspecs) if n.startswith(f"{ENTRY_POINT_GROUP}_")}

    def fail(self, record: PluginRecord, message: str, exc: BaseException | None = None) -> None:
        record.error = message
        record.models, record.datasets = [], []
        if self.strict:
            raise PluginError(f"plugin {record.name!r} ({record.distribution or record.module}): {message}") from exc

    def add(self, plugin: object, record: PluginRecord) -> None:
        """Register one plugin object and run its registration hooks in isolation."""
        self.registry.plugins[record.name] = record
        hooks = _hook_names_of(plugin)
        record.hooks = hooks
        unknown = [h for h in hooks if h not in self.spec_names]
        if unknown:
            import difflib

            hints = [difflib.get_close_matches(h, sorted(self.spec_names), n=1) for h in unknown]
            detail = ", ".join(f"{h!r}" + (f" (did you mean {m[0]!r}?)" if m else "") for h, m in zip(unknown, hints, strict=True))
            return self.fail(record, f"unknown hook {detail}")
        try:
            self.pm.register(plugin, name=record.name)
        except Exception as exc:  # PluginValidationError, duplicate plugin name
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            return self.fail(record, _one_line(exc), exc)

        models: dict[str, type[GenerativeModel]] = {}
        datasets: dict[str, Any] = {}
        try:
            self._call(plugin, "zoo_register_models", self._model_collector(record, models))
            self._call(plugin, "zoo_register_datasets", self._dataset_collector(record, datasets))
        except _Rejected as exc:
            self.pm.unregister(plugin)
            return self.fail(record, str(exc))
        except Exception as exc:
            self.pm.unregister(plugin)
            where = traceback.extract_tb(exc.__traceback__)[-1]
            return self.fail(record, f"{_one_line(exc)} (at {os.path.basename(where.filename)}:{where.lineno})", exc)

        # Only now, with every registration valid, does the plugin contribute anything.
        for name, cls in models.items():
            self.registry.models[name] = ModelEntry(cls, record)
        for name, spec in datasets.items():
            self.registry.datasets[name] = DatasetEntry(spec, record)
        record.models, record.datasets = sorted(models), sorted(datasets)

    def _call(self, plugin: object, hook_name: str, register: Callable[[Any], None]) -> None:
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        caller = self.pm.subset_hook_caller(hook_name, remove_plugins=others)
        caller(register=register)

    def _model_collector(self, record: PluginRecord, into: dict[str, type[GenerativeModel]]) -> Callable[[Any], None]:
        def register(cls: Any) -> None:
            try:
                validate_model_class(cls)
            except TypeError as exc:
                raise _Rejected(f"invalid model registration: {exc}") from None
            owner = self.registry.models.get(cls.name)
            if owner is not None or cls.name in into:
                by = owner.plugin.name if owner else record.name
                raise _Rejected(f"model name {cls.name!r} is already registered by plugin {by!r}")
            into[cls.name] = cls

        return register

    def _dataset_collector(self, record: PluginRecord, into: dict[str, Any]) -> Callable[[Any], None]:
        from zoo.data import DatasetSpec

        def register(spec: Any) -> None:
            if not isinstance(spec, DatasetSpec):
                raise _Rejected(f"invalid dataset registration: {spec!r} is not a zoo.data.DatasetSpec")
            owner = self.registry.datasets.get(spec.name)
            if owner is not None or spec.name in into:
                by = owner.plugin.name if owner else record.name
                raise _Rejected(f"dataset name {spec.name!r} is already registered by plugin {by!r}")
            into[spec.name] = spec

        return register


class _Rejected(Exception):
    """A plugin registered something invalid."""


def build_registry(
    *,
    entry_points: Iterable[md.EntryPoint] | None = None,
    extra_plugins: Iterable[tuple[str, object]] = (),
    strict: bool | None = None,
    trace: bool | None = None,
) -> Registry:
    """Load plugins and return a fresh :class:`Registry`.

    ``extra_plugins`` are ``(name, object)`` pairs registered after the entry points, as if they were
    external plugins (tests and notebooks use this).
    """
    loader = _Loader(
        strict=_env_flag("ZOO_STRICT_PLUGINS") if strict is None else strict,
        trace=_env_flag("ZOO_TRACE_PLUGINS") if trace is None else trace,
    )
    allowed = _allowed_external()
    for ep in _entry_points() if entry_points is None else entry_points:
        dist = getattr(ep, "dist", None)
        dist_name = _dist_name(ep)
        builtin = dist_name == CORE_DISTRIBUTION
        if not builtin and allowed is not None and ep.name not in allowed and dist_name not in allowed:
            continue
        record = PluginRecord(
            name=ep.name,
            module=ep.value,
            distribution=dist_name,
            version=dist.version if dist is not None else None,
            builtin=builtin,
        )
        if record.name in loader.registry.plugins:
            loader.registry.plugins[record.name + f" ({dist_name})"] = record
            loader.fail(record, f"plugin name {ep.name!r} is already used by another distribution")
            continue
        try:
            plugin = ep.load()
        except BaseException as exc:  # ImportError, SyntaxError, even SystemExit at import time
            if isinstance(exc, KeyboardInterrupt):
                raise
            loader.registry.plugins[record.name] = record
            loader.fail(record, f"failed to import: {_one_line(exc)}", exc)
            continue
        loader.add(plugin, record)
    for name, plugin in extra_plugins:
        loader.add(plugin, PluginRecord(name=name, module=getattr(plugin, "__name__", repr(plugin))))
    return loader.registry


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = build_registry()
    return _REGISTRY


def reset_registry() -> None:
    global _REGISTRY
    _REGISTRY = None
