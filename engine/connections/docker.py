"""The ``docker`` connection: commands and files inside a running container.

Commands run with the Engine API's exec (create, start attached, inspect: the same
three calls as the SDK's ``exec_run``) on the daemon's shared client (docker_api.py).
A string runs under ``/bin/sh -c``; an argv list runs as it is.  ``env``, ``cwd`` and
``become`` (as ``user=``: the daemon needs no sudo) are exec options; stdin is written
to the attached stream, then half-closed.

Timeouts: with a local daemon socket the exec'd process group (runc makes each exec a
session leader) is killed from here; with a remote daemon the command runs under the
image's ``timeout -s KILL`` when it has one.  Either way ``ActionTimeout`` is raised.

Files move as tar archives (``put_archive``/``get_archive``): binary-safe, with modes;
a write lands under a temporary name and is renamed into place.  A container that does
not exist or is not running, or that dies during a command, is ``Unreachable``.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import posixpath
import secrets
import signal
import socket
import struct
import tarfile
import threading
import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import docker.errors
import paramiko

from ..errors import ActionTimeout, RunbookError, StepFailed, Unreachable
from .base import Become, CommandResult, Connection, FileStat, parse_stat_output, quote_command
from .docker_api import (THIRD_PARTY_ERRORS, DaemonAddress, DockerApi, convert_error,
                         daemon_address)

if TYPE_CHECKING:
    from ..inventory import ConnectionSettings

__all__ = ["DockerConnection", "exec_command"]

KILL_GRACE = 2.0        # seconds to collect output after a timed-out command was killed
_STAT_SCRIPT = ('p="$1"; if [ ! -e "$p" ] && [ ! -L "$p" ]; then echo missing; exit 0; fi; '
                'stat -c "%F|%a|%s|%U|%G" "$p"; if [ -L "$p" ]; then readlink "$p"; fi')
_PROBE_SCRIPT = (
    'h="$1"; p="$2"; t="$3"; '
    'if command -v bash >/dev/null 2>&1; then '
    'exec timeout "$t" bash -c "exec 3<>/dev/tcp/$h/$p" 2>/dev/null; fi; '
    'if command -v python3 >/dev/null 2>&1; then exec python3 -c "import socket,sys; '
    'socket.create_connection((sys.argv[1], int(sys.argv[2])), float(sys.argv[3]))" '
    '"$h" "$p" "$t" 2>/dev/null; fi; '
    'if nc -h 2>&1 | grep -q -- " -z"; then exec nc -z -w "$t" "$h" "$p"; fi; '
    'exec nc -w "$t" "$h" "$p" </dev/null >/dev/null 2>&1')
# Go's os.FileMode bits in the daemon's path stat
_GO_DIR, _GO_SYMLINK = 1 << 31, 1 << 27
_GO_SETUID, _GO_SETGID, _GO_STICKY = 1 << 23, 1 << 22, 1 << 20


class _Expired(Exception):
    """The read deadline passed."""


class _Stream:
    """The hijacked connection of an attached exec: frames out, stdin in."""

    def __init__(self, raw: Any) -> None:
        self.response = getattr(raw, "_response", None)
        # unix/tcp: the socket under a SocketIO; TLS: an SSLSocket; ssh: a paramiko Channel
        self.sock: Any = getattr(raw, "_sock", raw) if isinstance(raw, socket.SocketIO) else raw
        self.is_channel = isinstance(self.sock, paramiko.Channel)
        self.pending = self._buffered()

    def _buffered(self) -> bytes:
        """Bytes the HTTP parser read past the 101 response (they belong to the stream)."""
        fp = getattr(getattr(getattr(self.response, "raw", None), "_fp", None), "fp", None)
        if fp is None:
            return b""
        if self.is_channel:
            data = bytes(getattr(fp, "_rbuffer", b"") or b"")
            if data:
                fp._rbuffer = bytes()
            return data
        if not isinstance(fp, io.BufferedReader):
            return b""
        try:
            self.sock.setblocking(False)
            try:
                return fp.read1(1 << 16) or b""
            finally:
                self.sock.setblocking(True)
        except (OSError, ValueError):
            return b""

    def recv(self, deadline: float | None) -> bytes:
        if self.pending:
            data, self.pending = self.pending, b""
            return data
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise _Expired()
        self.sock.settimeout(remaining)
        try:
            return self.sock.recv(1 << 16)
        except socket.timeout:
            raise _Expired() from None

    def send_stdin(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except (OSError, EOFError):
            return      # the command exited without reading everything
        finally:
            try:
                if self.is_channel:
                    self.sock.shutdown_write()
                else:
                    socket.socket.shutdown(self.sock, socket.SHUT_WR)
            except (OSError, EOFError):
                pass

    def abort(self) -> None:
        """Wake up a reader blocked in recv (from another thread)."""
        try:
            if self.is_channel:
                self.sock.close()
            else:
                socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        except (OSError, EOFError):
            pass

    def close(self) -> None:
        for closer in (getattr(self.response, "close", None), getattr(self.sock, "close", None)):
            if closer is not None:
                try:
                    closer()
                except Exception:  # closing is best effort
                    pass


class _Frames:
    """Demultiplexes the exec stream (8-byte headers: stream id, length)."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.err = bytearray()
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> None:
        buf = self._buf
        buf += chunk
        pos = 0
        while len(buf) - pos >= 8:
            kind, length = struct.unpack_from(">BxxxL", buf, pos)
            if len(buf) - pos - 8 < length:
                break
            (self.err if kind == 2 else self.out).extend(buf[pos + 8:pos + 8 + length])
            pos += 8 + length
        if pos:
            del buf[:pos]


