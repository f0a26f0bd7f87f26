"""How to reach a Docker daemon: its address, one shared client per daemon, its errors.

``daemon_address(settings)`` picks the daemon: the host's ``docker_host`` if set
(``unix://``, ``tcp://`` with TLS from ``docker_tls_verify``/``docker_cert_path``,
``ssh://``), else ``ssh://user@address:port`` for an ``ssh`` host, else the local socket.
An ``ssh://`` daemon is reached through the SDK's paramiko transport (never
``use_ssh_client``), with the host's key_file, known_hosts and host_key_checking, not
~/.ssh/config.

One low-level ``APIClient`` is shared by every user of a daemon (reference counted).
``convert_error`` turns docker/requests/paramiko exceptions into engine errors: API
errors become ``StepFailed`` with the daemon's explanation, a daemon that cannot be
reached ``Unreachable`` (or ``AuthFailed``/``HostKeyError``/``ConnectTimeout``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
import paramiko
import requests
import urllib3
from docker.transport.sshconn import SSHHTTPAdapter

from ..errors import (ActionTimeout, AuthFailed, ConnectTimeout, HostKeyError, StepFailed,
                      Unreachable)

if TYPE_CHECKING:
    from ..inventory import ConnectionSettings

__all__ = ["DaemonAddress", "daemon_address", "LOCAL_SOCKET", "Daemon", "acquire_daemon",
           "release_daemon", "make_client", "THIRD_PARTY_ERRORS", "convert_error"]

LOCAL_SOCKET = "unix:///var/run/docker.sock"
API_TIMEOUT = 120           # seconds for one API call (pull/build stream longer)
MAX_POOL = 32               # parallel hosts share a daemon's connection pool


@dataclass(frozen=True)
class DaemonAddress:
    """Where a Docker daemon is and how to authenticate to it."""

    url: str
    tls_verify: bool = False
    cert_path: str | None = None
    key_file: str | None = None
    known_hosts: str | None = None
    host_key_checking: str = "strict"
    password: str | None = field(default=None, repr=False)
    connect_timeout: float = 10.0

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0] if "://" in self.url else "unix"

    @property
    def is_local_socket(self) -> bool:
        """A unix socket on this machine: exec'd processes can be signalled from here."""
        return self.scheme == "unix"


def daemon_address(settings: "ConnectionSettings") -> DaemonAddress:
    """The daemon for a host's connection settings (see the module docstring)."""
    def at(url: str) -> DaemonAddress:
        return DaemonAddress(url=url, tls_verify=bool(settings.docker_tls_verify),
                             cert_path=settings.docker_cert_path, key_file=settings.key_file,
                             known_hosts=settings.known_hosts,
                             host_key_checking=settings.host_key_checking or "strict",
                             password=settings.password,
                             connect_timeout=float(settings.connect_timeout))

    if settings.docker_host:
        url = settings.docker_host
        if url.startswith("ssh://"):
            parsed = urllib.parse.urlparse(url)
            if parsed.username is None and settings.user:
                url = f"ssh://{settings.user}@{parsed.netloc}"
        return at(url)
    if settings.kind == "ssh":
        host = settings.address or "localhost"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        user = f"{settings.user}@" if settings.user else ""
        return at(f"ssh://{user}{host}:{settings.port or 22}")
    return at(os.environ.get("DOCKER_HOST") or LOCAL_SOCKET)


# ---------------------------------------------------------------- shared clients

class Daemon:
    """One APIClient per daemon address, created on first use, shared by its users."""

    def __init__(self, address: DaemonAddress) -> None:
        self.address = address
        self.users = 0
        self.lock = threading.Lock()
        self.client: docker.APIClient | None = None
        self.has_timeout: dict[str, str] = {}   # container -> how its `timeout` takes seconds


_DAEMONS: dict[DaemonAddress, Daemon] = {}
_DAEMONS_LOCK = threading.Lock()


def acquire_daemon(address: DaemonAddress) -> Daemon:
    with _DAEMONS_LOCK:
        daemon = _DAEMONS.get(address)
        if daemon is None:
            daemon = _DAEMONS[address] = Daemon(address)
        daemon.users += 1
        return daemon


