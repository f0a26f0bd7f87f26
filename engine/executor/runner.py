"""The run: preflight, batches, steps in lock-step across hosts, blocks, failure
tolerance, rollback, stop on signals or timeout, and the final report.

Each step runs on every active host of the batch (in parallel, up to ``forks``)
before the next step starts.  Blocks are entered by all hosts whose ``when``
holds; hosts that fail inside a block go to ``rescue``; every host that entered
runs ``always``.  A failure that is not rescued takes the host out of the run.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from ..errors import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_ROLLBACK_FAILED,
                      RunbookError)
from ..model import Runbook, Step
from . import retry
from .context import RunContext
from .events import BatchStart, RollbackPushed, RunEnd, StepEnd, StepStart
from .rollback import unwind
from .state import Failure, HostState, RollbackEntry
from .step import StepRunner

if TYPE_CHECKING:
    from .journal import HostProgress

__all__ = ["Executor", "RunReport", "batches"]

DEFAULT_FORKS = 20


@dataclass
class RunReport:
    run_id: str
    status: str
    exit_code: int
    duration: float
    hosts: dict[str, HostState]
    failures: list[Failure] = field(default_factory=list)
    stop_reason: str = ""


def batches(hosts: Sequence[Any], serial: Sequence[int | str]) -> list[list[Any]]:
    """Split hosts into rolling batches: sizes from ``serial`` (the last one repeats);
    percentages are of all hosts, rounded down, at least one host."""
    if not serial:
        return [list(hosts)] if hosts else []
    total = len(hosts)
    sizes: list[int] = []
    for value in serial:
        if isinstance(value, str) and value.endswith("%"):
            size = int(math.floor(total * float(value[:-1]) / 100.0))
        else:
            size = int(value)
        sizes.append(max(1, size))
    out: list[list[Any]] = []
    index = 0
    position = 0
    while position < total:
        size = sizes[min(index, len(sizes) - 1)]
        out.append(list(hosts[position:position + size]))
        position += size
        index += 1
    return out


def tolerance_exceeded(failed: int, size: int, max_fail_percentage: float | None) -> bool:
    """Ansible's rule, exactly: stop when the failed share of the batch is *more* than
    the percentage; without a percentage, only when every host of the batch failed."""
    if size == 0:
        return False
    if max_fail_percentage is None:
        return failed >= size
    return failed * 100 > max_fail_percentage * size


class Executor:
    """Runs one runbook on its hosts."""

    def __init__(self, run: RunContext, hosts: Sequence[Any],
                 progress: "dict[str, HostProgress] | None" = None,
                 resumed_from: str | None = None) -> None:
        self.run = run
        self.progress = progress or {}
        self.resumed_from = resumed_from
        self.hosts = list(hosts)
        self.runbook: Runbook = run.runbook
        forks = run.options.forks or self.runbook.forks or DEFAULT_FORKS
        self.forks = max(1, forks)
        self.steps = StepRunner(run)
        self._pool: ThreadPoolExecutor | None = None
        self._selected = _Selection(self.runbook, run.options)
        self.done_batches: list[list[HostState]] = []

    # ---------------------------------------------------------------- public
    def execute(self) -> RunReport:
        run = self.run
        start = time.monotonic()
        if self.runbook.timeout:
            run.run_deadline = start + self.runbook.timeout
        states = self._states()
        try:
            self._run(states)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            run.pool.close_all()
        return self._report(states, time.monotonic() - start)

    def rollback_only(self) -> RunReport:
        """``runbook rollback``: unwind the restored stacks, nothing else."""
        run = self.run
        start = time.monotonic()
        states = self._states()
        for state in states:
            state.restored.clear()   # nothing runs forward: only the stacks matter
        try:
            stacked = [s for s in states if s.rollback_stack]
            if stacked:
                self._fan_out(lambda state: unwind(run, self.steps, state,
                                                   "runbook rollback was asked"), stacked)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            run.pool.close_all()
        return self._report(states, time.monotonic() - start, rollback_only=True)

    def _states(self) -> list[HostState]:
        """One state per host, with what a resumed run's journal says it did."""
        states = []
        for host in self.hosts:
            state = self.run.states[host.name] = HostState(host)
            self._restore(state)
            states.append(state)
        return states

    def _restore(self, state: HostState) -> None:
        """Resume: what the journal says this host completed, and its rollback stack."""
        progress = self.progress.get(state.name)
        if progress is None:
            return
        state.resumed_from = self.resumed_from
        state.restored = dict(progress.completed)
        for step_id, snapshot, title in progress.stack:
            step = self.runbook.find_step(step_id)
            if step is not None and step.rollback:
                state.rollback_stack.append(RollbackEntry(step=step, snapshot=snapshot,
                                                          title=title))
                self.run.bus.emit(RollbackPushed(self.run.run_id, state.name, step_id,
                                                 snapshot, title, restored=True))

    def _run(self, states: list[HostState]) -> None:
        run = self.run
        if self.runbook.preflight:
            self._steps(self.runbook.preflight, states, "preflight")
            failed = [s for s in states if s.failure is not None]
            if failed:
                run.stop(f"preflight failed on {', '.join(s.name for s in failed)}: "
                         "nothing was changed")
                self._rollback_after_stop([states])
                return
        groups = batches(states, self.runbook.serial)
        for number, batch in enumerate(groups, 1):
            if run.stopping:
                break
            for state in batch:
                state.batch = number
            if len(groups) > 1:
                run.bus.emit(BatchStart(run.run_id, number, len(groups),
                                        tuple(s.name for s in batch)))
            self._batch(batch)
            self.done_batches.append(batch)
            if run.stopping:
                break
            self._rollback_failed_hosts(batch)
        if run.stopping:
            self._rollback_after_stop(self.done_batches)

    # ---------------------------------------------------------------- batches
    def _batch(self, batch: list[HostState]) -> None:
        self._batch_steps(batch)
        if not self.run.stopping:
            for state in batch:
                if state.active:
                    state.completed = True

    def _batch_steps(self, batch: list[HostState]) -> None:
        run = self.run
        for step in self.runbook.steps:
            if self._check_stop():
                return
            active = [s for s in batch if s.active]
            if not active:
                break
            self._step(step, active, "steps")
            failed = sum(1 for s in batch if s.failure is not None)
            if failed and self.runbook.on_failure == "abort":
                run.stop("a step failed (on_failure: abort)")
                return
            if tolerance_exceeded(failed, len(batch), self.runbook.max_fail_percentage):
                if self.runbook.max_fail_percentage is None:
                    run.stop("every host of the batch failed")
                else:
                    run.stop(f"{failed} of {len(batch)} hosts failed, more than "
                             f"max_fail_percentage {self.runbook.max_fail_percentage:g}%")
                return

    def _check_stop(self) -> bool:
        run = self.run
        if run.run_deadline is not None and time.monotonic() >= run.run_deadline:
            run.stop(f"the runbook's timeout ({self.runbook.timeout:g}s) was reached")
        return run.stopping

    # ---------------------------------------------------------------- steps
    def _steps(self, steps: Iterable[Step], states: list[HostState], phase: str) -> None:
        for step in steps:
            if self._check_stop():
                return
            active = [s for s in states if s.active]
            if not active:
                return
            self._step(step, active, phase)

    def _step(self, step: Step, states: list[HostState], phase: str) -> None:
        if not self._selected.runs(step, phase):
            return
        if self.run.options.step_by_step and self.run.confirm_step is not None and \
                not step.is_block:
            answer = self.run.confirm_step(step, [s.name for s in states])
            if answer == "quit":
                self.run.stop("stopped at the operator's request (--step)")
                return
            if answer == "no":
                return
        if step.is_block:
            self._block(step, states, phase)
            return
        if step.run_once:
            first = states[0]
            self.steps.execute(step, first, phase)
            self._share_once(step, first, states[1:])
            return
        self._fan_out(lambda state: self.steps.execute(step, state, phase), states)

    def _share_once(self, step: Step, first: HostState, others: list[HostState]) -> None:
        """run_once: the other hosts get the first host's registered result and status."""
        for state in others:
            if step.register and step.register in first.facts:
                state.facts[step.register] = first.facts[step.register]
            if first.failure is not None and not step.ignore_errors:
                state.failure = Failure(host=state.name, step_id=step.id,
                                        step_name=step.title, loc=step.loc,
                                        message=f"run_once step failed on {first.name}: "
                                                f"{first.failure.message}", phase="steps")
                state.stats.failed += 1

    def _fan_out(self, work: Callable[[HostState], Any], states: list[HostState]) -> None:
        if len(states) == 1 or self.forks == 1:
            for state in states:
                work(state)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.forks,
                                            thread_name_prefix="runbook-host")
        futures = [self._pool.submit(work, state) for state in states]
        for future in futures:
            future.result()

    # ---------------------------------------------------------------- blocks
    def _block(self, step: Step, states: list[HostState], phase: str) -> None:
        run = self.run
        entering: list[HostState] = []
        for state in states:
            scope = run.scope(state, step)
            try:
                holds = all(run.templar.truth(c.expr, scope, c.loc) for c in step.when)
            except RunbookError as exc:
                self.steps.cannot_run(step, state, phase, exc.message,
                                      loc=getattr(exc, "loc", None), hint=exc.hint)
                continue
            if holds:
                entering.append(state)
            else:
                state.stats.skipped += 1
                self._emit_skip(step, state, phase)
        if not entering:
            return
        block_vars = dict(step.vars)
        for state in entering:
            state.block_vars.append(block_vars)
            if step.timeout:
                state.deadlines.append(time.monotonic() + step.timeout)
        try:
            try:
                self._block_attempts(step, entering, phase)
            finally:
                if step.timeout:   # it bounds the block's own steps, not rescue/always
                    for state in entering:
                        state.deadlines.pop()
            if step.rollback:
                for state in entering:
                    if state.failure is None:
                        self.steps.push(step, state, {})
            failed = [s for s in entering if s.failure is not None and not s.unreachable]
            if step.rescue and failed:
                for state in failed:
                    state.facts["failed_step"] = state.failure.to_json() if state.failure \
                        else {}
                    state.failure = None
                    state.stats.rescued += 1
                self._steps(step.rescue, failed, "rescue")
            if step.always:
                held = {s.name: s.failure for s in entering}
                for state in entering:
                    if not state.unreachable:
                        state.failure = None
                self._steps(step.always, [s for s in entering if not s.unreachable], "always")
                for state in entering:
                    if state.failure is None and held.get(state.name) is not None:
                        state.failure = held[state.name]
            if step.ignore_errors:
                for state in entering:
                    if state.failure is not None and not state.unreachable:
                        state.failure = None
                        state.stats.ignored += 1
        finally:
            for state in entering:
                state.block_vars.pop()

    def _block_attempts(self, step: Step, entering: list[HostState], phase: str) -> None:
        """Run the block's steps; retry it (for the hosts that need it) per its policy."""
        run = self.run
        pending = list(entering)

        def attempt(number: int) -> None:
            nonlocal pending
            self._steps(step.block or (), pending, phase)
            again = []
            for state in pending:
                if state.unreachable:
                    continue
                if state.failure is not None:
                    again.append(state)
                elif step.retry.until:
                    scope = run.scope(state, step)
                    if not all(run.templar.truth(c.expr, scope, c.loc) for c in step.retry.until):
                        again.append(state)
            if again and number < step.retry.attempts and not run.stopping:
                for state in again:
                    state.failure = None
                pending = again
                raise retry.RetryWanted(f"block {step.id} must run again on "
                                        f"{', '.join(s.name for s in again)}")
            for state in again:
                if state.failure is None:
                    state.failure = Failure(state.name, step.id, step.title, step.loc,
                                            f"'until' of the block still false after {number} "
                                            "attempt(s)", phase=phase)
                    state.stats.failed += 1

        def on_retry(number: int, delay: float, reason: str) -> None:
            from .events import Retry
            for state in pending:
                state.stats.retried += 1
                run.bus.emit(Retry(run.run_id, state.name, step.id, number,
                                   step.retry.attempts, round(delay, 3), reason))

        retry.run(step.retry, attempt, sleep=run.sleep, on_retry=on_retry,
                  stopped=lambda: run.stopping)

    def _emit_skip(self, step: Step, state: HostState, phase: str) -> None:
        run = self.run
        run.bus.emit(StepStart(run.run_id, state.name, step.id, step.title, None,
                               str(step.loc), phase))
        run.bus.emit(StepEnd(run.run_id, state.name, step.id, step.title, "skipped", False,
                             0.0, phase=phase, msg="condition false", loc=str(step.loc)))

    # ---------------------------------------------------------------- rollback
    def _rollback_failed_hosts(self, batch: list[HostState]) -> None:
        """End of a batch: unwind the hosts that failed (when on_failure is rollback)."""
        self.run.end_grace()
        if self.runbook.on_failure != "rollback" or self.run.options.no_rollback:
            return
        failed = [s for s in batch if s.failure is not None and s.rollback_stack]
        if failed:
            self._fan_out(lambda state: unwind(self.run, self.steps, state,
                                               "this host failed"), failed)

    def _rollback_after_stop(self, done: list[list[HostState]]) -> None:
        """The run stopped: unwind every host that changed something, newest batch first."""
        run = self.run
        run.end_grace()
        if self.runbook.on_failure != "rollback" or run.options.no_rollback or \
                run.hard_stopped:
            return
        for batch in reversed(done):
            hosts = [s for s in batch if s.rollback_stack]
            if hosts:
                self._fan_out(lambda state: unwind(run, self.steps, state,
                                                   run.stop_reason or "the run stopped"), hosts)
            if run.hard_stopped:
                return

    # ---------------------------------------------------------------- report
    def _report(self, states: list[HostState], duration: float,
                rollback_only: bool = False) -> RunReport:
        run = self.run
        failures = [s.failure for s in states if s.failure is not None]
        rollback_failed = any(s.rollback_failed for s in states)
        rollback_incomplete = any(s.rollback_stack for s in states if s.rollback_ran)
        interrupted = run.stop_reason.startswith("interrupted")
        if rollback_only and not (rollback_failed or rollback_incomplete):
            status, code = "rolled_back", EXIT_OK
        elif rollback_failed or rollback_incomplete:
            status, code = "rollback_failed", EXIT_ROLLBACK_FAILED
        elif interrupted:
            status, code = "interrupted", EXIT_INTERRUPTED
        elif failures or run.stopping:
            rolled = any(s.rollback_ran for s in states)
            status, code = ("rolled_back" if rolled else "failed"), EXIT_FAILED
        else:
            status, code = "ok", EXIT_OK
        report = RunReport(run.run_id, status, code, duration, {s.name: s for s in states},
                           failures, run.stop_reason)
        hosts = {s.name: {**vars(s.stats), "status": s.status()} for s in states}
        run.bus.emit(RunEnd(run.run_id, status, code, round(duration, 6), hosts,
                            tuple(f.to_json() for f in failures), run.options.dry_run,
                            stop_reason=run.stop_reason))
        return report


