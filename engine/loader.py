"""YAML -> model.  Every problem is reported at its file:line:col, all of them at once.

The loader reads PyYAML's node tree (see yamlsrc) rather than plain data so that
each key and value keeps its position.  It validates structure, types, keys (with
did-you-mean), action parameters against each action's schema, template syntax,
step ids and includes, and records every template "site" so that the static
checker (checker.py) can look for undefined variables afterwards.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from . import yamlsrc
from .actions import action_names, get_action
from .actions.schema import ParamSpec, coerce, describe, is_template, type_matches
from .errors import LoadError, ValidationFailed
from .model import (ON_FAILURE_MODES, PARAM_TYPES, Condition, Param, RetryPolicy, Runbook,
                    SourceLoc, Step, parse_duration)
from .templating import Lazy, has_template, suggest, templar

__all__ = ["load_runbook", "LoadResult", "Site", "RUNBOOK_KEYS", "STEP_KEYS", "BLOCK_KEYS",
           "INCLUDE_KEYS", "PARAM_KEYS", "CONDITION_KEYS"]

RUNBOOK_KEYS = ("name", "description", "hosts", "params", "vars", "serial",
                "max_fail_percentage", "forks", "timeout", "on_failure", "lock", "preflight",
                "steps")
STEP_KEYS = ("name", "id", "when", "register", "loop", "loop_var", "retries", "delay", "backoff",
             "until", "timeout", "check", "rollback", "failed_when", "changed_when",
             "ignore_errors", "tags", "run_once", "delegate_to", "no_log", "args", "vars")
BLOCK_KEYS = ("block", "rescue", "always", "name", "id", "when", "tags", "vars", "retries",
              "delay", "backoff", "until", "timeout", "no_log", "ignore_errors", "rollback",
              "delegate_to", "run_once")
INCLUDE_KEYS = ("include", "vars", "name", "id", "when", "tags", "no_log")
PARAM_KEYS = ("type", "required", "default", "choices", "description", "secret")
CONDITION_KEYS = ("when", "until", "check", "failed_when", "changed_when")
_ALL_STEP_WORDS = tuple(sorted(set(STEP_KEYS) | set(BLOCK_KEYS) | set(INCLUDE_KEYS)))

_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = frozenset({"item", "result", "hostvars", "groups", "group_names",
                       "inventory_hostname", "run", "params", "vars", "loop", "range", "dry_run"})

# Keys Ansible users reach for, with what to write instead.
_ANSIBLE_HINTS = {
    "tasks": "runbooks list their steps under 'steps:'",
    "pre_tasks": "steps that must pass on every host before anything changes go under 'preflight:'",
    "handlers": "runbook has no handlers: use a step with 'when: <registered>.changed'",
    "gather_facts": "runbook does not gather facts: remove this key",
    "become": "'become' is an option of shell/command/script steps (become: true)",
    "with_items": "use 'loop:'",
    "loop_control": "use 'loop_var:' to rename the loop variable",
    "notify": "runbook has no handlers: use a step with 'when: <registered>.changed'",
    "environment": "give 'env:' to shell/command/script steps",
    "import_tasks": "use 'include: file.yml'",
    "include_tasks": "use 'include: file.yml'",
    "strategy": "steps run on all hosts of a batch before the next step; use 'serial:' for "
                "rolling batches",
    "any_errors_fatal": "use 'max_fail_percentage: 0'",
}


@dataclass(frozen=True)
class Site:
    """A template or condition in the runbook, for the static checks."""

    text: str
    loc: SourceLoc
    condition: bool
    extra: frozenset[str] = frozenset()


@dataclass
class LoadResult:
    runbook: Runbook | None
    problems: list[LoadError]
    sites: dict[str, list[Site]] = field(default_factory=dict)
    registers: dict[str, str] = field(default_factory=dict)   # register name -> step path
    delegate_locs: dict[str, SourceLoc] = field(default_factory=dict)   # step path -> loc

    @property
    def errors(self) -> list[LoadError]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[LoadError]:
        return [p for p in self.problems if p.severity == "warning"]


def load_runbook(path: str, text: str | None = None, *, raise_errors: bool = True) -> LoadResult:
    """Load and validate one runbook file.

    With ``raise_errors`` (the default) any error raises ValidationFailed carrying all
    problems found; warnings are returned in ``LoadResult.problems``.
    """
    loader = _Loader()
    result = loader.load(path, text)
    if raise_errors and result.errors:
        raise ValidationFailed(result.problems)
    return result


class _Loader:
    def __init__(self) -> None:
        self.problems: list[LoadError] = []
        self.sites: dict[str, list[Site]] = {}
        self.registers: dict[str, str] = {}
        self.delegate_locs: dict[str, SourceLoc] = {}
        self.ids: dict[str, SourceLoc] = {}
        self.reserved_ids: set[str] = set()
        self.include_stack: list[str] = []
        self.outer_names: set[str] = set()
        self.includes: list[str] = []
        self.templar = templar()

    # ---------------------------------------------------------------- reporting
    def error(self, loc: SourceLoc, message: str, hint: str | None = None) -> None:
        self.problems.append(LoadError(message, loc=loc, hint=hint))

    def warn(self, loc: SourceLoc, message: str, hint: str | None = None) -> None:
        self.problems.append(LoadError(message, loc=loc, hint=hint, severity="warning"))

    # ---------------------------------------------------------------- entry
    def load(self, path: str, text: str | None) -> LoadResult:
        try:
            doc, problems = yamlsrc.parse(path, text)
        except LoadError as exc:
            exc.loc = exc.loc or SourceLoc(path, 1, 1)
            return LoadResult(None, [exc])
        self.problems.extend(problems)
        if any(p.severity == "error" for p in problems) and doc.root is None:
            return LoadResult(None, self.problems)
        self.include_stack.append(os.path.realpath(path))
        runbook = self._runbook(doc)
        self.problems.sort(key=lambda p: (p.loc.path != path if p.loc else True,
                                          p.loc.path if p.loc else "",
                                          p.loc.line if p.loc else 0, p.loc.col if p.loc else 0))
        return LoadResult(runbook, self.problems, self.sites, self.registers,
                          self.delegate_locs)

    # ---------------------------------------------------------------- runbook
    def _runbook(self, doc: yamlsrc.Document) -> Runbook | None:
        root = doc.root
        if root is None or yamlsrc.is_null(root):
            self.error(SourceLoc(doc.path, 1, 1), "the runbook is empty",
                       hint="a runbook is a mapping with at least 'name' and 'steps'")
            return None
        if isinstance(root, SequenceNode):
            self.error(doc.loc(root), "a runbook is a mapping, not a list",
                       hint="Ansible playbooks are lists of plays; a runbook is one mapping "
                            "with 'name', 'hosts' and 'steps'")
            return None
        if not isinstance(root, MappingNode):
            self.error(doc.loc(root), f"a runbook is a mapping with 'name' and 'steps', "
                                      f"found {yamlsrc.kind_name(root)}")
            return None
        fields: dict[str, Node] = {}
        keys: dict[str, Node] = {}
        keys_seen = set()
        for key, key_node, value_node in yamlsrc.items(root):
            keys_seen.add(key)
            if key not in RUNBOOK_KEYS:
                self._unknown_key(doc, key_node, key, RUNBOOK_KEYS, "runbook")
                continue
            fields[key] = value_node
            keys[key] = key_node
        self._reserve_ids(doc, root)
        name = self._string(doc, fields.get("name"), "name")
        if "name" not in fields:
            self.error(doc.loc(root), "the runbook has no 'name'",
                       hint="add a line such as: name: deploy api")
        description = self._string(doc, fields.get("description"), "description")
        hosts = self._hosts(doc, fields.get("hosts"))
        params = self._params(doc, fields.get("params"))
        variables = self._vars(doc, fields.get("vars"), "runbook")
        self.outer_names = {p.name for p in params} | set(variables)
        serial = self._serial(doc, fields.get("serial"))
        max_fail = self._number(doc, fields.get("max_fail_percentage"), "max_fail_percentage",
                                low=0, high=100)
        forks = self._int(doc, fields.get("forks"), "forks", low=1)
        timeout = self._duration(doc, fields.get("timeout"), "timeout")
        on_failure = self._choice(doc, fields.get("on_failure"), "on_failure", ON_FAILURE_MODES,
                                  "rollback")
        lock = self._lock(doc, fields.get("lock"))
        preflight = self._steps(doc, fields.get("preflight"), "preflight", "preflight")
        if "steps" not in fields and "tasks" not in keys_seen:
            self.error(doc.loc(root), "the runbook has no 'steps'",
                       hint="add 'steps:' with a list of steps, e.g. - shell: echo hello")
        steps = self._steps(doc, fields.get("steps"), "steps", "")
        if "steps" in fields and not steps and yamlsrc.is_seq(fields["steps"]) and \
                not fields["steps"].value:
            self.warn(doc.loc(fields["steps"]), "'steps' is empty: this runbook does nothing")
        return Runbook(
            name=name or "", path=doc.path, loc=doc.loc(root), content_hash=doc.content_hash,
            description=description, hosts=hosts, params=params,
            hosts_loc=doc.loc(fields["hosts"]) if "hosts" in fields else None, vars=variables,
            serial=serial, max_fail_percentage=max_fail, forks=forks, timeout=timeout,
            on_failure=on_failure or "rollback", lock=lock, preflight=preflight, steps=steps,
            includes=tuple(self.includes))

    def _unknown_key(self, doc: yamlsrc.Document, key_node: Node, key: str,
                     allowed: Iterable[str], what: str, also: Iterable[str] = ()) -> None:
        loc = doc.loc(key_node)
        if key in _ANSIBLE_HINTS:
            self.error(loc, f"unknown key '{key}' in {what}", hint=_ANSIBLE_HINTS[key])
            return
        close = suggest(key, [*allowed, *also])
        hint = f"did you mean '{close}'?" if close else "allowed keys: " + ", ".join(allowed)
        self.error(loc, f"unknown key '{key}' in {what}", hint=hint)

    def _reserve_ids(self, doc: yamlsrc.Document, root: MappingNode) -> None:
        """Collect explicit step ids first so that derived ids never take them."""
        def visit(node: Node, depth: int) -> None:
            if depth > 60:
                return
            if isinstance(node, MappingNode):
                for key, _, value in yamlsrc.items(node):
                    if key == "id" and isinstance(value, ScalarNode):
                        self.reserved_ids.add(str(value.value))
                    elif isinstance(value, (MappingNode, SequenceNode)):
                        visit(value, depth + 1)
            elif isinstance(node, SequenceNode):
                for child in node.value:
                    visit(child, depth + 1)
        for key, _, value in yamlsrc.items(root):
            if key in ("steps", "preflight"):
                visit(value, 0)

    # ---------------------------------------------------------------- scalars
    def _string(self, doc: yamlsrc.Document, node: Node | None, what: str,
                template_ok: bool = True) -> str | None:
        if node is None or yamlsrc.is_null(node):
            return None
        if not isinstance(node, ScalarNode) or isinstance(yamlsrc.to_python(node), bool):
            self.error(doc.loc(node), f"'{what}' must be a string, found {yamlsrc.kind_name(node)}")
            return None
        value = str(node.value)
        if template_ok:
            self._template_syntax(doc, node, value)
        return value

    def _bool(self, doc: yamlsrc.Document, node: Node | None, what: str) -> bool:
        if node is None or yamlsrc.is_null(node):
            return False
        value = yamlsrc.to_python(node) if isinstance(node, ScalarNode) else None
        if not isinstance(value, bool):
            self.error(doc.loc(node), f"'{what}' must be true or false, found "
                                      f"{yamlsrc.kind_name(node)}")
            return False
        return value

    def _int(self, doc: yamlsrc.Document, node: Node | None, what: str, low: int | None = None,
             high: int | None = None) -> int | None:
        if node is None or yamlsrc.is_null(node):
            return None
        value = yamlsrc.to_python(node) if isinstance(node, ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int):
            hint = "templates are not allowed here: write a number" \
                if isinstance(value, str) and has_template(value) else None
            self.error(doc.loc(node), f"'{what}' must be an integer, found "
                                      f"{yamlsrc.kind_name(node)}", hint=hint)
            return None
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            self.error(doc.loc(node), f"'{what}' must be {bounds}, got {value}")
            return None
        return value

    def _number(self, doc: yamlsrc.Document, node: Node | None, what: str,
                low: float | None = None, high: float | None = None) -> float | None:
        if node is None or yamlsrc.is_null(node):
            return None
        value = yamlsrc.to_python(node) if isinstance(node, ScalarNode) else None
        if isinstance(value, str) and value.endswith("%"):
            try:
                value = float(value[:-1])
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.error(doc.loc(node), f"'{what}' must be a number, found "
                                      f"{yamlsrc.kind_name(node)}")
            return None
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            self.error(doc.loc(node), f"'{what}' must be {bounds}, got {value}")
            return None
        return float(value)

    def _duration(self, doc: yamlsrc.Document, node: Node | None, what: str) -> float | None:
        if node is None or yamlsrc.is_null(node):
            return None
        value = yamlsrc.to_python(node) if isinstance(node, ScalarNode) else None
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            readable = isinstance(value, (str, int, float)) and not isinstance(value, bool)
            self.error(doc.loc(node), f"'{what}': {exc}" if readable else
                       f"'{what}' must be a duration (30s, 5m, 1h or seconds), found "
                       f"{yamlsrc.kind_name(node)}")
            return None
        return seconds

    def _choice(self, doc: yamlsrc.Document, node: Node | None, what: str,
                choices: Iterable[str], default: str | None) -> str | None:
        if node is None or yamlsrc.is_null(node):
            return default
        value = yamlsrc.to_python(node) if isinstance(node, ScalarNode) else None
        choices = tuple(choices)
        if value not in choices:
            close = suggest(str(value), choices) if isinstance(value, str) else None
            self.error(doc.loc(node), f"'{what}' must be one of {', '.join(choices)}; got "
                                      f"{value!r}" if value is not None else
                       f"'{what}' must be one of {', '.join(choices)}",
                       hint=f"did you mean '{close}'?" if close else None)
            return default
        return value

    # ---------------------------------------------------------------- runbook fields
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

    # ---------------------------------------------------------------- templates
    def _template_syntax(self, doc: yamlsrc.Document, node: Node, text: str) -> None:
        if has_template(text):
            problem = self.templar.syntax_error(text)
            if problem:
                self.error(doc.loc(node), problem)

    def _templates_in(self, doc: yamlsrc.Document, node: Node, owner: str,
                      extra: frozenset[str] = frozenset(), depth: int = 0) -> None:
        """Check the syntax of every template inside a value and record it as a site."""
        if depth > 50:
            return
        if isinstance(node, ScalarNode):
            if node.tag == "tag:yaml.org,2002:str" and has_template(node.value):
                self._template_syntax(doc, node, node.value)
                self._site(doc, node, owner, node.value, condition=False, extra=extra)
        elif isinstance(node, SequenceNode):
            for child in node.value:
                self._templates_in(doc, child, owner, extra, depth + 1)
        elif isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                self._templates_in(doc, key_node, owner, extra, depth + 1)
                self._templates_in(doc, value_node, owner, extra, depth + 1)

    def _site(self, doc: yamlsrc.Document, node: Node, owner: str, text: str, *,
              condition: bool, extra: frozenset[str] = frozenset()) -> None:
        self.sites.setdefault(owner, []).append(Site(text, doc.loc(node), condition, extra))

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

    # ---------------------------------------------------------------- steps
    def _steps(self, doc: yamlsrc.Document, node: Node | None, what: str,
               prefix: str, tags: frozenset[str] = frozenset(), id_prefix: str = "",
               rollback: bool = False, owner: str | None = None) -> tuple[Step, ...]:
        if node is None or yamlsrc.is_null(node):
            return ()
        if isinstance(node, MappingNode):
            self.error(doc.loc(node), f"'{what}' must be a list of steps, found a mapping",
                       hint="start each step with '- ', e.g.\n      - name: ...\n        "
                            "shell: ...")
            return ()
        if not isinstance(node, SequenceNode):
            self.error(doc.loc(node), f"'{what}' must be a list of steps, found "
                                      f"{yamlsrc.kind_name(node)}")
            return ()
        out = []
        for index, child in enumerate(node.value, 1):
            path = f"{prefix}.{index}" if prefix else str(index)
            step = self._step(doc, child, path, tags, id_prefix, rollback, owner)
            if step is not None:
                out.append(step)
        return tuple(out)

    def _step(self, doc: yamlsrc.Document, node: Node, path: str, inherited_tags: frozenset[str],
              id_prefix: str, rollback: bool, owner: str | None = None) -> Step | None:
        if not isinstance(node, MappingNode):
            hint = None
            if isinstance(node, ScalarNode) and isinstance(node.value, str) and ":" in node.value:
                hint = "add a space after the ':' (YAML needs 'key: value')"
            self.error(doc.loc(node), f"a step must be a mapping (e.g. '- shell: ...'), found "
                                      f"{yamlsrc.kind_name(node)}", hint=hint)
            return None
        fields: dict[str, Node] = {}
        keys: dict[str, Node] = {}
        unknown: list[tuple[str, Node]] = []
        actions: list[tuple[str, Node, Node]] = []
        known_actions = action_names()
        for key, key_node, value_node in yamlsrc.items(node):
            if key in _ALL_STEP_WORDS:
                fields[key] = value_node
                keys[key] = key_node
            elif key in known_actions:
                actions.append((key, key_node, value_node))
            else:
                unknown.append((key, key_node))
        kind = "block" if "block" in fields else "include" if "include" in fields else "action"
        allowed = {"block": BLOCK_KEYS, "include": INCLUDE_KEYS, "action": STEP_KEYS}[kind]
        for key in list(fields):
            if key not in allowed:
                if kind == "action" and key in ("rescue", "always"):
                    msg, hint = f"'{key}' belongs to a block", "put the steps under 'block:'"
                else:
                    what = {"block": "a block", "include": "an include"}.get(kind, "an action step")
                    msg, hint = f"'{key}' is not allowed on {what}", None
                    if kind != "action" and key in STEP_KEYS:
                        hint = f"put '{key}' on the steps inside the {kind}"
                self.error(doc.loc(keys[key]), msg, hint=hint)
                del fields[key]
        for key, key_node in unknown:
            ours = _ansible_action(key)
            if ours:
                self.error(doc.loc(key_node), f"unknown action '{key}'",
                           hint=f"did you mean '{ours}'?")
                continue
            close_action = suggest(key, known_actions)
            close_key = suggest(key, allowed)
            if key in _ANSIBLE_HINTS:
                self.error(doc.loc(key_node), f"unknown key '{key}' in step",
                           hint=_ANSIBLE_HINTS[key])
            elif "." in key or (close_action and not close_key) or \
                    (kind == "action" and not actions and not close_key):
                near = [a for a in known_actions if a.split(".")[0] == key.split(".")[0]]
                listing = close_action or ", ".join(near[:6]) if (close_action or near) else None
                self.error(doc.loc(key_node), f"unknown action '{key}'",
                           hint=f"did you mean '{close_action}'?" if close_action else
                           (f"actions: {listing}" if listing else
                            "run 'runbook check --actions' for the list of actions"))
            else:
                self.error(doc.loc(key_node), f"unknown key '{key}' in step",
                           hint=f"did you mean '{close_key}'?" if close_key else
                           "allowed keys: " + ", ".join(allowed))
        if kind != "action" and actions:
            article = "an" if kind == "include" else "a"
            self.error(doc.loc(actions[0][1]), f"{article} {kind} cannot also have an action "
                                               f"('{actions[0][0]}')",
                       hint=f"move '{actions[0][0]}' into a step of its own")
            actions = []
        if kind == "action" and len(actions) > 1:
            names = ", ".join(f"'{a[0]}'" for a in actions)
            self.error(doc.loc(actions[1][1]), f"a step has exactly one action; found {names}",
                       hint="split it into one step per action")
            actions = actions[:1]
        if kind == "action" and not actions:
            if not unknown:
                self.error(doc.loc(node), "this step has no action",
                           hint="add an action such as shell, command, copy, http or "
                                "docker.container ('runbook check --actions' lists them all)")
            return None

        step_id = self._step_id(doc, fields, path, id_prefix, kind, actions, owner)
        name = self._string(doc, fields.get("name"), "name")
        tags = inherited_tags | self._tags(doc, fields.get("tags"))
        register = self._register(doc, fields.get("register"), path)
        loop_var = "item"
        if "loop_var" in fields:
            loop_var = self._string(doc, fields["loop_var"], "loop_var", template_ok=False) or \
                "item"
            if not _NAME.match(loop_var):
                self.error(doc.loc(fields["loop_var"]), f"'{loop_var}' is not a valid variable "
                                                        "name")
        loop = None
        if "loop" in fields:
            loop_node = fields["loop"]
            loop = yamlsrc.to_python(loop_node)
            if not isinstance(loop, list) and not (isinstance(loop, str) and has_template(loop)):
                self.error(doc.loc(loop_node), f"'loop' must be a list or a template giving "
                                               f"one, found {yamlsrc.kind_name(loop_node)}")
                loop = None
            self._templates_in(doc, loop_node, path)
        local_names = frozenset({loop_var} if loop is not None else set())
        step_vars = self._vars(doc, fields.get("vars"), "a step")
        local_names |= frozenset(step_vars)
        result_names = local_names | {"result"} | ({register} if register else set())
        when = self._conditions(doc, fields.get("when"), "when", path, local_names)
        retry = self._retry(doc, fields, path, result_names)
        timeout = self._duration(doc, fields.get("timeout"), "timeout")
        if timeout is not None and timeout <= 0:
            self.error(doc.loc(fields["timeout"]), "'timeout' must be more than zero")
        check = self._conditions(doc, fields.get("check"), "check", path, result_names,
                                 allow_msg=True)
        failed_when = self._conditions(doc, fields.get("failed_when"), "failed_when", path,
                                       result_names)
        changed_when = self._conditions(doc, fields.get("changed_when"), "changed_when", path,
                                        result_names)
        ignore_errors = self._bool(doc, fields.get("ignore_errors"), "ignore_errors")
        run_once = self._bool(doc, fields.get("run_once"), "run_once")
        no_log = self._bool(doc, fields.get("no_log"), "no_log")
        delegate_to = self._string(doc, fields.get("delegate_to"), "delegate_to")
        if delegate_to:
            self.delegate_locs[path] = doc.loc(fields["delegate_to"])
        if delegate_to and has_template(delegate_to):
            self._site(doc, fields["delegate_to"], path, delegate_to, condition=False,
                       extra=local_names)
        if name and has_template(name):
            self._site(doc, fields["name"], path, name, condition=False, extra=local_names)
        rollback_steps: tuple[Step, ...] = ()
        if "rollback" in fields:
            r_node = fields["rollback"]
            if rollback:
                self.error(doc.loc(keys["rollback"]), "a rollback step cannot have its own "
                                                      "'rollback'")
            elif isinstance(r_node, MappingNode):
                single = self._step(doc, r_node, f"{path}.rollback.1", tags, id_prefix, True,
                                    step_id)
                rollback_steps = (single,) if single else ()
            else:
                rollback_steps = self._steps(doc, r_node, "rollback", f"{path}.rollback", tags,
                                             id_prefix, True, step_id)
        common = dict(id=step_id, loc=doc.loc(node), path=path, name=name, when=when,
                      register=register, retry=retry, timeout=timeout, tags=tags,
                      no_log=no_log, vars=step_vars, rollback=rollback_steps,
                      ignore_errors=ignore_errors, run_once=run_once, delegate_to=delegate_to)
        if kind == "block":
            block = self._steps(doc, fields["block"], "block", f"{path}.block", tags, id_prefix,
                                rollback)
            rescue = self._steps(doc, fields.get("rescue"), "rescue", f"{path}.rescue", tags,
                                 id_prefix, rollback)
            always = self._steps(doc, fields.get("always"), "always", f"{path}.always", tags,
                                 id_prefix, rollback)
            if yamlsrc.is_seq(fields["block"]) and not fields["block"].value:
                self.warn(doc.loc(fields["block"]), "'block' is empty")
            return Step(block=block, rescue=rescue, always=always, **common)
        if kind == "include":
            return self._include(doc, fields, common, tags, step_id, rollback)
        action_name, action_key, action_node = actions[0]
        args, arg_locs = self._args(doc, action_name, action_key, action_node,
                                    fields.get("args"), path, local_names)
        return Step(action=action_name, args=args, arg_locs=arg_locs, loop=loop,
                    loop_var=loop_var, check=check, failed_when=failed_when,
                    changed_when=changed_when, **common)

    def _step_id(self, doc: yamlsrc.Document, fields: dict[str, Node], path: str,
                 id_prefix: str, kind: str, actions: list[tuple[str, Node, Node]],
                 owner: str | None = None) -> str:
        if "id" in fields:
            node = fields["id"]
            raw = yamlsrc.to_python(node) if isinstance(node, ScalarNode) else None
            if isinstance(raw, (str, int)) and not isinstance(raw, bool) and \
                    _ID.match(str(raw)):
                step_id = id_prefix + str(raw)
                if step_id in self.ids:
                    first = self.ids[step_id]
                    where = f"line {first.line}" if first.path == doc.path else first.short
                    self.error(doc.loc(node), f"duplicate step id '{step_id}' (first used at "
                                              f"{where})",
                               hint="step ids must be unique within a runbook")
                self.ids.setdefault(step_id, doc.loc(node))
                return step_id
            self.error(doc.loc(node), "a step 'id' is a word of letters, digits, '-', '_' "
                                      f"or '.', got {raw!r}")
        base = None
        name_node = fields.get("name")
        if isinstance(name_node, ScalarNode) and isinstance(name_node.value, str):
            base = _slug(name_node.value)
        if not base and owner:
            base = f"undo-{owner[len(id_prefix):]}"
        if not base:
            base = actions[0][0].replace(".", "-") if actions else kind
        candidate = id_prefix + base
        n = 2
        while candidate in self.ids or candidate in self.reserved_ids:
            candidate = f"{id_prefix}{base}-{n}"
            n += 1
        self.ids[candidate] = doc.loc(fields.get("name") or next(iter(fields.values()), None))
        return candidate

    def _tags(self, doc: yamlsrc.Document, node: Node | None) -> frozenset[str]:
        if node is None or yamlsrc.is_null(node):
            return frozenset()
        nodes = node.value if isinstance(node, SequenceNode) else [node]
        out = set()
        for child in nodes:
            value = yamlsrc.to_python(child) if isinstance(child, ScalarNode) else None
            if isinstance(value, str) and "," in value and child is node:
                out.update(t.strip() for t in value.split(",") if t.strip())
            elif isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
                out.add(str(value))
            else:
                self.error(doc.loc(child), "'tags' must be a word or a list of words")
        return frozenset(out)

    def _register(self, doc: yamlsrc.Document, node: Node | None, path: str) -> str | None:
        if node is None or yamlsrc.is_null(node):
            return None
        value = yamlsrc.to_python(node) if isinstance(node, ScalarNode) else None
        if not isinstance(value, str) or not _NAME.match(value):
            self.error(doc.loc(node), f"'register' must be a variable name, got {value!r}",
                       hint="use letters, digits and underscores, starting with a letter")
            return None
        if value in _RESERVED:
            self.error(doc.loc(node), f"'{value}' is a reserved name and cannot be registered")
            return None
        self.registers.setdefault(value, path)
        return value

    def _retry(self, doc: yamlsrc.Document, fields: dict[str, Node], path: str,
               result_names: frozenset[str]) -> RetryPolicy:
        retries = self._int(doc, fields.get("retries"), "retries", low=0)
        delay = self._duration(doc, fields.get("delay"), "delay")
        backoff = self._number(doc, fields.get("backoff"), "backoff", low=1)
        until = self._conditions(doc, fields.get("until"), "until", path, result_names)
        if until and retries is None:
            retries = 3
        if (delay is not None or backoff is not None) and not retries and not until:
            node = fields.get("delay") or fields.get("backoff")
            self.warn(doc.loc(node), "'delay'/'backoff' without 'retries' or 'until' has no "
                                     "effect", hint="add retries: N")
        if retries is None and delay is None and backoff is None and not until:
            from .model import NO_RETRY
            return NO_RETRY
        return RetryPolicy(retries=retries or 0, delay=delay if delay is not None else
                           (1.0 if until else 0.0),
                           backoff=backoff if backoff is not None else 1.0, until=until)

    # ---------------------------------------------------------------- action arguments
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

    # ---------------------------------------------------------------- include
    @staticmethod
    def _include_var_names(node: Node | None) -> list[str]:
        if isinstance(node, MappingNode):
            return [key for key, _, _ in yamlsrc.items(node)]
        return []

    def _include(self, doc: yamlsrc.Document, fields: dict[str, Node], common: dict[str, Any],
                 tags: frozenset[str], step_id: str, rollback: bool) -> Step | None:
        node = fields["include"]
        target = self._string(doc, node, "include", template_ok=False)
        if not target:
            self.error(doc.loc(node), "'include' needs a file name")
            return None
        if has_template(target):
            self.error(doc.loc(node), "'include' takes a literal file name, not a template",
                       hint="includes are resolved when the runbook is loaded")
            return None
        full = target if os.path.isabs(target) else os.path.join(os.path.dirname(doc.path),
                                                                 target)
        try:
            full = os.path.normpath(full)
            real = os.path.realpath(full)
        except ValueError:
            self.error(doc.loc(node), f"'include' is not a valid file name: {target!r}")
            return None
        if real in self.include_stack:
            chain = " -> ".join(os.path.basename(p) for p in [*self.include_stack, real])
            self.error(doc.loc(node), f"include cycle: {chain}",
                       hint="a file cannot include itself, directly or through others")
            return None
        if not os.path.isfile(full):
            self.error(doc.loc(node), f"included file not found: {target}",
                       hint=f"looked for {full}")
            return None
        try:
            inner, problems = yamlsrc.parse(full)
        except LoadError as exc:
            self.error(doc.loc(node), f"cannot include {target}: {exc.message}")
            return None
        self.problems.extend(problems)
        if inner.root is None:
            if not problems:
                self.error(doc.loc(node), f"included file {target} is empty")
            return None
        self.includes.append(full)
        self.include_stack.append(real)
        try:
            inner_vars: dict[str, Any] = {}
            steps_node: Node | None = inner.root
            if isinstance(inner.root, MappingNode):
                parts = {k: v for k, _, v in yamlsrc.items(inner.root)}
                for key, key_node, _ in yamlsrc.items(inner.root):
                    if key not in RUNBOOK_KEYS:
                        self._unknown_key(inner, key_node, key, RUNBOOK_KEYS,
                                          "included runbook")
                    elif key in _IGNORED_IN_INCLUDES:
                        self.warn(inner.loc(key_node), f"'{key}' of an included runbook is "
                                                       "ignored: only its steps, vars and params "
                                                       "are used")
                given_names = set(self._include_var_names(fields.get("vars")))
                for param in self._params(inner, parts.get("params")):
                    if param.has_default:
                        inner_vars[param.name] = param.default
                    elif param.required and param.name not in given_names and \
                            param.name not in self.outer_names:
                        self.error(doc.loc(node), f"{target} needs the param '{param.name}': "
                                                  "give it in the include's vars",
                                   hint=f"vars: {{{param.name}: ...}}")
                inner_vars.update(self._vars(inner, parts.get("vars"), "included runbook"))
                steps_node = parts.get("steps")
                if steps_node is None:
                    self.error(inner.loc(inner.root), f"included file {target} has no 'steps'")
                    return None
            include_vars = dict(common.pop("vars"))
            merged = {**inner_vars, **include_vars}
            self._reserve_ids(inner, inner.root) if isinstance(inner.root, MappingNode) else None
            block = self._steps(inner, steps_node, "steps", f"{common['path']}.include", tags,
                                id_prefix=f"{step_id}.", rollback=rollback)
        finally:
            self.include_stack.pop()
        return Step(block=block, include=target, vars=merged, **common)


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


_IGNORED_IN_INCLUDES = ("hosts", "serial", "preflight", "max_fail_percentage", "forks",
                        "timeout", "on_failure", "lock")


def _slug(text: str) -> str:
    text = re.sub(r"\{\{.*?\}\}", "", text)
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:48].rstrip("-")


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


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
