"""What the executor tells the world: typed events, and the bus that fans them out.

Sinks (the terminal view, JSON lines, the journal) subscribe to the bus.  Every
event passes through the redactor first, so no sink can ever see a secret.
The JSON form of each event (``to_json``) is a stable, documented interface.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

__all__ = ["Event", "StepFacts", "RollbackPushed", "RollbackPopped", "RollbackUndoing", "RunStart", "BatchStart", "StepStart", "StepEnd", "Retry", "RollbackStart",
           "RollbackStep", "RollbackEnd", "LogMessage", "RunEnd", "EventBus", "Sink",
           "HostStats"]


class _Now:
    """Default of a ``ts`` field: the time the event is made."""


NOW: Any = _Now()


class Event:
    """An immutable record; subclasses list their fields as annotations (with defaults).

    Events are made for every step of every host, so they avoid per-class generated
    code (what ``dataclass`` does): one generic ``__init__`` reads the field list the
    subclass declared.  ``fields()``, ``replace()`` and ``to_json()`` are the API.
    """

    kind = "event"
    #: internal events feed the journal; they are not part of the JSON output
    internal = False
    _fields: tuple[str, ...] = ()
    _defaults: dict[str, Any] = {}

    def __init_subclass__(cls) -> None:
        names: list[str] = list(cls._fields)
        defaults = dict(cls._defaults)
        for name in cls.__dict__.get("__annotations__", {}):
            if name.startswith("_") or name in ("kind", "internal"):
                continue
            if name not in names:
                names.append(name)
            if name in cls.__dict__:
                defaults[name] = cls.__dict__[name]
                delattr(cls, name)
            elif name in defaults:
                del defaults[name]
        cls._fields = tuple(names)
        cls._defaults = defaults

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = self._fields
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes {len(names)} values, got {len(args)}")
        values = dict(zip(names, args))
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError(f"{type(self).__name__} has no field {key!r}")
            if key in values:
                raise TypeError(f"{type(self).__name__} got {key!r} twice")
            values[key] = value
        set_field = object.__setattr__
        for name in names:
            if name in values:
                value = values[name]
            elif name in self._defaults:
                value = self._defaults[name]
                if value is NOW:
                    value = time.time()
            else:
                raise TypeError(f"{type(self).__name__} needs {name!r}")
            set_field(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields)
        return f"{type(self).__name__}({shown})"

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return cls._fields

    def replace(self, **changes: Any) -> "Event":
        values = {name: getattr(self, name) for name in self._fields}
        values.update(changes)
        return type(self)(**values)

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (computed once; sinks must not change it)."""
        cached = self.__dict__.get("_json")
        if cached is None:
            cached = {"event": self.kind}
            for name in self._fields:
                cached[name] = getattr(self, name)
            self.__dict__["_json"] = cached
        return cached





class RunStart(Event):
    kind = "run_start"
    run_id: str
    runbook: str
    path: str
    hosts: tuple[str, ...]
    dry_run: bool
    params: Mapping[str, Any]
    steps: int
    ts: float = NOW
    user: str = ""
    machine: str = ""


class BatchStart(Event):
    kind = "batch_start"
    run_id: str
    batch: int
    batches: int
    hosts: tuple[str, ...]
    ts: float = NOW


class StepStart(Event):
    kind = "step_start"
    run_id: str
    host: str
    step: str
    name: str
    action: str | None
    loc: str
    phase: str = "steps"          # preflight | steps | rescue | always | rollback
    ts: float = NOW


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
    ts: float = NOW


class Retry(Event):
    kind = "retry"
    run_id: str
    host: str
    step: str
    attempt: int                  # the attempt that just ended
    attempts: int                 # how many are allowed in all
    delay: float
    reason: str
    ts: float = NOW


class RollbackStart(Event):
    kind = "rollback_start"
    run_id: str
    host: str
    steps: int
    reason: str
    ts: float = NOW


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
    ts: float = NOW


class RollbackEnd(Event):
    kind = "rollback_end"
    run_id: str
    host: str
    ok: bool
    rolled_back: int
    failed: int
    ts: float = NOW


class LogMessage(Event):
    kind = "log"
    run_id: str
    host: str
    step: str
    level: str
    msg: str
    ts: float = NOW


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
    ts: float = NOW


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
    ts: float = NOW


class RollbackUndoing(Event):
    """The rollback steps of a stack entry are about to run."""

    kind = "rollback_undo"
    internal = True
    run_id: str
    host: str
    step: str
    ts: float = NOW


class RollbackPopped(Event):
    """A stack entry's rollback steps have all run (whatever their outcome)."""

    kind = "rollback_pop"
    internal = True
    run_id: str
    host: str
    step: str
    ts: float = NOW


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
    ts: float = NOW


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