class _Selection:
    """--tags, --skip-tags and --start-at: which steps run."""

    def __init__(self, runbook: Runbook, options: Any) -> None:
        self.tags = set(options.tags)
        self.skip = set(options.skip_tags)
        self.skip_paths: set[str] = set()
        if options.start_at:
            self._start_at(runbook, options.start_at)

    def _start_at(self, runbook: Runbook, step_id: str) -> None:
        order: list[Step] = []

        def visit(steps: Iterable[Step]) -> None:
            for step in steps:
                order.append(step)
                visit(step.children())
        visit(runbook.steps)
        target = next((s for s in order if s.id == step_id), None)
        if target is None:
            return
        parts = target.path.split(".")
        ancestors = {".".join(parts[:i]) for i in range(1, len(parts))}
        for step in order:
            if step is target:
                break
            if step.path not in ancestors:
                self.skip_paths.add(step.path)

    def runs(self, step: Step, phase: str) -> bool:
        if step.path in self.skip_paths:
            return False
        tags = set(step.tags) | ({"always"} if phase == "preflight" else set())
        if self.skip and tags & self.skip:
            return False
        if step.is_block and self.tags:
            return "always" in tags or bool(self.tags & tags) or any(
                self.runs(child, phase) for child in step.children())
        if "never" in tags and not (self.tags & tags):
            return False
        if not self.tags:
            return True
        return "always" in tags or bool(self.tags & tags) or "all" in self.tags

