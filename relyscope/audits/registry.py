"""The method registry: every `AuditMethod` subclass, by name. The one place method names live.

Subclassing `AuditMethod` registers the class here (relyscope.audits.method); importing
relyscope.audits imports the built-in methods. Everything that needs method names (the
runner, verdicts, report columns, the CLI) asks these functions.

The method modules import torch, seconds that `relyscope --help` and `relyscope report` should
not pay. So the built-in methods' descriptions (`BUILTIN`: name, kind, priority, default, votes,
column) are also written here, and the functions that need only those answer from them for a
built-in not imported yet; a function that needs a method's class (`method_class`,
`settings_for`, `validate_config`) imports the built-ins first. tests/test_cli_startup.py
checks that `BUILTIN` says exactly what the classes say.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module
from typing import TYPE_CHECKING, NamedTuple

from pydantic import BaseModel

from relyscope.config import AuditConfig
from relyscope.errors import CaseError

if TYPE_CHECKING:
    from relyscope.audits.method import AuditMethod, Kind

_METHODS: dict[str, type[AuditMethod]] = {}


class MethodInfo(NamedTuple):
    """What the registry's name functions read of a method (an `AuditMethod`'s class
    attributes of the same names)."""

    name: str
    kind: Kind
    priority: int
    default: bool
    votes: bool
    column: int | None

    def column_order(self) -> int:
        return self.priority if self.column is None else self.column


#: The built-in methods (relyscope.audits imports and registers their classes).
BUILTIN: tuple[MethodInfo, ...] = (
    MethodInfo("attention", "provenance", 0, default=True, votes=False, column=None),
    MethodInfo("learned", "reliance", 5, default=False, votes=False, column=60),
    MethodInfo("loo", "reliance", 10, default=True, votes=True, column=10),
    MethodInfo("tools", "reliance", 20, default=True, votes=True, column=30),
    MethodInfo("ablation", "reliance", 30, default=True, votes=True, column=20),
    MethodInfo("tracing", "localisation", 40, default=True, votes=False, column=40),
    MethodInfo("knockout", "reliance", 45, default=False, votes=False, column=45),
    MethodInfo("heads", "localisation", 50, default=False, votes=False, column=50),
    MethodInfo("input_x_gradient", "provenance", 65, default=False, votes=False, column=None),
    MethodInfo("integrated_gradients", "provenance", 70, default=False, votes=False,
               column=None),
)


def info_of(cls: type[AuditMethod]) -> MethodInfo:
    return MethodInfo(cls.name, cls.kind, cls.priority, default=cls.default, votes=cls.votes,
                      column=cls.column)


#: The modules defining the built-in methods (importing one registers its classes).
BUILTIN_MODULES = ("provenance", "learned", "loo", "tools", "ablation", "tracing", "knockout",
                   "heads", "gradients")


def load_builtins() -> None:
    """Import (and so register) the built-in method classes; a no-op once they are."""
    for module in BUILTIN_MODULES:
        import_module(f"relyscope.audits.{module}")


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


def _ordered() -> list[MethodInfo]:
    """Registered methods, and the built-ins whose module is not imported yet."""
    infos = {info.name: info for info in BUILTIN}
    infos.update((name, info_of(cls)) for name, cls in _METHODS.items())
    return sorted(infos.values(), key=lambda info: (info.priority, info.name))


def method_names() -> tuple[str, ...]:
    """Every registered method, in priority order (the order they run and are cut in)."""
    return tuple(info.name for info in _ordered())


def default_methods() -> tuple[str, ...]:
    """The methods an audit runs when the config names none."""
    return tuple(info.name for info in _ordered() if info.default)


def method_class(name: str) -> type[AuditMethod]:
    load_builtins()
    try:
        return _METHODS[name]
    except KeyError:
        raise CaseError("methods", f"unknown method {name!r}; known: "
                                   f"{', '.join(method_names())}") from None


def methods_of_kind(kind: Kind) -> tuple[str, ...]:
    return tuple(info.name for info in _ordered() if info.kind == kind)


def voting_methods() -> tuple[str, ...]:
    """The methods whose scores vote in unit verdicts, in priority order."""
    return tuple(info.name for info in _ordered() if info.votes)


def unit_score_columns() -> tuple[str, ...]:
    """Reliance and localisation methods, in report column order (a unit's `reliance`)."""
    classes = [info for info in _ordered() if info.kind in ("reliance", "localisation")]
    return tuple(info.name for info in sorted(classes, key=lambda info: info.column_order()))


def settings_for(config: AuditConfig, name: str) -> BaseModel:
    """The method's validated settings: its defaults updated by `config.method_settings`."""
    return method_class(name).settings_from(config)


def validate_config(config: AuditConfig) -> tuple[str, ...]:
    """Check the config's method names and settings against the registry; the methods to
    run, in priority order (the registry's defaults when the config names none)."""
    load_builtins()
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
