"""Command-line inputs: ``-e name=value``, ``-e @file.yml``, ``-e '{json}'`` -> typed params.

Missing or ill-typed params are a ParamError before anything runs.  Secret params
may be given as ``env:NAME`` or ``file:PATH`` references; their values are
collected so that the engine can mask them everywhere it writes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import yaml

from .actions.schema import ParamSpec, coerce, is_template
from .errors import ParamError
from .model import Param, Runbook
from .templating import suggest

__all__ = ["parse_extra_vars", "resolve_params", "ResolvedParams", "resolve_secret_ref"]


def parse_extra_vars(items: Iterable[str]) -> dict[str, Any]:
    """The raw values of every ``-e``, later ones winning.  Values stay strings unless
    they come from a file or a JSON/YAML mapping."""
    out: dict[str, Any] = {}
    for item in items:
        if item.startswith("@"):
            out.update(_from_file(item[1:]))
        elif item.lstrip().startswith("{"):
            try:
                value = yaml.safe_load(item)
            except yaml.YAMLError as exc:
                raise ParamError(f"-e {item!r} is not a valid JSON/YAML mapping: "
                                 f"{getattr(exc, 'problem', exc)}") from None
            if not isinstance(value, dict):
                raise ParamError(f"-e {item!r} must be a mapping")
            out.update({str(k): v for k, v in value.items()})
        elif "=" in item:
            name, value = item.split("=", 1)
            name = name.strip()
            if not name:
                raise ParamError(f"-e {item!r}: the name before '=' is empty",
                                 hint="write -e name=value")
            out[name] = _Raw(value)
        else:
            raise ParamError(f"-e {item!r} is not name=value, @file.yml or a mapping",
                             hint="write -e version=1.2.3, -e @params.yml or -e '{\"n\": 3}'")
    return out


class _Raw(str):
    """A value typed on the command line: converted to the param's declared type."""


def _from_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ParamError(f"-e @{path}: file not found") from None
    except OSError as exc:
        raise ParamError(f"-e @{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ParamError(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamError(f"-e @{path} must hold a mapping of name: value")
    return {str(k): v for k, v in data.items()}


def resolve_secret_ref(value: Any, what: str) -> Any:
    """``env:NAME`` -> the environment variable, ``file:PATH`` -> the file's text."""
    if not isinstance(value, str):
        return value
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ParamError(f"{what}: environment variable {name} is not set",
                             hint=f"export {name}=... before running")
        return os.environ[name]
    if value.startswith("file:"):
        path = os.path.expanduser(value[5:])
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().rstrip("\r\n")
        except OSError as exc:
            raise ParamError(f"{what}: cannot read {path}: {exc.strerror}") from None
    return value


@dataclass(frozen=True)
class ResolvedParams:
    values: Mapping[str, Any]
    secrets: frozenset[str] = field(default_factory=frozenset)
    secret_names: frozenset[str] = field(default_factory=frozenset)


def resolve_params(runbook: Runbook, given: Mapping[str, Any], *,
                   strict: bool = True) -> ResolvedParams:
    """Typed values for every declared param; all problems are reported together
    (a ParamError whose ``problems`` lists each one with its position and hint)."""
    problems: list[ParamError] = []
    values: dict[str, Any] = {}
    secrets: set[str] = set()
    declared = {p.name: p for p in runbook.params}
    for name in given:
        if name not in declared and strict:
            close = suggest(name, list(declared))
            hint = (f"did you mean '{close}'?" if close else
                    f"this runbook takes: {', '.join(declared)}" if declared else
                    "this runbook takes no params")
            problems.append(ParamError(f"unknown param '{name}'", hint=hint))
    for param in runbook.params:
        if param.name in given:
            try:
                value = _typed(param, given[param.name])
            except ValueError as exc:
                problems.append(ParamError(f"param '{param.name}': {exc}", loc=param.loc))
                continue
        elif param.has_default:
            value = param.default
        elif param.required:
            problems.append(ParamError(
                f"missing required param '{param.name}'", loc=param.loc,
                hint=f"give it with -e {param.name}=..." +
                     (f" ({param.description})" if param.description else "")))
            continue
        else:
            value = None
        if param.secret:
            try:
                value = resolve_secret_ref(value, f"param '{param.name}'")
            except ParamError as exc:
                problems.append(ParamError(exc.message, loc=param.loc, hint=exc.hint))
                continue
            if isinstance(value, str) and value:
                secrets.add(value)
        if param.choices and value not in param.choices and not is_template(value) and \
                value is not None:
            shown = "********" if param.secret else repr(value)
            problems.append(ParamError(
                f"param '{param.name}' must be one of "
                f"{', '.join(repr(c) for c in param.choices)}; got {shown}", loc=param.loc))
            continue
        values[param.name] = value
    for name, raw in given.items():
        if name not in declared and not strict:
            values[name] = str(raw) if isinstance(raw, _Raw) else raw
    if problems:
        if len(problems) == 1:
            raise problems[0]
        error = ParamError(f"{len(problems)} problems with params:\n  - " +
                           "\n  - ".join(str(p) for p in problems),
                           hint="give params with -e name=value ('runbook list' shows them)")
        error.problems = problems   # type: ignore[attr-defined]
        raise error
    return ResolvedParams(values=values, secrets=frozenset(secrets),
                          secret_names=frozenset(p.name for p in runbook.params if p.secret))


def _typed(param: Param, raw: Any) -> Any:
    spec = ParamSpec(param.type)
    if isinstance(raw, _Raw):
        text = str(raw)
        if param.type in ("list", "dict"):
            try:
                parsed = yaml.safe_load(text) if text.strip() else ([] if param.type == "list"
                                                                    else {})
            except yaml.YAMLError:
                parsed = None
            if param.type == "list" and not isinstance(parsed, list):
                parsed = [part.strip() for part in text.split(",")] if text.strip() else []
            raw = parsed
        elif param.type == "str":
            return text
        else:
            raw = text
    if param.type == "str" and isinstance(raw, (dict, list, bool)):
        raise ValueError(f"expected a string, got {json.dumps(raw, default=str)}")
    if param.type == "str" and raw is not None:
        return str(raw)
    return coerce(spec, raw)
