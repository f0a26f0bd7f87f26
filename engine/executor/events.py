"""What the executor tells the world: typed events, and the bus that fans them out.

Sinks (the terminal view, JSON lines, the journal) subscribe to the bus.  Every
event passes through the redactor first, so no sink can ever see a secret.
The JSON form of each event (``to_json``) is a stable, documented interface.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Protocol

__all__ = ["Event", "StepFacts", "RollbackPushed", "RollbackPopped", "RollbackUndoing", "RunStart", "BatchStart", "StepStart", "StepEnd", "Retry", "RollbackStart",
           "RollbackStep", "RollbackEnd", "LogMessage", "RunEnd", "EventBus", "Sink",
           "HostStats"]


@dataclass(frozen=True)
class Event:
    kind = "event"
    #: internal events feed the journal; they are not part of the JSON output
    internal = False

    def to_json(self) -> dict[str, Any]:
        out = {"event": self.kind}
        out.update(asdict(self))
        return out


@dataclass(frozen=True)
class RunStart(Event):
    kind = "run_start"
    run_id: str
    runbook: str
    path: str
    hosts: tuple[str, ...]
    dry_run: bool
    params: Mapping[str, Any]
    steps: int
    ts: float = field(default_factory=time.time)
    user: str = ""
    machine: str = ""


@dataclass(frozen=True)
class BatchStart(Event):
    kind = "batch_start"
    run_id: str
    batch: int
    batches: int
    hosts: tuple[str, ...]
    ts: float = field(default_factory=time.time)


@dataclass(frozen=True)
class StepStart(Event):
    kind = "step_start"
    run_id: str
    host: str
    step: str
    name: str
    action: str | None
    loc: str
    phase: str = "steps"          # preflight | steps | rescue | always | rollback
    ts: float = field(default_factory=time.time)


@dataclass(frozen=True)
class StepEnd(Event):
    kind = "step_end"
    run_id: str
    host: str
    step: str
    name: str
    status: str                   # ok changed failed skipped unreachable simulated unsimulated
    changed: bool
    duration: float
    attempts: int = 1
    msg: str = ""
    rc: int | None = None
    phase: str = "steps"
    ignored: bool = False
    diff: str | None = None
    changes: tuple[str, ...] = ()
    note: str = ""
    loc: str = ""
    command: str | None = None
    stderr_tail: str = ""
    result: Mapping[str, Any] | None = None
    ts: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Retry(Event):
    kind = "retry"
    run_id: str
    host: str
    step: str
    attempt: int                  # the attempt that just ended
    attempts: int                 # how many are allowed in all
    delay: float
    reason: str
    ts: float = field(default_factory=time.time)


@dataclass(frozen=True)
class RollbackStart(Event):
    kind = "rollback_start"
    run_id: str
    host: str
    steps: int
    reason: str
    ts: float = field(default_factory=time.time)


@dataclass(frozen=True)
class RollbackStep(Event):
    kind = "rollback_step"
    run_id: str
    host: str
    step: str
    name: str
    undoes: str
    undoes_name: str
    status: str
    duration: float
    msg: str = ""
    ts: float = field(default_factory=time.time)


@dataclass(frozen=True)
class RollbackEnd(Event):
    kind = "rollback_end"
    run_id: str
    host: str
    ok: bool
    rolled_back: int
    failed: int
    ts: float = field(default_factory=time.time)


@dataclass(frozen=True)
class LogMessage(Event):
    kind = "log"
    run_id: str
    host: str
    step: str
    level: str
    msg: str
    ts: float = field(default_factory=time.time)


@dataclass(frozen=True)
class StepFacts(Event):
    """Variables a completed step defined on a host (register / set), for resume."""

    kind = "step_facts"
    internal = True
    run_id: str
    host: str
    step: str
    facts: Mapping[str, Any]
    simulated: bool = False
    no_log: bool = False          # its values are masked in the journal: resume re-runs it
    ts: float = field(default_factory=time.time)


@dataclass(frozen=True)
class RollbackPushed(Event):
    """A completed step's rollback steps went on the host's stack, with their variables."""

    kind = "rollback_push"
    internal = True
    run_id: str
    host: str
    step: str
    snapshot: Mapping[str, Any]
    title: str = ""
    restored: bool = False        # re-stated from an earlier run of the same lineage
    ts: float = field(default_factory=time.time)


@dataclass(frozen=True)
class RollbackUndoing(Event):
    """The rollback steps of a stack entry are about to run."""

    kind = "rollback_undo"
    internal = True
    run_id: str
    host: str
    step: str
    ts: float = field(default_factory=time.time)


@dataclass(frozen=True)
class RollbackPopped(Event):
    """A stack entry's rollback steps have all run (whatever their outcome)."""

    kind = "rollback_pop"
    internal = True
    run_id: str
    host: str
    step: str
    ts: float = field(default_factory=time.time)


@dataclass
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    rolled_back: int = 0
    rollback_failed: int = 0
    unreachable: int = 0
    simulated: int = 0
    unsimulated: int = 0
    ignored: int = 0
    rescued: int = 0
    restored: int = 0


@dataclass(frozen=True)
class RunEnd(Event):
    kind = "run_end"
    run_id: str
    status: str                   # ok failed rolled_back rollback_failed interrupted
    exit_code: int
    duration: float
    hosts: Mapping[str, Mapping[str, int]]
    failures: tuple[Mapping[str, Any], ...] = ()
    dry_run: bool = False
    stop_reason: str = ""         # why the run stopped early ("" when it did not)
    ts: float = field(default_factory=time.time)


class Sink(Protocol):
    def handle(self, event: Event) -> None: ...


class EventBus:
    """Delivers events to sinks.

    Ordinary sinks get events one at a time (they need no locking of their own).
    A sink with ``concurrent = True`` (the journal) is called outside that lock, so
    hosts finishing a step together can share one commit.
    """

    def __init__(self, redact: Callable[[Event], Event] | None = None) -> None:
        self.sinks: list[Sink] = []
        self.concurrent: list[Sink] = []
        self._lock = threading.Lock()
        self._redact = redact

    def subscribe(self, sink: Sink) -> None:
        if getattr(sink, "concurrent", False):
            self.concurrent.append(sink)
        else:
            self.sinks.append(sink)

    def emit(self, event: Event) -> None:
        if self._redact is not None:
            event = self._redact(event)
        for sink in self.concurrent:
            sink.handle(event)
        if self.sinks:
            with self._lock:
                for sink in self.sinks:
                    sink.handle(event)
