"""Hosts, groups and their variables, from YAML or INI inventories (Ansible's shapes).

CONTRACT (implemented by the inventory work; the rest of the engine relies on it):

- ``Inventory.load(path)`` reads a YAML (``all:``/``hosts:``/``children:``/``vars:``) or
  Ansible INI inventory, plus ``group_vars/`` and ``host_vars/`` folders beside it
  (files ``<name>.yml``/``.yaml``/``.json``/no extension, or a folder ``<name>/`` of such
  files).  Every problem is a LoadError at file:line:col; several are collected and
  raised together as ValidationFailed.
- ``Inventory.implicit()`` is the inventory used when none is given: one host
  ``localhost`` with connection ``local``.
- ``Inventory.select(pattern)`` resolves a host pattern to hosts, in inventory order:
  a host, a group, ``all``/``*``, globs (``web*``), unions ``a:b`` or ``a,b``,
  intersections ``a:&b``, exclusions ``a:!b``.  An unknown name is an
  InventoryError (with did-you-mean).
- Variable precedence, low to high: group ``all`` < parent groups < child groups
  (depth, then name) < host; group_vars/host_vars files override the inline vars of
  the same group/host.
- Connection settings come from the merged vars: ``connection`` (local|ssh|docker),
  ``address``, ``port``, ``user``, ``key_file``, ``password``, ``known_hosts``,
  ``host_key_checking`` (strict|accept-new|off), ``container``, ``docker_host``,
  ``proxy_jump``, ``become_password``, ``connect_timeout``, ``docker_tls_*``;
  Ansible's ``ansible_host``, ``ansible_port``, ``ansible_user``, ``ansible_connection``,
  ``ansible_ssh_private_key_file``, ``ansible_password``/``ansible_ssh_pass``,
  ``ansible_become_password`` are aliases.  ``password``/``become_password`` may be
  ``env:NAME`` or ``file:PATH`` references and are secrets.

DECISIONS (where Ansible leaves room):

- Format: ``.ini``/``.cfg`` is INI, ``.yml``/``.yaml``/``.json`` is YAML; any other name
  is INI when its first line is a ``[section]``, YAML when it parses to a mapping, else
  INI.  INI values follow Ansible: ``ast.literal_eval`` or the text itself (so
  ``x=5`` is 5, ``x=True`` is True, ``x=yes`` is the string 'yes').
- A ``group_vars``/``host_vars`` entry is the first of ``<name>/``, ``<name>``,
  ``<name>.yml``, ``<name>.yaml``, ``<name>.json`` that exists (Ansible's order).
- When a setting is given under several names (``port`` and ``ansible_port``), the one
  from the higher precedence layer wins; on a tie our own name wins.
- Connection kind: an explicit ``connection`` wins; else ``docker`` when ``container``
  is set; else ``local`` when the host is named localhost/127.0.0.1/::1 and neither
  address nor port is given; else ``ssh``.  ``ssh`` defaults ``address`` to the host
  name; ``docker`` defaults ``container`` to ``address`` (Ansible's ``ansible_host``),
  then to the host name.  Unmapped ``ansible_*`` vars go to ``ConnectionSettings.extra``.
- ``Host.groups`` lists every group the host is in, ancestors included, in precedence
  order: ``all`` first, then by depth and name (a host in no group is in ``ungrouped``).
- Secrets resolve once at load; the resolved value replaces the reference in
  ``Host.vars`` and is listed in ``Host.secrets``.  Templates (``{{``) in connection
  settings are errors: inventory values are data, never rendered.
- A vars file for no known group/host, or an Ansible Vault file, is a warning
  (``Inventory.warnings``) and is skipped; anything else wrong is an error.
- Like Ansible, the pattern ``localhost`` matches an implicit local host when the
  inventory has none; it has the vars of ``all`` and ``host_vars/localhost`` but is in
  no group (``all`` does not match it).
"""

from __future__ import annotations

import ast
import fnmatch
import os
import re
import string
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .errors import InventoryError, LoadError, ValidationFailed
from .model import SourceLoc
from .yamlsrc import Document, is_map, is_null, is_seq, items, kind_name, parse, read_text, \
    to_python

