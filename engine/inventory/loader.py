"""The Inventory: loading a file with its group_vars/host_vars, and variable precedence."""

from __future__ import annotations

import os
from typing import Any, Iterable, Mapping

from ..errors import InventoryError, LoadError, ValidationFailed
from ..model import SourceLoc
from ..yamlsrc import is_map, is_null, read_text
from .drafts import GroupDraft, VarLayer, suggest_hint
from .ini_format import IniReader
from .model import SETTING_VARS, ConnectionSettings, Group, Host
from .patterns import HostPatterns, names_hint
from .settings import HostSettings
from .yaml_format import YamlReader, parse_yaml

__all__ = ["Inventory"]

_VARS_EXTS = (".yml", ".yaml", ".json")


class Inventory:
    """Loaded hosts and groups; resolves host patterns."""

    path: str | None
    hosts: dict[str, Host]
    groups: dict[str, Group]

    def __init__(self, hosts: Mapping[str, Host], groups: Mapping[str, Group], *,
                 path: str | None = None, warnings: Iterable[LoadError] = (),
                 localhost: Host | None = None) -> None:
        self.path = path
        self.hosts = dict(hosts)
        self.groups = dict(groups)
        self.warnings = list(warnings)
        self._localhost = localhost if "localhost" not in self.hosts else None
        self._patterns = HostPatterns(self.hosts, self.groups, self._localhost is not None)

    def __repr__(self) -> str:
        return f"Inventory({self.path!r}, {len(self.hosts)} hosts, {len(self.groups)} groups)"

    @classmethod
    def load(cls, path: str, *, environ: Mapping[str, str] | None = None) -> Inventory:
        """Read an inventory file and the group_vars/host_vars beside it."""
        if not os.path.exists(path):
            raise InventoryError(f"inventory file not found: {path}",
                                 hint="check the path given with -i or RUNBOOK_INVENTORY")
        if os.path.isdir(path):
            raise InventoryError(f"inventory {path} is a directory",
                                 hint="give the inventory file inside it")
        return _Builder(path, os.environ if environ is None else environ).build()

    @classmethod
    def implicit(cls) -> Inventory:
        """The inventory used when none is given: ``localhost``, connection local."""
        local = Host("localhost", {}, ("all", "ungrouped"), ConnectionSettings(kind="local"))
        groups = {"all": Group("all", children=("ungrouped",)),
                  "ungrouped": Group("ungrouped", hosts=("localhost",))}
        return cls({"localhost": local}, groups)

    @property
    def secrets(self) -> frozenset[str]:
        """Every resolved secret of every host (for redaction)."""
        found = [host.secrets for host in self.hosts.values()]
        if self._localhost is not None:
            found.append(self._localhost.secrets)
        return frozenset().union(*found)

    def host(self, name: str) -> Host:
        """One host by name (``localhost`` is always known)."""
        host = self.hosts.get(name) or (self._localhost if name == "localhost" else None)
        if host is None:
            raise InventoryError(f"unknown host '{name}'", hint=names_hint(name, self.hosts))
        return host

    def known_names(self) -> frozenset[str]:
        """Host and group names a pattern may use."""
        return self._patterns.known_names()

    def select(self, pattern: str, loc: SourceLoc | None = None) -> list[Host]:
        """The hosts a pattern names, in inventory order, without duplicates."""
        names = self._patterns.names(pattern, loc)
        return [self.hosts.get(name) or self.host(name) for name in names]


# -- building -----------------------------------------------------------------------