def release_daemon(daemon: Daemon) -> None:
    with _DAEMONS_LOCK:
        daemon.users -= 1
        if daemon.users > 0:
            return
        _DAEMONS.pop(daemon.address, None)
        client, daemon.client = daemon.client, None
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()


class _SSHAdapter(SSHHTTPAdapter):
    """The SDK's paramiko transport with the host's own SSH settings.

    The SDK's adapter reads ~/.ssh/config and the system known_hosts only; this one
    uses the inventory's key_file, known_hosts and host_key_checking, sets
    TCP_NODELAY, and reconnects when the SSH transport has died.
    """

    def __init__(self, address: DaemonAddress, timeout: float) -> None:
        self._address = address
        super().__init__(address.url, timeout, pool_connections=MAX_POOL,
                         max_pool_size=MAX_POOL, shell_out=False)

    def _create_paramiko_client(self, base_url: str) -> None:
        logging.getLogger("paramiko").setLevel(logging.WARNING)
        address = self._address
        parsed = urllib.parse.urlparse(base_url)
        client = paramiko.SSHClient()
        checking = address.host_key_checking
        if checking != "off":
            if address.known_hosts:
                if os.path.exists(address.known_hosts):
                    client.load_host_keys(address.known_hosts)
            else:
                client.load_system_host_keys()
        if checking == "strict":
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        self.ssh_client = client
        use_secret = bool(address.key_file or address.password)
        self.ssh_params = {
            "hostname": parsed.hostname, "port": parsed.port or 22,
            "username": parsed.username or None,
            "key_filename": os.path.expanduser(address.key_file) if address.key_file else None,
            "password": address.password, "look_for_keys": not use_secret,
            "allow_agent": not use_secret, "timeout": address.connect_timeout,
            "banner_timeout": address.connect_timeout, "auth_timeout": address.connect_timeout,
        }

    def _connect(self) -> None:
        params: dict[str, Any] = dict(self.ssh_params)
        sock = socket.create_connection((str(params["hostname"]), int(params["port"])),
                                        timeout=self._address.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.ssh_client.connect(sock=sock, **params)
        except BaseException:
            sock.close()
            raise
        transport = self.ssh_client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)
        if self._address.host_key_checking == "accept-new" and self._address.known_hosts:
            with contextlib.suppress(OSError):
                self.ssh_client.save_host_keys(self._address.known_hosts)

    def get_connection(self, url: str, proxies: Any = None) -> Any:
        transport = self.ssh_client.get_transport() if self.ssh_client else None
        if self.ssh_client is not None and (transport is None or not transport.is_active()):
            with self.pools.lock:
                self.pools.clear()
            self._connect()
        return super().get_connection(url, proxies)


def make_client(address: DaemonAddress) -> docker.APIClient:
    if address.scheme == "ssh":
        # mount our adapter on a client that has not talked to anything yet
        client = docker.APIClient(base_url=LOCAL_SOCKET, version="1.41", timeout=API_TIMEOUT,
                                  max_pool_size=MAX_POOL)
        unix_adapter = client.adapters.pop("http+docker://", None)
        if unix_adapter is not None:
            unix_adapter.close()
        adapter = _SSHAdapter(address, API_TIMEOUT)
        client._custom_adapter = adapter
        client.mount("http+docker://ssh", adapter)
        client.base_url = "http+docker://ssh"
        client._version = client.version(api_version=False)["ApiVersion"]
        return client
    tls: Any = False
    if address.scheme in ("tcp", "https") and (address.tls_verify or address.cert_path):
        from docker.tls import TLSConfig
        certs = os.path.expanduser(address.cert_path or "~/.docker")
        tls = TLSConfig(client_cert=(os.path.join(certs, "cert.pem"),
                                     os.path.join(certs, "key.pem")),
                        ca_cert=os.path.join(certs, "ca.pem") if address.tls_verify else None,
                        verify=address.tls_verify)
    return docker.APIClient(base_url=address.url, version="auto", timeout=API_TIMEOUT, tls=tls,
                            max_pool_size=MAX_POOL)


# ---------------------------------------------------------------- errors

