"""Every exception the engine raises, in one tree.

    RunbookError                      base of everything below
    ├── UserError                     the user's mistake; exit 2, never a traceback
    │   ├── LoadError                 one problem at file:line:col (YAML, structure, schema)
    │   ├── ValidationFailed          several LoadErrors found in one pass
    │   ├── InventoryError            an inventory file or host pattern is wrong
    │   ├── ParamError                a missing or ill-typed -e param
    │   ├── TemplateError             a template failed to parse or render
    │   └── UsageError                a bad command-line combination
    ├── StepFailed                    an action failed on a host (carries the result)
    │   ├── CommandFailed             a command exited non-zero
    │   ├── CheckFailed               a check / assert / until condition was false
    │   └── ActionTimeout             an attempt ran past its timeout
    ├── TargetError                   a host could not be used (connections/ raise these)
    │   ├── Unreachable               refused, reset, DNS, dropped mid-command
    │   ├── AuthFailed                the target rejected our credentials
    │   ├── HostKeyError              unknown or changed host key
    │   └── ConnectTimeout            no answer in time
    ├── LockHeld                      another run holds a lock we need; exit 4
    ├── StoreError                    the run journal cannot be read or written
    └── Interrupted                   SIGINT / SIGTERM; exit 130

Third-party exceptions (yaml, jinja2, paramiko, docker) are converted where they
are met, with ``raise ... from exc``.  Anything not in this tree reaching the CLI is
an internal error: the traceback goes to a log file, not the terminal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from .model import SourceLoc

__all__ = [
    "RunbookError", "UserError", "LoadError", "ValidationFailed", "InventoryError",
    "ParamError", "TemplateError", "UsageError", "StepFailed", "CommandFailed",
    "CheckFailed", "ActionTimeout", "TargetError", "Unreachable", "AuthFailed",
    "HostKeyError", "ConnectTimeout", "LockHeld", "StoreError", "Interrupted",
    "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_ROLLBACK_FAILED", "EXIT_CANNOT_START",
    "EXIT_INTERRUPTED",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ROLLBACK_FAILED = 3
EXIT_CANNOT_START = 4
EXIT_INTERRUPTED = 130


class RunbookError(Exception):
    """Base of every error the engine raises on purpose."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UserError(RunbookError):
    """A mistake in what the user gave us: a file, a param, a flag."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, loc: SourceLoc | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.loc = loc

    def __str__(self) -> str:
        return f"{self.loc}: {self.message}" if self.loc else self.message


class LoadError(UserError):
    """One problem in a runbook or inventory file, at a position."""

    def __init__(self, message: str, *, loc: SourceLoc | None = None,
                 hint: str | None = None, severity: str = "error") -> None:
        super().__init__(message, loc=loc, hint=hint)
        self.severity = severity


class ValidationFailed(UserError):
    """All the problems one pass over the input found, errors and warnings."""

    def __init__(self, problems: Sequence[LoadError]) -> None:
        self.problems = list(problems)
        errors = [p for p in self.problems if p.severity == "error"]
        first = errors[0] if errors else (self.problems[0] if self.problems else None)
        summary = f"{len(errors)} error(s)" + (f", first: {first}" if first else "")
        super().__init__(summary, loc=None)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class InventoryError(UserError):
    """An inventory file or a host pattern is wrong."""


class ParamError(UserError):
    """A -e param is missing, unknown or of the wrong type."""


class TemplateError(UserError):
    """A template failed to parse or to render (undefined variable, bad filter...)."""


class UsageError(UserError):
    """A bad command-line combination."""


@dataclass
class FailureDetail:
    """What a failed command left behind, for the recap."""

    command: str
    exit_code: int | None
    stderr_tail: str = ""
    stdout_tail: str = ""


class StepFailed(RunbookError):
    """An action failed on a host; ``result`` is the partial StepResult if any."""

    def __init__(self, message: str, *, result: Any = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.result = result


class CommandFailed(StepFailed):
    """A command exited non-zero: the message names command, exit code, output tail."""

    def __init__(self, command: str, exit_code: int | None, stdout: str = "",
                 stderr: str = "", *, result: Any = None) -> None:
        self.command = command
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        tail = _tail(stderr or stdout, 5)
        message = f"command failed with exit code {exit_code}: {command}"
        if tail:
            message += "\n" + "\n".join("  | " + line for line in tail.splitlines())
        super().__init__(message, result=result)


class CheckFailed(StepFailed):
    """A check, assert or until condition evaluated false."""


class ActionTimeout(StepFailed):
    """One attempt of an action ran past its timeout."""


class TargetError(RunbookError):
    """A host could not be used; the host is reported unreachable, not failed."""

    def __init__(self, message: str, *, host: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.host = host


class Unreachable(TargetError):
    """Connection refused, reset, name not found, or dropped mid-command."""


class AuthFailed(TargetError):
    """The target rejected the credentials we offered."""


class HostKeyError(TargetError):
    """The host's key is unknown (strict checking) or differs from known_hosts."""


class ConnectTimeout(TargetError):
    """The target did not answer in time."""


class LockHeld(RunbookError):
    """Another run holds a lock this run needs."""

    exit_code = EXIT_CANNOT_START


class StoreError(RunbookError):
    """The run journal cannot be opened, read or written."""

    exit_code = EXIT_CANNOT_START


class Interrupted(RunbookError):
    """The run was stopped by SIGINT or SIGTERM."""

    exit_code = EXIT_INTERRUPTED


def _tail(text: str, lines: int) -> str:
    parts = text.rstrip("\n").splitlines()
    return "\n".join(parts[-lines:])
