"""The Connection interface every target type implements, and CommandResult.

A connection runs commands and moves files on one host.  It is opened lazily on
first use, shared by all steps of a run on that host, and closed at the end.
Commands are either a string (run by ``/bin/sh -c``) or an argv list (no shell, so
templated values cannot inject anything).  File helpers (``read_file``,
``write_file``, ``stat``) have default implementations in terms of ``run`` and
``put`` so actions never care what kind of target they talk to; a connection may
override them with something faster.
"""

from __future__ import annotations

import hashlib
import shlex
import threading
from dataclasses import dataclass
from typing import Mapping, Sequence

__all__ = ["CommandResult", "FileStat", "Connection", "Become", "quote_command"]

@dataclass(frozen=True, slots=True)
class CommandResult:
    """What one command left: exit code, output, how long it took."""

    command: str
    exit_code: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def tail(self, lines: int = 10, stream: str = "stderr") -> str:
        text = self.stderr if stream == "stderr" else self.stdout
        return "\n".join(text.rstrip("\n").splitlines()[-lines:])


@dataclass(frozen=True, slots=True)
class FileStat:
    """What actions need to know about a path on a target."""

    exists: bool
    is_dir: bool = False
    is_link: bool = False
    mode: int | None = None          # permission bits, e.g. 0o644
    size: int | None = None
    owner: str | None = None
    group: str | None = None
    link_target: str | None = None


@dataclass(frozen=True, slots=True)
class Become:
    """Run a command as another user through sudo."""

    user: str = "root"
    password: str | None = None

    def wrap(self, command: str) -> tuple[str, bytes | None]:
        """The sudo command line and the bytes to feed its stdin (the password)."""
        if self.password is None:
            return f"sudo -n -u {shlex.quote(self.user)} -- /bin/sh -c {shlex.quote(command)}", None
        return (f"sudo -S -p '' -u {shlex.quote(self.user)} -- /bin/sh -c {shlex.quote(command)}",
                (self.password + "\n").encode())


def quote_command(command: str | Sequence[str]) -> str:
    """A command as one shell string; argv lists are quoted word by word."""
    if isinstance(command, str):
        return command
    return shlex.join(str(part) for part in command)


class Connection:
    """Base class of local, ssh and docker connections."""

    #: "local", "ssh", "docker"
    kind: str = "base"

    def __init__(self, host_name: str) -> None:
        self.host_name = host_name
        self._lock = threading.Lock()

    # -- life cycle -------------------------------------------------------------
    def open(self) -> None:
        """Connect now (normally done lazily by the first call)."""

    def close(self) -> None:
        """Release the connection; safe to call twice."""

    def cancel(self) -> None:
        """Interrupt commands running now (Ctrl-C); they end with an error soon after."""

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands ---------------------------------------------------------------
    def run(self, command: str | Sequence[str], *, stdin: bytes | None = None,
            timeout: float | None = None, env: Mapping[str, str] | None = None,
            cwd: str | None = None, become: Become | None = None) -> CommandResult:
        """Run a command to completion.  A string goes to ``/bin/sh -c``; a list is argv.

        Raises ``ActionTimeout`` after ``timeout`` seconds (the command is killed) and
        ``TargetError`` subclasses when the host cannot be reached.
        """
        raise NotImplementedError

    # -- files ------------------------------------------------------------------
    def put(self, src: str, dest: str, *, mode: int | None = None) -> None:
        """Copy a local file to the target."""
        raise NotImplementedError

    def get(self, src: str, dest: str) -> None:
        """Copy a file from the target to a local path."""
        raise NotImplementedError

    def put_bytes(self, data: bytes, dest: str, *, mode: int | None = None) -> None:
        """Write bytes to a file on the target (atomically where the target allows)."""
        import os
        import tempfile
        fd, tmp = tempfile.mkstemp(prefix="runbook-put-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            self.put(tmp, dest, mode=mode)
        finally:
            os.unlink(tmp)

    def read_bytes(self, path: str) -> bytes | None:
        """A file's content, or None when it does not exist."""
        import os
        import tempfile
        if not self.stat(path).exists:
            return None
        fd, tmp = tempfile.mkstemp(prefix="runbook-get-")
        os.close(fd)
        try:
            self.get(path, tmp)
            with open(tmp, "rb") as f:
                return f.read()
        finally:
            os.unlink(tmp)

    def checksum(self, path: str) -> str | None:
        """sha256 of a file on the target, or None when it does not exist."""
        result = self.run(["sh", "-c", 'test -f "$1" || exit 3; sha256sum "$1"', "sh", path])
        if result.exit_code == 3:
            return None
        if not result.ok:
            return None
        return result.stdout.split()[0]

    def probe_tcp(self, host: str, port: int, timeout: float = 1.0) -> bool:
        """Whether a TCP connect to host:port succeeds from the target's side."""
        script = ('if command -v nc >/dev/null 2>&1; then nc -z -w "$3" "$1" "$2"; '
                  'elif command -v bash >/dev/null 2>&1; then '
                  'timeout "$3" bash -c "exec 3<>/dev/tcp/$1/$2"; '
                  'else python3 -c "import socket,sys; socket.create_connection('
                  '(sys.argv[1], int(sys.argv[2])), float(sys.argv[3]))" "$1" "$2" "$3"; fi')
        result = self.run(["sh", "-c", script, "sh", host, str(port), str(max(1, int(timeout)))],
                          timeout=timeout + 5)
        return result.ok

    def stat(self, path: str) -> FileStat:
        """Facts about a path (without following a final symlink)."""
        script = ('p="$1"; if [ ! -e "$p" ] && [ ! -L "$p" ]; then echo missing; exit 0; fi; '
                  'stat -c "%F|%a|%s|%U|%G" "$p"; '
                  'if [ -L "$p" ]; then readlink "$p"; fi')
        result = self.run(["sh", "-c", script, "sh", path])
        return parse_stat_output(result.stdout)


def parse_stat_output(text: str) -> FileStat:
    lines = text.splitlines()
    if not lines or lines[0] == "missing":
        return FileStat(exists=False)
    kind, mode, size, owner, group = lines[0].split("|", 4)
    return FileStat(
        exists=True, is_dir=kind == "directory", is_link=kind == "symbolic link",
        mode=int(mode, 8), size=int(size), owner=owner, group=group,
        link_target=lines[1] if len(lines) > 1 and kind == "symbolic link" else None)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
