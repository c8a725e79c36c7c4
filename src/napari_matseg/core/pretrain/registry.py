"""The registry of pretraining methods: each method module registers itself with its options
(a frozen dataclass), its command-line name and a one-line description, and the loop, the
command line and the Pretrain widget read their choices from here (as timm's
``register_model`` does for architectures).

Adding a method: write one module with a :class:`~.method.PretrainMethod` subclass decorated
with :func:`register_method`, and name the module in :data:`BUILTIN_MODULES`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..errors import InputError

BUILTIN_MODULES = ("matssl", "pscl", "sms")


@dataclass(frozen=True)
class MethodSpec:
    """What the loop, the command line and the widget need to know of a method."""

    name: str
    label: str
    description: str
    options: type
    method: type
    needs_labels: bool = False


_METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, label: str, description: str, options: type,
                    needs_labels: bool = False):
    """Class decorator: register a :class:`PretrainMethod` under ``name`` (its CLI choice)."""

    def decorate(cls):
        if name in _METHODS and _METHODS[name].method is not cls:
            raise ValueError(f"a pretraining method called {name!r} is already registered")
        cls.name = name
        _METHODS[name] = MethodSpec(name, label, description, options, cls, needs_labels)
        return cls

    return decorate


def _load_builtin() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(f"{__package__}.{module}")


def methods() -> dict[str, MethodSpec]:
    """Return every registered method by name, the built-in ones first."""
    _load_builtin()
    return dict(_METHODS)


def method_spec(name: str) -> MethodSpec:
    """Return the registered method ``name``; raise :class:`InputError` naming the choices."""
    registered = methods()
    if name not in registered:
        raise InputError(f"unknown pretraining method {name!r}; choose one of {', '.join(registered)}")
    return registered[name]
