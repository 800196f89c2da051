"""Parameter dataclasses: parsing ``key=value`` overrides from the CLI and serialising to JSON.

Every method's parameters are a dataclass (pytracking's parameter files, made typed). The CLI
passes ``--param key=value`` pairs, which are converted to the field's type here; unknown keys
and unparsable values raise :class:`~segtrack.errors.InputError` naming the key.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, TypeVar

from segtrack.errors import InputError

P = TypeVar("P")


def _scalar(text: str, ann: Any) -> Any:
    """``text`` as the scalar type ``ann`` (bool, int, float; anything else stays text)."""
    if ann is bool or ann == "bool":
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)
    if ann is int or ann == "int":
        return int(text)
    if ann is float or ann == "float":
        return float(text)
    return text


def _expected(ann: Any) -> str:
    """What a value of type ``ann`` looks like, in words (for error messages)."""
    origin = typing.get_origin(ann)
    if origin in (tuple, list) or ann in (tuple, list):
        inner = [a for a in typing.get_args(ann) if a is not Ellipsis]
        one = _expected(inner[0] if inner else float)
        many = {"a whole number": "whole numbers", "a number": "numbers",
                "true or false": "true/false values"}.get(one, "values")
        return f"{many} separated by commas"
    if ann is bool or ann == "bool":
        return "true or false"
    if ann is int or ann == "int":
        return "a whole number"
    if ann is float or ann == "float":
        return "a number"
    return "a value"


def _convert(name: str, value: Any, annotation: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    ann = annotation
    origin = typing.get_origin(ann)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if text.lower() in ("none", "null"):
            return None
        ann = args[0] if args else str
        origin = typing.get_origin(ann)
    try:
        if origin in (tuple, list) or ann in (tuple, list):
            parts = [p.strip() for p in text.strip("()[]").split(",") if p.strip()]
            inner = typing.get_args(ann)
            typ = inner[0] if inner else float
            if typ is Ellipsis:
                typ = float
            vals = [_scalar(p, typ) for p in parts]
            return tuple(vals) if (origin is tuple or ann is tuple) else vals
        return _scalar(text, ann)
    except ValueError:
        raise InputError(f"--param {name}={text}: expected {_expected(ann)}") from None


def apply_overrides(params: P, overrides: dict[str, Any] | None, what: str = "") -> P:
    """Return a copy of the dataclass ``params`` with ``overrides`` applied (strings converted).

    ``what`` names the parameters' owner in errors, e.g. ``"method 'flow'"``.
    """
    if not overrides:
        return params
    hints = typing.get_type_hints(type(params))
    names = {f.name for f in dataclasses.fields(params)}
    changes = {}
    for key, value in overrides.items():
        k = key.replace("-", "_")
        if k not in names:
            raise InputError(
                f"unknown parameter '{key}'{' of ' + what if what else ''}; "
                f"known: {', '.join(sorted(names))}"
            )
        changes[k] = _convert(k, value, hints.get(k, str))
    return dataclasses.replace(params, **changes)


def parse_param_args(items: list[str] | None) -> dict[str, str]:
    """Parse CLI ``key=value`` strings into a dict."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"--param '{item}': expected key=value")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def to_json_dict(params: Any) -> dict[str, Any]:
    """A JSON-serialisable dict of a parameter dataclass."""
    d = dataclasses.asdict(params)
    return json.loads(json.dumps(d, default=str))
