"""The one record convention for config-like dataclasses, and the one registry of named, lazily imported kinds.

A *record* is a dataclass whose ``__post_init__`` stores the values its ``check_x`` calls return (so
``np.int64(3)`` is kept as ``int`` 3 and the record is always JSON-serialisable) and which is saved and
loaded as a plain dict by :meth:`Record.to_dict` / :meth:`Record.from_dict`: tuples are written as lists and
read back as tuples, nested records as their dicts, and a key the class does not know is an error naming it
(a file written by another version must not be half understood).

A :class:`Registry` maps a kind's name (``"local"``, ``"jigsaw"``) to the ``module:attribute`` that builds
it, imported only when that kind is built, so the heavy dependencies of one kind are not loaded for another,
and an unknown kind or option is refused with the choices listed instead of failing deep inside a class.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = ["KindSpec", "Record", "Registry", "record_from_dict", "record_to_dict", "set_checked"]

R = TypeVar("R", bound="Record")


def set_checked(record: object, **values: Any) -> None:
    """Store checked values on a (possibly frozen) dataclass from its ``__post_init__``."""
    for name, value in values.items():
        object.__setattr__(record, name, value)


def _plain(value: Any) -> Any:
    if isinstance(value, (Record, KindSpec)):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def record_to_dict(record: Any) -> dict[str, Any]:
    """Every field of a dataclass as JSON-ready values (tuples as lists, nested records as dicts)."""
    return {f.name: _plain(getattr(record, f.name)) for f in dataclasses.fields(record)}


def _hint_types(hint: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return tuple(t for arg in typing.get_args(hint) for t in _hint_types(arg))
    return (origin or hint,)


def _read_field(hint: Any, value: Any) -> Any:
    kinds = _hint_types(hint)
    for kind in kinds:
        if isinstance(kind, type) and issubclass(kind, (Record, KindSpec)) and isinstance(value, Mapping):
            return kind.from_dict(value)
    if isinstance(value, list) and tuple in kinds and list not in kinds:
        return tuple(value)
    return value


def record_from_dict(cls: type[Any], data: object, *, what: str | None = None) -> Any:
    """Build dataclass ``cls`` from a dict written by :func:`record_to_dict`; unknown keys are an error
    naming them (``what`` names the record in messages; default: the class name)."""
    what = what or cls.__name__
    if not isinstance(data, Mapping):
        raise TypeError(f"a {what} is read from a mapping of field -> value, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - known, key=str)
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown} (written by another version?); known keys: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    return cls(**{key: _read_field(hints.get(key, Any), value) for key, value in data.items()})


class Record:
    """Mixin giving a dataclass the record convention's ``to_dict`` / ``from_dict`` pair."""

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready values (tuples as lists, nested records as dicts)."""
        return record_to_dict(self)

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        """The record :meth:`to_dict` wrote; fields left out take their defaults, unknown keys are an error."""
        return typing.cast(R, record_from_dict(cls, data))


class Registry:
    """Named kinds of one thing (backends, oracles), each built by a ``"module:attribute"`` imported lazily."""

    def __init__(self, what: str, targets: Mapping[str, str]) -> None:
        self.what = what
        self._targets = dict(targets)

    @property
    def names(self) -> tuple[str, ...]:
        """The kinds' names, in registration order."""
        return tuple(self._targets)

    def check_name(self, name: object) -> str:
        """Return ``name`` if it is a registered kind, else raise listing the kinds."""
        if not isinstance(name, str) or name not in self._targets:
            raise ValueError(f"unknown {self.what} {name!r}; choose from {', '.join(map(repr, self._targets))}")
        return name

    def factory(self, name: str) -> Callable[..., Any]:
        """The class or function that builds kind ``name`` (imported now)."""
        module, _, attribute = self._targets[self.check_name(name)].partition(":")
        return typing.cast(Callable[..., Any], getattr(importlib.import_module(module), attribute))

    def build(self, name: str, options: Mapping[str, Any]) -> Any:
        """Kind ``name`` built with keyword ``options``; an option its factory does not take is an error naming
        it and the options it does take."""
        factory = self.factory(name)
        parameters = inspect.signature(factory).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            accepted = [n for n, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            unknown = sorted(set(options) - set(accepted))
            if unknown:
                raise ValueError(f"{self.what} {name!r} has no options {unknown}; it takes {accepted}")
        return factory(**options)


@dataclasses.dataclass(frozen=True)
class KindSpec:
    """Which registered kind to build and with which options; saved flat as ``{"kind": name, **options}``.

    Subclasses set ``registry`` (and ``default_kind``); the kind is checked when the spec is made, the
    options against the kind's factory when it is built (that imports the kind's module)."""

    kind: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    registry: typing.ClassVar[Registry]

    def __post_init__(self) -> None:
        if not isinstance(self.options, Mapping) or not all(isinstance(k, str) for k in self.options):
            raise TypeError(f"{self.registry.what} options must be a mapping of name -> value, got {self.options!r}")
        if "kind" in self.options:
            raise ValueError(f"{self.registry.what} options must not repeat 'kind'")
        set_checked(self, kind=self.registry.check_name(self.kind), options=dict(self.options))

    def get(self, option: str, default: Any = None) -> Any:
        """One option's value, or ``default``."""
        return self.options.get(option, default)

    def to_dict(self) -> dict[str, Any]:
        """The flat, JSON-ready form ``{"kind": name, **options}``."""
        return {"kind": self.kind, **_plain(dict(self.options))}

    @classmethod
    def from_dict(cls: type[S], data: Mapping[str, Any]) -> S:
        """The spec :meth:`to_dict` wrote."""
        if not isinstance(data, Mapping) or "kind" not in data:
            raise ValueError(f"a {cls.registry.what} spec is a mapping with a 'kind' "
                             f"({', '.join(cls.registry.names)}), got {data!r}")
        return cls(data["kind"], {k: v for k, v in data.items() if k != "kind"})

    def build(self) -> Any:
        """The object this spec describes."""
        return self.registry.build(self.kind, self.options)


S = TypeVar("S", bound=KindSpec)
