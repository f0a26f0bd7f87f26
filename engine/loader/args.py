"""Loader mixin: action arguments checked against each action's ParamSpec schema.

Also maps Ansible module names to the action that does their job here.
"""

from __future__ import annotations

from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode

from .. import yamlsrc
from ..actions import get_action
from ..actions.schema import ParamSpec, describe, is_template, type_matches
from ..model import SourceLoc
from ..templating import suggest
from .fields import _Fields
from .keys import _NAME, _RESERVED


class _Args(_Fields):
    """Check the arguments of an action step."""

    def _args(self, doc: yamlsrc.Document, action_name: str, key_node: Node, node: Node,
              extra_node: Node | None, path: str,
              local_names: frozenset[str]) -> tuple[dict[str, Any], dict[str, SourceLoc]]:
        action = get_action(action_name)
        assert action is not None
        args: dict[str, Any] = {}
        locs: dict[str, SourceLoc] = {}
        spec_map = action.params
        free_form = getattr(action, "free_form", False)
        nodes: dict[str, Node] = {}
        key_locs: dict[str, SourceLoc] = {}
        if isinstance(node, MappingNode):
            for key, k_node, v_node in yamlsrc.items(node):
                args[key] = yamlsrc.to_python(v_node)
                locs[key] = doc.loc(v_node)
                key_locs[key] = doc.loc(k_node)
                nodes[key] = v_node
        elif yamlsrc.is_null(node):
            pass
        elif action.shorthand and (isinstance(node, ScalarNode) or
                                   {"list", "condition"} & set(spec_map[action.shorthand].types)):
            args[action.shorthand] = yamlsrc.to_python(node)
            locs[action.shorthand] = doc.loc(node)
            nodes[action.shorthand] = node
        else:
            required = [f"{k}: ..." for k, spec in spec_map.items() if spec.required]
            example = f"{action_name}: {{{', '.join(required) or '...'}}}"
            self.error(doc.loc(node), f"'{action_name}' takes a mapping of parameters, found "
                                      f"{yamlsrc.kind_name(node)}", hint=f"e.g. {example}")
            return args, locs
        if extra_node is not None and not yamlsrc.is_null(extra_node):
            if not isinstance(extra_node, MappingNode):
                self.error(doc.loc(extra_node), "'args' must be a mapping of parameters")
            else:
                for key, k_node, v_node in yamlsrc.items(extra_node):
                    if key in args:
                        self.error(doc.loc(k_node), f"parameter '{key}' is given twice (in "
                                                    f"'{action_name}' and in 'args')")
                        continue
                    args[key] = yamlsrc.to_python(v_node)
                    locs[key] = doc.loc(v_node)
                    nodes[key] = v_node
        for key, v_node in nodes.items():
            spec = spec_map.get(key)
            if spec is not None and spec.type == "condition":
                self._conditions(doc, v_node, key, path, local_names, allow_msg=True)
            else:
                self._templates_in(doc, v_node, path, local_names)
        anchor = doc.loc(key_node)
        if free_form:
            for key, value in args.items():
                where = key_locs.get(key, locs[key])
                if not _NAME.match(str(key)):
                    self.error(where, f"'{key}' is not a valid variable name for "
                                      f"'{action_name}'")
                elif key in _RESERVED:
                    self.error(where, f"'{key}' is a reserved name and cannot be set")
            if not args:
                self.error(anchor, f"'{action_name}' needs at least one name: value")
            return args, locs
        aliases = {alias: name for name, spec in spec_map.items() for alias in spec.aliases}
        for key in list(args):
            if key in aliases:
                args[aliases[key]] = args.pop(key)
                locs[aliases[key]] = locs.pop(key)
        for key, value in args.items():
            spec = spec_map.get(key)
            if spec is None:
                close = suggest(str(key), list(spec_map))
                self.error(locs[key], f"'{action_name}' has no parameter '{key}'",
                           hint=f"did you mean '{close}'?" if close else
                           "parameters: " + ", ".join(spec_map))
                continue
            self._check_value(action_name, key, spec, value, locs[key])
        for key, spec in spec_map.items():
            if spec.required and key not in args:
                self.error(anchor, f"'{action_name}' needs the parameter '{key}'",
                           hint=f"{key}: {spec.doc}" if spec.doc else None)
        for group in action.exclusive:
            given = [k for k in group if k in args]
            if len(given) > 1:
                self.error(locs[given[1]], f"'{action_name}': give only one of "
                                           f"{', '.join(group)}")
        for group in action.one_of:
            if not any(k in args for k in group):
                self.error(anchor, f"'{action_name}' needs one of {', '.join(group)}")
        extra_check = getattr(action, "check_args", None)
        if extra_check:
            for message, key in extra_check(args):
                self.error(locs.get(key, anchor) if key else anchor,
                           f"'{action_name}': {message}")
        return args, locs

    def _check_value(self, action_name: str, key: str, spec: ParamSpec, value: Any,
                     loc: SourceLoc) -> None:
        if value is None:
            if spec.required:
                self.error(loc, f"'{action_name}' parameter '{key}' cannot be empty")
            return
        if not type_matches(spec, value):
            self.error(loc, f"'{action_name}' parameter '{key}' must be {describe(spec)}, got "
                            f"{_show(value)}")
            return
        if spec.choices and not is_template(value) and value not in spec.choices:
            close = suggest(str(value), [str(c) for c in spec.choices])
            self.error(loc, f"'{action_name}' parameter '{key}' must be one of "
                            f"{', '.join(str(c) for c in spec.choices)}; got {_show(value)}",
                       hint=f"did you mean '{close}'?" if close else None)
        if spec.elements and isinstance(value, list):
            element = ParamSpec(spec.elements)
            for item in value:
                if not type_matches(element, item):
                    self.error(loc, f"'{action_name}' parameter '{key}': every item must be "
                                    f"{describe(element)}, got {_show(item)}")
                    break
        if spec.fields and isinstance(value, dict):
            for sub_key, sub_value in value.items():
                sub_spec = spec.fields.get(str(sub_key))
                if sub_spec is None:
                    close = suggest(str(sub_key), list(spec.fields))
                    self.error(loc, f"'{action_name}' parameter '{key}' has no field "
                                    f"'{sub_key}'",
                               hint=f"did you mean '{close}'?" if close else
                               "fields: " + ", ".join(spec.fields))
                else:
                    self._check_value(action_name, f"{key}.{sub_key}", sub_spec, sub_value, loc)


# Ansible modules and the action that does their job here.
_ANSIBLE_ACTIONS = {
    "debug": "log", "set_fact": "set", "uri": "http", "get_url": "http", "raw": "shell",
    "service": "shell", "systemd": "shell", "stat": "file", "lineinfile": "template",
    "docker_container": "docker.container", "docker_image": "docker.image",
    "docker_compose": "docker.compose", "docker_compose_v2": "docker.compose",
    "docker_prune": "docker.prune", "docker_container_exec": "docker.exec",
    "docker_container_info": "docker.inspect", "docker_host_info": "docker.info",
    "wait_for_connection": "wait_for", "slurp": "fetch",
}


def _ansible_action(key: str) -> str | None:
    """The action for an Ansible module name (plain or fully qualified), or None."""
    short = key.rsplit(".", 1)[-1] if key.startswith(("ansible.", "community.")) else key
    if short in _ANSIBLE_ACTIONS:
        return _ANSIBLE_ACTIONS[short]
    if short != key and get_action(short) is not None:
        return short
    return None


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
