"""Discovers plugins through the ``zoo`` entry-point group and collects what they register.

Loading happens in two phases, so ``zoo --help`` never pays for torch:

1. *load*: each entry point is imported and registered with pluggy on its own (pluggy's
   ``load_setuptools_entrypoints`` would let one broken plugin take every command down);
2. *collect*: on first use of `Registry.models`, `datasets` or
   `formats`, every plugin's ``zoo_register_*`` hooks are called, again one plugin
   at a time.

Models may register lazily (a `ModelSpec`: name, ``module:Class`` and what
``zoo list`` / ``zoo describe`` show); their classes are imported on first use and checked against
the spec (`ModelSource`), so listing and describing built-in models imports no torch.

A plugin that fails to import, has an invalid hookimpl or an unknown hook name, raises inside a
hook, or registers something invalid is recorded with its error and skipped as a whole, its
commands included; everything else keeps working.

A name clash disables only the clashing name. A model named like one an earlier plugin registered
(built-ins load first) stays reachable by its qualified name ``plugin:model`` (``zoo train
myplugin:wgan-gp``; ``zoo list`` shows both), and models built from it record that name in their
checkpoints and result rows. A dataset, output format or logger whose name is taken is left out.
Either way the plugin gets a warning (``zoo plugins``; an error in strict mode) and the rest of it
loads normally. Any model can be named ``plugin:model``.

Environment variables:

* ``ZOO_LOAD_PLUGINS=a,b``: load only these external plugins (entry-point or distribution names,
  compared as PEP 503 normalises them: ``zoo_dup``, ``Zoo-Dup``, ``zoo.dup`` name ``zoo-dup``);
  set but empty loads none. Built-in plugins always load. A name that matches no installed plugin
  is a warning (`Registry.warnings`).
* ``ZOO_TRACE_PLUGINS=1``: print, on stderr, each plugin as it loads (name, module, distribution),
  the full traceback of an import error, and every hook call with the plugin it runs for.
* ``ZOO_STRICT_PLUGINS=1``: after loading and collecting every plugin, raise one
  [`zoo.errors.PluginError`][zoo.errors.PluginError] listing every broken plugin (and every warning: a plugin with no
  hook implementations, a refused command name).

Author mistakes caught here: a plugin with no ``@hookimpl`` functions (a warning); a model or
variant name with ``.``, ``,``, ``=``, ``/`` or a space; a Config without ``@dataclass``; a plugin
command whose name is taken (``train``, or another plugin's), which is refused
(`Registry.add_commands`).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import pluggy

from zoo import hookspecs
from zoo.errors import PluginError, UnknownNameError
from zoo.modelspec import ModelSpec
from zoo.text import env_flag, one_line
from zoo.vocabulary import FAMILIES

if TYPE_CHECKING:
    from zoo.dataspec import DatasetSpec
    from zoo.model import GenerativeModel

CORE_DISTRIBUTION = "genzoo"
ENTRY_POINT_GROUP = hookspecs.PROJECT
__all__ = ["FAMILIES", "ModelEntry", "ModelSpec", "PluginRecord", "Registry", "Variant", "get_registry"]


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
    loggers: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    error: str | None = None
    #: Problems that do not stop the plugin (no hook implementations, a refused command name);
    #: errors in strict mode.
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def forget_registrations(self) -> None:
        """Empty every list of registered names (a plugin that failed contributes none)."""
        self.models, self.variants, self.commands = [], [], []
        for kind in KINDS:
            setattr(self, kind.key, [])


class ModelSource:
    """Where a registered model's attributes come from: a class registered as such, or a
    `ModelSpec` whose class is imported on first use, checked against the
    spec, and kept (a model and its variants share one source)."""

    def __init__(self, plugin: PluginRecord, *, cls: type[GenerativeModel] | None = None,
                 spec: ModelSpec | None = None):
        self.plugin, self.spec, self._cls = plugin, spec, cls
        self._error: PluginError | None = None

    @property
    def loaded(self) -> bool:
        return self._cls is not None

    def load(self) -> type[GenerativeModel]:
        """The model class; a lazy one is imported now. Raises `PluginError` (naming the
        plugin) when it does not import, is not a usable model class, or differs from its spec."""
        if self._cls is not None:
            return self._cls
        if self._error is not None:
            raise self._error
        spec = self.spec
        assert spec is not None
        where = f"plugin {self.plugin.name!r}: model {spec.name!r} ({spec.target})"
        try:
            obj: Any = importlib.import_module(spec.module)
            for part in spec.qualname.split("."):
                obj = getattr(obj, part)
            from zoo.model import validate_model_class

            validate_model_class(obj)
            differ = spec.disagreements(obj)
            if differ:
                raise TypeError("the registration and the class disagree: " + "; ".join(differ))
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            self._error = PluginError(f"{where}: {one_line(exc)}")
            raise self._error from exc
        self._cls = obj
        return obj

    def get(self, attribute: str) -> Any:
        """A class attribute (``Config``, ``family``...): the spec's when declared, else the
        class's (which loads it)."""
        if self._cls is None and self.spec is not None:
            declared = self.spec.declared()
            if attribute in declared:
                return declared[attribute]
        return getattr(self.load(), attribute)

    @property
    def class_path(self) -> str:
        if self._cls is None and self.spec is not None:
            return f"{self.spec.module}.{self.spec.qualname}"
        cls = self.load()
        return f"{cls.__module__}.{cls.__qualname__}"