class _Builder(YamlReader, IniReader):
    """Reads one inventory (and its vars folders) into drafts, then into an Inventory."""

    def __init__(self, path: str, environ: Mapping[str, str]) -> None:
        super().__init__(path)
        self.base = os.path.dirname(os.path.abspath(path))
        self.settings = HostSettings(self.base, environ, self.error)

    def build(self) -> Inventory:
        text = read_text(self.path)
        self.read_source(text)
        self.read_vars_folders()
        inventory = self.finish()
        if any(problem.severity == "error" for problem in self.problems):
            self.problems.sort(key=lambda p: (p.loc.path != self.path, p.loc.path,
                                              p.loc.line, p.loc.col) if p.loc else (True,))
            raise ValidationFailed(self.problems)
        return inventory

    def read_source(self, text: str) -> None:
        ext = os.path.splitext(self.path)[1].lower()
        if ext in (".ini", ".cfg"):
            return self.read_ini(text)
        if ext in (".yml", ".yaml", ".json"):
            return self.read_yaml(*parse_yaml(self.path, text))
        first = next((line.strip() for line in text.splitlines()
                      if line.strip() and line.strip()[0] not in "#;"), "")
        if first.startswith("["):
            return self.read_ini(text)
        doc, problems = parse_yaml(self.path, text)
        if not problems and (is_null(doc.root) or is_map(doc.root)):
            return self.read_yaml(doc, problems)
        self.read_ini(text)
        if self.problems:  # neither reads cleanly: report it as the YAML it looks like
            self._reset()
            self.read_yaml(doc, problems)

    # -- group_vars / host_vars -----------------------------------------------------
    def read_vars_folders(self) -> None:
        for kind, drafts in (("group_vars", self.groups), ("host_vars", self.hosts)):
            folder = os.path.join(self.base, kind)
            try:
                entries = set(os.listdir(folder))
            except OSError:
                continue
            used: set[str] = set()
            targets: list[Any] = list(drafts.values())
            if kind == "host_vars" and "localhost" not in drafts:
                targets.append(self.localhost)
            for target in targets:
                for candidate in (target.name, *(target.name + ext for ext in _VARS_EXTS)):
                    if candidate in entries:
                        used.add(candidate)
                        target.file_vars.update(self.read_vars_entry(
                            os.path.join(folder, candidate)))
                        break
            what = "group" if kind == "group_vars" else "host"
            for entry in sorted(entries - used):
                if entry.startswith(".") or entry.endswith("~"):
                    continue
                stem, ext = os.path.splitext(entry)
                stem = stem if ext in _VARS_EXTS else entry
                self.error(f"{kind}/{entry} matches no {what} of the inventory: ignored",
                           SourceLoc(os.path.join(folder, entry), 1, 1),
                           hint=suggest_hint(stem, drafts), severity="warning")

    def read_vars_entry(self, path: str) -> VarLayer:
        merged: VarLayer = {}
        for file in (_vars_files(path, 0) if os.path.isdir(path) else [path]):
            try:
                text = read_text(file)
            except LoadError as exc:
                self.error(exc.message, SourceLoc(file, 1, 1))
                continue
            if text.startswith("$ANSIBLE_VAULT"):
                self.error("Ansible Vault encrypted file skipped: its variables are missing",
                           SourceLoc(file, 1, 1), severity="warning", hint="vault is not "
                           "supported: give secrets as 'env:NAME' or 'file:PATH' references")
                continue
            doc, problems = parse_yaml(file, text)
            self.problems.extend(problems)
            merged.update(self.yaml_vars(doc, doc.root, "a variables file"))
        return merged

    # -- the result -------------------------------------------------------------------
    def finish(self) -> Inventory:
        groups = self.groups
        for name, host in self.hosts.items():
            if name in groups:
                self.error(f"'{name}' is both a host and a group", host.loc,
                           hint="host patterns could not tell them apart: rename one")
        for group in groups.values():
            if "all" in group.children:
                self.error(f"group 'all' cannot be a child of group '{group.name}'",
                           group.children.pop("all"), hint="every group is inside 'all'")
        self.break_cycles()
        parents: dict[str, list[str]] = {name: [] for name in groups}
        for group in groups.values():
            for child in group.children:
                parents[child].append(group.name)
        for name, found in parents.items():
            if name != "all" and not found:
                groups["all"].children[name] = None
                found.append("all")
        depth, ancestors = _depths(groups, parents)

        direct: dict[str, list[str]] = {name: [] for name in self.hosts}
        for group in groups.values():
            for name in group.hosts:
                direct[name].append(group.name)
        ungrouped = groups["ungrouped"].hosts
        for name, member_of in direct.items():
            others = [g for g in member_of if g not in ("all", "ungrouped")]
            if others and name in ungrouped:
                del ungrouped[name]
                member_of.remove("ungrouped")
            elif not others and name not in ungrouped:
                ungrouped[name] = None
                member_of.append("ungrouped")

        group_vars = {name: {**g.vars, **g.file_vars} for name, g in groups.items()}
        hosts: dict[str, Host] = {}
        for name, draft in self.hosts.items():
            every = set().union(*(ancestors.get(g, {g, "all"}) for g in direct[name]))
            ordered = tuple(sorted(every, key=lambda g: (depth[g], g)))
            layers = [group_vars[g] for g in ordered] + [draft.vars, draft.file_vars]
            hosts[name] = self.settings.make_host(name, draft.loc, ordered, layers)
        localhost = None
        if "localhost" not in hosts:
            explicit = any(k in self.localhost.file_vars for k in SETTING_VARS["connection"])
            localhost = self.settings.make_host("localhost", None, (), [
                group_vars["all"], self.localhost.file_vars], force_local=not explicit)
        built = {name: Group(name, tuple(g.hosts), tuple(g.children),
                             {k: v[0] for k, v in group_vars[name].items()}, g.loc)
                 for name, g in groups.items()}
        notes = [p for p in self.problems if p.severity != "error"]
        return Inventory(hosts, built, path=self.path, warnings=notes, localhost=localhost)

    def break_cycles(self) -> None:
        """Report each cycle of children at the edge that closes it, and drop that edge."""
        state: dict[str, int] = {}   # 1: on the current path, 2: done
        for root in self.groups:
            if root in state:
                continue
            path, stack = [root], [iter(list(self.groups[root].children))]
            state[root] = 1
            while stack:
                for child in stack[-1]:
                    if state.get(child) == 1:
                        cycle = path[path.index(child):] + [child]
                        self.error(f"groups form a cycle: {' -> '.join(cycle)}",
                                   self.groups[path[-1]].children.pop(child),
                                   hint="a group cannot contain itself, directly or through "
                                        "its children")
                    elif child not in state:
                        state[child] = 1
                        path.append(child)
                        stack.append(iter(list(self.groups[child].children)))
                        break
                else:
                    state[path.pop()] = 2
                    stack.pop()