class _Running:
    """An exec in progress, so that cancel() can reach it."""

    def __init__(self, api: DockerApi, exec_id: str, stream: _Stream) -> None:
        self.api = api
        self.exec_id = exec_id
        self.stream = stream
        self.cancelled = False

    def kill(self) -> bool:
        return _kill_exec(self.api, self.exec_id)


#: after the output stream ends, how long the exec may still be reported running before
#: the stream counts as lost (a normal exit is seen within milliseconds)
STREAM_LOST_AFTER = 1.5


def exec_command(api: DockerApi, container: str, command: str | Sequence[str], *,
                 stdin: bytes | None = None, timeout: float | None = None,
                 env: Mapping[str, str] | None = None, workdir: str | None = None,
                 user: str | None = None, tracker: "set[_Running] | None" = None
                 ) -> CommandResult:
    """Run a command in a container to completion (see the module docstring)."""
    shown = quote_command(command)
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else \
        [str(part) for part in command]
    kill_here = _can_kill_locally(api.address)
    grace = 0.0
    if timeout is not None and not kill_here:
        wrapper = _timeout_wrapper(api, container, timeout)
        if wrapper:
            argv = [*wrapper, *argv]
            grace = KILL_GRACE
    client = api.client
    start = time.perf_counter()
    with _container_errors(api, container, shown):
        exec_id = client.exec_create(container, argv, stdin=stdin is not None, user=user or "",
                                     environment=dict(env) if env else None,
                                     workdir=workdir)["Id"]
        stream = _Stream(client.exec_start(exec_id, socket=True))
    running = _Running(api, exec_id, stream)
    if tracker is not None:
        tracker.add(running)
    frames = _Frames()
    timed_out = False
    deadline = None if timeout is None else time.monotonic() + timeout + grace
    try:
        if stdin is not None:
            threading.Thread(target=stream.send_stdin, args=(stdin,), daemon=True,
                             name="runbook-docker-stdin").start()
        while True:
            try:
                chunk = stream.recv(deadline)
            except _Expired:
                if timed_out:
                    break
                timed_out = True
                if not running.kill():
                    break
                deadline = time.monotonic() + KILL_GRACE
                continue
            if not chunk:
                break
            frames.feed(chunk)
    except (OSError, EOFError, paramiko.SSHException) as exc:
        if running.cancelled:
            raise StepFailed(f"command cancelled: {shown}") from None
        _raise_if_container_gone(api, container, shown)
        raise Unreachable(f"lost the stream of a command in container {container} "
                          f"({api.address.url}): {exc}", host=api.host_name) from exc
    finally:
        stream.close()
        if tracker is not None:
            tracker.discard(running)
    if running.cancelled:
        raise StepFailed(f"command cancelled: {shown}")
    if timed_out:
        code = _exit_code(api, exec_id, time.monotonic() + 1)
    else:
        # the stream ended: the command has exited, unless the stream itself was lost
        # (an ssh:// daemon whose connection died): then the exec is still running
        code = _exit_code(api, exec_id, min(deadline or float("inf"),
                                            time.monotonic() + STREAM_LOST_AFTER))
        if code is None and (deadline is None or time.monotonic() < deadline):
            _raise_if_container_gone(api, container, shown)
            raise Unreachable(f"lost the stream of a command in container {container} "
                              f"({api.address.url}): it ended while the command still runs",
                              host=api.host_name)
    duration = time.perf_counter() - start
    if timeout is not None and (timed_out or (grace and duration >= timeout and
                                              code in (None, 124, 137))):
        raise ActionTimeout(f"command timed out after {timeout:.3g}s: {shown}", result=None)
    out = frames.out.decode("utf-8", "replace")
    err = frames.err.decode("utf-8", "replace")
    if code is None or code >= 128:
        _raise_if_container_gone(api, container, shown, code)
    if code in (126, 127) and "OCI runtime exec failed" in out + err:
        out, err, code = _oci_failure(out + err, argv, workdir, code)
    return CommandResult(shown, -1 if code is None else code, out, err, duration)


