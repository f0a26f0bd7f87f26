"""The ``ssh`` connection (paramiko): one transport per host, one channel per command.

The transport is opened lazily (TCP_NODELAY, keepalive), shared by every step and
thread that uses the host, re-opened if it died between commands, and closed at the
end.  Commands are exec'd as given (no login shell, no pty); their output is read
without threads or busy-waiting.  A timeout or cancel() closes the command's channel
and kills its remote process group (sshd "signal" request; root logins, which sshd
will not signal, report their pid first on stderr and get a ``kill`` instead).
Files go through one lazily opened SFTP session (``ssh_files``).
Host keys are checked against a known_hosts file (``strict``, ``accept-new`` or
``off``; ``known_hosts``).  paramiko and socket errors become TargetError subclasses here, naming the
host and address:port.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import shlex
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import paramiko
from paramiko.common import OPEN_FAILED_CONNECT_FAILED, cMSG_CHANNEL_REQUEST

from ..errors import (ActionTimeout, AuthFailed, ConnectTimeout, HostKeyError, Interrupted,
                      StepFailed, TargetError, Unreachable)
from .base import Become, CommandResult, Connection, quote_command
from .known_hosts import (KnownHost, add_known_host, check_host_key, fingerprint,
                          host_key_decision, parse_known_hosts, preferred_key_types,
                          read_known_hosts, rejection)
from .ssh_files import SshFiles

if TYPE_CHECKING:
    from ..inventory import ConnectionSettings

__all__ = ["SshConnection", "Hop", "KnownHost", "parse_proxy_jump", "remote_command_line",
           "fingerprint", "parse_known_hosts", "check_host_key", "host_key_decision",
           "connect_error"]

log = logging.getLogger("runbook.ssh")

KEEPALIVE_SECONDS = 15
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_IDENTITIES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
_READ_CHUNK = 1 << 22
_PID_TAG = b"runbook-pid:"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


# -- pure helpers (unit-tested without a server) ---------------------------------------

@dataclass(frozen=True)
class Hop:
    """One SSH server on the way to a host: a jump host or the target itself."""

    address: str
    port: int = 22
    user: str | None = None
    jump: bool = False

    @property
    def known_hosts_name(self) -> str:
        """The name OpenSSH files this server's key under in known_hosts."""
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"

    @property
    def endpoint(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


def parse_proxy_jump(value: str, default_user: str | None) -> list[Hop]:
    """``[user@]host[:port]`` (or several, comma-separated, first hop first)."""
    hops = []
    for part in value.split(","):
        part = part.strip()
        user, _, hostport = part.rpartition("@")
        match = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:\[\]]+)(?::(\d+))?", hostport)
        if not part or not match:
            raise ValueError(f"proxy_jump {value!r}: expected [user@]host[:port]")
        address = match.group(1) or match.group(3)
        port = int(match.group(2) or match.group(4) or 22)
        if not 0 < port < 65536:
            raise ValueError(f"proxy_jump {value!r}: port {port} out of range")
        hops.append(Hop(address, port, user or default_user, jump=True))
    return hops


def remote_command_line(command: str | Sequence[str], env: Mapping[str, str] | None = None,
                        cwd: str | None = None) -> str:
    """The line sshd hands to the user's shell: ``cd``/``export`` prefixes, then the command."""
    parts = []
    if cwd is not None:
        parts.append(f"cd {shlex.quote(cwd)} || exit 1")
    if env:
        for name in env:
            if not _ENV_NAME.match(name):
                raise StepFailed(f"invalid environment variable name {name!r}")
        parts.append("export " + " ".join(f"{name}={shlex.quote(str(value))}"
                                          for name, value in env.items()))
    parts.append(quote_command(command))
    return "; ".join(parts)


