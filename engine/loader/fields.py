"""Loader mixin: structured fields (hosts, serial, lock, params, vars and conditions)."""

from __future__ import annotations

import re
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .. import yamlsrc
from ..actions.schema import ParamSpec, coerce, describe, is_template
from ..model import PARAM_TYPES, Condition, Param
from ..templating import Lazy, has_template
from .keys import _NAME, _RESERVED, PARAM_KEYS
from .scalars import _Scalars


class _Fields(_Scalars):
    """Check the fields made of several values, and the conditions of steps."""

    def _hosts(self, doc: yamlsrc.Document, node: Node | None) -> str:
        if node is None or yamlsrc.is_null(node):
            return "localhost"
        if isinstance(node, SequenceNode):
            parts = []
            for child in node.value:
                value = self._string(doc, child, "hosts")
                if value:
                    parts.append(value)
            return ":".join(parts) or "localhost"
        value = self._string(doc, node, "hosts")
        if value is not None and not value.strip():
            self.error(doc.loc(node), "'hosts' is empty", hint="write a host, a group or 'all'")
        return value or "localhost"

    def _serial(self, doc: yamlsrc.Document, node: Node | None) -> tuple[int | str, ...]:
        if node is None or yamlsrc.is_null(node):
            return ()
        nodes = node.value if isinstance(node, SequenceNode) else [node]
        out: list[int | str] = []
        for child in nodes:
            value = yamlsrc.to_python(child) if isinstance(child, ScalarNode) else None
            if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
                out.append(value)
            elif isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*%\s*", value) and \
                    0 < float(value.strip().rstrip("%")) <= 100:
                out.append(value.strip().replace(" ", ""))
            else:
                self.error(doc.loc(child), "'serial' must be a positive integer or a percentage "
                                           f"like \"25%\", got {value!r}",
                           hint="a list such as [1, \"25%\", \"100%\"] makes growing batches")
        return tuple(out)

    def _lock(self, doc: yamlsrc.Document, node: Node | None) -> bool | str:
        if node is None or yamlsrc.is_null(node):
            return True
        value = yamlsrc.to_python(node) if isinstance(node, ScalarNode) else None
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip():
            self._template_syntax(doc, node, value)
            self._site(doc, node, "lock", value, condition=False)
            return value
        self.error(doc.loc(node), "'lock' must be true, false or a lock name (may use {{ }})")
        return True

    def _params(self, doc: yamlsrc.Document, node: Node | None) -> tuple[Param, ...]:
        if node is None or yamlsrc.is_null(node):
            return ()
        if not isinstance(node, MappingNode):
            self.error(doc.loc(node), f"'params' must be a mapping of name -> settings, found "
                                      f"{yamlsrc.kind_name(node)}",
                       hint="params:\n      version: {type: str, required: true}")
            return ()
        out = []
        for name, key_node, spec_node in yamlsrc.items(node):
            param = self._param(doc, name, key_node, spec_node)
            if param:
                out.append(param)
        return tuple(out)

    def _param(self, doc: yamlsrc.Document, name: str, key_node: Node,
               node: Node) -> Param | None:
        loc = doc.loc(key_node)
        if not _NAME.match(name):
            self.error(loc, f"param name '{name}' is not a valid variable name",
                       hint="use letters, digits and underscores, starting with a letter")
            return None
        if name in _RESERVED:
            self.error(loc, f"'{name}' is a reserved name and cannot be a param")
            return None
        if yamlsrc.is_null(node):
            return Param(name=name, loc=loc)
        if not isinstance(node, MappingNode):
            self.error(doc.loc(node), f"param '{name}' must be a mapping of settings "
                                      f"(type, required, default, ...), found "
                                      f"{yamlsrc.kind_name(node)}",
                       hint=f"to give a default value write: {name}: {{default: ...}}")
            return None
        fields: dict[str, Node] = {}
        for key, k_node, v_node in yamlsrc.items(node):
            if key not in PARAM_KEYS:
                self._unknown_key(doc, k_node, key, PARAM_KEYS, f"param '{name}'")
            else:
                fields[key] = v_node
        ptype = self._choice(doc, fields.get("type"), "type", PARAM_TYPES, "str") or "str"
        required = self._bool(doc, fields.get("required"), "required")
        secret = self._bool(doc, fields.get("secret"), "secret")
        description = self._string(doc, fields.get("description"), "description",
                                   template_ok=False)
        spec = ParamSpec(ptype)
        choices: tuple[Any, ...] = ()
        if "choices" in fields:
            c_node = fields["choices"]
            if not isinstance(c_node, SequenceNode) or not c_node.value:
                self.error(doc.loc(c_node), f"'choices' of param '{name}' must be a non-empty "
                                            "list")
            else:
                values = []
                for child in c_node.value:
                    value = yamlsrc.to_python(child)
                    if not _param_value_ok(ptype, value):
                        self.error(doc.loc(child), f"choice {value!r} of param '{name}' is not "
                                                   f"{describe(spec)}")
                    values.append(value)
                choices = tuple(values)
        default: Any = None
        has_default = "default" in fields
        if has_default:
            d_node = fields["default"]
            default = yamlsrc.to_python(d_node)
            if default is not None and not is_template(default) and \
                    not _param_value_ok(ptype, default):
                self.error(doc.loc(d_node), f"default of param '{name}' must be "
                                            f"{describe(spec)}, found {yamlsrc.kind_name(d_node)}")
            elif choices and default not in choices and not is_template(default):
                self.error(doc.loc(d_node), f"default {default!r} of param '{name}' is not "
                                            f"one of its choices",
                           hint="choices: " + ", ".join(repr(c) for c in choices))
            if required:
                self.error(doc.loc(d_node), f"param '{name}' is required and has a default",
                           hint="a param with a default is optional: remove 'required: true'")
        return Param(name=name, loc=loc, type=ptype, required=required, default=default,
                     has_default=has_default, choices=choices, description=description,
                     secret=secret)

    def _vars(self, doc: yamlsrc.Document, node: Node | None, what: str) -> dict[str, Any]:
        if node is None or yamlsrc.is_null(node):
            return {}
        if not isinstance(node, MappingNode):
            self.error(doc.loc(node), f"'vars' of {what} must be a mapping of name -> value, "
                                      f"found {yamlsrc.kind_name(node)}")
            return {}
        out: dict[str, Any] = {}
        for name, key_node, value_node in yamlsrc.items(node):
            if not _NAME.match(name):
                self.error(doc.loc(key_node), f"variable name '{name}' is not valid",
                           hint="use letters, digits and underscores, starting with a letter")
                continue
            if name in _RESERVED:
                self.error(doc.loc(key_node), f"'{name}' is a reserved name and cannot be "
                                              "set as a variable")
                continue
            value = yamlsrc.to_python(value_node)
            self._templates_in(doc, value_node, f"vars.{name}")
            out[name] = Lazy(value, doc.loc(value_node)) if _contains_template(value) else value
        return out

    def _conditions(self, doc: yamlsrc.Document, node: Node | None, what: str, owner: str,
                    extra: frozenset[str] = frozenset(),
                    allow_msg: bool = False) -> tuple[Condition, ...]:
        if node is None or yamlsrc.is_null(node):
            return ()
        nodes = node.value if isinstance(node, SequenceNode) else [node]
        out: list[Condition] = []
        for child in nodes:
            msg = None
            expr_node: Node | None = child
            if isinstance(child, MappingNode) and allow_msg:
                parts = {k: v for k, _, v in yamlsrc.items(child)}
                for key, key_node, _ in yamlsrc.items(child):
                    if key not in ("that", "msg"):
                        self._unknown_key(doc, key_node, key, ("that", "msg"), f"'{what}' entry")
                expr_node = parts.get("that")
                if expr_node is None:
                    self.error(doc.loc(child), f"a '{what}' entry needs 'that: <condition>'")
                    continue
                msg = self._string(doc, parts.get("msg"), "msg")
                if msg and has_template(msg):
                    self._site(doc, parts["msg"], owner, msg, condition=False,
                               extra=extra | {"result"})
            if not isinstance(expr_node, ScalarNode):
                self.error(doc.loc(expr_node), f"'{what}' must be a condition (a Jinja2 "
                                               f"expression) or a list of them, found "
                                               f"{yamlsrc.kind_name(expr_node)}",
                           hint="{that: ..., msg: ...} entries are allowed in 'check' and "
                                "'assert'" if isinstance(expr_node, MappingNode) else None)
                continue
            value = yamlsrc.to_python(expr_node)
            loc = doc.loc(expr_node)
            if isinstance(value, bool):
                out.append(Condition("true" if value else "false", loc, msg))
                continue
            if value is None or (isinstance(value, str) and not value.strip()):
                self.error(loc, f"'{what}' is empty")
                continue
            expr = str(value)
            wrapped = re.fullmatch(r"\s*\{\{(.*)\}\}\s*", expr, re.S)
            if wrapped and "{{" not in wrapped.group(1):
                self.warn(loc, f"'{what}' is a bare expression: the {{{{ }}}} are not needed",
                          hint=f"write: {what}: {wrapped.group(1).strip()}")
                expr = wrapped.group(1).strip()
            elif "{{" in expr or "{%" in expr:
                self.error(loc, f"'{what}' is a bare Jinja2 expression and cannot contain "
                                "{{ }} or {% %}",
                           hint="write the expression alone, e.g. when: version is defined")
                continue
            problem = self.templar.syntax_error(expr, condition=True)
            if problem:
                self.error(loc, problem)
                continue
            self._site(doc, expr_node, owner, expr, condition=True, extra=extra)
            out.append(Condition(expr, loc, msg))
        return tuple(out)


def _contains_template(value: Any) -> bool:
    if isinstance(value, str):
        return has_template(value)
    if isinstance(value, list):
        return any(_contains_template(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_template(k) or _contains_template(v) for k, v in value.items())
    return False


def _param_value_ok(ptype: str, value: Any) -> bool:
    try:
        coerce(ParamSpec(ptype), value)
    except ValueError:
        return False
    if ptype == "str":
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    return True
