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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .model import SourceLoc

__all__ = ["ConnectionSettings", "Host", "Group", "Inventory", "CONNECTION_KINDS",
           "HOST_KEY_CHECKING"]

CONNECTION_KINDS = ("local", "ssh", "docker")
HOST_KEY_CHECKING = ("strict", "accept-new", "off")


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


@dataclass(frozen=True)
class Host:
    """A host with its merged variables and connection settings."""

    name: str
    vars: Mapping[str, Any]
    groups: tuple[str, ...]
    connection: ConnectionSettings
    loc: SourceLoc | None = None
    secrets: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Group:
    name: str
    hosts: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict)
    loc: SourceLoc | None = None


class Inventory:
    """Loaded hosts and groups."""

    path: str | None
    hosts: dict[str, Host]
    groups: dict[str, Group]

    @classmethod
    def load(cls, path: str) -> "Inventory":
        raise NotImplementedError

    @classmethod
    def implicit(cls) -> "Inventory":
        raise NotImplementedError

    def select(self, pattern: str, loc: SourceLoc | None = None) -> list[Host]:
        raise NotImplementedError