def connect_error(exc: BaseException, where: str, host: str, *, timed_out: bool,
                  timeout: float) -> TargetError:
    """The TargetError for a failure while connecting (TCP, handshake or auth)."""
    if isinstance(exc, TargetError):
        return exc
    if isinstance(exc, paramiko.AuthenticationException):
        if timed_out or "timeout" in str(exc).lower():
            return ConnectTimeout(f"{where}: no answer to authentication within {timeout:g}s",
                                  host=host)
        return AuthFailed(f"{where}: authentication failed: {exc}", host=host)
    if isinstance(exc, paramiko.ChannelException):
        return Unreachable(f"{where}: the jump host could not connect: {exc.text}", host=host)
    if isinstance(exc, socket.gaierror):
        return Unreachable(f"{where}: cannot resolve the address: {exc.strerror}", host=host)
    if isinstance(exc, (socket.timeout, TimeoutError)) or timed_out:
        return ConnectTimeout(f"{where}: no answer within {timeout:g}s", host=host)
    if isinstance(exc, ConnectionRefusedError):
        return Unreachable(f"{where}: connection refused", host=host)
    if isinstance(exc, OSError):
        return Unreachable(f"{where}: {exc.strerror or exc}", host=host)
    if isinstance(exc, EOFError) or "banner" in str(exc).lower():
        return Unreachable(f"{where}: the server closed the connection during the SSH "
                           f"handshake (not an SSH server, or it refused us)", host=host)
    return Unreachable(f"{where}: SSH handshake failed: {exc}", host=host)


# -- process-wide state: private keys are read once; "off" is warned about once --------

_files_lock = threading.Lock()
_key_cache: dict[str, tuple[int, paramiko.PKey]] = {}
_warned_off = False


def _load_key(path: str) -> paramiko.PKey:
    mtime = os.stat(path).st_mtime_ns
    with _files_lock:
        cached = _key_cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
    key = paramiko.PKey.from_path(path)
    with _files_lock:
        _key_cache[path] = (mtime, key)
    return key


class _Wake:
    """Stands in for the event paramiko sets when a channel buffer gets data or closes.

    Both buffers of a channel share one threading.Event; no pipe, no thread.  The
    stderr buffer wakes the reader only every ``every`` packets (enough to keep the
    channel window open): it is drained whenever stdout wakes the reader, and it
    closes together with stdout, so small stderr output costs no extra wake-up."""

    __slots__ = ("event", "every", "count")

    def __init__(self, event: threading.Event, every: int = 1) -> None:
        self.event = event
        self.every = every
        self.count = 0

    def set(self) -> None:
        self.count += 1
        if self.count >= self.every:
            self.count = 0
            self.event.set()

    def clear(self) -> None:
        pass


@dataclass(eq=False)
class _Running:
    """A command in flight; ``pid`` is its remote process group when reported (root)."""

    channel: paramiko.Channel
    reports_pid: bool = False
    pid: int | None = None
    cancelled: bool = False
    timed_out: bool = False


def _signal(channel: paramiko.Channel, name: str) -> None:
    """Ask sshd to signal the command's process group (RFC 4254 "signal"; OpenSSH >= 7.9)."""
    try:
        message = paramiko.Message()
        message.add_byte(cMSG_CHANNEL_REQUEST)
        message.add_int(channel.remote_chanid)
        message.add_string("signal")
        message.add_boolean(False)
        message.add_string(name)
        channel.transport._send_user_message(message)
    except Exception:  # best effort: the channel is closed right after anyway
        pass


# -- the connection -------------------------------------------------------------------

