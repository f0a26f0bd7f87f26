"""Loader mixin: ``include:`` steps, whose file's steps are loaded in place."""

from __future__ import annotations

import os
from typing import Any

from yaml.nodes import MappingNode, Node

from .. import yamlsrc
from ..errors import LoadError
from ..model import Step
from ..templating import Lazy, has_template
from .fields import _contains_template
from .keys import RUNBOOK_KEYS
from .steps import _Steps


class _Includes(_Steps):
    """Load included files, with their params and vars, as blocks."""

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
                    self.include_names.add(param.name)
                    if param.has_default:
                        # a default may be a template ("{{ app_url }}"): rendered when read
                        inner_vars[param.name] = Lazy(param.default, param.loc) \
                            if _contains_template(param.default) else param.default
                    elif param.required and param.name not in given_names and \
                            param.name not in self.outer_names:
                        self.error(doc.loc(node), f"{target} needs the param '{param.name}': "
                                                  "give it in the include's vars",
                                   hint=f"vars: {{{param.name}: ...}}")
                inner_vars.update(self._vars(inner, parts.get("vars"), "included runbook"))
                self.include_names.update(inner_vars)
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


_IGNORED_IN_INCLUDES = ("hosts", "serial", "preflight", "max_fail_percentage", "forks",
                        "timeout", "on_failure", "lock")