#: what the SDK and its transports raise; anything else is a bug and is not converted
THIRD_PARTY_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException,
                      urllib3.exceptions.HTTPError, paramiko.SSHException, OSError, EOFError)
_CONNECTION_ERRORS = (requests.exceptions.ConnectionError, urllib3.exceptions.HTTPError,
                      ConnectionError, FileNotFoundError, socket.gaierror, EOFError)


def _changed_key(exc: "paramiko.BadHostKeyException", where: str, address: DaemonAddress,
                 host: str | None) -> Exception:
    """The same HOST KEY CHANGED message an ssh host gets: fingerprints, file, line."""
    from urllib.parse import urlparse

    from .known_hosts import fingerprint, read_known_hosts, rejection
    parsed = urlparse(address.url)
    hostname, port = parsed.hostname or exc.hostname, parsed.port or 22
    name = hostname if port == 22 else f"[{hostname}]:{port}"
    offered = f"{exc.key.get_name()} {fingerprint(exc.key.asbytes())}"
    lines = []
    if address.known_hosts:
        lines = [e for e in read_known_hosts(address.known_hosts)
                 if e.marker is None and e.matches(name)]
    if not lines:
        return HostKeyError(f"{where}: HOST KEY CHANGED: the server offers {offered}, which is "
                            f"not the key known for {name}", host=host,
                            hint="if the host was rebuilt, update known_hosts")
    return rejection("changed", lines, offered=offered, name=name,
                     known_hosts=address.known_hosts or "known_hosts", where=where,
                     host=host or hostname, address=hostname, port=port)


def convert_error(exc: BaseException, what: str, address: DaemonAddress,
                  host: str | None = None) -> Exception:
    """The engine error for a docker/requests/paramiko exception met while doing ``what``."""
    where = f"docker daemon {address.url}"
    if isinstance(exc, docker.errors.APIError):
        explanation = exc.explanation or str(exc)
        if isinstance(explanation, bytes):
            explanation = explanation.decode("utf-8", "replace")
        return StepFailed(f"{what}: {str(explanation).strip()}")
    if isinstance(exc, paramiko.BadHostKeyException):
        return _changed_key(exc, where, address, host)
    if isinstance(exc, paramiko.AuthenticationException):
        return AuthFailed(f"{where}: SSH authentication failed: {exc}", host=host,
                          hint="check user and key_file")
    if isinstance(exc, paramiko.SSHException) and "known_hosts" in str(exc):
        return HostKeyError(f"{where}: {exc}", host=host,
                            hint="add the host's key to known_hosts, or set "
                                 "host_key_checking: accept-new")
    if isinstance(exc, (requests.exceptions.ConnectTimeout, socket.timeout)) and \
            not isinstance(exc, requests.exceptions.ReadTimeout):
        return ConnectTimeout(f"{where} did not answer in time ({what})", host=host)
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return ActionTimeout(f"{what}: {where} did not answer within {API_TIMEOUT}s")
    if isinstance(exc, (paramiko.SSHException, *_CONNECTION_ERRORS, OSError)):
        return Unreachable(f"{where} is unreachable ({what}): {_reason(exc)}", host=host)
    if isinstance(exc, docker.errors.DockerException):
        cause = exc.__cause__ or exc.__context__
        if cause is not None and cause is not exc:
            converted = convert_error(cause, what, address, host)
            if not isinstance(converted, StepFailed) or isinstance(converted, ActionTimeout):
                return converted
        return StepFailed(f"{what}: {exc}")
    return StepFailed(f"{what}: {type(exc).__name__}: {exc}")


def _reason(exc: BaseException) -> str:
    """The innermost readable reason of a (possibly wrapped) connection error."""
    seen = exc
    for _ in range(6):
        inner = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        inner = inner or getattr(seen, "reason", None) or seen.__cause__
        if not isinstance(inner, BaseException) or inner is seen:
            break
        seen = inner
    text = str(seen) or type(seen).__name__
    if "Connection refused" in text or isinstance(seen, ConnectionRefusedError):
        return "connection refused"
    if isinstance(seen, FileNotFoundError) or "No such file" in text:
        return "socket not found (is dockerd running?)"
    return text
