"""The JSON Schema of the runbook format, generated from the loader's keys and the
actions' parameter specs, so editors (YAML language server) validate and complete."""

from __future__ import annotations

from typing import Any

from .actions import action_names, get_action
from .actions.schema import json_type
from .loader import BLOCK_KEYS, INCLUDE_KEYS, STEP_KEYS
from .model import ON_FAILURE_MODES, PARAM_TYPES

__all__ = ["runbook_schema"]

_COND = {"anyOf": [{"type": "string"}, {"type": "boolean"},
                   {"type": "array", "items": {"anyOf": [
                       {"type": "string"}, {"type": "boolean"},
                       {"type": "object", "properties": {"that": {"type": "string"},
                                                         "msg": {"type": "string"}},
                        "required": ["that"], "additionalProperties": False}]}}],
         "description": "a bare Jinja2 expression (no {{ }}) or a list of them (all must hold)"}
_DURATION = {"type": ["string", "number"], "description": "30s, 5m, 1h or seconds"}

_STEP_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "description": "what the step does, shown while it runs"},
    "id": {"type": ["string", "integer"], "description": "unique id (for --start-at, resume)"},
    "when": _COND,
    "register": {"type": "string", "description": "store the result in this variable"},
    "loop": {"type": ["array", "string"], "description": "run once per item ({{ item }})"},
    "loop_var": {"type": "string"},
    "retries": {"type": "integer", "minimum": 0},
    "delay": _DURATION,
    "backoff": {"type": "number", "minimum": 1},
    "until": _COND,
    "timeout": _DURATION,
    "check": _COND,
    "rollback": {"anyOf": [{"$ref": "#/definitions/step"},
                           {"type": "array", "items": {"$ref": "#/definitions/step"}}],
                 "description": "steps that undo this one, run in reverse order on failure"},
    "failed_when": _COND,
    "changed_when": _COND,
    "ignore_errors": {"type": "boolean"},
    "tags": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "run_once": {"type": "boolean"},
    "delegate_to": {"type": "string"},
    "no_log": {"type": "boolean"},
    "args": {"type": "object"},
    "vars": {"type": "object"},
    "block": {"type": "array", "items": {"$ref": "#/definitions/step"}},
    "rescue": {"type": "array", "items": {"$ref": "#/definitions/step"}},
    "always": {"type": "array", "items": {"$ref": "#/definitions/step"}},
    "include": {"type": "string", "description": "inline the steps of another runbook"},
}


def _action_schema(name: str) -> dict[str, Any]:
    action = get_action(name)
    assert action is not None
    if getattr(action, "free_form", False):
        return {"type": "object", "description": action.summary}
    props = {key: json_type(spec) for key, spec in action.params.items()}
    for key, spec in action.params.items():
        for alias in spec.aliases:
            props[alias] = props[key]
    obj: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    required = [k for k, s in action.params.items() if s.required]
    if required:
        obj["required"] = required
    alternatives = [obj]
    if action.shorthand:
        alternatives.insert(0, json_type(action.params[action.shorthand]))
    out: dict[str, Any] = {"anyOf": alternatives} if len(alternatives) > 1 else obj
    out["description"] = action.summary
    return out


def runbook_schema() -> dict[str, Any]:
    names = action_names()
    step_props: dict[str, Any] = dict(_STEP_FIELDS)
    for name in names:
        step_props[name] = {"$ref": f"#/definitions/action_{name.replace('.', '_')}"}
    kinds = [{"required": [n]} for n in names] + [{"required": ["block"]},
                                                  {"required": ["include"]}]
    definitions: dict[str, Any] = {
        f"action_{n.replace('.', '_')}": _action_schema(n) for n in names}
    definitions["step"] = {"type": "object", "properties": step_props,
                           "additionalProperties": False, "oneOf": kinds}
    param = {"type": "object", "additionalProperties": False, "properties": {
        "type": {"enum": list(PARAM_TYPES)}, "required": {"type": "boolean"}, "default": {},
        "choices": {"type": "array"}, "description": {"type": "string"},
        "secret": {"type": "boolean"}}}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://runbook.dev/schema/runbook.json",
        "title": "runbook",
        "description": "A runbook: steps run on hosts with checks, retries and rollback.",
        "type": "object",
        "required": ["name", "steps"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "hosts": {"anyOf": [{"type": "string"}, {"type": "array",
                                                     "items": {"type": "string"}}],
                      "description": "host pattern: host, group, all, a:b, a:&b, a:!b"},
            "params": {"type": "object", "additionalProperties": {
                "anyOf": [param, {"type": "null"}]}},
            "vars": {"type": "object"},
            "serial": {"anyOf": [{"type": "integer", "minimum": 1},
                                 {"type": "string", "pattern": r"^\d+(\.\d+)?%$"},
                                 {"type": "array"}]},
            "max_fail_percentage": {"type": "number", "minimum": 0, "maximum": 100},
            "forks": {"type": "integer", "minimum": 1},
            "timeout": _DURATION,
            "on_failure": {"enum": list(ON_FAILURE_MODES)},
            "lock": {"type": ["boolean", "string"]},
            "preflight": {"type": "array", "items": {"$ref": "#/definitions/step"}},
            "steps": {"type": "array", "items": {"$ref": "#/definitions/step"}},
        },
        "definitions": definitions,
    }


# Keys of the loader and of the schema must stay the same set.
assert set(_STEP_FIELDS) == set(STEP_KEYS) | set(BLOCK_KEYS) | set(INCLUDE_KEYS)
