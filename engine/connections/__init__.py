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


_quieted = False


def quiet_libraries() -> None:
    """Our warnings go to stderr; paramiko's and the docker SDK's log lines do not (their
    errors reach the user as ours).  Done once, when a remote connection is first made."""
    global _quieted
    if _quieted:
        return
    _quieted = True
    import logging
    ours = logging.getLogger("runbook")
    if not ours.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        ours.addHandler(handler)
        ours.setLevel(logging.WARNING)
        ours.propagate = False
    for name in ("paramiko", "docker", "urllib3"):
        quiet = logging.getLogger(name)
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False


def connect(host: "Host") -> Connection:
    """A new (not yet opened) connection for a host, by its connection kind."""
    kind = host.connection.kind
    if kind != "local":
        quiet_libraries()
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
        self._opening: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._factory = factory or connect
        self._docker_factory = docker_factory

    def prefetch(self, hosts: "list[Host]", workers: int) -> None:
        """Open the connections of these hosts in the background (SSH handshakes then
        overlap with the run's own start-up).  The first use of a host waits for its
        handshake and gets its error, if any, instead of connecting a second time."""
        from concurrent.futures import ThreadPoolExecutor
        remote = [h for h in hosts if h.connection.kind != "local"]
        if not remote:
            return
        executor = ThreadPoolExecutor(max_workers=max(1, min(workers, len(remote), 64)),
                                      thread_name_prefix="runbook-connect")
        for host in remote:
            conn = self.get(host)
            self._opening[host.name] = executor.submit(conn.open)
        executor.shutdown(wait=False)

    def get(self, host: "Host") -> Connection:
        opening = self._opening.pop(host.name, None) if self._opening else None
        if opening is not None:
            opening.result()          # raises the handshake's TargetError, once
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
                    quiet_libraries()
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
