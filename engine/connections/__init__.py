"""Connections to targets.  ``ConnectionPool`` keeps one per host for a whole run.

The ssh and docker modules (and so paramiko and the docker SDK) are imported only
when a host needs them.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

from .base import CommandResult, Connection, FileStat

if TYPE_CHECKING:
    from ..inventory import Host

__all__ = ["Connection", "CommandResult", "FileStat", "connect", "ConnectionPool"]


def connect(host: "Host") -> Connection:
    """A new (not yet opened) connection for a host, by its connection kind."""
    kind = host.connection.kind
    if kind == "local":
        from .local import LocalConnection
        return LocalConnection(host.name)
    if kind == "ssh":
        from .ssh import SshConnection
        return SshConnection(host.name, host.connection)
    if kind == "docker":
        from .docker import DockerConnection
        return DockerConnection(host.name, host.connection)
    raise ValueError(f"unknown connection kind {kind!r}")


class ConnectionPool:
    """One connection per host, created on first use, closed together at the end.

    ``factory`` replaces ``connect`` (tests use it to inject a FakeConnection);
    ``docker_factory`` makes the Docker API client of a host (see docker_api.py).
    """

    def __init__(self, factory: "Callable[[Host], Connection] | None" = None,
                 docker_factory: "Callable[[Host], Any] | None" = None) -> None:
        self._conns: dict[str, Connection] = {}
        self._dockers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._factory = factory or connect
        self._docker_factory = docker_factory

    def get(self, host: "Host") -> Connection:
        conn = self._conns.get(host.name)
        if conn is None:
            with self._lock:
                conn = self._conns.get(host.name)
                if conn is None:
                    conn = self._factory(host)
                    self._conns[host.name] = conn
        return conn

    def docker(self, host: "Host") -> Any:
        """The Docker API of the daemon a host's docker steps talk to (one per host)."""
        api = self._dockers.get(host.name)
        if api is None:
            with self._lock:
                api = self._dockers.get(host.name)
                if api is None:
                    factory = self._docker_factory
                    if factory is None:
                        from .docker_api import api_for
                        factory = api_for
                    api = factory(host)
                    self._dockers[host.name] = api
        return api

    def cancel_all(self) -> None:
        for conn in list(self._conns.values()):
            try:
                conn.cancel()
            except Exception:  # cancelling is best effort
                pass

    def close_all(self) -> None:
        with self._lock:
            conns = list(self._conns.values()) + list(self._dockers.values())
            self._conns.clear()
            self._dockers.clear()
        for conn in conns:
            try:
                conn.close()
            except Exception:  # closing is best effort
                pass