@dataclass(frozen=True)
class ModelEntry:
    """A registered model name: where its class comes from, the variant overrides (if a variant)
    and its plugin. ``family``, ``summary``, ``paper``, ``sample_options``, ``config`` and
    `describe` read a lazy registration's spec without importing the class; `cls`
    imports it."""

    name: str
    source: ModelSource
    plugin: PluginRecord
    variant: Variant | None = None
    #: The name models built from this entry answer to (``model.name``, recorded in checkpoints
    #: and result rows): the class's own name, or ``plugin:model`` when an earlier plugin had
    #: registered that name (a variant: its base model's). Empty: the class's own name.
    model_name: str = ""

    @property
    def cls(self) -> type[GenerativeModel]:
        """The model class (imported now if registered lazily; `PluginError` if it fails)."""
        return self.source.load()

    @property
    def overrides(self) -> dict[str, Any]:
        return dict(self.variant.overrides) if self.variant else {}

    @property
    def family(self) -> str:
        return str(self.source.get("family"))

    @property
    def paper(self) -> str:
        return str(self.source.get("paper"))

    @property
    def config(self) -> Any:
        """The model's ``Config`` dataclass."""
        return self.source.get("Config")

    @property
    def sample_options(self) -> tuple[Any, ...]:
        return tuple(self.source.get("sample_options"))

    @property
    def summary(self) -> str:
        base = str(self.source.get("summary"))
        return (self.variant.summary or base) if self.variant else base

    def describe(self) -> dict[str, Any]:
        """What ``zoo describe NAME`` shows, as plain JSON-ready data: the config fields (type,
        default with a variant's overrides applied, help), sampling options (type, default,
        choices), sizes, channels, batch size, batches per step, tiny config, recipe, bench sweep,
        paper, plugin and the model's variants."""
        from zoo.config import field_docs
        from zoo.search import search_space

        get = self.source.get
        recipe, sweep, sizes = get("recipe"), get("bench_sweep"), get("supported_sizes")
        fields = []
        for doc in field_docs(self.config):
            default = self.overrides.get(doc.name, doc.default)
            fields.append({"name": doc.name, "type": doc.type, "default": default, "help": doc.help,
                           **({"class_default": doc.default} if doc.name in self.overrides else {})})
        return {
            "name": self.name,
            "family": self.family,
            "summary": self.summary,
            "paper": self.paper,
            "class": self.source.class_path,
            "plugin": self.plugin.name,
            "distribution": self.plugin.distribution,
            "version": self.plugin.version,
            "variant_of": self.variant.model if self.variant else None,
            "overrides": self.overrides,
            "config": fields,
            "sample_options": [
                {"name": o.name, "type": o.type.__name__, "default": o.default, "help": o.help,
                 "choices": list(o.choices), "min": o.min}
                for o in self.sample_options
            ],
            "supported_sizes": list(sizes) if sizes is not None else None,
            "supported_channels": list(get("supported_channels")),
            "default_batch_size": get("default_batch_size"),
            "batches_per_step": get("batches_per_step"),
            "tiny_config": dict(get("tiny_config")),
            "recipe": None if recipe is None else recipe.to_dict(),
            "bench_sweep": None if sweep is None else [dict(s) for s in sweep],
            "search_space": {k: v.to_dict() for k, v in search_space(self.config).items()},  # zoo bench --tune
        }


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