def _depths(groups: Mapping[str, GroupDraft], parents: Mapping[str, list[str]]
            ) -> tuple[dict[str, int], dict[str, frozenset[str]]]:
    """Each group's depth below 'all' (longest path) and its ancestors (itself included)."""
    waiting = {name: len(found) for name, found in parents.items()}
    queue = [name for name, count in waiting.items() if count == 0]
    depth = {name: 0 for name in groups}
    ancestors: dict[str, frozenset[str]] = {}
    while queue:
        name = queue.pop()
        ancestors[name] = frozenset({name}).union(*(ancestors[p] for p in parents[name]))
        for child in groups[name].children:
            depth[child] = max(depth[child], depth[name] + 1)
            waiting[child] -= 1
            if waiting[child] == 0:
                queue.append(child)
    return depth, ancestors


def _vars_files(folder: str, level: int) -> list[str]:
    """Variable files in a folder, in name order (Ansible's rules: subfolders too)."""
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        return []
    found: list[str] = []
    for entry in entries:
        if entry.startswith(".") or entry.endswith("~"):
            continue
        path, ext = os.path.join(folder, entry), os.path.splitext(entry)[1]
        if os.path.isdir(path):
            if not ext and level < 8:
                found.extend(_vars_files(path, level + 1))
        elif not ext or ext in _VARS_EXTS:
            found.append(path)
    return found