def _exit_code(api: DockerApi, exec_id: str, deadline: float | None) -> int | None:
    """The exec's exit code; waits while the daemon still reports it running."""
    pause = 0.002
    while True:
        with api.errors("inspect exec"):
            info = api.client.exec_inspect(exec_id)
        if not info.get("Running"):
            code = info.get("ExitCode")
            return None if code is None else int(code)
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def _oci_failure(text: str, argv: list[str], workdir: str | None,
                 code: int) -> tuple[str, str, int]:
    """The runtime's own failure (no such program, no such cwd) as a shell would say it."""
    if workdir and "chdir to cwd" in text:
        return "", f"chdir: {workdir}: no such directory\n", 1
    if "executable file not found" in text or "no such file or directory" in text:
        return "", f"{argv[0]}: command not found\n", 127
    return "", text, code


class _container_errors:
    """Exec API errors: a missing or stopped container is Unreachable, the rest converted."""

    def __init__(self, api: DockerApi, container: str, what: str) -> None:
        self.api, self.container, self.what = api, container, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or isinstance(exc, RunbookError) or \
                not isinstance(exc, THIRD_PARTY_ERRORS):
            return
        where = f"{self.api.address.url}, host {self.api.host_name}" if self.api.host_name \
            else self.api.address.url
        if isinstance(exc, docker.errors.NotFound):
            raise Unreachable(f"container {self.container} does not exist ({where})",
                              host=self.api.host_name) from exc
        if isinstance(exc, docker.errors.APIError) and exc.status_code == 409:
            raise Unreachable(f"container {self.container} is not running ({where}): "
                              f"{exc.explanation}", host=self.api.host_name) from exc
        raise convert_error(exc, f"exec in {self.container}: {self.what}", self.api.address,
                            self.api.host_name) from exc


def _raise_if_container_gone(api: DockerApi, container: str, shown: str,
                             code: int | None = None, settle: float = 0.5) -> None:
    """Unreachable when the container died; the daemon takes a moment to notice, so a
    container still 'running' is looked at again for up to ``settle`` seconds."""
    deadline = time.monotonic() + settle
    while True:
        info = api.container(container)
        state = (info or {}).get("State") or {}
        if info is None or not state.get("Running") or state.get("Restarting") or \
                time.monotonic() >= deadline:
            break
        time.sleep(0.025)
    if info is None or not state.get("Running") or state.get("Restarting"):
        status = "was removed" if info is None else \
            f"stopped (status {state.get('Status')}, exit code {state.get('ExitCode')})"
        raise Unreachable(f"container {container} {status} during the command: {shown}"
                          + (f" (command exit code {code})" if code is not None else ""),
                          host=api.host_name)