@dataclass(frozen=True)
class LoggerEntry:
    spec: Any  # zoo.loggers.LoggerSpec
    plugin: PluginRecord

    @property
    def name(self) -> str:
        return str(self.spec.name)


class _Rejected(Exception):
    """A plugin registered something invalid."""


def _dataset_problem(spec: Any) -> str | None:
    from zoo.dataspec import DatasetSpec

    return None if isinstance(spec, DatasetSpec) else f"{spec!r} is not a zoo.data.DatasetSpec"


def _needs(method: str) -> Callable[[Any], str | None]:
    def problem(spec: Any) -> str | None:
        ok = isinstance(getattr(spec, "name", None), str) and callable(getattr(spec, method, None))
        return None if ok else f"{spec!r} has no name and {method}()"

    return problem


@dataclass(frozen=True)
class Kind:
    """A registrable kind besides models (which have variants, lazy specs and qualified names)."""

    #: ``zoo_register_<key>`` hook, `Registry` property and `PluginRecord` field.
    key: str
    #: How messages name one entry (``"output format"``).
    noun: str
    #: The entry type pairing a registered spec with its plugin.
    entry: type
    #: The reason a registered spec is invalid, or None.
    problem: Callable[[Any], str | None]


#: Every registrable kind besides models: adding one here (with a hookspec and a
#: `PluginRecord` field) is all the registry needs.
KINDS = (
    Kind("datasets", "dataset", DatasetEntry, _dataset_problem),
    Kind("formats", "output format", FormatEntry, _needs("render")),
    Kind("loggers", "logger", LoggerEntry, _needs("open")),
)
_KIND = {kind.key: kind for kind in KINDS}


