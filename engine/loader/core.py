"""The loader's entry point: ``load_runbook``, and the runbook mapping itself."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from yaml.nodes import MappingNode, Node, SequenceNode

from .. import yamlsrc
from ..errors import LoadError, ValidationFailed
from ..model import ON_FAILURE_MODES, Runbook, SourceLoc
from .includes import _Includes
from .keys import RUNBOOK_KEYS
from .reporting import Site


@dataclass
class LoadResult:
    runbook: Runbook | None
    problems: list[LoadError]
    sites: dict[str, list[Site]] = field(default_factory=dict)
    registers: dict[str, str] = field(default_factory=dict)   # register name -> step path
    delegate_locs: dict[str, SourceLoc] = field(default_factory=dict)   # step path -> loc
    include_names: set[str] = field(default_factory=set)   # params/vars of included files

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


class _Loader(_Includes):
    """One load: parse the file, check the runbook mapping, sort the problems."""

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
                          include_names=self.include_names, delegate_locs=self.delegate_locs)

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
