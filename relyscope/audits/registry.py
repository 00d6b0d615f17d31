"""The method registry: every `AuditMethod` subclass, by name. The one place method names live.

Subclassing `AuditMethod` registers the class here (relyscope.audits.method); importing
relyscope.audits imports the built-in methods. Everything that needs method names (the
runner, verdicts, report columns, the CLI) asks these functions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pydantic import BaseModel

from relyscope.config import AuditConfig
from relyscope.errors import CaseError

if TYPE_CHECKING:
    from relyscope.audits.method import AuditMethod, Kind

_METHODS: dict[str, type[AuditMethod]] = {}


def register(cls: type[AuditMethod]) -> None:
    """Add a method class; a second class under a taken name is a programming error."""
    taken = _METHODS.get(cls.name)
    if taken is not None and taken.__qualname__ != cls.__qualname__:
        raise ValueError(f"method name {cls.name!r} is taken by {taken.__qualname__}")
    _METHODS[cls.name] = cls


def unregister(name: str) -> None:
    _METHODS.pop(name, None)


@contextmanager
def scoped() -> Iterator[None]:
    """Methods registered inside the block are gone after it (tests, plugins tried out)."""
    before = dict(_METHODS)
    try:
        yield
    finally:
        _METHODS.clear()
        _METHODS.update(before)


def _ordered() -> list[type[AuditMethod]]:
    return sorted(_METHODS.values(), key=lambda cls: (cls.priority, cls.name))


def method_names() -> tuple[str, ...]:
    """Every registered method, in priority order (the order they run and are cut in)."""
    return tuple(cls.name for cls in _ordered())


def default_methods() -> tuple[str, ...]:
    """The methods an audit runs when the config names none."""
    return tuple(cls.name for cls in _ordered() if cls.default)


def method_class(name: str) -> type[AuditMethod]:
    try:
        return _METHODS[name]
    except KeyError:
        raise CaseError("methods", f"unknown method {name!r}; known: "
                                   f"{', '.join(method_names())}") from None


def methods_of_kind(kind: Kind) -> tuple[str, ...]:
    return tuple(cls.name for cls in _ordered() if cls.kind == kind)


def voting_methods() -> tuple[str, ...]:
    """The methods whose scores vote in unit verdicts, in priority order."""
    return tuple(cls.name for cls in _ordered() if cls.votes)


def unit_score_columns() -> tuple[str, ...]:
    """Reliance and localisation methods, in report column order (a unit's `reliance`)."""
    classes = [cls for cls in _ordered() if cls.kind in ("reliance", "localisation")]
    return tuple(cls.name for cls in sorted(classes, key=lambda cls: cls.column_order()))


def settings_for(config: AuditConfig, name: str) -> BaseModel:
    """The method's validated settings: its defaults updated by `config.method_settings`."""
    return method_class(name).settings_from(config)


def validate_config(config: AuditConfig) -> tuple[str, ...]:
    """Check the config's method names and settings against the registry; the methods to
    run, in priority order (the registry's defaults when the config names none)."""
    for index, name in enumerate(config.methods):
        if name not in _METHODS:
            raise CaseError(f"methods[{index}]", f"unknown method {name!r}; known: "
                                                 f"{', '.join(method_names())}")
    for name in config.method_settings:
        if name not in _METHODS:
            raise CaseError(f"method_settings.{name}", f"unknown method {name!r}; known: "
                                                       f"{', '.join(method_names())}")
        settings_for(config, name)
    wanted = config.methods if "methods" in config.model_fields_set else default_methods()
    return tuple(name for name in method_names() if name in wanted)
