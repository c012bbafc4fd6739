"""Typed, validated configuration dataclasses with ``key=value`` overrides."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from zoo.errors import ConfigError, UnknownNameError
from zoo.text import parse_bool

C = TypeVar("C", bound="ModelConfig")


@dataclasses.dataclass
class ModelConfig:
    """Base class of every model's config.

    Subclasses are ``@dataclass``es whose field defaults are the paper's. Types are checked from the
    annotations (``int``, ``float``, ``bool``, ``str``, ``tuple[int, ...]`` and ``X | None``);
    override :meth:`validate` for value checks and call :meth:`require` so errors name the field.
    """

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            setattr(self, f.name, _coerce(getattr(self, f.name), hints[f.name], f.name, self))
        self.validate()

    def validate(self) -> None:
        """Value checks; raise through :meth:`require`."""

    def require(self, ok: bool, field: str, message: str) -> None:
        if not ok:
            raise ConfigError(field, f"{message} (got {getattr(self, field)!r})", type(self).__name__)

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


def parse_assignments(items: Iterable[str], what: str = "--set") -> dict[str, str]:
    """Parse ``["key=value", ...]`` into a dict, with a clear error for malformed items."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(item, f"expected key=value in {what}")
        out[key.strip()] = value.strip()
    return out


def _coerce(value: Any, hint: Any, name: str, owner: object) -> Any:
    where = type(owner).__name__
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in {"none", "null", ""}):
            return None
        return _coerce(value, args[0], name, owner)
    if origin is tuple:
        (item_type, *_rest) = typing.get_args(hint) or (Any,)
        if isinstance(value, str):
            value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(name, f"expected a tuple, got {value!r}", where)
        return tuple(_coerce(v, item_type, name, owner) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        parsed = parse_bool(value) if isinstance(value, str) else None
        if parsed is not None:
            return parsed
        raise ConfigError(name, f"expected true or false, got {value!r}", where)
    if hint in (int, float):
        if isinstance(value, str):
            try:
                value = hint(value) if hint is float else int(value, 0)
            except ValueError:
                raise ConfigError(name, f"expected {hint.__name__}, got {value!r}", where) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(name, f"expected {hint.__name__}, got {value!r}", where)
        if hint is int and isinstance(value, float):
            if not value.is_integer():
                raise ConfigError(name, f"expected int, got {value!r}", where)
            value = int(value)
        if hint is float:
            value = float(value)
            if value != value or value in (float("inf"), float("-inf")):
                raise ConfigError(name, f"expected a finite number, got {value!r}", where)
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(name, f"expected str, got {value!r}", where)
        return value
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
