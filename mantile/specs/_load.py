"""Build frozen dataclasses from plain dicts (parsed YAML), checking names and types.

Every spec class is a dataclass whose fields carry the type and, in ``metadata['doc']``, the meaning.
``build`` rejects unknown keys, missing required keys and values of the wrong type with a SpecError
that names the file and the field.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from mantile.specs.errors import SpecError

T = TypeVar("T")


def _check_scalar(value: Any, tp: Any, where: str, field: str) -> Any:
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(where, field, value, "a number")
        if not math.isfinite(value):
            raise SpecError(where, field, value, "a finite number (not NaN or infinity)")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise SpecError(where, field, value, "an integer")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(where, field, value, "true or false")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(where, field, value, "a string")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise SpecError(where, field, value, f"a mapping with keys {sorted(_field_names(tp))}")
        return build(tp, value, where, prefix=f"{field}.")
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise SpecError(where, field, value, "a list")
        item = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        return tuple(_check_scalar(v, item, where, f"{field}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise SpecError(where, field, value, "a mapping")
        args = typing.get_args(tp)
        kt, vt = (args[0], args[1]) if len(args) == 2 else (str, Any)
        if kt is int:  # integer keys (YAML reads them as ints; a JSON or OmegaConf source may give strings)
            keys = {k: _integer_key(k, where, field) for k in value}
            return {keys[k]: _check_scalar(v, vt, where, f"{field}.{k}") for k, v in value.items()}
        return {str(k): _check_scalar(v, vt, where, f"{field}.{k}") for k, v in value.items()}
    raise TypeError(f"unsupported field type {tp!r}")


def _integer_key(key: Any, where: str, field: str) -> int:
    if isinstance(key, bool):
        raise SpecError(where, f"{field}.{key}", key, "an integer key")
    try:
        return int(str(key))
    except ValueError:
        raise SpecError(where, f"{field}.{key}", key, "an integer key") from None


def _check(value: Any, tp: Any, where: str, field: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _check(value, args[0], where, field)
    return _check_scalar(value, tp, where, field)


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def build(cls: type[T], data: Mapping[str, Any], where: str, prefix: str = "") -> T:
    """Instantiate dataclass ``cls`` from ``data``; errors name ``where`` and the dotted field."""
    hints = typing.get_type_hints(cls)
    names = _field_names(cls)
    unknown = sorted(set(data) - names)
    if unknown:
        raise SpecError(where, prefix + unknown[0], data[unknown[0]], f"unknown key; valid keys: {sorted(names)}")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            kwargs[f.name] = _check(data[f.name], hints[f.name], where, prefix + f.name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SpecError(where, prefix + f.name, None, f"required: {f.metadata.get('doc', 'missing')}")
    try:
        return cls(**kwargs)
    except SpecError as e:
        if e.where == "?":
            raise SpecError(where, prefix + e.field, e.value, e.allowed) from None
        raise


#: Physical ranges of catalog figures: name -> (test, what is allowed).
RANGES: dict[str, tuple[Any, str]] = {
    "positive": (lambda v: v > 0, "a positive number"),
    "non_negative": (lambda v: v >= 0, "a number >= 0"),
    "fraction": (lambda v: 0 < v <= 1, "a fraction in (0, 1]"),
    "at_least_one": (lambda v: v >= 1, "an integer >= 1"),
}


def check_ranges(obj: Any, kind: str, *names: str) -> None:
    """Raise a SpecError (where '?': ``build`` adds the file and the field's path) for the first field
    of ``obj`` named in ``names`` whose value (when not None) is outside the range ``kind``."""
    test, allowed = RANGES[kind]
    for name in names:
        value = getattr(obj, name)
        values = value.items() if isinstance(value, Mapping) else [(None, value)]
        for key, v in values:
            if v is not None and not test(v):
                raise SpecError("?", name if key is None else f"{name}.{key}", v, allowed)


def doc(text: str) -> dict[str, str]:
    """Field metadata helper: ``field(metadata=doc('...'))``."""
    return {"doc": text}
