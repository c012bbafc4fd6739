"""Discovers plugins through the ``zoo`` entry-point group and collects what they register.

Loading happens in two phases, so ``zoo --help`` never pays for torch:

1. *load*: each entry point is imported and registered with pluggy on its own (pluggy's
   ``load_setuptools_entrypoints`` would let one broken plugin take every command down);
2. *collect*: on first use of :attr:`Registry.models`, :attr:`~Registry.datasets` or
   :attr:`~Registry.formats`, every plugin's ``zoo_register_*`` hooks are called, again one plugin
   at a time.

A plugin that fails to import, has an invalid hookimpl or an unknown hook name, raises inside a
hook, registers something invalid, or claims a name already taken is recorded with its error and
skipped as a whole; everything else keeps working.

Environment variables:

* ``ZOO_LOAD_PLUGINS=a,b``: load only these external plugins (entry-point or distribution names);
  set but empty loads none. Built-in plugins always load.
* ``ZOO_TRACE_PLUGINS=1``: print every hook call and its result to stderr.
* ``ZOO_STRICT_PLUGINS=1``: raise :class:`zoo.errors.PluginError` on the first plugin error.
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

from zoo import hookspecs
from zoo.errors import PluginError, UnknownNameError
from zoo.text import env_flag, one_line

if TYPE_CHECKING:
    from zoo.data import DatasetSpec
    from zoo.model import GenerativeModel

CORE_DISTRIBUTION = "genzoo"
ENTRY_POINT_GROUP = hookspecs.PROJECT
#: Model families (kept here, free of torch, so the CLI can list them without importing torch).
FAMILIES = ("gan", "vae", "diffusion", "other")


@dataclass(frozen=True)
class Variant:
    """A named variant of a registered model: its class with some config fields changed.

    ``Variant("ddpm-small", "ddpm", {"base_channels": 32}, "DDPM with a narrower U-Net")`` makes
    ``zoo train ddpm-small`` and ``create_model("ddpm-small", ...)`` build ``ddpm`` with those
    overrides (user overrides are applied on top).
    """

    name: str
    model: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""


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
    variants: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
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
            "variants": self.variants,
            "datasets": self.datasets,
            "formats": self.formats,
            "error": self.error,
        }


@dataclass(frozen=True)
class ModelEntry:
    """A registered model name: its class, the variant overrides (if a variant) and its plugin."""

    name: str
    cls: type[GenerativeModel]
    plugin: PluginRecord
    variant: Variant | None = None

    @property
    def overrides(self) -> dict[str, Any]:
        return dict(self.variant.overrides) if self.variant else {}

    @property
    def summary(self) -> str:
        return self.variant.summary or self.cls.summary if self.variant else self.cls.summary


@dataclass(frozen=True)
class DatasetEntry:
    spec: DatasetSpec
    plugin: PluginRecord

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class FormatEntry:
    spec: Any  # zoo.bench.formats.OutputFormat
    plugin: PluginRecord

    @property
    def name(self) -> str:
        return str(self.spec.name)


class _Rejected(Exception):
    """A plugin registered something invalid."""


class Registry:
    """Everything the installed plugins contributed; hooks are collected on first use."""

    def __init__(self, pm: pluggy.PluginManager, strict: bool):
        self.pm = pm
        self.strict = strict
        self._plugins: dict[str, PluginRecord] = {}
        self._objects: list[tuple[object, PluginRecord]] = []
        self._models: dict[str, ModelEntry] = {}
        self._datasets: dict[str, DatasetEntry] = {}
        self._formats: dict[str, FormatEntry] = {}
        self._done: set[str] = set()  # plugins whose registration hooks have run

    # -- what plugins contributed (collected lazily) --------------------------------------

    @property
    def plugins(self) -> dict[str, PluginRecord]:
        self._collect()
        return self._plugins

    @property
    def models(self) -> dict[str, ModelEntry]:
        self._collect()
        return self._models

    @property
    def datasets(self) -> dict[str, DatasetEntry]:
        self._collect()
        return self._datasets

    @property
    def formats(self) -> dict[str, FormatEntry]:
        self._collect()
        return self._formats

    @property
    def errors(self) -> list[PluginRecord]:
        return [p for p in self.plugins.values() if not p.ok]

    # -- lookups ---------------------------------------------------------------------------

    def entry(self, name: str) -> ModelEntry:
        """The model or variant registered as ``name``."""
        if name not in self.models:
            raise UnknownNameError("model", name, list(self.models))
        return self.models[name]

    def model(self, name: str) -> type[GenerativeModel]:
        """The class behind a model or variant name."""
        return self.entry(name).cls

    def dataset(self, name: str) -> DatasetSpec:
        key = name.split(":", 1)[0] + ":" if ":" in name else name
        if key not in self.datasets:
            raise UnknownNameError("dataset", name, list(self.datasets))
        return self.datasets[key].spec

    def output_format(self, name: str) -> Any:
        if name not in self.formats:
            raise UnknownNameError("output format", name, list(self.formats))
        return self.formats[name].spec

    def list_models(self, family: str | None = None) -> list[ModelEntry]:
        if family is not None and family not in FAMILIES:
            raise UnknownNameError("family", family, list(FAMILIES))
        entries = sorted(self.models.values(), key=lambda e: e.name)
        return [e for e in entries if family is None or e.cls.family == family]

    def resolve_models(self, names: Iterable[str]) -> list[ModelEntry]:
        """Look up every name first, so a typo fails before any work starts."""
        names = [n.strip() for n in names if n.strip()]
        if not names:
            raise UnknownNameError("model", "", list(self.models))
        return [self.entry(n) for n in names]

    # -- loading ---------------------------------------------------------------------------

    def fail(self, record: PluginRecord, message: str, exc: BaseException | None = None) -> None:
        record.error = message
        record.models, record.variants, record.datasets, record.formats = [], [], [], []
        if self.strict:
            raise PluginError(f"plugin {record.name!r} ({record.distribution or record.module}): {message}") from exc

    def add(self, plugin: object, record: PluginRecord) -> None:
        """Register one plugin object with pluggy (its hooks run later, in :meth:`_collect`)."""
        self._plugins[record.name] = record
        record.hooks = _hook_names_of(plugin)
        spec_names = {n for n in dir(hookspecs) if n.startswith(f"{ENTRY_POINT_GROUP}_")}
        unknown = [h for h in record.hooks if h not in spec_names]
        if unknown:
            hints = [difflib.get_close_matches(h, sorted(spec_names), n=1) for h in unknown]
            detail = ", ".join(f"{h!r}" + (f" (did you mean {m[0]!r}?)" if m else "") for h, m in zip(unknown, hints, strict=True))
            return self.fail(record, f"unknown hook {detail}")
        try:
            self.pm.register(plugin, name=record.name)
        except Exception as exc:  # PluginValidationError, duplicate plugin name
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            return self.fail(record, one_line(exc), exc)
        self._objects.append((plugin, record))

    def _collect(self) -> None:
        for plugin, record in self._objects:
            if record.ok and record.name not in self._done:
                self._done.add(record.name)
                self._collect_one(plugin, record)

    def _collect_one(self, plugin: object, record: PluginRecord) -> None:
        found: dict[str, dict[str, Any]] = {"models": {}, "datasets": {}, "formats": {}}
        try:
            self._call(plugin, "zoo_register_models", self._model_collector(record, found["models"]))
            self._call(plugin, "zoo_register_datasets", self._named_collector("dataset", self._datasets, record, found["datasets"]))
            self._call(plugin, "zoo_register_formats", self._named_collector("output format", self._formats, record, found["formats"]))
        except _Rejected as exc:
            self.pm.unregister(plugin)
            return self.fail(record, str(exc))
        except Exception as exc:
            self.pm.unregister(plugin)
            return self.fail(record, one_line(exc, where=True), exc)
        # Only now, with every registration valid, does the plugin contribute anything.
        self._models.update(found["models"])
        self._datasets.update({n: DatasetEntry(s, record) for n, s in found["datasets"].items()})
        self._formats.update({n: FormatEntry(s, record) for n, s in found["formats"].items()})
        record.models = sorted(n for n, e in found["models"].items() if e.variant is None)
        record.variants = sorted(n for n, e in found["models"].items() if e.variant is not None)
        record.datasets, record.formats = sorted(found["datasets"]), sorted(found["formats"])

    def _call(self, plugin: object, hook_name: str, register: Callable[[Any], None]) -> None:
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        self.pm.subset_hook_caller(hook_name, remove_plugins=others)(register=register)

    def _taken(self, kind: str, name: str, mine: Mapping[str, Any], record: PluginRecord) -> None:
        owners: dict[str, Mapping[str, Any]] = {"model": self._models, "dataset": self._datasets,
                                                "output format": self._formats}
        owner = owners[kind].get(name)
        if owner is not None or name in mine:
            by = owner.plugin.name if owner else record.name
            raise _Rejected(f"{kind} name {name!r} is already registered by plugin {by!r}")

    def _model_collector(self, record: PluginRecord, into: dict[str, ModelEntry]) -> Callable[[Any], None]:
        from zoo.model import validate_model_class

        def register(item: Any) -> None:
            if isinstance(item, Variant):
                base = into.get(item.model) or self._models.get(item.model)
                if base is None or base.variant is not None:
                    raise _Rejected(f"invalid variant {item.name!r}: {item.model!r} is not a registered model")
                try:
                    base.cls.Config.from_overrides({**base.overrides, **item.overrides})
                except Exception as exc:
                    raise _Rejected(f"invalid variant {item.name!r}: {exc}") from None
                self._taken("model", item.name, into, record)
                into[item.name] = ModelEntry(item.name, base.cls, record, item)
                return
            try:
                validate_model_class(item)
            except TypeError as exc:
                raise _Rejected(f"invalid model registration: {exc}") from None
            self._taken("model", item.name, into, record)
            into[item.name] = ModelEntry(item.name, item, record)

        return register

    def _named_collector(self, kind: str, owners: Mapping[str, Any], record: PluginRecord,
                         into: dict[str, Any]) -> Callable[[Any], None]:
        def register(spec: Any) -> None:
            if kind == "dataset":
                from zoo.data import DatasetSpec

                if not isinstance(spec, DatasetSpec):
                    raise _Rejected(f"invalid dataset registration: {spec!r} is not a zoo.data.DatasetSpec")
            elif not (isinstance(getattr(spec, "name", None), str) and callable(getattr(spec, "render", None))):
                raise _Rejected(f"invalid output format registration: {spec!r} has no name and render()")
            self._taken(kind, spec.name, into, record)
            into[spec.name] = spec

        return register


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


def build_registry(
    *,
    entry_points: Iterable[md.EntryPoint] | None = None,
    extra_plugins: Iterable[tuple[str, object]] = (),
    strict: bool | None = None,
    trace: bool | None = None,
) -> Registry:
    """Load plugins and return a fresh :class:`Registry` (their hooks run on first use).

    ``extra_plugins`` are ``(name, object)`` pairs registered after the entry points, as if they were
    external plugins (tests and notebooks use this).
    """
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    if env_flag("ZOO_TRACE_PLUGINS") if trace is None else trace:
        pm.trace.root.setwriter(lambda msg: sys.stderr.write(f"[zoo trace] {msg}"))
        pm.enable_tracing()
    registry = Registry(pm, strict=env_flag("ZOO_STRICT_PLUGINS") if strict is None else strict)
    allowed = _allowed_external()
    for ep in _entry_points() if entry_points is None else entry_points:
        dist = getattr(ep, "dist", None)
        dist_name = _dist_name(ep)
        builtin = dist_name == CORE_DISTRIBUTION
        if not builtin and allowed is not None and ep.name not in allowed and dist_name not in allowed:
            continue
        record = PluginRecord(name=ep.name, module=ep.value, distribution=dist_name,
                              version=dist.version if dist is not None else None, builtin=builtin)
        if record.name in registry._plugins:
            registry._plugins[record.name + f" ({dist_name})"] = record
            registry.fail(record, f"plugin name {ep.name!r} is already used by another distribution")
            continue
        try:
            plugin = ep.load()
        except BaseException as exc:  # ImportError, SyntaxError, even SystemExit at import time
            if isinstance(exc, KeyboardInterrupt):
                raise
            registry._plugins[record.name] = record
            registry.fail(record, f"failed to import: {one_line(exc)}", exc)
            continue
        registry.add(plugin, record)
    for name, plugin in extra_plugins:
        registry.add(plugin, PluginRecord(name=name, module=getattr(plugin, "__name__", repr(plugin))))
    if registry.strict:
        registry._collect()  # strict mode: every plugin error surfaces now
    return registry


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