__all__ = ["ConnectionSettings", "Host", "Group", "Inventory", "CONNECTION_KINDS",
           "HOST_KEY_CHECKING", "SETTING_VARS", "SECRET_VARS"]

CONNECTION_KINDS = ("local", "ssh", "docker")
HOST_KEY_CHECKING = ("strict", "accept-new", "off")
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

# setting -> the variables that set it: our own name first, then Ansible's names.
SETTING_VARS: dict[str, tuple[str, ...]] = {
    "connection": ("connection", "ansible_connection"),
    "address": ("address", "ansible_host", "ansible_ssh_host"),
    "port": ("port", "ansible_port", "ansible_ssh_port"),
    "user": ("user", "ansible_user", "ansible_ssh_user"),
    "key_file": ("key_file", "ansible_ssh_private_key_file", "ansible_private_key_file"),
    "password": ("password", "ansible_password", "ansible_ssh_pass", "ansible_ssh_password"),
    "known_hosts": ("known_hosts",),
    "host_key_checking": ("host_key_checking", "ansible_host_key_checking",
                          "ansible_ssh_host_key_checking"),
    "container": ("container",),
    "docker_host": ("docker_host",),
    "proxy_jump": ("proxy_jump",),
    "become_password": ("become_password", "ansible_become_password", "ansible_become_pass",
                        "ansible_sudo_pass"),
    "connect_timeout": ("connect_timeout", "ansible_timeout", "ansible_ssh_timeout"),
    "docker_tls_verify": ("docker_tls_verify",),
    "docker_cert_path": ("docker_cert_path",),
}
SECRET_VARS = frozenset(SETTING_VARS["password"] + SETTING_VARS["become_password"])
_SETTING_NAMES = frozenset(name for names in SETTING_VARS.values() for name in names)
_KINDS = {"local": "local", "ssh": "ssh", "smart": "ssh", "paramiko": "ssh",
          "paramiko_ssh": "ssh", "docker": "docker", "community.docker.docker": "docker",
          "community.docker.docker_api": "docker", "ansible.builtin.local": "local",
          "ansible.builtin.ssh": "ssh", "ansible.builtin.paramiko_ssh": "ssh"}
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_VARS_EXTS = (".yml", ".yaml", ".json")
_MAX_RANGE = 100_000


@dataclass(frozen=True)
class ConnectionSettings:
    """How to reach one host."""

    kind: str = "local"
    address: str | None = None
    port: int | None = None
    user: str | None = None
    key_file: str | None = None
    password: str | None = None
    known_hosts: str | None = None
    host_key_checking: str = "strict"
    container: str | None = None
    docker_host: str | None = None
    proxy_jump: str | None = None
    become_password: str | None = None
    connect_timeout: float = 10.0
    docker_tls_verify: bool = False
    docker_cert_path: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.kind, self.address, self.port, self.user, self.container))


@dataclass(frozen=True)
class Host:
    """A host with its merged variables and connection settings."""

    name: str
    vars: Mapping[str, Any]
    groups: tuple[str, ...]
    connection: ConnectionSettings
    loc: SourceLoc | None = None
    secrets: frozenset[str] = frozenset()

    def __hash__(self) -> int:
        return hash(self.name)