class SshConnection(SshFiles, Connection):
    """A host reached over SSH (paramiko); safe to use from several threads at once."""

    kind = "ssh"

    def __init__(self, host_name: str, settings: ConnectionSettings, *,
                 keepalive: int = KEEPALIVE_SECONDS, max_sessions: int = 10) -> None:
        super().__init__(host_name)
        if settings.host_key_checking not in ("strict", "accept-new", "off"):
            raise ValueError(f"host_key_checking {settings.host_key_checking!r}: expected "
                             "strict, accept-new or off")
        self.settings = settings
        self.user = settings.user or getpass.getuser()
        self.target = Hop(settings.address or host_name, settings.port or 22, self.user)
        self.hops = [*(parse_proxy_jump(settings.proxy_jump, self.user)
                       if settings.proxy_jump else []), self.target]
        self.known_hosts_file = os.path.expanduser(settings.known_hosts or DEFAULT_KNOWN_HOSTS)
        self.connect_timeout = float(settings.connect_timeout or 10.0)
        self.keepalive = keepalive
        self._transports: list[paramiko.Transport] = []    # jump hosts first, target last
        self._transport: paramiko.Transport | None = None
        self._open_lock = threading.Lock()
        self._sessions = threading.BoundedSemaphore(max(1, max_sessions - 1))  # 1 for SFTP
        self._running: set[_Running] = set()
        self._running_lock = threading.Lock()
        self._sftp: paramiko.SFTPClient | None = None
        self._sftp_lock = threading.Lock()
        self._names: tuple[dict[int, str], dict[int, str]] | None = None

    def __repr__(self) -> str:
        return f"SshConnection({self.host_name!r}, {self.user}@{self.target.endpoint})"

    def _where(self, hop: Hop | None = None) -> str:
        where = f"{self.host_name} ({self.target.endpoint})"
        if hop is not None and hop.jump:
            where += f" via jump host {hop.endpoint}"
        return where

    # -- life cycle ----------------------------------------------------------------------
    def open(self) -> None:
        self._ensure_open()

    def _ensure_open(self) -> paramiko.Transport:
        transport = self._transport
        if transport is not None and transport.is_active():
            return transport
        with self._open_lock:
            transport = self._transport
            if transport is not None and transport.is_active():
                return transport
            self._drop_transports()
            deadline = time.monotonic() + self.connect_timeout
            opened: list[paramiko.Transport] = []
            try:
                for hop in self.hops:
                    opened.append(self._connect_hop(hop, opened[-1] if opened else None,
                                                    deadline))
            except BaseException:
                for t in reversed(opened):
                    t.close()
                raise
            self._transports = opened
            self._transport = opened[-1]
            return opened[-1]

    def close(self) -> None:
        with self._open_lock:
            self._drop_transports()

    def _drop_transports(self) -> None:
        with self._sftp_lock:
            if self._sftp is not None:
                try:
                    self._sftp.close()
                except Exception:  # closing is best effort
                    pass
                self._sftp = None
            self._names = None
        for transport in reversed(self._transports):
            transport.close()
        self._transports = []
        self._transport = None

    def cancel(self) -> None:
        """SIGTERM and close every running command; the connection stays usable.

        Each run() wakes up, kills its command if sshd could not, and raises Interrupted."""
        with self._running_lock:
            running = list(self._running)
        for item in running:
            item.cancelled = True
            _signal(item.channel, "TERM")
            item.channel.close()

    def _kill_remote(self, pids: Sequence[int], signal_name: str) -> None:
        """Signal remote process groups with a kill command on a new channel.

        sshd refuses "signal" requests in root sessions (no privilege separation after
        a root login), so the shell of a root login reports its pid (= process group)
        on stderr first; _exchange strips that line."""
        transport = self._transport
        if not pids or transport is None or not transport.is_active():
            return
        groups = " ".join(f"-{pid}" for pid in pids)
        script = f"kill -{signal_name} -- {groups} 2>/dev/null; true"
        try:
            self._execute(script, None, 5.0, "kill timed-out commands", killable=False)
        except Exception as exc:  # best effort: the command's channel is closed already
            log.debug("%s: could not kill remote commands: %s", self.host_name, exc)

    # -- connecting ------------------------------------------------------------------------
    def _connect_hop(self, hop: Hop, via: paramiko.Transport | None,
                     deadline: float) -> paramiko.Transport:
        where = self._where(hop)
        sock: Any = None
        transport = None
        try:
            remaining = max(0.01, deadline - time.monotonic())
            if via is None:
                sock = socket.create_connection((hop.address, hop.port), timeout=remaining)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            else:
                sock = via.open_channel("direct-tcpip", (hop.address, hop.port),
                                        ("127.0.0.1", 0), timeout=remaining)
            transport = paramiko.Transport(sock)
            known = self._prefer_known_key_types(transport, hop)
            remaining = max(0.01, deadline - time.monotonic())
            transport.banner_timeout = remaining
            transport.handshake_timeout = remaining
            transport.auth_timeout = remaining
            transport.start_client(timeout=remaining)
            if not transport.is_active() or transport.host_key is None:
                raise socket.timeout("handshake timed out")
            self._check_host_key(transport.get_remote_server_key(), hop, known, where)
            self._authenticate(transport, hop, where)
            transport.set_keepalive(self.keepalive)
            return transport
        except BaseException as exc:
            if transport is not None:
                transport.close()
            if sock is not None:
                sock.close()
            if not isinstance(exc, Exception):
                raise
            raise connect_error(exc, where, self.host_name, timed_out=time.monotonic() >= deadline,
                                timeout=self.connect_timeout) from exc

    def _prefer_known_key_types(self, transport: paramiko.Transport,
                                hop: Hop) -> list[KnownHost]:
        """Ask for the key type known_hosts has (as OpenSSH does), so it can be compared."""
        if self.settings.host_key_checking == "off":
            return []
        try:
            entries = read_known_hosts(self.known_hosts_file)
        except OSError as exc:
            raise HostKeyError(f"{self._where(hop)}: cannot read {self.known_hosts_file}: "
                               f"{exc.strerror}", host=self.host_name) from exc
        wanted = preferred_key_types(entries, hop.known_hosts_name)
        if wanted:
            options = transport.get_security_options()
            available = list(options.key_types)
            first = [n for n in wanted if n in available]
            options.key_types = first + [n for n in available if n not in first]
        return entries

    def _check_host_key(self, key: paramiko.PKey, hop: Hop, entries: list[KnownHost],
                        where: str) -> None:
        global _warned_off
        policy = self.settings.host_key_checking
        name = hop.known_hosts_name
        if policy == "off":
            with _files_lock:
                first, _warned_off = not _warned_off, True
            if first:
                log.warning("host_key_checking is off: SSH host keys are not verified "
                            "(first seen: %s, %s)", where, fingerprint(key.asbytes()))
            return
        verdict, lines = check_host_key(entries, name, key.get_name(), key.get_base64())
        decision = host_key_decision(policy, verdict)
        offered = f"{key.get_name()} {fingerprint(key.asbytes())}"
        kh = self.known_hosts_file
        if decision == "accept":
            return
        if decision == "add":
            try:
                add_known_host(kh, name, key)
            except OSError as exc:
                raise HostKeyError(f"{where}: cannot add host key {offered} to {kh}: "
                                   f"{exc.strerror}", host=self.host_name) from exc
            log.info("%s: added host key %s to %s", where, offered, kh)
            return
        raise rejection(verdict, lines, offered=offered, name=name, known_hosts=kh,
                        where=where, host=self.host_name, address=hop.address, port=hop.port)

    def _authenticate(self, transport: paramiko.Transport, hop: Hop, where: str) -> None:
        user = hop.user or self.user
        password = self.settings.password
        tried: list[str] = []
        agent = None
        try:
            if self.settings.key_file:
                key_paths = [os.path.expanduser(self.settings.key_file)]
            else:
                key_paths = [] if password else \
                    [p for p in map(os.path.expanduser, DEFAULT_IDENTITIES) if os.path.exists(p)]
            keys: list[paramiko.PKey | str] = []       # agent keys, then key file paths
            if not self.settings.key_file and not password and os.environ.get("SSH_AUTH_SOCK"):
                try:
                    agent = paramiko.Agent()
                    keys += agent.get_keys()
                except paramiko.SSHException as exc:
                    log.debug("ssh agent not usable: %s", exc)
            keys += key_paths
            for candidate in keys:
                if isinstance(candidate, str):
                    key = self._key_file(candidate, where)
                    tried.append(f"key {candidate}")
                else:
                    key = candidate
                    tried.append(f"agent key {key.get_name()}")
                try:
                    transport.auth_publickey(user, key)
                except paramiko.BadAuthenticationType:
                    break
                except paramiko.AuthenticationException as exc:
                    if "timeout" in str(exc).lower():
                        raise
                    continue
                if transport.is_authenticated():
                    return
            if password is not None:
                tried.append("password")
                try:
                    transport.auth_password(user, password)
                except paramiko.AuthenticationException as exc:
                    if "timeout" in str(exc).lower():
                        raise
                if transport.is_authenticated():
                    return
        finally:
            if agent is not None:
                agent.close()
        raise AuthFailed(f"{where}: authentication failed for user {user} (tried: "
                         f"{', '.join(tried) or 'nothing: no key_file, agent or password'})",
                         host=self.host_name,
                         hint="check user, key_file and password of this host")

    def _key_file(self, path: str, where: str) -> paramiko.PKey:
        try:
            return _load_key(path)
        except FileNotFoundError:
            raise AuthFailed(f"{where}: key file {path} does not exist",
                             host=self.host_name) from None
        except Exception as exc:
            raise AuthFailed(f"{where}: cannot load key file {path}: {exc}", host=self.host_name,
                             hint="an encrypted key must be loaded into ssh-agent") from exc

    # -- commands --------------------------------------------------------------------------
    def run(self, command: str | Sequence[str], *, stdin: bytes | None = None,
            timeout: float | None = None, env: Mapping[str, str] | None = None,
            cwd: str | None = None, become: Become | None = None) -> CommandResult:
        shown = quote_command(command)
        line = remote_command_line(command, env, cwd)
        if become is not None:
            line, password = become.wrap(line)
            if password is not None:
                stdin = password + (stdin or b"")
        code, out, err, duration = self._execute(line, stdin, timeout, shown)
        return CommandResult(shown, code, out.decode("utf-8", "replace"),
                             err.decode("utf-8", "replace"), duration)

    def _execute(self, line: str, stdin: bytes | None, timeout: float | None, shown: str,
                 *, killable: bool = True) -> tuple[int, bytes, bytes, float]:
        start = time.perf_counter()
        reports_pid = killable and self.user == "root"
        if reports_pid:                 # a shell builtin: the command is still exec'd
            line = f"echo {_PID_TAG.decode()}$$ >&2; {line}"
        running: _Running | None = None
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._sessions.acquire(timeout=None if timeout is None else max(0.0, timeout)):
            raise ActionTimeout(f"command timed out after {timeout:.3g}s (waiting for a free "
                                f"SSH session): {shown}", result=None)
        try:
            transport = self._ensure_open()
            try:
                channel = transport.open_session(timeout=self.connect_timeout)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise self._lost(transport, exc, shown) from exc
            running = _Running(channel, reports_pid)
            with self._running_lock:
                self._running.add(running)
            try:
                out, err = self._exchange(running, line, stdin, timeout, deadline, transport,
                                          shown)
                if deadline is not None:
                    channel.status_event.wait(max(0.0, deadline - time.monotonic()))
                    if not channel.status_event.is_set():
                        self._timed_out(running, timeout, shown)
                else:
                    channel.status_event.wait()
                code = channel.exit_status
                if code == -1:
                    if running.cancelled:
                        raise Interrupted(f"command cancelled: {shown}")
                    if not transport.is_active():
                        raise self._lost(transport, None, shown)
                    code = 255
                    err += b"\n(the command ended without an exit status: killed by a signal?)\n"
            finally:
                with self._running_lock:
                    self._running.discard(running)
                channel.close()
        finally:
            self._sessions.release()
            if running is not None and running.pid and (running.timed_out or running.cancelled):
                self._kill_remote([running.pid], "KILL" if running.timed_out else "TERM")
        return code, out, err, time.perf_counter() - start

    def _exchange(self, running: _Running, line: str, stdin: bytes | None,
                  timeout: float | None, deadline: float | None,
                  transport: paramiko.Transport, shown: str) -> tuple[bytes, bytes]:
        """Start the command, feed stdin, read both streams interleaved until EOF."""
        channel = running.channel
        wake = threading.Event()
        channel.in_buffer.set_event(_Wake(wake))
        channel.in_stderr_buffer.set_event(_Wake(wake, every=8))
        try:
            channel.exec_command(line)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise self._lost(transport, exc, shown) from exc
        pending = stdin or b""
        if not pending:
            channel.shutdown_write()
        out: list[bytes] = []
        err: list[bytes] = []
        while True:
            wake.clear()
            ended = channel.eof_received or channel.closed
            while channel.recv_ready():
                out.append(channel.recv(_READ_CHUNK))
            while channel.recv_stderr_ready():
                err.append(channel.recv_stderr(_READ_CHUNK))
            if running.reports_pid and err:
                err = self._take_pid(running, err, ended)
            if ended:
                return b"".join(out), b"".join(err)
            if pending and channel.send_ready():
                try:
                    sent = channel.send(pending[:1 << 18])
                except OSError:      # the command exited without reading all of it
                    sent, pending = 0, b""
                pending = pending[sent:] if sent else b""
                if not pending and not channel.closed:
                    channel.shutdown_write()
                continue
            wait = 0.01 if pending else 1.0
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._timed_out(running, timeout, shown)
                wait = min(wait, left)
            if not wake.wait(wait) and not transport.is_active():
                raise self._lost(transport, None, shown)

    @staticmethod
    def _take_pid(running: _Running, err: list[bytes], ended: bool) -> list[bytes]:
        """Strip the ``runbook-pid:N`` line the shell wrote first on stderr."""
        data = b"".join(err)
        first, newline, rest = data.partition(b"\n")
        if not newline and not ended:
            return [data]                               # the line is not complete yet
        running.reports_pid = False
        if newline and first.startswith(_PID_TAG) and first[len(_PID_TAG):].isdigit():
            running.pid = int(first[len(_PID_TAG):])
            return [rest]
        return [data]

    def _timed_out(self, running: _Running, timeout: float | None, shown: str) -> None:
        running.timed_out = True
        channel = running.channel
        _signal(channel, "KILL")
        if running.reports_pid:         # stderr alone does not wake the reader: look now
            err = []
            while channel.recv_stderr_ready():
                err.append(channel.recv_stderr(_READ_CHUNK))
            if err:
                self._take_pid(running, err, True)
        channel.close()
        raise ActionTimeout(f"command timed out after {timeout or 0:.3g}s: {shown}", result=None)

    def _lost(self, transport: paramiko.Transport, exc: BaseException | None,
              shown: str) -> TargetError:
        if isinstance(exc, paramiko.ChannelException):
            return Unreachable(f"{self._where()}: the server refused a new session "
                               f"({exc.text}; MaxSessions?)", host=self.host_name)
        reason = f": {exc}" if exc is not None and str(exc) else ""
        state = "connection lost" if not transport.is_active() else "channel failed"
        return Unreachable(f"{self._where()}: {state} while running: {shown}{reason}",
                           host=self.host_name)

    def probe_tcp(self, host: str, port: int, timeout: float = 1.0) -> bool:
        """A direct-tcpip channel from the target to host:port, closed at once."""
        transport = self._ensure_open()
        try:
            channel = transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0),
                                             timeout=timeout)
        except paramiko.ChannelException as exc:
            if exc.code == OPEN_FAILED_CONNECT_FAILED:
                return False
            return super().probe_tcp(host, port, timeout)   # forwarding refused by sshd
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if not transport.is_active():
                raise self._lost(transport, exc, f"probe {host}:{port}") from exc
            return False                                    # no answer within timeout
        channel.close()
        return True
