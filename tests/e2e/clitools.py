"""Running the real ``runbook`` CLI in a subprocess and reading what it says.

``Cli(folder)("run", "deploy.yml", "-o", "json")`` runs ``python -m engine.cli`` in
``folder`` with a private state/journal folder and no colours, and returns a Result
with the exit code, stdout, stderr and (for ``-o json``) the parsed events.
``Cli.start(...)`` does the same without waiting (for the signal tests).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: every event kind the JSON output may contain (docs/execution.md)
EVENT_KINDS = frozenset({"run_start", "batch_start", "step_start", "step_end", "retry",
                         "rollback_start", "rollback_step", "rollback_end", "log", "run_end"})


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]] = field(default_factory=list)

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind and
                all(e.get(k) == v for k, v in match.items())]

    def trail(self) -> list[tuple]:
        """(event, step or host, status) of every event, in order: the run's story."""
        out: list[tuple] = []
        for e in self.events:
            kind = e["event"]
            if kind in ("step_start",):
                out.append((kind, e["host"], e["step"], e["phase"]))
            elif kind == "step_end":
                out.append((kind, e["host"], e["step"], e["phase"], e["status"]))
            elif kind == "rollback_step":
                out.append((kind, e["host"], e["step"], e["undoes"], e["status"]))
            elif kind in ("rollback_start", "rollback_end"):
                out.append((kind, e["host"]))
            elif kind == "run_end":
                out.append((kind, e["status"], e["exit_code"]))
            else:
                out.append((kind,))
        return out

    def __repr__(self) -> str:   # what pytest shows when an assertion fails
        return (f"Result(code={self.code})\n--- stdout\n{self.stdout}\n--- stderr\n"
                f"{self.stderr}")


def parse_events(stdout: str) -> list[dict[str, Any]]:
    """Every stdout line must be one JSON object: that is the interface."""
    events = []
    for line in stdout.splitlines():
        event = json.loads(line)
        assert isinstance(event, dict) and "event" in event, line
        events.append(event)
    return events


class Cli:
    """Runs the CLI in one folder with one environment."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        state = folder / ".state"
        state.mkdir(exist_ok=True)
        self.env = dict(os.environ)
        for name in ("RUNBOOK_INVENTORY", "FORCE_COLOR", "RUNBOOK_STATE"):
            self.env.pop(name, None)
        self.env.update({"NO_COLOR": "1", "RUNBOOK_PLAIN": "1", "XDG_STATE_HOME": str(state),
                         "RUNBOOK_STATE": str(state / "state.db"), "PYTHONUNBUFFERED": "1"})

    def argv(self, args: tuple[str, ...]) -> list[str]:
        return [sys.executable, "-m", "engine.cli", *args]

    def __call__(self, *args: str, input: str | None = None, timeout: float = 30) -> Result:
        proc = subprocess.run(self.argv(args), cwd=self.folder, env=self.env, input=input,
                              capture_output=True, text=True, timeout=timeout)
        events = parse_events(proc.stdout) if "json" in args else []
        return Result(proc.returncode, proc.stdout, proc.stderr, events)

    def start(self, *args: str) -> "Running":
        proc = subprocess.Popen(self.argv(args), cwd=self.folder, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL)
        return Running(proc)


class Running:
    """A CLI run in progress whose JSON events are read as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []

    def wait_for(self, predicate: Any, timeout: float = 15) -> dict[str, Any]:
        """Read events until one matches; fail if the run ends or time runs out first."""
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"the run ended before the awaited event: {self.events}")
            event = json.loads(line)
            self.events.append(event)
            if predicate(event):
                return event
        raise AssertionError(f"no awaited event within {timeout}s: {self.events}")

    def send(self, sig: int = signal.SIGINT) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 20) -> Result:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"the run did not end within {timeout}s:\n{err}") from None
        self.events.extend(parse_events(out))
        return Result(self.proc.returncode, "", err, self.events)


def tree_digest(root: Path) -> dict[str, str]:
    """Every entry under ``root`` with its kind, mode and content hash (or link target)."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        st = path.lstat()
        if path.is_symlink():
            out[rel] = f"link {os.readlink(path)}"
        elif path.is_dir():
            out[rel] = f"dir {oct(st.st_mode & 0o7777)}"
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[rel] = f"file {oct(st.st_mode & 0o7777)} {digest} {st.st_mtime_ns}"
    return out