@dataclass(frozen=True)
class Group:
    """A group: its direct hosts and child groups, and its own (unmerged) vars."""

    name: str
    hosts: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict)
    loc: SourceLoc | None = None

    def __hash__(self) -> int:
        return hash(self.name)


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
        self._index = {name: i for i, name in enumerate(self.hosts)}
        self._index.setdefault("localhost", len(self._index))
        members: dict[str, list[str]] = {name: [] for name in self.groups}
        for host in self.hosts.values():
            for group in host.groups:
                members.setdefault(group, []).append(host.name)
        self._members = {name: frozenset(names) for name, names in members.items()}
        self._everyone = frozenset(self.hosts)
        self._cache: dict[str, tuple[str, ...]] = {}

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
            raise InventoryError(f"unknown host '{name}'", hint=_names_hint(name, self.hosts))
        return host

    def known_names(self) -> frozenset[str]:
        """Host and group names a pattern may use."""
        extra = {"localhost"} if self._localhost is not None else set()
        return frozenset(self.hosts) | frozenset(self.groups) | extra

    def select(self, pattern: str, loc: SourceLoc | None = None) -> list[Host]:
        """The hosts a pattern names, in inventory order, without duplicates."""
        names = self._cache.get(pattern)
        if names is None:
            names = self._resolve(pattern, loc)
            self._cache[pattern] = names
        return [self.hosts.get(name) or self.host(name) for name in names]

    def _resolve(self, pattern: str, loc: SourceLoc | None) -> tuple[str, ...]:
        terms = [term for part in pattern.split(",") for term in _PATTERN_TERM.findall(part)]
        if not terms:
            raise InventoryError(f"empty host pattern '{pattern}'", loc=loc,
                                 hint="name a host, a group, or 'all'")
        unions = [term for term in terms if term[0] not in "!&"]
        selected = set() if unions else set(self._everyone)
        for term in unions:
            selected |= self._match(term, pattern, loc)
        for term in terms:
            if term[0] == "&":
                selected &= self._match(term[1:], pattern, loc)
        for term in terms:
            if term[0] == "!":
                selected -= self._match(term[1:], pattern, loc)
        return tuple(sorted(selected, key=self._index.__getitem__))

    def _match(self, term: str, pattern: str, loc: SourceLoc | None) -> frozenset[str]:
        if term in ("all", "*"):
            return self._everyone
        if term in self.hosts:
            return frozenset((term,))
        if term in self._members:
            return self._members[term]
        if term == "localhost" and self._localhost is not None:
            return frozenset((term,))
        if not term:
            raise InventoryError(f"a '!' or '&' in pattern '{pattern}' is not followed by a "
                                 "name", loc=loc)
        if term[0] != "~" and not any(char in term for char in "*?["):
            raise InventoryError(f"unknown host or group '{term}' in pattern '{pattern}'",
                                 loc=loc, hint=_names_hint(term, self.known_names()))
        try:
            regex = re.compile(term[1:] if term[0] == "~" else fnmatch.translate(term))
        except (re.error, RecursionError, OverflowError) as exc:
            raise InventoryError(f"invalid regular expression '{term[1:]}' in pattern "
                                 f"'{pattern}': {exc}", loc=loc) from None
        groups = [name for name in self.groups if regex.match(name)]
        found = {name for name in self.hosts if regex.match(name)}
        for group in groups:
            found |= self._members[group]
        if not groups and not found:
            raise InventoryError(f"no host or group matches '{term}' in pattern '{pattern}'",
                                 loc=loc, hint=_names_hint(term, self.known_names()))
        return frozenset(found)


_PATTERN_TERM = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")


def _names_hint(word: str, candidates: Iterable[str]) -> str:
    names = sorted(candidates)
    match = suggest_hint(word, names)
    if match:
        return match
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return f"known names: {shown}" if names else "the inventory is empty"


# -- building -----------------------------------------------------------------------

VarLayer = dict[str, tuple[Any, "SourceLoc | None"]]  # name -> (value, where the value is)


@dataclass
class _GroupDraft:
    name: str
    loc: SourceLoc | None
    hosts: dict[str, None] = field(default_factory=dict)
    children: dict[str, SourceLoc | None] = field(default_factory=dict)
    vars: VarLayer = field(default_factory=dict)
    file_vars: VarLayer = field(default_factory=dict)


@dataclass
class _HostDraft:
    name: str
    loc: SourceLoc | None
    vars: VarLayer = field(default_factory=dict)
    file_vars: VarLayer = field(default_factory=dict)


