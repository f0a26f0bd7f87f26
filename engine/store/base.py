"""The run journal's interface: runs, their events, and locks.

The executor never talks to a database: it emits events, a JournalSink hands
them to a ``Store``.  SQLite (sqlite.py) is the default backend; another one only
has to implement this class.

Durability rule: ``append()`` returns only once the events are durable against a
crash of this process (written to the database file), because the journal is the
source of truth for ``runbook resume``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

__all__ = ["RunRecord", "JournalEvent", "LockRecord", "LockHolder", "Store"]


@dataclass(frozen=True)
class RunRecord:
    """One run: who, what, where, how it ended."""

    run_id: str
    runbook: str                      # the runbook's name
    path: str                         # absolute path of the runbook file
    content_hash: str                 # sha256 of the file when the run started
    user: str
    machine: str
    pid: int
    started_at: float
    hosts: tuple[str, ...]
    params: Mapping[str, Any]         # secrets redacted (or kept as env:/file: references)
    options: Mapping[str, Any]        # inventory path, limit, tags, dry_run, ... (to resume)
    dry_run: bool = False
    status: str = "running"           # running ok failed rolled_back rollback_failed interrupted
    exit_code: int | None = None
    ended_at: float | None = None
    resumed_from: str | None = None   # run id this run resumed
    parent_kind: str = "run"          # run | resume | rollback


@dataclass(frozen=True)
class JournalEvent:
    """One event of a run as stored (already redacted)."""

    run_id: str
    kind: str                         # the event's kind (step_start, step_end, ...)
    ts: float
    host: str | None = None
    step: str | None = None
    phase: str | None = None
    status: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)   # the event's JSON form
    seq: int = 0                      # assigned by the store, increasing per run


@dataclass(frozen=True)
class LockHolder:
    run_id: str
    user: str
    machine: str
    pid: int


@dataclass(frozen=True)
class LockRecord:
    name: str
    holder: LockHolder
    since: float
    expires: float


class Store:
    """What the engine needs from a journal backend."""

    # -- runs -----------------------------------------------------------------------
    def begin_run(self, run: RunRecord) -> None:
        raise NotImplementedError

    def finish_run(self, run_id: str, status: str, exit_code: int, ended_at: float) -> None:
        raise NotImplementedError

    def append(self, events: Sequence[JournalEvent]) -> None:
        """Store events durably (see the module docstring) before returning."""
        raise NotImplementedError

    def get_run(self, run_id: str) -> RunRecord | None:
        """A run by id, or by a unique prefix of its id."""
        raise NotImplementedError

    def list_runs(self, *, runbook: str | None = None, status: str | None = None,
                  host: str | None = None, limit: int = 20) -> list[RunRecord]:
        """Newest first."""
        raise NotImplementedError

    def events(self, run_id: str, *, host: str | None = None,
               kinds: Sequence[str] | None = None) -> list[JournalEvent]:
        """A run's events in the order they happened."""
        raise NotImplementedError

    # -- locks ----------------------------------------------------------------------
    def acquire(self, names: Sequence[str], holder: LockHolder, lease: float) -> None:
        """Take every lock or none; raise LockHeld naming the holder of the first one
        held by a live lease of another run.  Expired leases are taken over."""
        raise NotImplementedError

    def renew(self, run_id: str, lease: float) -> None:
        raise NotImplementedError

    def release(self, run_id: str) -> None:
        raise NotImplementedError

    def locks(self) -> list[LockRecord]:
        raise NotImplementedError

    def unlock(self, name: str) -> LockRecord | None:
        """Release a lock by hand; the record released, or None."""
        raise NotImplementedError

    def close(self) -> None:
        pass
