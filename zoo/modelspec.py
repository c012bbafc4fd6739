"""What a model declares about itself, free of torch, so ``zoo list`` and ``zoo describe`` need
no torch import.

A plugin may register a model lazily:

    register("ddpm", "zoo_ddpm.model:DDPM", family="diffusion", summary="...", config=DDPMConfig)

(or ``register(ModelSpec(...))``): the registry keeps the `ModelSpec` and imports
``zoo_ddpm.model`` only when a model is built or an attribute the spec leaves undeclared is read.
When the class loads, every declared attribute is compared with the class's own
(`ModelSpec.disagreements`); a difference is a [`zoo.errors.PluginError`][zoo.errors.PluginError], never a
silent mismatch. ``config`` must then live in a module that does not import torch (a plugin's
``spec.py``), as must the sample options.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from zoo.config import ModelConfig
from zoo.errors import ConfigError, UnknownNameError
from zoo.text import parse_bool
from zoo.vocabulary import FAMILIES


@dataclass(frozen=True)
class SampleOption:
    """A family-specific sampling option the CLI and the benchmark can set (``--option k=v``)."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[Any, ...] = ()
    min: float | None = None

    def parse(self, value: Any) -> Any:
        try:
            if self.type is bool:
                parsed: Any = value if isinstance(value, bool) else parse_bool(value) if isinstance(value, str) else None
                if parsed is None:
                    raise ConfigError(self.name, f"expected true or false (or yes/no, on/off, 1/0), got {value!r}", "option")
            else:
                parsed = self.type(value)
        except (TypeError, ValueError):
            raise ConfigError(self.name, f"expected {self.type.__name__}, got {value!r}", "option") from None
        if isinstance(parsed, float) and not math.isfinite(parsed):
            raise ConfigError(self.name, f"expected a finite number, got {value!r}", "option")
        if self.choices and parsed not in self.choices:
            raise UnknownNameError(f"value for option {self.name!r}", str(parsed), [str(c) for c in self.choices])
        if self.min is not None and parsed < self.min:
            raise ConfigError(self.name, f"must be >= {self.min}, got {parsed!r}", "option")
        return parsed


@dataclass(frozen=True)
class Recipe:
    """How a model family trains best, declared by the model and applied by genzoo.

    ``zoo bench``'s presets apply ``overrides`` (loss weighting, say) and ``batch_size``;
    ``--precision auto`` uses ``precision`` where the hardware runs it natively (bf16 on CPUs with
    avx512_bf16 or AMX and on GPUs that support it) and fp32 elsewhere. There, a preset applies
    ``fallback`` instead, if the model declares one: the recipe for hardware that only emulates
    ``precision`` (DDPM's is a narrower U-Net that fits the quick budget in fp32). Rows record the
    resolved config and precision, so a recipe never changes a number silently.
    """

    precision: str = "fp32"
    overrides: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    fallback: Recipe | None = None

    def for_precision(self, precision: str, *, auto: bool = True) -> Recipe:
        """The recipe a run in ``precision`` uses: ``fallback`` when ``precision`` was chosen by
        ``--precision auto`` (``auto=True``) and differs from this recipe's, else this recipe.

        An explicit ``--precision`` keeps this recipe's network: the user changed the arithmetic,
        not the model."""
        if auto and self.fallback is not None and precision != self.precision:
            return self.fallback
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (``zoo describe``), the fallback nested under ``"fallback"``."""
        return {"precision": self.precision, "overrides": dict(self.overrides), "batch_size": self.batch_size,
                "fallback": None if self.fallback is None else self.fallback.to_dict()}


def check_model_name(name: str, what: str = "model name") -> None:
    """Raise ``TypeError`` unless ``name`` can be addressed everywhere (``--set NAME.key=v``)."""
    bad = [ch for ch in ",= /.:" if ch in name]
    if bad or any(not ch.isprintable() for ch in name):
        raise TypeError(f"{what} {name!r} must not contain ',', '=', ' ', '/', '.', ':' or control "
                        "characters ('.' separates model and key in --set MODEL.KEY=VALUE, ':' "
                        "plugin and model in plugin:model)")


def parse_sample_options(model: str, declared_options: Sequence[SampleOption],
                         options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate ``options`` against ``declared_options``, filling in defaults (errors name
    ``model``): [`UnknownNameError`][zoo.errors.UnknownNameError] or [`ConfigError`][zoo.errors.ConfigError]."""
    declared = {o.name: o for o in declared_options}
    parsed = {name: o.default for name, o in declared.items()}
    for key, value in (options or {}).items():
        if key not in declared:
            raise UnknownNameError(f"sampling option for {model}", key, list(declared))
        parsed[key] = declared[key].parse(value)
    return parsed


def check_config_class(config: Any, owner: str) -> None:
    """Raise ``TypeError`` unless ``config`` is a ``@dataclass`` `ModelConfig` subclass whose
    defaults build (``owner`` names it in the message, e.g. ``"DDPM.Config"``)."""
    if not (isinstance(config, type) and issubclass(config, ModelConfig)):
        raise TypeError(f"{owner} must subclass zoo.ModelConfig")
    for klass in config.__mro__:
        if issubclass(klass, ModelConfig) and "__dataclass_fields__" not in vars(klass):
            raise TypeError(f"{owner}: {klass.__name__} is not decorated with @dataclass, so its "
                            "fields are not config fields (they keep the parent's defaults); add @dataclass")
    try:
        config()
    except Exception as exc:
        raise TypeError(f"{owner}() with defaults fails: {exc}") from exc
    from zoo.search import check_search_space

    check_search_space(config, owner)


