"""The inventory's data: hosts, groups, connection settings, and the variables that set them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..model import SourceLoc

__all__ = ["ConnectionSettings", "Host", "Group", "CONNECTION_KINDS", "HOST_KEY_CHECKING",
           "LOCAL_NAMES", "SETTING_VARS", "SETTING_NAMES", "SECRET_VARS"]

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
SETTING_NAMES = frozenset(name for names in SETTING_VARS.values() for name in names)


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