class Registry:
    """Everything the installed plugins contributed; hooks are collected on first use."""

    def __init__(self, pm: pluggy.PluginManager, strict: bool):
        self.pm = pm
        self.strict = strict
        self._plugins: dict[str, PluginRecord] = {}
        self._objects: list[tuple[object, PluginRecord]] = []
        self._models: dict[str, ModelEntry] = {}
        #: Registered entries of each of `KINDS`, by name.
        self._entries: dict[str, dict[str, Any]] = {kind.key: {} for kind in KINDS}
        self._done: set[str] = set()  # plugins whose registration hooks have run
        self._cli: Any = None  # the click group plugin commands were added to
        self.trace = False
        #: Problems of the installation as a whole (an unknown name in ZOO_LOAD_PLUGINS).
        self.warnings: list[str] = []

    # -- what plugins contributed (collected lazily) --------------------------------------

    @property
    def plugins(self) -> dict[str, PluginRecord]:
        self._collect()
        return self._plugins

    @property
    def models(self) -> dict[str, ModelEntry]:
        self._collect()
        return self._models

    def entries(self, key: str) -> dict[str, Any]:
        """The registered entries of one of `KINDS` (``"datasets"``, ...), by name."""
        self._collect()
        return self._entries[key]

    @property
    def datasets(self) -> dict[str, DatasetEntry]:
        return self.entries("datasets")

    @property
    def formats(self) -> dict[str, FormatEntry]:
        return self.entries("formats")

    @property
    def loggers(self) -> dict[str, LoggerEntry]:
        """Training loggers (``zoo train --logger NAME``), registered through ``zoo_register_loggers``."""
        return self.entries("loggers")

    @property
    def errors(self) -> list[PluginRecord]:
        return [p for p in self.plugins.values() if not p.ok]

    # -- lookups ---------------------------------------------------------------------------

    def entry(self, name: str) -> ModelEntry:
        """The model or variant registered as ``name``, or as ``plugin:name`` by that plugin."""
        if name in self.models:
            return self.models[name]
        plugin, sep, bare = name.partition(":")
        for entry in self.models.values() if sep else ():
            if entry.plugin.name == plugin and entry.name in (bare, name):
                return entry
        raise UnknownNameError("model", name, list(self.models))

    def model(self, name: str) -> type[GenerativeModel]:
        """The class behind a model or variant name."""
        return self.entry(name).cls

    def spec(self, key: str, name: str, lookup: str | None = None) -> Any:
        """The spec registered as ``lookup`` (default ``name``) among `KINDS` ``key``;
        [`UnknownNameError`][zoo.errors.UnknownNameError] naming ``name`` otherwise."""
        entries = self.entries(key)
        if (lookup or name) not in entries:
            raise UnknownNameError(_KIND[key].noun, name, list(entries))
        return entries[lookup or name].spec

    def dataset(self, name: str) -> DatasetSpec:
        return self.spec("datasets", name, name.split(":", 1)[0] + ":" if ":" in name else name)

    def output_format(self, name: str) -> Any:
        return self.spec("formats", name)

    def logger(self, name: str) -> Any:
        return self.spec("loggers", name)

    def list_models(self, family: str | None = None) -> list[ModelEntry]:
        if family is not None and family not in FAMILIES:
            raise UnknownNameError("family", family, list(FAMILIES))
        entries = sorted(self.models.values(), key=lambda e: e.name)
        return [e for e in entries if family is None or e.family == family]

    def resolve_models(self, names: Iterable[str]) -> list[ModelEntry]:
        """Look up every name first, so a typo fails before any work starts."""
        names = [n.strip() for n in names if n.strip()]
        if not names:
            raise UnknownNameError("model", "", list(self.models))
        return [self.entry(n) for n in names]

    # -- loading ---------------------------------------------------------------------------

    def fail(self, record: PluginRecord, message: str, exc: BaseException | None = None) -> None:
        """Record ``message`` as the plugin's error; it contributes nothing (strict mode raises
        later, once every plugin has been tried: `raise_if_strict`)."""
        record.error = message
        for name in record.commands:  # added before its registrations ran: taken back
            if self._cli is not None:
                self._cli.commands.pop(name, None)
        record.forget_registrations()

    def problems(self) -> list[str]:
        """One line per broken plugin, per plugin warning and per installation warning."""
        out = [f"plugin {r.name!r} ({r.distribution or r.module}): {r.error}" for r in self._plugins.values() if not r.ok]
        out += [f"plugin {r.name!r} ({r.distribution or r.module}): {w}" for r in self._plugins.values() for w in r.warnings]
        return out + list(self.warnings)

    def raise_if_strict(self) -> None:
        """In strict mode, one `PluginError` naming every problem found so far."""
        found = self.problems()
        if self.strict and found:
            head = f"{len(found)} plugin problem{'s' if len(found) > 1 else ''} (strict mode): " if len(found) > 1 else ""
            raise PluginError(head + "; ".join(found))

    def _trace(self, message: str) -> None:
        if self.trace:
            sys.stderr.write(f"[zoo trace] {message}\n")

    def add(self, plugin: object, record: PluginRecord) -> None:
        """Register one plugin object with pluggy (its hooks run later, in `_collect`)."""
        self._plugins[record.name] = record
        record.hooks = _hook_names_of(plugin)
        if not record.hooks:
            record.warnings.append("no hook implementations: decorate its zoo_register_* functions with @zoo.hookimpl")
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
        models: dict[str, ModelEntry] = {}
        found: dict[str, dict[str, Any]] = {kind.key: {} for kind in KINDS}
        clashes: dict[str, str] = {}
        try:
            self._call(plugin, "zoo_register_models", self._model_collector(record, models, clashes))
            for kind in KINDS:
                self._call(plugin, f"zoo_register_{kind.key}", self._named_collector(kind, record, found[kind.key], clashes))
        except _Rejected as exc:
            self.pm.unregister(plugin)
            return self.fail(record, str(exc))
        except Exception as exc:
            self.pm.unregister(plugin)
            return self.fail(record, one_line(exc, where=True), exc)
        # Only now, with every registration valid, does the plugin contribute anything.
        self._models.update(models)
        record.models = sorted(n for n, e in models.items() if e.variant is None)
        record.variants = sorted(n for n, e in models.items() if e.variant is not None)
        for kind in KINDS:
            self._entries[kind.key].update({n: kind.entry(s, record) for n, s in found[kind.key].items()})
            setattr(record, kind.key, sorted(found[kind.key]))
        record.warnings.extend(clashes.values())

    def _call(self, plugin: object, hook_name: str, register: Callable[[Any], None]) -> None:
        if self.trace and hook_name in _hook_names_of(plugin):
            self._trace(f"plugin {self.pm.get_name(plugin)!r}: calling {hook_name}")
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        self.pm.subset_hook_caller(hook_name, remove_plugins=others)(register=register)

    def add_commands(self, cli: Any) -> None:
        """Call every plugin's ``zoo_register_commands(cli)``, one plugin at a time.

        A command whose name is already taken (genzoo's own ``train``, or an earlier plugin's) is
        refused: the original command stays and the plugin gets a warning (``zoo plugins`` shows
        it; strict mode raises). A hook that raises is recorded the same way.
        """
        for plugin, record in self._objects:
            if not record.ok or "zoo_register_commands" not in record.hooks:
                continue
            self._cli = cli
            before = dict(cli.commands)
            self._trace(f"plugin {record.name!r}: calling zoo_register_commands")
            others = [p for p in self.pm.get_plugins() if p is not plugin]
            try:
                self.pm.subset_hook_caller("zoo_register_commands", remove_plugins=others)(cli=cli)
            except Exception as exc:  # a plugin's command hook must not take the CLI down
                record.warnings.append(f"zoo_register_commands failed: {one_line(exc)}")
            for name, command in list(cli.commands.items()):
                if name in before and before[name] is not command:
                    cli.commands[name] = before[name]
                    owner = self._command_owner(name)
                    record.warnings.append(f"command {name!r} refused: the name is taken by {owner}")
                elif name not in before:
                    record.commands.append(name)
                    self._guard(command, record)
        self.raise_if_strict()

    def _guard(self, command: Any, record: PluginRecord) -> None:
        """Make ``command`` run only while its plugin is healthy. Commands are added before any
        registration hook runs (``zoo --help`` stays free of torch); a plugin whose registrations
        then fail is skipped whole, so its command refuses to run and names the plugin's error."""
        invoke = command.invoke

        def guarded(ctx: Any) -> Any:
            self._collect()
            if not record.ok:
                raise PluginError(f"plugin {record.name!r} ({record.distribution or record.module}) "
                                  f"was skipped: {record.error}")
            return invoke(ctx)

        command.invoke = guarded

    def _command_owner(self, name: str) -> str:
        for record in self._plugins.values():
            if name in record.commands:
                return f"plugin {record.name!r}"
        return f"zoo's own 'zoo {name}'"

    def _taken(self, kind: str, name: str, mine: Mapping[str, Any], record: PluginRecord,
               clashes: dict[str, str]) -> str | None:
        """The key ``name`` is registered under: ``name``; ``plugin:name`` for a model whose name an
        earlier plugin took; ``None`` for another kind of entry whose name is taken (left out).
        Registering one name twice in one plugin is an error (`_Rejected`)."""
        owners: dict[str, Mapping[str, Any]] = {"model": self._models,
                                                **{k.noun: self._entries[k.key] for k in KINDS}}
        if name in mine or (kind == "model" and f"{record.name}:{name}" in mine):
            raise _Rejected(f"{kind} name {name!r} is registered twice by plugin {record.name!r}")
        owner = owners[kind].get(name)
        if owner is None:
            return name
        taken = f"{kind} name {name!r} is already registered by plugin {owner.plugin.name!r}"
        if kind != "model":
            clashes[f"{kind}:{name}"] = f"{taken}; this plugin's is left out"
            return None
        qualified = f"{record.name}:{name}"
        clashes[f"{kind}:{name}"] = f"{taken}; this plugin's is reachable as {qualified!r}"
        return qualified

    def _model_collector(self, record: PluginRecord, into: dict[str, ModelEntry],
                         clashes: dict[str, str]) -> Callable[..., None]:
        from zoo.modelspec import check_model_name

        renamed: dict[str, str] = {}  # this plugin's model names that clashed -> their keys

        def add(name: str, source: ModelSource) -> None:
            key = self._taken("model", name, into, record, clashes)
            assert key is not None  # models are never left out
            if key != name:
                renamed[name] = key
            into[key] = ModelEntry(key, source, record, model_name=key)

        def register(item: Any, target: str | None = None, /, **declared: Any) -> None:
            if isinstance(item, str):  # register("name", "module:Class", family=..., ...)
                try:
                    item = ModelSpec(item, target, **declared)  # type: ignore[arg-type]
                except TypeError as exc:
                    raise _Rejected(f"invalid model registration {item!r}: {exc}") from None
            elif target is not None or declared:
                raise _Rejected("invalid model registration: register(ModelClass) and "
                                "register(Variant(...)) take one argument; a lazy registration is "
                                "register('name', 'module:Class', family=..., summary=...)")
            if isinstance(item, Variant):
                try:
                    check_model_name(item.name, "variant name")
                except TypeError as exc:
                    raise _Rejected(f"invalid variant: {exc}") from None
                base = into.get(renamed.get(item.model, item.model)) or self._models.get(item.model)
                if base is None or base.variant is not None:
                    raise _Rejected(f"invalid variant {item.name!r}: {item.model!r} is not a registered model")
                try:  # a lazy base with a declared config is checked without importing it
                    base.config.from_overrides({**base.overrides, **item.overrides})
                except Exception as exc:
                    raise _Rejected(f"invalid variant {item.name!r}: {exc}") from None
                key = self._taken("model", item.name, into, record, clashes)
                assert key is not None  # models are never left out
                into[key] = ModelEntry(key, base.source, record, item, model_name=base.model_name)
                return
            if isinstance(item, ModelSpec):
                try:
                    item.validate()
                except TypeError as exc:
                    raise _Rejected(f"invalid model registration: {exc}") from None
                self._trace(f"plugin {record.name!r} registers model {item.name!r} lazily ({item.target})")
                add(item.name, ModelSource(record, spec=item))
                return
            from zoo.model import validate_model_class

            try:
                validate_model_class(item)
            except TypeError as exc:
                raise _Rejected(f"invalid model registration: {exc}") from None
            self._trace(f"plugin {record.name!r} registers model {item.name!r} ({item.__module__}.{item.__qualname__})")
            add(item.name, ModelSource(record, cls=item))

        return register

    def _named_collector(self, kind: Kind, record: PluginRecord, into: dict[str, Any],
                         clashes: dict[str, str]) -> Callable[[Any], None]:
        def register(spec: Any) -> None:
            problem = kind.problem(spec)
            if problem is not None:
                raise _Rejected(f"invalid {kind.noun} registration: {problem}")
            if self._taken(kind.noun, spec.name, into, record, clashes) is not None:
                into[spec.name] = spec

        return register