class _Invalid(ValueError):
    """A setting's value is wrong; becomes a LoadError at the value."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class _Builder:
    """Reads one inventory (and its vars folders) into drafts, then into an Inventory."""

    def __init__(self, path: str, environ: Mapping[str, str]) -> None:
        self.path = path
        self.base = os.path.dirname(os.path.abspath(path))
        self.environ = environ
        self.problems: list[LoadError] = []
        self._seen: set[tuple[str, SourceLoc | None]] = set()
        self._secrets: dict[tuple[str, Any], Any] = {}
        self._reset()

    def _reset(self) -> None:
        self.groups: dict[str, _GroupDraft] = {}
        self.hosts: dict[str, _HostDraft] = {}
        self.localhost = _HostDraft("localhost", None)
        self.problems.clear()
        self._seen.clear()
        self.group("all", None)
        self.group("ungrouped", None)

    def error(self, message: str, loc: SourceLoc | None, hint: str | None = None,
              severity: str = "error") -> None:
        if (message, loc) not in self._seen:
            self._seen.add((message, loc))
            self.problems.append(LoadError(message, loc=loc, hint=hint, severity=severity))

    def group(self, name: str, loc: SourceLoc | None) -> _GroupDraft:
        draft = self.groups.get(name)
        if draft is None:
            draft = self.groups[name] = _GroupDraft(name, loc)
        elif draft.loc is None:
            draft.loc = loc
        return draft

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
            return self.read_yaml(*_parse(self.path, text))
        first = next((line.strip() for line in text.splitlines()
                      if line.strip() and line.strip()[0] not in "#;"), "")
        if first.startswith("["):
            return self.read_ini(text)
        doc, problems = _parse(self.path, text)
        if not problems and (is_null(doc.root) or is_map(doc.root)):
            return self.read_yaml(doc, problems)
        self.read_ini(text)
        if self.problems:  # neither reads cleanly: report it as the YAML it looks like
            self._reset()
            self.read_yaml(doc, problems)

    # -- YAML ---------------------------------------------------------------------
    def read_yaml(self, doc: Document, problems: list[LoadError]) -> None:
        self.problems.extend(problems)
        root = doc.root
        if is_null(root):
            return
        if not is_map(root):
            self.error(f"an inventory must be a mapping of groups (such as 'all:'), found "
                       f"{kind_name(root)}", doc.loc(root),
                       hint="start with 'all:', then 'hosts:' and 'children:' under it")
            return
        plugin = next((node for name, _, node in items(root) if name == "plugin"
                       and not is_map(node) and not is_null(node)), None)
        if plugin is not None:  # a dynamic inventory's config: its other keys are no groups
            self.error(f"group 'plugin' must be a mapping with 'hosts', 'children' or 'vars', "
                       f"found {kind_name(plugin)}", doc.loc(plugin),
                       hint="inventory plugins are not supported: give a static inventory")
            return
        for name, key_node, node in items(root):
            self.yaml_group(doc, name, key_node, node, None)

    def yaml_group(self, doc: Document, name: str, key_node: Any, node: Any,
                   parent: str | None) -> None:
        loc = doc.loc(key_node)
        group = self.group(name, loc)
        if parent is not None:
            self.groups[parent].children.setdefault(name, loc)
        if is_null(node):
            return
        if not is_map(node):
            self.error(f"group '{name}' must be a mapping with 'hosts', 'children' or 'vars', "
                       f"found {kind_name(node)}", doc.loc(node),
                       hint="indent 'hosts:', 'children:' or 'vars:' under the group name")
            return
        for key, knode, value in items(node):
            if key == "hosts":
                self.yaml_hosts(doc, group, value)
            elif key == "vars":
                group.vars.update(self.yaml_vars(doc, value, f"'vars' of group '{name}'"))
            elif key == "children":
                if is_map(value):
                    for child, cnode, cvalue in items(value):
                        self.yaml_group(doc, child, cnode, cvalue, name)
                elif not is_null(value):
                    self.error(f"'children' of group '{name}' must be a mapping of group "
                               f"names, found {kind_name(value)}", doc.loc(value),
                               hint="write each child group as 'name:' on its own line")
            else:
                self.error(f"unknown key '{key}' in group '{name}'", doc.loc(knode),
                           hint=suggest_hint(key, ("hosts", "children", "vars")) or
                           "a group holds only 'hosts:', 'children:' and 'vars:'; "
                           "put hosts under 'hosts:'")

    def yaml_hosts(self, doc: Document, group: _GroupDraft, node: Any) -> None:
        if is_null(node):
            return
        if not is_map(node):
            self.error(f"'hosts' of group '{group.name}' must be a mapping of host names, "
                       f"found {kind_name(node)}", doc.loc(node),
                       hint="write each host as 'name:' on its own line" if is_seq(node)
                       else None)
            return
        for name, key_node, value in items(node):
            if is_map(value) or is_null(value):
                host_vars = self.yaml_vars(doc, value, f"host '{name}'")
            else:
                self.error(f"host '{name}' must be followed by a mapping of variables or "
                           f"nothing, found {kind_name(value)}", doc.loc(value),
                           hint="write its variables as 'key: value' lines indented under it")
                host_vars = {}
            self.add_hosts(group, name, doc.loc(key_node), host_vars)

    def yaml_vars(self, doc: Document, node: Any, owner: str) -> VarLayer:
        if is_null(node):
            return {}
        if not is_map(node):
            self.error(f"{owner} must be a mapping of variables, found {kind_name(node)}",
                       doc.loc(node))
            return {}
        return {key: (to_python(value), doc.loc(value)) for key, _, value in items(node)}

    def add_hosts(self, group: _GroupDraft, pattern: str, loc: SourceLoc,
                  host_vars: VarLayer) -> None:
        try:
            names, port = _expand_host(pattern)
        except ValueError as exc:
            self.error(f"bad host range in '{pattern}': {exc}", loc)
            return
        if port is not None:
            host_vars = {"ansible_port": (port, loc), **host_vars}
        for name in names:
            draft = self.hosts.get(name)
            if draft is None:
                draft = self.hosts[name] = _HostDraft(name, loc)
            draft.vars.update(host_vars)
            group.hosts[name] = None

    # -- INI ----------------------------------------------------------------------
    def read_ini(self, text: str) -> None:
        group, state = "ungrouped", "hosts"
        defined = {"all", "ungrouped"}
        wanted: list[tuple[str, str, SourceLoc]] = []   # (group, where it was named, loc)
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            indent = len(raw) - len(raw.lstrip())
            loc = SourceLoc(self.path, lineno, indent + 1)
            section = _SECTION.match(line)
            if section:
                group, state = section.group(1), section.group(2) or "hosts"
                if state not in ("hosts", "vars", "children"):
                    self.error(f"unknown section type '{state}' in '{line}'", loc,
                               hint="a section is [group], [group:vars] or [group:children]")
                    state = "skip"
                    continue
                self.group(group, loc)
                if state == "vars":
                    wanted.append((group, f"[{group}:vars]", loc))
                else:
                    defined.add(group)
            elif line.startswith("[") and line.endswith("]"):
                self.error(f"invalid section header '{line}'", loc,
                           hint="write [group], [group:vars] or [group:children]; group "
                                "names have no spaces or ':'")
                state = "skip"
            elif state == "hosts":
                self.ini_host(self.groups[group], line, lineno, indent)
            elif state == "vars":
                key, eq, value = line.partition("=")
                if not eq or not key.strip():
                    self.error(f"expected key=value in [{group}:vars], got '{line}'", loc)
                    continue
                col = indent + len(key) + 2 + len(value) - len(value.lstrip())
                self.groups[group].vars[key.strip()] = (
                    _ini_value(value.strip()), SourceLoc(self.path, lineno, col))
            elif state == "children":
                match = _GROUP_NAME.match(line)
                if not match:
                    self.error(f"expected a group name in [{group}:children], got '{line}'",
                               loc)
                    continue
                self.group(match.group(1), loc)
                self.groups[group].children.setdefault(match.group(1), loc)
                wanted.append((match.group(1), f"[{group}:children]", loc))
        for name, where, loc in wanted:
            if name not in defined:
                self.error(f"{where} names group '{name}', which is never defined", loc,
                           hint=suggest_hint(name, defined) or
                           f"define it with a [{name}] or [{name}:children] section")

    def ini_host(self, group: _GroupDraft, line: str, lineno: int, indent: int) -> None:
        tokens, bad_quote = _ini_tokens(line)
        if bad_quote is not None:
            self.error("unclosed quote in host line", SourceLoc(self.path, lineno,
                                                                indent + bad_quote + 1),
                       hint="close the quote, or escape it with a backslash")
            return
        if not tokens:
            return
        host_vars: VarLayer = {}
        for text, col in tokens[1:]:
            key, eq, value = text.partition("=")
            if not eq or not key:
                self.error(f"expected key=value after host '{tokens[0][0]}', got '{text}'",
                           SourceLoc(self.path, lineno, indent + col + 1),
                           hint='quote values that contain spaces: key="a b"')
                continue
            value_loc = SourceLoc(self.path, lineno, indent + col + len(key) + 2)
            host_vars[key] = (_ini_value(value), value_loc)
        name, col = tokens[0]
        self.add_hosts(group, name, SourceLoc(self.path, lineno, indent + col + 1), host_vars)

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
            doc, problems = _parse(file, text)
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
            hosts[name] = self.make_host(name, draft.loc, ordered, layers)
        localhost = None
        if "localhost" not in hosts:
            explicit = any(k in self.localhost.file_vars for k in SETTING_VARS["connection"])
            localhost = self.make_host("localhost", None, (), [
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

    def make_host(self, name: str, loc: SourceLoc | None, groups: tuple[str, ...],
                  layers: list[VarLayer], force_local: bool = False) -> Host:
        merged: VarLayer = {}
        rank: dict[str, int] = {}
        for i, layer in enumerate(layers):
            merged.update(layer)
            for key in layer:
                if key in _SETTING_NAMES:
                    rank[key] = i
        found: dict[str, tuple[str, Any, SourceLoc | None]] = {}
        for setting, names in SETTING_VARS.items():
            present = [(rank[key], -order, key) for order, key in enumerate(names)
                       if key in merged]
            if present:
                key = max(present)[2]
                value, value_loc = merged[key]
                if value is not None and value != "":
                    found[setting] = (key, value, value_loc)
        values: dict[str, Any] = {}
        resolved: dict[str, Any] = {}
        for setting, (key, value, value_loc) in found.items():
            try:
                if isinstance(value, str) and "{{" in value:
                    raise _Invalid(f"'{key}' is a template, but inventory values are data and "
                                   "are not rendered", hint="write the value itself")
                values[setting] = self.convert(setting, key, value)
            except _Invalid as exc:
                self.error(str(exc), value_loc, hint=exc.hint)
                continue
            if setting in ("password", "become_password"):
                resolved[key] = values[setting]
        kind = "local" if force_local else values.pop("connection", None)
        values.pop("connection", None)
        if kind is None:
            if values.get("container"):
                kind = "docker"
            elif name in LOCAL_NAMES and "address" not in values and "port" not in values:
                kind = "local"
            else:
                kind = "ssh"
        if kind == "ssh":
            values.setdefault("address", name)
        elif kind == "docker":
            values.setdefault("container", values.get("address") or name)
        extra = {k: v[0] for k, v in merged.items()
                 if k.startswith("ansible_") and k not in _SETTING_NAMES}
        settings = ConnectionSettings(kind=kind, extra=extra, **values)
        host_vars = {k: v[0] for k, v in merged.items()}
        host_vars.update(resolved)
        secrets = frozenset(v for v in (settings.password, settings.become_password) if v)
        return Host(name, host_vars, groups, settings, loc, secrets)

    def convert(self, setting: str, key: str, value: Any) -> Any:
        """A setting's value checked and converted; _Invalid says what is wrong."""
        if setting == "connection":
            kind = _KINDS.get(value.strip().lower()) if isinstance(value, str) else None
            if kind is None:
                raise _Invalid(f"unknown connection kind '{value}' in '{key}'",
                               hint=suggest_hint(str(value), CONNECTION_KINDS)
                               or "use one of: local, ssh, docker")
            return kind
        if setting == "port":
            text = value.strip() if isinstance(value, str) else None
            number = int(text) if text and re.fullmatch(r"\d{1,5}", text) else value
            if isinstance(number, bool) or not isinstance(number, int) or \
                    not 1 <= number <= 65535:
                raise _Invalid(f"'{key}' must be a port number from 1 to 65535, got "
                               f"{value!r}", hint="for example: 22")
            return number
        if setting == "host_key_checking":
            text = str(value).strip().lower()
            if text in HOST_KEY_CHECKING:
                return text
            if value is True or text in _TRUE:
                return "strict"
            if value is False or text in _FALSE:
                return "off"
            raise _Invalid(f"'{key}' must be one of strict, accept-new, off, got {value!r}",
                           hint=suggest_hint(text, HOST_KEY_CHECKING) or
                           "false (Ansible's spelling) means off")
        if setting == "connect_timeout":
            try:
                seconds = float(value) if not isinstance(value, bool) else -1.0
            except (TypeError, ValueError):
                seconds = -1.0
            if not seconds > 0 or seconds == float("inf"):
                raise _Invalid(f"'{key}' must be a positive number of seconds, got {value!r}")
            return seconds
        if setting == "docker_tls_verify":
            text = str(value).strip().lower()
            if isinstance(value, bool) or text in _TRUE | _FALSE:
                return value if isinstance(value, bool) else text in _TRUE
            raise _Invalid(f"'{key}' must be true or false, got {value!r}")
        if isinstance(value, (dict, list, bool)):
            raise _Invalid(f"'{key}' must be a string, got {type(value).__name__} {value!r}")
        if setting in ("password", "become_password"):
            return self.secret(key, str(value))
        if setting in ("key_file", "known_hosts", "docker_cert_path"):
            return self.local_path(str(value))
        return str(value)

    def local_path(self, value: str) -> str:
        path = os.path.expanduser(value.strip())
        return path if os.path.isabs(path) else os.path.normpath(os.path.join(self.base, path))

    def secret(self, key: str, value: str) -> str:
        """A password as given, or read from ``env:NAME`` / ``file:PATH``."""
        cached = self._secrets.get((key, value))
        if cached is None:
            try:
                cached = self._read_secret(key, value)
            except _Invalid as exc:
                cached = exc
            self._secrets[(key, value)] = cached
        if isinstance(cached, _Invalid):
            raise cached
        return cached

    def _read_secret(self, key: str, value: str) -> str:
        if value.startswith("env:"):
            name = value[4:].strip()
            if name not in self.environ:
                raise _Invalid(f"environment variable '{name}' is not set (needed by '{key}')",
                               hint=f"export {name}=... before running, or change '{key}'"
                               if name else "write the variable's name after 'env:'")
            return self.environ[name]
        if value.startswith("file:"):
            path = self.local_path(value[5:])
            try:
                with open(path, encoding="utf-8") as f:
                    return f.read().rstrip("\r\n")
            except FileNotFoundError:
                raise _Invalid(f"secret file not found: {path} (needed by '{key}')",
                               hint="relative paths start at the inventory's folder") from None
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                raise _Invalid(f"cannot read secret file {path}: {reason}") from None
        return value