def _can_kill_locally(address: DaemonAddress) -> bool:
    return address.is_local_socket and hasattr(os, "killpg") and os.geteuid() == 0


def _kill_exec(api: DockerApi, exec_id: str) -> bool:
    """SIGKILL an exec's process group from this machine (local daemon only)."""
    if not _can_kill_locally(api.address):
        return False
    try:
        with api.errors("inspect exec"):
            info = api.client.exec_inspect(exec_id)
    except RunbookError:
        return False
    pid, container_id = int(info.get("Pid") or 0), str(info.get("ContainerID") or "")
    if pid <= 1 or not container_id:
        return False
    try:        # same pid namespace as the daemon?  The process must be in the container
        with open(f"/proc/{pid}/cgroup") as f:
            if container_id not in f.read():
                return False
        os.killpg(pid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        return False
    return True


def _timeout_wrapper(api: DockerApi, container: str, timeout: float) -> list[str]:
    """``timeout -s KILL N`` when the container has a timeout program, else []."""
    cache = api._daemon.has_timeout
    style = cache.get(container)
    if style is None:
        style = ""
        for candidate in ("float", "int"):
            probe = exec_command(api, container, ["timeout", "-s", "KILL",
                                                  "5.0" if candidate == "float" else "5",
                                                  "true"])
            if probe.ok:
                style = candidate
                break
            if probe.exit_code == 127:
                break
        cache[container] = style
    if not style:
        return []
    seconds = f"{max(timeout, 0.001):.3f}" if style == "float" else str(max(1, math.ceil(timeout)))
    return ["timeout", "-s", "KILL", seconds]


class DockerConnection(Connection):
    """Runs commands and moves files inside one container (``settings.container``)."""

    kind = "docker"

    def __init__(self, host_name: str, settings: "ConnectionSettings | None" = None) -> None:
        super().__init__(host_name)
        if settings is None:
            from ..inventory import ConnectionSettings
            settings = ConnectionSettings(kind="docker")
        self.container = settings.container or settings.address or host_name
        self.address = daemon_address(settings)
        self._api: DockerApi | None = None
        self._running: set[_Running] = set()
        self._no_mv = False

    @property
    def api(self) -> DockerApi:
        if self._api is None:
            with self._lock:
                if self._api is None:
                    self._api = DockerApi(self.address, host_name=self.host_name)
        return self._api

    # -- life cycle
    def open(self) -> None:
        info = self.api.container(self.container)
        if info is None:
            raise Unreachable(f"container {self.container} does not exist "
                              f"({self.address.url}, host {self.host_name})", host=self.host_name)
        if not (info.get("State") or {}).get("Running"):
            raise Unreachable(f"container {self.container} is not running "
                              f"({self.address.url}, host {self.host_name})", host=self.host_name)

    def close(self) -> None:
        api, self._api = self._api, None
        if api is not None:
            api.close()

    def cancel(self) -> None:
        for running in list(self._running):
            running.cancelled = True
            running.kill()
            running.stream.abort()

    # -- commands
    def run(self, command: str | Sequence[str], *, stdin: bytes | None = None,
            timeout: float | None = None, env: Mapping[str, str] | None = None,
            cwd: str | None = None, become: Become | None = None) -> CommandResult:
        return exec_command(self.api, self.container, command, stdin=stdin, timeout=timeout,
                            env=env, workdir=cwd, user=become.user if become else None,
                            tracker=self._running)

    # -- files
    def put(self, src: str, dest: str, *, mode: int | None = None) -> None:
        try:
            with open(src, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise StepFailed(f"cannot read {src}: {exc.strerror}") from None
        self.put_bytes(data, dest, mode=mode)

    def put_bytes(self, data: bytes, dest: str, *, mode: int | None = None) -> None:
        dest = posixpath.join("/", dest)
        folder, name = posixpath.split(dest)
        if not name:
            raise StepFailed(f"cannot write {dest}: it names a folder")
        temp = name if self._no_mv else f".runbook-{secrets.token_hex(4)}-{name}"[:255]
        self._put_archive(folder, _tar_one(temp, data, 0o644 if mode is None else mode), dest)
        if temp == name:
            return
        moved = self.run(["mv", "-f", "--", posixpath.join(folder, temp), dest])
        if moved.ok:
            return
        if moved.exit_code in (126, 127):     # no mv in this image: write in place
            self._no_mv = True
            self._put_archive(folder, _tar_one(name, data, 0o644 if mode is None else mode),
                              dest)
            return
        raise StepFailed(f"cannot write {dest} in container {self.container}: "
                         f"{moved.tail(3) or f'mv exit code {moved.exit_code}'}")

    def _put_archive(self, folder: str, archive: bytes, dest: str) -> None:
        try:
            self.api.put_archive(self.container, folder, archive)
        except StepFailed as exc:
            text = exc.message.lower()
            if "no such container" in text:
                raise Unreachable(f"container {self.container} does not exist "
                                  f"({self.address.url})", host=self.host_name) from None
            if "could not find" in text or "no such file" in text or "not found" in text:
                raise StepFailed(f"cannot write {dest}: folder {folder} does not exist") \
                    from None
            if "not a directory" in text:
                raise StepFailed(f"cannot write {dest}: {folder} is not a directory") from None
            raise

    def get(self, src: str, dest: str) -> None:
        data = self.read_bytes(src)
        if data is None:
            raise StepFailed(f"cannot copy {src}: no such file in container {self.container}")
        with open(dest, "wb") as f:
            f.write(data)

    def read_bytes(self, path: str) -> bytes | None:
        path = posixpath.join("/", path)
        for _ in range(8):          # follow symlinks, as open() would
            try:
                archive = self.api.get_archive(self.container, path)
            except StepFailed as exc:
                if "no such container" in exc.message.lower():
                    raise Unreachable(f"container {self.container} does not exist "
                                      f"({self.address.url})", host=self.host_name) from None
                raise
            if archive is None:
                return None
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                member = tar.next()
                if member is None:
                    return None
                if member.isdir():
                    raise StepFailed(f"{path} is a directory")
                if member.issym():
                    path = posixpath.normpath(posixpath.join(posixpath.dirname(path),
                                                             member.linkname))
                    continue
                handle = tar.extractfile(member)
                return handle.read() if handle is not None else b""
        raise StepFailed(f"{path}: too many levels of symbolic links")

    def stat(self, path: str) -> FileStat:
        result = self.run(["sh", "-c", _STAT_SCRIPT, "sh", path])
        if result.exit_code in (126, 127) and not result.stdout:
            return self._stat_via_api(path)      # no shell or no stat in this image
        return parse_stat_output(result.stdout)

    def _stat_via_api(self, path: str) -> FileStat:
        info = self.api.path_stat(self.container, posixpath.join("/", path))
        if info is None:
            return FileStat(exists=False)
        go_mode = int(info.get("mode") or 0)
        mode = go_mode & 0o777
        mode |= (0o4000 if go_mode & _GO_SETUID else 0) | (0o2000 if go_mode & _GO_SETGID else 0)
        mode |= 0o1000 if go_mode & _GO_STICKY else 0
        is_link = bool(go_mode & _GO_SYMLINK)
        return FileStat(exists=True, is_dir=bool(go_mode & _GO_DIR), is_link=is_link, mode=mode,
                        size=int(info.get("size") or 0),
                        link_target=info.get("linkTarget") or None if is_link else None)

    def checksum(self, path: str) -> str | None:
        result = self.run(["sh", "-c", 'test -f "$1" || exit 3; sha256sum "$1"', "sh", path])
        if result.exit_code == 3:
            return None
        if result.ok and result.stdout.strip():
            return result.stdout.split()[0]
        data = self.read_bytes(path)             # no shell or no sha256sum here
        return None if data is None else hashlib.sha256(data).hexdigest()

    def probe_tcp(self, host: str, port: int, timeout: float = 1.0) -> bool:
        seconds = str(max(1, int(timeout + 0.999)))
        result = self.run(["sh", "-c", _PROBE_SCRIPT, "sh", host, str(port), seconds],
                          timeout=timeout + 5)
        return result.ok


def _tar_one(name: str, data: bytes, mode: int) -> bytes:
    """A tar archive holding one regular file."""
    buf = io.BytesIO()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = int(time.time())
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
