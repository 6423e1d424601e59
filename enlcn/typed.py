"""Values converted to a dataclass field's declared type where they enter (CLI ``--set``, YAML, papermill).

YAML reads ``1e-4`` as the *string* ``"1e-4"`` (YAML 1.1 needs a dot: ``1.0e-4``) and a command line gives
only strings, so every configuration dataclass converts its fields with :func:`convert_fields` in
``__post_init__``: ``"1e-4"``, ``"1E-4"``, ``".5"``, ``"3"`` become numbers, ``"true"`` a bool, ``"20,30"``
or ``[20, 30]`` a tuple of ints. A value that cannot be converted is a ``ValueError`` naming the field,
the value and the type it needs — before any work starts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

_TRUE, _FALSE, _NONE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}, {"none", "null", "~", ""}


def _fail(name: str, value: Any, what: str) -> ValueError:
    return ValueError(f"{name}: expected {what}, got {value!r} ({type(value).__name__})")


def convert(name: str, value: Any, annotation: Any) -> Any:
    """``value`` as ``annotation`` (int, float, bool, str, ``X | None``, ``tuple[X, ...]``, dict, Any)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.strip().lower() in _NONE)
        if type(None) in args and is_none:
            return None
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"{name}: unsupported annotation {annotation!r}")
        return convert(name, value, rest[0])
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise _fail(name, value, "true or false")
    if annotation in (int, float):
        exact = (int,) if annotation is int else (int, float)
        if isinstance(value, exact) and not isinstance(value, bool):
            return annotation(value)
        if isinstance(value, str):
            try:
                return annotation(value.strip())
            except ValueError:
                pass
        raise _fail(name, value, "an integer" if annotation is int else "a number")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise _fail(name, value, "a string")
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(items, str) or not isinstance(items, (list, tuple)):
            raise _fail(name, value, f"a list of {args[0].__name__}")
        return tuple(convert(f"{name}[{i}]", v, args[0]) for i, v in enumerate(items) if v != "")
    if origin is dict or annotation is dict:
        if isinstance(value, dict):
            return dict(value)
        raise _fail(name, value, "a mapping")
    raise TypeError(f"{name}: unsupported annotation {annotation!r}")


def convert_fields(obj: Any) -> None:
    """Convert every field of the dataclass instance ``obj`` in place to its declared type."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        setattr(obj, f.name, convert(f"{type(obj).__name__}.{f.name}", value, hints[f.name]))


def check_parameters(namespace: dict[str, Any], **types: Any) -> None:
    """Convert a notebook's papermill parameters in ``namespace`` (its ``globals()``) to their types.

    ``papermill -p train_missing false`` passes the *string* ``"false"``, which Python reads as true;
    ``check_parameters(globals(), profile=str, train_missing=bool)`` makes it ``False``, and a value that
    cannot be converted (or an unknown ``profile``) stops the notebook with an error naming the parameter.
    """
    for name, annotation in types.items():
        if name not in namespace:
            raise KeyError(f"parameter {name!r} is not defined (is it in the parameters cell?)")
        namespace[name] = convert(f"parameter {name}", namespace[name], annotation)
    if "profile" in types:
        from .profiles import get_profile

        get_profile(namespace["profile"])
