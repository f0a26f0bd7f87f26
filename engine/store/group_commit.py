"""Group commit: callers on many threads queue their rows, one of them commits them all."""

from __future__ import annotations

import threading
from typing import Any, Callable

from ..errors import StoreError

__all__ = ["GroupCommit"]

_Row = tuple[Any, ...]


def _copy(error: BaseException) -> BaseException:
    """A fresh exception per waiting thread (one object raised in many threads would
    share and scramble its traceback)."""
    if isinstance(error, StoreError):
        return StoreError(error.message, hint=error.hint)
    return StoreError(f"the journal write failed: {str(error) or type(error).__name__}")


class _Ticket:
    """One caller's rows in the queue, and what became of them."""

    __slots__ = ("rows", "done", "error", "leader", "wakeup")

    def __init__(self, rows: list[_Row]) -> None:
        self.rows = rows
        self.done = False                # committed (or failed: see error)
        self.error: BaseException | None = None
        self.leader = False              # this caller commits the next group
        self.wakeup: Any = None          # a held lock the waiting caller blocks on


class GroupCommit:
    """Leader/follower group commit (the scheme of LevelDB's write queue).

    A caller queues its rows.  If nobody is committing, it becomes the leader: it takes
    the whole queue, commits it in one transaction, wakes the callers whose rows were in
    it, and hands the lead to the first caller still queued.  Otherwise it sleeps until
    its rows are committed or the lead is handed to it.  A lone caller leads at once on
    its own thread: one commit, no thread hand-off.  Each sleeper is woken by its own
    lock, so a commit wakes only the callers it served and the next leader.
    """

    def __init__(self, commit: Callable[[list[list[_Row]]], list[BaseException | None]]
                 ) -> None:
        self._commit = commit
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: list[_Ticket] = []
        self._leading = False
        self._closed = False
        self.groups = 0                  # commits made (for tests and measurements)

    def submit(self, rows: list[_Row]) -> None:
        ticket = _Ticket(rows)
        with self._lock:
            if self._closed:
                raise StoreError("the run journal is closed")
            self._queue.append(ticket)
            if self._leading:
                ticket.wakeup = threading.Lock()
                ticket.wakeup.acquire()
            else:
                self._leading = ticket.leader = True
        if not ticket.leader:
            try:
                ticket.wakeup.acquire()  # until committed, or handed the lead
            except BaseException:        # a signal handler raised in this thread
                self._abandon(ticket)
                raise
            if ticket.done:
                if ticket.error is not None:
                    raise _copy(ticket.error)
                return
        self._lead(ticket)

    def _lead(self, ticket: _Ticket) -> None:
        group: list[_Ticket] = []
        errors: list[BaseException | None] = []
        try:
            with self._lock:
                group, self._queue = self._queue, []
            errors = self._commit([t.rows for t in group])
        except BaseException as exc:     # e.g. KeyboardInterrupt mid-commit
            errors = [exc] * len(group)
            raise
        finally:
            with self._lock:
                self.groups += 1
                for served, error in zip(group, errors):
                    served.error = error
                    served.done = True
                successor = self._pass_lead()
            for served in group:
                if served.wakeup is not None:
                    served.wakeup.release()
            if successor is not None:
                successor.wakeup.release()
        if ticket.error is not None:
            raise ticket.error

    def _pass_lead(self) -> _Ticket | None:
        """(Under the lock) make the first queued caller the leader, or go idle."""
        successor = self._queue[0] if self._queue else None
        if successor is not None:
            successor.leader = True
        else:
            self._leading = False
            self._idle.notify_all()
        return successor

    def _abandon(self, ticket: _Ticket) -> None:
        """A waiting caller gave up: drop its rows if still queued, pass the lead on if it
        had been handed the lead, so the others are not left waiting for it."""
        successor = None
        with self._lock:
            if ticket.done or ticket not in self._queue:
                return                   # committed, or in the group being committed
            self._queue.remove(ticket)
            if ticket.leader:
                successor = self._pass_lead()
        if successor is not None:
            successor.wakeup.release()

    def close(self) -> None:
        """Refuse new rows and wait until the queue is committed."""
        with self._lock:
            self._closed = True
            while self._leading:
                self._idle.wait()
