"""The runbook model: frozen dataclasses built by the loader, read by everything else.

Every node keeps the SourceLoc it came from, so any later error (a template that
fails at run time, a failed check) can still point at ``file:line:col``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = [
    "SourceLoc", "Condition", "RetryPolicy", "Step", "Param", "Runbook",
    "ON_FAILURE_MODES", "PARAM_TYPES", "parse_duration",
]

ON_FAILURE_MODES = ("rollback", "abort", "continue")
PARAM_TYPES = ("str", "int", "float", "bool", "list", "dict")


@dataclass(frozen=True, slots=True)
class SourceLoc:
    """A position in a source file; line and col are 1-based, as editors show them."""

    path: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"

    @property
    def short(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class Condition:
    """A bare Jinja2 expression (as in Ansible's ``when``), with an optional message."""

    expr: str
    loc: SourceLoc
    msg: str | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often to re-run a step (or block) and how long to wait in between.

    ``retries`` counts extra attempts after the first. ``delay`` is the first wait in
    seconds, multiplied by ``backoff`` after every attempt.  Without ``until`` only
    failures are retried; with ``until`` the step is retried until it holds.
    """

    retries: int = 0
    delay: float = 0.0
    backoff: float = 1.0
    until: tuple[Condition, ...] = ()

    @property
    def attempts(self) -> int:
        return self.retries + 1


NO_RETRY = RetryPolicy()


_TITLE_KEYS = ("cmd", "argv", "src", "path", "dest", "url", "name", "container", "image", "msg",
               "prompt", "port")


@dataclass(frozen=True)
class Step:
    """One step: an action, or a block of steps (``block``/``rescue``/``always``).

    ``args`` holds the action's parameters as written (templates not rendered yet);
    ``arg_locs`` the position of each top-level parameter.  ``path`` is the step's
    position in the runbook (``"3"``, ``"3.block.2"``); ``id`` is the user's name for
    it (given, or derived from ``name``), unique within the runbook.
    """

    id: str
    loc: SourceLoc
    path: str
    name: str | None = None
    action: str | None = None
    args: Mapping[str, Any] = field(default_factory=dict)
    arg_locs: Mapping[str, SourceLoc] = field(default_factory=dict)
    when: tuple[Condition, ...] = ()
    register: str | None = None
    loop: Any = None
    loop_var: str = "item"
    retry: RetryPolicy = NO_RETRY
    timeout: float | None = None
    check: tuple[Condition, ...] = ()
    rollback: tuple["Step", ...] = ()
    failed_when: tuple[Condition, ...] = ()
    changed_when: tuple[Condition, ...] = ()
    ignore_errors: bool = False
    tags: frozenset[str] = frozenset()
    run_once: bool = False
    delegate_to: str | None = None
    no_log: bool = False
    block: tuple["Step", ...] | None = None
    rescue: tuple["Step", ...] = ()
    always: tuple["Step", ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict)
    include: str | None = None

    @property
    def is_block(self) -> bool:
        return self.block is not None

    @property
    def title(self) -> str:
        """What the terminal shows for this step."""
        if self.name:
            return self.name
        if self.include:
            return f"include {self.include}"
        if self.is_block:
            return f"block {self.id}"
        for key in _TITLE_KEYS:
            value = self.args.get(key)
            if value is not None and not isinstance(value, dict):
                text = " ".join(map(str, value)) if isinstance(value, list) else str(value)
                state = self.args.get("state")
                prefix = f"{self.action} {state}" if isinstance(state, str) else self.action
                return f"{prefix}: {text if len(text) <= 60 else text[:57] + '...'}"
        return f"{self.action} {self.id}"

    def children(self) -> tuple["Step", ...]:
        """Nested steps (block, rescue, always), not rollback steps."""
        if self.block is None:
            return ()
        return self.block + self.rescue + self.always


@dataclass(frozen=True, slots=True)
class Param:
    """An input of the runbook, given with ``-e name=value``."""

    name: str
    loc: SourceLoc
    type: str = "str"
    required: bool = False
    default: Any = None
    has_default: bool = False
    choices: tuple[Any, ...] = ()
    description: str | None = None
    secret: bool = False


@dataclass(frozen=True)
class Runbook:
    """A loaded, validated runbook."""

    name: str
    path: str
    loc: SourceLoc
    content_hash: str
    description: str | None = None
    hosts: str = "localhost"
    hosts_loc: SourceLoc | None = None
    params: tuple[Param, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict)
    serial: tuple[int | str, ...] = ()
    max_fail_percentage: float | None = None
    forks: int | None = None
    timeout: float | None = None
    on_failure: str = "rollback"
    lock: bool | str = True
    preflight: tuple[Step, ...] = ()
    steps: tuple[Step, ...] = ()
    includes: tuple[str, ...] = ()

    def param(self, name: str) -> Param | None:
        for p in self.params:
            if p.name == name:
                return p
        return None

    def walk(self) -> list[Step]:
        """Every step, depth first, including block children and rollback steps."""
        out: list[Step] = []

        def visit(steps: tuple[Step, ...]) -> None:
            for step in steps:
                out.append(step)
                visit(step.children())
                visit(step.rollback)

        visit(self.preflight)
        visit(self.steps)
        return out

    def find_step(self, step_id: str) -> Step | None:
        for step in self.walk():
            if step.id == step_id:
                return step
        return None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """``30s``, ``5m``, ``1h``, ``250ms`` or a number of seconds -> seconds.

    Compound forms such as ``1m30s`` are accepted too.  Raises ValueError.
    """
    if isinstance(value, bool):
        raise ValueError("a duration cannot be true/false")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like 30s, 5m, 1h, got {type(value).__name__}")
    match = _DURATION.match(value)
    if match:
        return float(match.group(1)) * _UNITS[match.group(2)]
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", value.replace(" ", ""))
    if parts and "".join(n + u for n, u in parts) == value.replace(" ", ""):
        return sum(float(n) * _UNITS[u] for n, u in parts)
    raise ValueError(f"'{value}' is not a duration (use 30s, 5m, 1h, 1m30s or seconds)")