def check_declarations(owner: str, values: Mapping[str, Any]) -> None:
    """Check the model attributes in ``values`` (any of ``family``, ``sample_options``,
    ``batches_per_step``, ``bench_sweep``; ``name`` for the sweep's messages); ``TypeError``
    names ``owner`` (a class or registration) and the attribute."""
    if "family" in values and values["family"] not in FAMILIES:
        raise TypeError(f"{owner}.family must be one of {FAMILIES}, got {values['family']!r}")
    for opt in values.get("sample_options", ()):
        if not isinstance(opt, SampleOption):
            raise TypeError(f"{owner}.sample_options must hold zoo.SampleOption, got {opt!r}")
    bps = values.get("batches_per_step", 1)
    if isinstance(bps, bool) or not isinstance(bps, int) or bps < 1:
        raise TypeError(f"{owner}.batches_per_step must be an int >= 1, got {bps!r}")
    sweep = values.get("bench_sweep")
    if sweep is not None:
        if isinstance(sweep, (str, Mapping)) or not sweep:
            raise TypeError(f"{owner}.bench_sweep must be a non-empty list of option dicts, got {sweep!r}")
        for setting in sweep:
            if not isinstance(setting, Mapping):
                raise TypeError(f"{owner}.bench_sweep entries must be dicts, got {setting!r}")
            if "sample_options" not in values:
                continue  # checked against the class's options when it loads
            try:
                parse_sample_options(str(values.get("name", owner)), values["sample_options"], setting)
            except Exception as exc:
                raise TypeError(f"{owner}.bench_sweep entry {dict(setting)!r}: {exc}") from None


class _Undeclared:
    """The default of a `ModelSpec` attribute the registration leaves to the class."""

    def __repr__(self) -> str:
        return "UNDECLARED"


#: A `ModelSpec` field left undeclared: read from the class, which is then imported.
UNDECLARED: Any = _Undeclared()

#: The class attributes a `ModelSpec` may declare besides ``name``, ``family`` and
#: ``summary`` (``config`` is the class's ``Config``).
OPTIONAL_ATTRIBUTES = ("paper", "config", "sample_options", "supported_sizes", "supported_channels",
                       "default_batch_size", "batches_per_step", "tiny_config", "recipe", "bench_sweep")


@dataclass(frozen=True)
class ModelSpec:
    """A lazily registered model: its name, where its class lives, and what ``zoo list`` and
    ``zoo describe`` show, declared without importing the class's module.

    ``target`` is ``"package.module:ClassName"``. ``name``, ``family`` and ``summary`` are required;
    every other field defaults to `UNDECLARED` and is then read from the class (importing its
    module, hence torch). Declare ``config`` (the ``Config`` dataclass, defined in a torch-free
    module) and ``sample_options`` so that ``zoo describe`` and variants need no import.
    Declared values must equal the class's attributes (``Config`` for ``config``): the registry
    checks them when the class loads (`disagreements`).
    """

    name: str
    target: str
    family: str
    summary: str
    paper: str = UNDECLARED
    config: type[ModelConfig] = UNDECLARED
    sample_options: tuple[SampleOption, ...] = UNDECLARED
    supported_sizes: tuple[int, ...] | None = UNDECLARED
    supported_channels: tuple[int, ...] = UNDECLARED
    default_batch_size: int = UNDECLARED
    batches_per_step: int = UNDECLARED
    tiny_config: Mapping[str, Any] = UNDECLARED
    recipe: Recipe | None = UNDECLARED
    bench_sweep: Sequence[Mapping[str, Any]] | None = UNDECLARED

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def qualname(self) -> str:
        return self.target.partition(":")[2]

    def declared(self) -> dict[str, Any]:
        """The declared attributes by class-attribute name (``Config`` for ``config``)."""
        out = {"name": self.name, "family": self.family, "summary": self.summary}
        for key in OPTIONAL_ATTRIBUTES:
            value = getattr(self, key)
            if value is not UNDECLARED:
                out["Config" if key == "config" else key] = value
        return out

    def validate(self) -> None:
        """Raise ``TypeError`` with a clear reason if this registration cannot be used."""
        owner = f"registration of {self.name!r}"
        if not isinstance(self.name, str) or not self.name or self.name != self.name.strip().lower():
            raise TypeError(f"model name must be a non-empty lowercase string, got {self.name!r}")
        check_model_name(self.name)
        module, _, qualname = self.target.partition(":") if isinstance(self.target, str) else ("", "", "")
        if not module or not qualname or not all(p.isidentifier() for p in [*module.split("."), *qualname.split(".")]):
            raise TypeError(f"{owner}: target must be 'package.module:ClassName', got {self.target!r}")
        if not isinstance(self.summary, str) or not isinstance(self.paper, (str, _Undeclared)):
            raise TypeError(f"{owner}: summary and paper must be strings")
        if self.config is not UNDECLARED:
            check_config_class(self.config, f"{owner}: config")
        values = {k: v for k, v in self.declared().items() if k != "Config"}
        if "sample_options" in values:
            values["sample_options"] = tuple(values["sample_options"])
        check_declarations(owner, values)

    def disagreements(self, cls: type, keys: Sequence[str] | None = None) -> list[str]:
        """The declared attributes (of ``keys``, default all) whose value differs from ``cls``'s,
        one phrase each."""
        out = []
        for key, declared in self.declared().items():
            if keys is not None and key not in keys:
                continue
            actual = getattr(cls, key, UNDECLARED)
            if not _same(declared, actual):
                out.append(f"{key} is {_short(declared)} in the registration but {_short(actual)} "
                           f"on the class")
        return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, type) or isinstance(b, type):
        return a is b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return dict(a) == dict(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _short(value: Any, limit: int = 60) -> str:
    text = value.__qualname__ if isinstance(value, type) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