def _allowed_external() -> dict[str, str] | None:
    """``ZOO_LOAD_PLUGINS`` as ``{normalised name: name as written}`` (None when unset)."""
    raw = os.environ.get("ZOO_LOAD_PLUGINS")
    if raw is None:
        return None
    return {_normalise(n.strip()): n.strip() for n in raw.split(",") if n.strip()}


def _normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them: ``Zoo.Dup``, ``zoo_dup``, ``zoo--dup`` are ``zoo-dup``."""
    return re.sub(r"[-_.]+", "-", name).lower()


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
    defer_strict: bool = False,
) -> Registry:
    """Load plugins and return a fresh `Registry` (their hooks run on first use).

    ``extra_plugins`` are ``(name, object)`` pairs registered after the entry points, as if they were
    external plugins (tests and notebooks use this). In strict mode every plugin is loaded and
    collected, then one `PluginError` lists every problem; ``defer_strict`` leaves that to the
    caller's `Registry.raise_if_strict` (the CLI first adds plugin commands, whose name
    collisions are problems too).
    """
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    registry = Registry(pm, strict=env_flag("ZOO_STRICT_PLUGINS") if strict is None else strict)
    registry.trace = env_flag("ZOO_TRACE_PLUGINS") if trace is None else trace
    allowed = _allowed_external()
    matched: set[str] = set()
    for ep in _entry_points() if entry_points is None else entry_points:
        dist = getattr(ep, "dist", None)
        dist_name = _dist_name(ep)
        builtin = dist_name == CORE_DISTRIBUTION
        names = {_normalise(ep.name), _normalise(dist_name or "")} & set(allowed or ())
        matched |= names
        if not builtin and allowed is not None and not names:
            registry._trace(f"plugin {ep.name!r} ({dist_name}) not loaded: not named in ZOO_LOAD_PLUGINS")
            continue
        record = PluginRecord(name=ep.name, module=ep.value, distribution=dist_name,
                              version=dist.version if dist is not None else None, builtin=builtin)
        registry._trace(f"loading plugin {ep.name!r} from module {ep.value!r} "
                        f"({dist_name or 'no distribution'}{' ' + record.version if record.version else ''})")
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
            if registry.trace:
                import traceback

                sys.stderr.write(f"[zoo trace] plugin {ep.name!r} ({ep.value}) failed to import:\n")
                sys.stderr.write("".join(traceback.format_exception(exc)))
            continue
        registry.add(plugin, record)
    for name in sorted(allowed[key] for key in set(allowed or ()) - matched):  # type: ignore[index]
        registry.warnings.append(f"ZOO_LOAD_PLUGINS names {name!r}, which is no installed plugin or distribution")
    for name, plugin in extra_plugins:
        registry.add(plugin, PluginRecord(name=name, module=getattr(plugin, "__name__", repr(plugin))))
    if registry.trace:  # pluggy's own trace of every hook call, after the loading lines
        pm.trace.root.setwriter(lambda msg: sys.stderr.write(f"[zoo trace] {msg}"))
        pm.enable_tracing()
    if registry.strict:
        registry._collect()  # strict mode: every plugin error surfaces now, all of them at once
        if not defer_strict:
            registry.raise_if_strict()
    return registry


_REGISTRY: Registry | None = None


def get_registry(*, defer_strict: bool = False) -> Registry:
    """The process-wide registry, loaded on first use (``defer_strict``: see `build_registry`)."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = build_registry(defer_strict=defer_strict)
    return _REGISTRY


def reset_registry() -> None:
    global _REGISTRY
    _REGISTRY = None
