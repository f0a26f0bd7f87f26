"""Connections to targets.  ``ConnectionPool`` keeps one per host for a whole run.

The ssh and docker modules (and so paramiko and the docker SDK) are imported only
when a host needs them.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

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
    """One connection per host, created on first use, closed together at the end."""

    def __init__(self) -> None:
        self._conns: dict[str, Connection] = {}
        self._lock = threading.Lock()

    def get(self, host: "Host") -> Connection:
        conn = self._conns.get(host.name)
        if conn is None:
            with self._lock:
                conn = self._conns.get(host.name)
                if conn is None:
                    conn = connect(host)
                    self._conns[host.name] = conn
        return conn

    def cancel_all(self) -> None:
        for conn in list(self._conns.values()):
            try:
                conn.cancel()
            except Exception:  # cancelling is best effort
                pass

    def close_all(self) -> None:
        with self._lock:
            conns = list(self._conns.values())
            self._conns.clear()
        for conn in conns:
            try:
                conn.close()
            except Exception:  # closing is best effort
                pass
