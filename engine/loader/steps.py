"""Loader mixin: steps and blocks, step ids, tags, register and retry."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .. import yamlsrc
from ..actions import action_names
from ..model import NO_RETRY, RetryPolicy, Step
from ..templating import has_template, suggest
from .args import _ansible_action, _Args
from .keys import (_ALL_STEP_WORDS, _ANSIBLE_HINTS, _ID, _NAME, _RESERVED, BLOCK_KEYS,
                   INCLUDE_KEYS, STEP_KEYS)


class _Steps(_Args):
    """Turn lists of step mappings into Steps."""

    if TYPE_CHECKING:   # defined by _Includes (includes.py), which builds on this class
        def _include(self, doc: yamlsrc.Document, fields: dict[str, Node],
                     common: dict[str, Any], tags: frozenset[str], step_id: str,
                     rollback: bool) -> Step | None: ...

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
        if rollback and kind != "action":
            self.error(doc.loc(node), f"a rollback step cannot be {'a block' if kind == 'block' else 'an include'}",
                       hint="give 'rollback:' a list of action steps; they run in the order "
                            "written")
            return None
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
            return NO_RETRY
        return RetryPolicy(retries=retries or 0, delay=delay if delay is not None else
                           (1.0 if until else 0.0),
                           backoff=backoff if backoff is not None else 1.0, until=until)


def _slug(text: str) -> str:
    text = re.sub(r"\{\{.*?\}\}", "", text)
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:48].rstrip("-")
