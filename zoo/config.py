"""Typed, validated configuration dataclasses with ``key=value`` overrides."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from zoo.errors import ConfigError, UnknownNameError
from zoo.fileio import parse_toml
from zoo.text import parse_bool

C = TypeVar("C", bound="ModelConfig")


@dataclasses.dataclass
class ModelConfig:
    """Base class of every model's config.

    Subclasses are ``@dataclass``es whose field defaults are the paper's. Types are checked from the
    annotations (``int``, ``float``, ``bool``, ``str``, ``tuple[int, ...]``, ``list[...]`` and
    ``X | None``); a wrong kind is a [`ConfigError`][zoo.errors.ConfigError] naming the field. Every float
    must be finite (NaN and infinities are refused) unless its field says otherwise with
    ``field(default=math.inf, metadata={"finite": False})``. Override `validate` for value
    checks and call `require` so errors name the field. ``search_space`` maps field names to
    the ranges ``zoo bench --tune`` searches (`zoo.search`: ``Float``, ``Int``, ``Choice``).
    """

    #: ``{"lr": Float(1e-5, 1e-3, log=True), ...}``: what ``zoo bench --tune`` searches; {}: nothing.
    search_space: typing.ClassVar[Mapping[str, Any]] = {}

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            finite = f.metadata.get("finite", True) is not False
            setattr(self, f.name, _coerce(getattr(self, f.name), hints[f.name], f.name, self, finite))
        self.validate()

    def validate(self) -> None:
        """Value checks; raise through `require`."""

    def require(self, ok: bool, field: str, message: str) -> None:
        if not ok:
            raise ConfigError(field, f"{message} (got {_show(getattr(self, field))})", type(self).__name__)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_overrides(cls: type[C], overrides: Mapping[str, Any] | None = None) -> C:
        """Build a config from defaults plus overrides; string values are parsed to the field type."""
        overrides = dict(overrides or {})
        names = cls.field_names()
        for key in overrides:
            if key not in names:
                raise UnknownNameError(f"config key for {cls.__name__}", key, names)
        return cls(**overrides)

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def parse_assignments(items: Iterable[str | tuple[str, Any]], what: str = "--set") -> dict[str, Any]:
    """Parse ``["key=value", ...]`` into a dict, with a clear error for malformed items.

    An item may also be a ``(key, value)`` pair: a configuration file's typed value (``lr = 2e-4``,
    ``use_ema = true``), kept typed so a file's ``true`` cannot pass as an int nor ``1`` as a bool;
    a ``key=value`` text after it replaces it (the command line wins over the file). One key given
    twice as text with different values is a `ConfigError` (one run takes one value; ``zoo
    bench`` reads repeated values as a sweep with `zoo.bench.sweep.collect_assignments`).
    """
    out: dict[str, Any] = {}
    typed: set[str] = set()  # keys whose value came from a file: the command line replaces them
    for item in items:
        if isinstance(item, tuple):
            key, value = item
            out[str(key).strip()] = value
            typed.add(str(key).strip())
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(_show(item), f"expected key=value in {what}")
        key, value = key.strip(), value.strip()
        if key in out and key not in typed and out[key] != value:  # never a silent last-wins
            raise ConfigError(key, f"given twice in {what} ({_show(out[key])}, {_show(value)}); this command "
                                   "runs one value (zoo bench sweeps over repeated --set values)")
        out[key] = value
        typed.discard(key)
    return out


#: Largest integer a float holds exactly: an integral float beyond it is not taken as an int.
_EXACT_INT = 2**53


def _show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, so an error about a huge value stays one short line."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond Python's digit limit
        text = f"<int of about {value.bit_length() * 0.30103:.0f} digits>"
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _parse_list(text: str, name: str, where: str) -> list[Any]:
    """``"1,2"``, ``"(1, 2)"``, ``"[1, 2]"`` or ``'["a", "b"]'`` (TOML/JSON array syntax) -> a list."""
    body = text.strip()
    if body.startswith("(") and body.endswith(")"):
        body = f"[{body[1:-1]}]"
    if not body.startswith("["):
        return [v.strip() for v in body.split(",") if v.strip()]
    try:
        value = parse_toml(f"v = {body}")["v"] if "\n" not in body else None
    except ValueError:  # bad syntax, or [[[... nested too deeply
        value = None
    if not isinstance(value, list):
        raise ConfigError(name, f"expected a list like [1, 2], got {_show(text)}", where)
    return value


def _coerce(value: Any, hint: Any, name: str, owner: object, finite: bool = True) -> Any:
    """``value`` as the type ``hint`` declares, or a `ConfigError` naming ``name``.

    Strings (from ``--set``) are parsed; typed values (from files and checkpoints) must already be
    of the field's kind: a bool is neither an int nor a float, an int is not a bool, a float is an
    int only when it is integral (and exact). Floats must be finite unless ``finite`` is False (a
    field declared with ``metadata={"finite": False}``).
    """
    where = type(owner).__name__
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in {"none", "null", ""}):
            return None
        return _coerce(value, args[0], name, owner, finite)
    if origin in (tuple, list):
        (item_type, *_rest) = typing.get_args(hint) or (Any,)
        if isinstance(value, str):
            value = _parse_list(value, name, where)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(name, f"expected a list like [1, 2], got {_show(value)}", where)
        items = [_coerce(v, item_type, f"{name}[{i}]", owner, finite) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is bool:
        if isinstance(value, bool):
            return value
        parsed = parse_bool(value) if isinstance(value, str) else None
        if parsed is not None:
            return parsed
        raise ConfigError(name, f"expected true or false, got {_show(value)}", where)
    if hint in (int, float):
        if isinstance(value, str):
            try:
                value = float(value) if hint is float else int(value, 0)
            except ValueError:
                raise ConfigError(name, f"expected {hint.__name__}, got {_show(value)}", where) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(name, f"expected {hint.__name__}, got {_show(value)}", where)
        if hint is int and isinstance(value, float):
            if not (value.is_integer() and abs(value) <= _EXACT_INT):
                raise ConfigError(name, f"expected int, got {_show(value)}", where)
            value = int(value)
        if hint is float:
            try:
                value = float(value)
            except OverflowError:  # an int too large for a float
                raise ConfigError(name, f"expected a finite number, got {_show(value)}", where) from None
            if finite and not math.isfinite(value):
                raise ConfigError(name, f"expected a finite number, got {_show(value)}", where)
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(name, f"expected str, got {_show(value)}", where)
        return value
    if finite and isinstance(value, float) and not math.isfinite(value):  # an untyped (Any) field
        raise ConfigError(name, f"expected a finite number, got {_show(value)}", where)
    return value


@dataclasses.dataclass(frozen=True)
class FieldDoc:
    """One config field as ``zoo describe`` shows it."""

    name: str
    type: str
    default: Any
    help: str


def field_docs(config_cls: type[ModelConfig]) -> list[FieldDoc]:
    """The fields of a config dataclass with their type, default and help text.

    The help is ``field(metadata={"help": ...})`` when given, else the comment at the end of the
    field's line in the class source (``lr: float = 1e-4  # Adam learning rate``), looked up in the
    class that declares the field (a subclass that redeclares it wins). Source that cannot be read
    (a class made in a REPL) gives empty help, never an error.
    """
    comments: dict[str, str] = {}
    for klass in reversed(config_cls.__mro__):
        if dataclasses.is_dataclass(klass):
            comments.update(_field_comments(klass))
    hints = typing.get_type_hints(config_cls)
    docs = []
    for f in dataclasses.fields(config_cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        hint = hints.get(f.name, f.type)
        type_text = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
        docs.append(FieldDoc(f.name, type_text, list(default) if isinstance(default, tuple) else default,
                             str(f.metadata.get("help") or comments.get(f.name, ""))))
    return docs


def _field_comments(klass: type) -> dict[str, str]:
    """``{field: comment}`` from the ``name: type = value  # comment`` lines of ``klass``'s body."""
    import ast
    import inspect
    import io
    import textwrap
    import tokenize

    try:
        source = textwrap.dedent(inspect.getsource(klass))
    except (OSError, TypeError):
        return {}
    try:
        tree = ast.parse(source)
        comments_by_line = {tok.start[0]: tok.string.lstrip("#").strip()
                            for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                            if tok.type == tokenize.COMMENT}
    except (SyntaxError, tokenize.TokenError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    out = {}
    for node in body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            line = node.end_lineno or node.lineno
            if line in comments_by_line:
                out[node.target.id] = comments_by_line[line]
    return out