def _parse(path: str, text: str) -> tuple[Document, list[LoadError]]:
    """yamlsrc.parse, with PyYAML's odd failures on malformed tagged scalars contained."""
    try:
        return parse(path, text)
    except (IndexError, KeyError, ValueError, TypeError, AttributeError) as exc:
        return Document(path, text, None), [LoadError(f"cannot read YAML: {exc}",
                                                      loc=SourceLoc(path, 1, 1))]


def suggest_hint(word: str, candidates: Iterable[str]) -> str | None:
    """'did you mean ...?' for the closest candidate, or None."""
    from .templating import suggest
    match = suggest(word, sorted(candidates))
    return f"did you mean '{match}'?" if match else None


def _depths(groups: Mapping[str, _GroupDraft], parents: Mapping[str, list[str]]
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


# -- INI and host-name syntax --------------------------------------------------------

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:[#;].*)?$")
_RANGE = re.compile(r"\[([^\]:\[]*):([^\]:\[]*)(?::([^\]:\[]*))?\]")
_HOST_PORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])+):(\d+)$")
_IPV6 = re.compile(r"^\[([0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)\](?::(\d+))?$")


def _expand_host(pattern: str) -> tuple[list[str], int | None]:
    """Host names from ``name``, ``name:port`` or a range ``web[01:03]``; ValueError if bad."""
    port: int | None = None
    ipv6 = _IPV6.match(pattern)
    if ipv6:
        return [ipv6.group(1)], int(ipv6.group(2)) if ipv6.group(2) else None
    with_port = _HOST_PORT.match(pattern)
    if with_port:
        pattern, port = with_port.group(1), int(with_port.group(2))
    if not pattern:
        raise ValueError("empty host name")
    return _expand_ranges(pattern), port


