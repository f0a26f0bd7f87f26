"""The Action interface, its context, and the typed result every step produces.

An action declares its parameters (``params``) and capabilities as class
attributes.  ``plan()`` only reads the target and says what ``apply()`` would
change; ``apply()`` makes the change.  The executor, not the action, decides what
a dry run does: run read-only actions, ``plan()`` the others, or report that an
action cannot be simulated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

from .schema import ParamSpec

if TYPE_CHECKING:
    from ..connections.base import Connection
    from ..inventory import Host
    from ..model import Step

__all__ = ["Action", "ActionContext", "StepResult", "Plan", "CannotSimulate"]


@dataclass(frozen=True)
class StepResult:
    """The typed outcome of one step on one host (what ``register`` stores)."""

    changed: bool = False
    failed: bool = False
    skipped: bool = False
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    msg: str = ""
    duration: float = 0.0
    simulated: bool = False
    command: str | None = None
    diff: str | None = None
    attempts: int = 1
    fields: Mapping[str, Any] = field(default_factory=dict)

    def as_vars(self) -> dict[str, Any]:
        """The view templates see: ``r.rc``, ``r.stdout_lines``, the action's fields..."""
        out: dict[str, Any] = {
            "changed": self.changed, "failed": self.failed, "skipped": self.skipped,
            "rc": self.rc, "stdout": self.stdout, "stderr": self.stderr,
            "stdout_lines": self.stdout.splitlines(), "stderr_lines": self.stderr.splitlines(),
            "msg": self.msg, "duration": round(self.duration, 6), "simulated": self.simulated,
            "attempts": self.attempts,
        }
        out.update(self.fields)
        return out

    def but(self, **changes: Any) -> "StepResult":
        return replace(self, **changes)


@dataclass(frozen=True)
class Plan:
    """What an action would do in a dry run.  No change always comes with a reason."""

    changed: bool
    changes: tuple[str, ...] = ()
    reason: str = ""
    diff: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


class CannotSimulate(Exception):
    """Raised by ``plan()`` when the effect cannot be known without doing it."""


@dataclass
class ActionContext:
    """Everything an action may use on one host for one attempt."""

    host: "Host"
    step: "Step"
    connection_factory: Callable[[], "Connection"]
    render: Callable[[Any], Any]
    truth: Callable[[str], bool]
    render_text: Callable[[str], str]
    runbook_dir: str
    dry_run: bool = False
    diff: bool = False
    deadline: float | None = None
    assume_yes: bool = False
    interactive: bool = False
    log: Callable[[str], None] = lambda message: None
    prompt: Callable[[str], bool] | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)
    cancelled: Callable[[], bool] = lambda: False
    docker_factory: Callable[[], Any] | None = None

    @property
    def conn(self) -> "Connection":
        return self.connection_factory()

    @property
    def docker(self) -> Any:
        """The DockerApi (connections/docker_api.py) of the host's Docker daemon."""
        if self.docker_factory is None:
            raise RuntimeError("no Docker API available in this context")
        return self.docker_factory()

    def remaining(self, default: float | None = None) -> float | None:
        """Seconds left before this attempt's deadline (or ``default``)."""
        if self.deadline is None:
            return default
        left = max(0.001, self.deadline - time.monotonic())
        return left if default is None else min(left, default)


class Action:
    """Base class of every step type."""

    name: ClassVar[str] = ""
    params: ClassVar[Mapping[str, ParamSpec]] = {}
    #: the parameter a scalar form fills: ``shell: "make"`` -> ``{"cmd": "make"}``
    shorthand: ClassVar[str | None] = None
    #: ``plan()`` can say what would change without changing it
    supports_dry_run: ClassVar[bool] = False
    #: running it twice changes nothing the second time
    idempotent: ClassVar[bool] = False
    #: never changes a target: runs as usual in a dry run
    read_only: ClassVar[bool] = False
    #: runs on the runner, never needs the host's connection
    runner_side: ClassVar[bool] = False
    #: the step's result fields become host variables (``set``)
    sets_vars: ClassVar[bool] = False
    #: parameters the executor must not render (conditions the action evaluates itself)
    raw_params: ClassVar[tuple[str, ...]] = ()
    #: at most one of each group may be given
    exclusive: ClassVar[tuple[tuple[str, ...], ...]] = ()
    #: at least one of each group must be given
    one_of: ClassVar[tuple[tuple[str, ...], ...]] = ()
    summary: ClassVar[str] = ""

    @classmethod
    def is_read_only(cls, args: Mapping[str, Any]) -> bool:
        """Whether these arguments make the step safe to run in a dry run."""
        return cls.read_only

    def plan(self, ctx: ActionContext, args: Mapping[str, Any]) -> Plan:
        raise CannotSimulate(f"{self.name} cannot be simulated")

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        raise NotImplementedError
