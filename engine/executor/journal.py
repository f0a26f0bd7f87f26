"""The run journal seen from the executor: the sink that writes events to a Store,
the locks a run holds, and reading a run's progress back for resume and rollback.

Events are written before the engine moves on: a ``step_start`` or ``step_end``
returns only once it is durable.  Small events (facts, rollback pushes, retries,
log lines) ride along with the next of those, which is still before the engine
moves on, so a step costs two commits and hosts finishing together share them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import StoreError
from ..store.base import JournalEvent, LockHolder, RunRecord, Store
from .events import Event

if TYPE_CHECKING:
    from ..model import Runbook

__all__ = ["JournalSink", "LockKeeper", "HostProgress", "read_progress", "lock_names"]

_FLUSHING = frozenset({"step_start", "step_end", "rollback_start", "rollback_step",
                       "rollback_end", "batch_start", "run_start", "run_end"})
_BUFFERED = frozenset({"step_facts", "rollback_push", "rollback_pop", "rollback_undo", "retry",
                       "log"})


class JournalSink:
    """Writes every event of a run to the store (called outside the bus lock)."""

    concurrent = True

    def __init__(self, store: Store, record: RunRecord) -> None:
        self.store = store
        self.record = record
        self._pending: dict[str | None, list[JournalEvent]] = {}
        self._lock = threading.Lock()
        self.failed: StoreError | None = None

    def handle(self, event: Event) -> None:
        kind = event.kind
        if kind not in _FLUSHING and kind not in _BUFFERED:
            return
        data = event.to_json()
        host = data.get("host")
        entry = JournalEvent(run_id=self.record.run_id, kind=kind, ts=data.get("ts") or
                             time.time(), host=host, step=data.get("step"),
                             phase=data.get("phase"), status=data.get("status"), data=data)
        with self._lock:
            if kind in _BUFFERED:
                self._pending.setdefault(host, []).append(entry)
                return
            batch = self._pending.pop(host, [])
            if host is None:   # run-level events carry everything still pending
                for rest in self._pending.values():
                    batch.extend(rest)
                self._pending.clear()
        batch.append(entry)
        if kind == "run_start":
            self.store.begin_run(self.record)
        self.store.append(batch)
        if kind == "run_end":
            self.store.finish_run(self.record.run_id, str(data.get("status")),
                                  int(data.get("exit_code") or 0), float(data.get("ts") or
                                                                         time.time()))


def lock_names(runbook: "Runbook", hosts: Sequence[str], rendered_lock: str | None) -> list[str]:
    """One lock per (runbook name or custom lock name, host)."""
    if runbook.lock is False:
        return []
    base = rendered_lock or runbook.name
    return [f"{base}@{host}" for host in hosts]


class LockKeeper:
    """Takes the run's locks and renews their lease until released."""

    def __init__(self, store: Store, names: list[str], holder: LockHolder,
                 lease: float) -> None:
        self.store = store
        self.names = names
        self.holder = holder
        self.lease = lease
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "LockKeeper":
        if not self.names:
            return self
        self.store.acquire(self.names, self.holder, self.lease)
        self._thread = threading.Thread(target=self._renew, name="runbook-lock-lease",
                                        daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                self.store.renew(self.holder.run_id, self.lease)
            except StoreError:
                pass   # the next renewal may succeed; the lease covers two misses

    def __exit__(self, *exc: object) -> None:
        if not self.names:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.store.release(self.holder.run_id)
        except StoreError:
            pass


@dataclass
class HostProgress:
    """What the journal says a host got through."""

    completed: dict[str, tuple[dict[str, Any], bool]] = field(default_factory=dict)
    stack: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)
    failed_step: str | None = None
    rolled_back: bool = False


def read_progress(events: Sequence[JournalEvent],
                  later: Sequence[Sequence[JournalEvent]] = ()) -> dict[str, HostProgress]:
    """Per host: completed steps (with the facts they set) and the rollback stack.

    ``events`` are the run's own; ``later`` the events of the runs that continued it
    (resumes, rollbacks), oldest first: their re-stated ("restored") stack entries are
    skipped, everything else they did applies on top.
    """
    hosts: dict[str, HostProgress] = {}
    for index, run_events in enumerate([events, *later]):
        _apply(hosts, run_events, continuation=index > 0)
    return hosts


def _apply(hosts: dict[str, HostProgress], events: Sequence[JournalEvent],
           continuation: bool) -> None:
    facts: dict[tuple[str, str], tuple[dict[str, Any], bool, bool]] = {}
    unwinding: set[str] = set()
    in_flight: dict[str, str] = {}
    for event in events:
        host = event.host
        if host is None:
            continue
        progress = hosts.setdefault(host, HostProgress())
        data = event.data
        step = event.step or ""
        if event.kind == "step_facts":
            facts[(host, step)] = (dict(data.get("facts") or {}), bool(data.get("simulated")),
                                   bool(data.get("no_log")))
        elif event.kind == "step_end" and event.phase != "rollback":
            if event.status in ("ok", "changed", "skipped", "restored") or data.get("ignored"):
                values, simulated, no_log = facts.pop((host, step), ({}, False, False))
                if no_log:
                    # its values were masked in the journal: a resume runs it again
                    progress.completed.pop(step, None)
                else:
                    progress.completed[step] = (values, simulated)
            elif event.status in ("failed", "unreachable"):
                progress.failed_step = step
                facts.pop((host, step), None)
        elif event.kind == "rollback_push":
            if continuation and data.get("restored"):
                continue    # the continuing run re-states the stack it got from us
            progress.stack.append((step, dict(data.get("snapshot") or {}),
                                   str(data.get("title") or "")))
        elif event.kind == "rollback_start":
            unwinding.add(host)
        elif event.kind == "rollback_undo":
            in_flight[host] = step
        elif event.kind == "rollback_pop":
            for position in range(len(progress.stack) - 1, -1, -1):
                if progress.stack[position][0] == step:
                    del progress.stack[position]
                    break
            progress.completed.pop(step, None)   # undone: a resume does it again
            in_flight.pop(host, None)
        elif event.kind == "rollback_end":
            unwinding.discard(host)
            in_flight.pop(host, None)
            if data.get("ok"):
                # what completed before was undone: a resume does it again
                progress.completed.clear()
                progress.rolled_back = True
    for host in unwinding:    # killed while rolling back: what is left is still done,
        progress = hosts[host]   # except the entry being undone: count it as undone
        progress.rolled_back = False
        step = in_flight.get(host)
        if step is not None:
            for position in range(len(progress.stack) - 1, -1, -1):
                if progress.stack[position][0] == step:
                    del progress.stack[position]
                    break
            progress.completed.pop(step, None)