def _expand_ranges(name: str) -> list[str]:
    match = _RANGE.search(name)
    if not match:
        return [name]
    head, tail = name[:match.start()], name[match.end():]
    begin, end, step_text = match.group(1) or "0", match.group(2), match.group(3) or "1"
    if not end:
        raise ValueError("a range needs an end value, as in [1:3]")
    if not step_text.isdigit() or int(step_text) == 0:
        raise ValueError(f"the step '{step_text}' must be a positive number")
    step = int(step_text)
    letters = string.ascii_letters
    if len(begin) == 1 == len(end) and begin in letters and end in letters:
        if letters.index(begin) > letters.index(end):
            raise ValueError(f"the range [{begin}:{end}] is empty: begin must be <= end")
        values = list(letters[letters.index(begin):letters.index(end) + 1:step])
    elif begin.isdigit() and end.isdigit():
        width = len(begin) if begin[0] == "0" and len(begin) > 1 else 0
        if width and len(end) != width:
            raise ValueError(f"zero-padded bounds must have the same width ('{begin}', "
                             f"'{end}')")
        if int(begin) > int(end):
            raise ValueError(f"the range [{begin}:{end}] is empty: begin must be <= end")
        if (int(end) - int(begin)) // step >= _MAX_RANGE:
            raise ValueError(f"it makes more than {_MAX_RANGE} hosts")
        values = [str(n).zfill(width) for n in range(int(begin), int(end) + 1, step)]
    else:
        raise ValueError(f"bounds must be numbers or single letters, got '{begin}:{end}'")
    rest = _expand_ranges(tail)
    if len(values) * len(rest) > _MAX_RANGE:
        raise ValueError(f"it makes more than {_MAX_RANGE} hosts")
    return [head + value + suffix for value in values for suffix in rest]


