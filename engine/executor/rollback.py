"""Unwinding a host's rollback stack: newest entry first, every entry's steps in the
order written, each with its own retries.  A failing rollback step is reported and
the unwinding goes on; only a hard stop (a second Ctrl-C) cuts it short.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .context import RunContext
from .events import (RollbackEnd, RollbackPopped, RollbackStart, RollbackStep,
                     RollbackUndoing)
from ..redact import MASK
from .state import HostState

if TYPE_CHECKING:
    from .step import StepRunner

__all__ = ["unwind"]


def unwind(run: RunContext, runner: "StepRunner", state: HostState, reason: str) -> bool:
    """Run the host's rollback steps in reverse order; True when all of them succeeded."""
    stack = state.rollback_stack
    if not stack:
        return True
    total = sum(len(entry.steps) for entry in stack)
    run.bus.emit(RollbackStart(run.run_id, state.name, total, reason))
    state.rollback_ran = True
    held_failure = state.failure
    done = failed = 0
    while stack:
        if run.hard_stopped:
            break
        entry = stack[-1]
        run.bus.emit(RollbackUndoing(run.run_id, state.name, entry.step.id))
        masked = _masked(entry.snapshot)
        for rollback_step in entry.steps:
            if run.hard_stopped:
                break
            start = time.perf_counter()
            if masked:
                outcome = runner.cannot_run(
                    rollback_step, state, "rollback",
                    f"needs {', '.join(repr(n) for n in masked)}, which held a secret (a "
                    "no_log step's output or a secret value) that the journal does not keep: "
                    "undo it by hand")
            else:
                outcome = runner.execute(rollback_step, state, "rollback",
                                         snapshot=entry.snapshot)
            if outcome.status in ("failed", "unreachable") and not outcome.ignored:
                failed += 1
                state.stats.rollback_failed += 1
                state.rollback_failed = True
            else:
                done += 1
                state.stats.rolled_back += 1
            run.bus.emit(RollbackStep(run.run_id, state.name, rollback_step.id,
                                      outcome.title or rollback_step.title, entry.step.id,
                                      entry.title or entry.step.title,
                                      outcome.status,
                                      round(time.perf_counter() - start, 6),
                                      outcome.result.msg))
        else:
            stack.pop()
            run.bus.emit(RollbackPopped(run.run_id, state.name, entry.step.id))
            continue
        break
    state.failure = held_failure
    ok = failed == 0 and not stack
    run.bus.emit(RollbackEnd(run.run_id, state.name, ok, done, failed))
    return ok


def _masked(snapshot: dict) -> list[str]:
    """Names whose journalled value was masked (only possible for a restored stack)."""
    found = []
    for name, value in snapshot.items():
        if MASK in repr(value):
            found.append(name)
    return found
