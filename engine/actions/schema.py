"""Parameter schemas of actions: one small declarative type system.

An action lists its parameters as ``ParamSpec`` values.  The same specs validate a
runbook statically (``runbook check``), coerce rendered values at run time, and
generate the JSON Schema that editors use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..model import parse_duration

__all__ = ["ParamSpec", "TYPE_NAMES", "type_matches", "coerce", "is_template", "json_type"]

# A spec's ``type`` is one of these names, or several joined with "|".
TYPE_NAMES = ("str", "int", "float", "bool", "list", "dict", "duration", "any", "path",
              "number", "condition")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of an action."""

    type: str = "str"
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] = ()
    doc: str = ""
    elements: str | None = None          # element type of a list
    fields: Mapping[str, "ParamSpec"] | None = None   # known keys of a dict
    aliases: tuple[str, ...] = ()

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(self.type.split("|"))


def is_template(value: Any) -> bool:
    """True for a string that will only be known once rendered."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _matches_one(kind: str, value: Any) -> bool:
    if kind == "any":
        return True
    if kind in ("str", "path"):
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("float", "number"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list)
    if kind == "dict":
        return isinstance(value, dict)
    if kind == "condition":
        return isinstance(value, (str, bool)) or (
            isinstance(value, list) and all(isinstance(v, (str, bool, dict)) for v in value))
    if kind == "duration":
        try:
            parse_duration(value)
        except ValueError:
            return False
        return True
    raise ValueError(f"unknown schema type {kind!r}")


def type_matches(spec: ParamSpec, value: Any) -> bool:
    """Does a literal value fit the spec's type?  Templates always fit (checked later)."""
    if is_template(value):
        return True
    return any(_matches_one(kind, value) for kind in spec.types)


def describe(spec: ParamSpec) -> str:
    names = {"str": "a string", "path": "a path", "int": "an integer", "float": "a number",
             "number": "a number", "bool": "true or false", "list": "a list",
             "dict": "a mapping", "duration": "a duration (30s, 5m, 1h)", "any": "any value",
             "condition": "a condition or a list of conditions"}
    return " or ".join(names[k] for k in spec.types)


_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True,
               "false": False, "no": False, "off": False, "0": False}


def coerce(spec: ParamSpec, value: Any) -> Any:
    """Convert a rendered value to the spec's type; raises ValueError with a reason."""
    if value is None:
        return None
    for kind in spec.types:
        converted = _COERCERS[kind](value)
        if converted is not _NO:
            return converted
    raise ValueError(f"expected {describe(spec)}, got {value!r}")


_NO = object()


def _to_str(value: Any) -> Any:
    if isinstance(value, bool):
        return _NO
    return str(value) if isinstance(value, (str, int, float)) else _NO


def _to_int(value: Any) -> Any:
    if isinstance(value, bool):
        return _NO
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return _NO
    return _NO


def _to_float(value: Any) -> Any:
    if isinstance(value, bool):
        return _NO
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return _NO
    return _NO


def _to_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _BOOL_WORDS.get(value.strip().lower(), _NO)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return _NO


def _to_list(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return list(value)
    return _NO


def _to_dict(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else _NO


def _to_duration(value: Any) -> Any:
    try:
        return parse_duration(value)
    except ValueError:
        return _NO


_COERCERS: dict[str, Callable[[Any], Any]] = {
    "str": _to_str, "path": _to_str, "int": _to_int, "float": _to_float, "number": _to_float,
    "bool": _to_bool, "list": _to_list, "dict": _to_dict, "duration": _to_duration,
    "any": lambda v: v, "condition": lambda v: v,
}


def json_type(spec: ParamSpec) -> dict[str, Any]:
    """The JSON Schema fragment for one parameter (templates are always allowed)."""
    alternatives: list[dict[str, Any]] = []
    for kind in spec.types:
        if kind in ("str", "path"):
            alternatives.append({"type": "string"})
        elif kind == "int":
            alternatives.append({"type": "integer"})
        elif kind in ("float", "number"):
            alternatives.append({"type": "number"})
        elif kind == "bool":
            alternatives.append({"type": "boolean"})
        elif kind == "list":
            item = json_type(ParamSpec(spec.elements)) if spec.elements else {}
            alternatives.append({"type": "array", "items": item})
        elif kind == "dict":
            obj: dict[str, Any] = {"type": "object"}
            if spec.fields:
                obj["properties"] = {k: json_type(v) for k, v in spec.fields.items()}
            alternatives.append(obj)
        elif kind == "duration":
            alternatives.append({"type": ["string", "number"]})
        elif kind == "condition":
            alternatives.append({"type": ["string", "boolean", "array"]})
        else:
            alternatives.append({})
    if not {"str", "any", "condition", "path"} & set(spec.types):
        alternatives.append({"type": "string", "pattern": r"\{[{%]"})
    out: dict[str, Any] = alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}
    out = dict(out)
    if spec.doc:
        out["description"] = spec.doc
    if spec.choices:
        out = {"anyOf": [{"enum": list(spec.choices)}, {"type": "string", "pattern": r"\{[{%]"}],
               **({"description": spec.doc} if spec.doc else {})}
    if spec.default is not None:
        out["default"] = spec.default
    return out