def _ini_tokens(line: str) -> tuple[list[tuple[str, int]], int | None]:
    """Split a host line like POSIX shlex with comments; tokens with their start index.

    Returns (tokens, None), or ([], index of an unclosed quote).
    """
    tokens: list[tuple[str, int]] = []
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i].isspace():
            i += 1
        if i >= n or line[i] == "#":
            break
        start, chars = i, []
        while i < n and not line[i].isspace():
            char = line[i]
            if char == "#":
                n = i  # a comment ends the token and the line
                break
            if char in "'\"":
                close = i + 1
                while close < n and line[close] != char:
                    if char == '"' and line[close] == "\\" and close + 1 < n and \
                            line[close + 1] in '"\\':
                        close += 1
                    chars.append(line[close])
                    close += 1
                if close >= n:
                    return [], i
                i = close + 1
            elif char == "\\" and i + 1 < n:
                chars.append(line[i + 1])
                i += 2
            else:
                chars.append(char)
                i += 1
        tokens.append(("".join(chars), start))
    return tokens, None


def _ini_value(text: str) -> Any:
    """An INI value as Ansible reads it: a Python literal if it is one, else the text."""
    if not text or (text[0].isalpha() and text not in ("True", "False", "None")
                    and not any(c in text for c in "'\"")):
        return text
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text
    return _plain(value, text)


def _plain(value: Any, text: str) -> Any:
    """Literal results as YAML would give them (bytes, tuples, sets, complex are odd)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (tuple, set, frozenset)):
        return [_plain(item, text) for item in value]
    if isinstance(value, list):
        return [_plain(item, text) for item in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, text) for k, v in value.items()}
    if isinstance(value, complex):
        return text
    return value
