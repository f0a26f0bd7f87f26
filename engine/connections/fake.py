"""A scripted connection for unit tests of pure engine logic (never the only test).

    fake = FakeConnection("web1", rules=[("deploy", 1, "", "boom")])
    pool = ConnectionPool(factory=lambda host: fakes[host.name])

Rules are (substring or regex, exit code, stdout, stderr), first match wins;
unmatched commands succeed with empty output.  Files live in a dict.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Callable, Mapping, Sequence

from ..errors import ActionTimeout, Unreachable
from .base import Become, CommandResult, Connection, FileStat, quote_command, sha256_bytes

__all__ = ["FakeConnection"]

Rule = tuple[str, int, str, str]


class FakeConnection(Connection):
    """Records every command; answers from rules; keeps files in memory."""

    kind = "fake"

    def __init__(self, host_name: str, rules: Sequence[Rule] = (), *,
                 handler: Callable[[str], CommandResult | None] | None = None,
                 unreachable: bool = False, delay: float = 0.0) -> None:
        super().__init__(host_name)
        self.rules = list(rules)
        self.handler = handler
        self.unreachable = unreachable
        self.delay = delay
        self.commands: list[str] = []
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, int] = {}
        self.closed = False
        self._lock = threading.Lock()

    def run(self, command: str | Sequence[str], *, stdin: bytes | None = None,
            timeout: float | None = None, env: Mapping[str, str] | None = None,
            cwd: str | None = None, become: Become | None = None) -> CommandResult:
        text = quote_command(command)
        with self._lock:
            self.commands.append(text)
        if self.unreachable:
            raise Unreachable(f"{self.host_name}: connection refused", host=self.host_name)
        if self.delay:
            if timeout is not None and self.delay > timeout:
                time.sleep(timeout)
                raise ActionTimeout(f"command timed out after {timeout:.3g}s: {text}")
            time.sleep(self.delay)
        if self.handler is not None:
            answer = self.handler(text)
            if answer is not None:
                return answer
        for pattern, code, out, err in self.rules:
            if pattern in text or re.search(pattern, text):
                return CommandResult(text, code, out, err, 0.0)
        return CommandResult(text, 0, "", "", 0.0)

    def put_bytes(self, data: bytes, dest: str, *, mode: int | None = None) -> None:
        self.files[dest] = data
        self.modes[dest] = mode if mode is not None else 0o644

    def put(self, src: str, dest: str, *, mode: int | None = None) -> None:
        with open(src, "rb") as f:
            self.put_bytes(f.read(), dest, mode=mode)

    def get(self, src: str, dest: str) -> None:
        with open(dest, "wb") as f:
            f.write(self.files[src])

    def read_bytes(self, path: str) -> bytes | None:
        return self.files.get(path)

    def checksum(self, path: str) -> str | None:
        data = self.files.get(path)
        return None if data is None else sha256_bytes(data)

    def stat(self, path: str) -> FileStat:
        if path in self.files:
            return FileStat(exists=True, mode=self.modes.get(path, 0o644),
                            size=len(self.files[path]), owner="root", group="root")
        if any(name.startswith(path.rstrip("/") + "/") for name in self.files):
            return FileStat(exists=True, is_dir=True, mode=0o755, owner="root", group="root")
        return FileStat(exists=False)

    def probe_tcp(self, host: str, port: int, timeout: float = 1.0) -> bool:
        return self.run(f"probe {host}:{port}").ok

    def close(self) -> None:
        self.closed = True
