"""The run journal: where it lives, how to open it, and how a held lock is described.

Location, first match wins: an explicit path (``--state``), ``$RUNBOOK_STATE``,
``$XDG_STATE_HOME/runbook/state.db``, ``~/.local/state/runbook/state.db``.
"""

from __future__ import annotations

import os
import shlex
import time

from ..errors import LockHeld, StoreError
from .base import JournalEvent, LockHolder, LockRecord, RunRecord, Store

__all__ = ["process_alive", "open_store", "default_state_path", "state_path", "lock_held", "describe_holder",
           "local_time", "Store", "RunRecord", "JournalEvent", "LockHolder", "LockRecord"]


def default_state_path() -> str:
    """``$XDG_STATE_HOME/runbook/state.db``, or ``~/.local/state/runbook/state.db``."""
    base = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):   # the XDG spec says to ignore a relative value
        base = os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "runbook", "state.db")


def state_path(path: str | None = None) -> str:
    """The journal file to use: ``path``, else ``$RUNBOOK_STATE``, else the default."""
    chosen = path or os.environ.get("RUNBOOK_STATE") or default_state_path()
    return os.path.abspath(os.path.expanduser(chosen))


def open_store(path: str | None = None) -> Store:
    """Open (creating it and its folders if needed) the journal at ``state_path(path)``."""
    from .sqlite import SqliteStore
    resolved = state_path(path)
    folder = os.path.dirname(resolved)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the folder of the run journal {folder}: "
                         f"{exc.strerror}",
                         hint="choose another place with --state PATH or RUNBOOK_STATE") \
            from None
    return SqliteStore(resolved)


# -- how locks read, shared by every backend and the CLI -------------------------------

def local_time(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _relative(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"


def describe_holder(lock: LockRecord, now: float | None = None) -> str:
    """``run R (user@machine, pid P) since <local time>, lease expires <local time> (in 30s)``."""
    now = time.time() if now is None else now
    holder = lock.holder
    left = lock.expires - now
    lease = (f"lease expires {local_time(lock.expires)} (in {_relative(left)})" if left > 0
             else f"lease expired {local_time(lock.expires)} ({_relative(left)} ago)")
    return (f"run {holder.run_id} ({holder.user}@{holder.machine}, pid {holder.pid}) "
            f"since {local_time(lock.since)}, {lease}")


def lock_held(lock: LockRecord, now: float | None = None) -> LockHeld:
    """The error a run gets when another run's live lease holds ``lock``."""
    command = f"runbook unlock {shlex.quote(lock.name)}"
    return LockHeld(f"lock '{lock.name}' is held by {describe_holder(lock, now)}",
                    hint=f"wait for that run to finish; if it is dead, the lock frees itself "
                         f"when the lease expires, or at once with: {command}")


def process_alive(machine: str, pid: int) -> bool:
    """Whether the process that wrote a run still exists (only knowable on this machine:
    a run from another machine counts as alive)."""
    if machine != os.uname().nodename:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
