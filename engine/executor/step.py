"""One step on one host: when -> action (per loop item) -> failed_when/changed_when ->
check -> until, with retries, timeouts, register, rollback push and dry-run rules.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Mapping

from ..actions import get_action
from ..crashlog import write_crash_log
from ..actions.base import Action, ActionContext, CannotSimulate, StepResult
from ..actions.schema import coerce
from ..errors import ActionTimeout, RunbookError, StepFailed, TargetError, TemplateError
from ..model import Condition, SourceLoc, Step
from ..redact import MASK
from . import retry
from .context import RunContext
from .events import LogMessage, Retry, RollbackPushed, StepEnd, StepFacts, StepStart
from .state import Failure, HostState, RollbackEntry

__all__ = ["StepRunner", "Outcome"]

@dataclass(frozen=True)
class Outcome:
    """How a step ended on a host."""

    status: str                 # ok changed failed skipped unreachable simulated unsimulated
    result: StepResult
    failure: Failure | None = None
    ignored: bool = False
    note: str = ""
    title: str = ""

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "unreachable") and not self.ignored


class StepRunner:
    """Runs action steps; blocks are the executor's business."""

    def __init__(self, run: RunContext) -> None:
        self.run = run
        self._instances: dict[str, Action] = {}
        self._names_cache: dict[str, frozenset[str]] = {}

    # ---------------------------------------------------------------- entry
    def execute(self, step: Step, state: HostState, phase: str = "steps",
                snapshot: Mapping[str, Any] | None = None) -> Outcome:
        """Run an action step on one host and record what happened."""
        run = self.run
        if phase != "rollback" and run.stopping:
            return Outcome("skipped", StepResult(skipped=True, msg="the run is stopping"))
        state.started = True
        if phase != "rollback" and step.id in state.restored:
            return self._restore(step, state, phase)
        start = time.perf_counter()
        title = self._title(step, state, snapshot)
        run.bus.emit(StepStart(run.run_id, state.name, step.id, title, step.action,
                               str(step.loc), phase))
        try:
            outcome = self._execute(step, state, phase, snapshot)
        except TemplateError as exc:
            outcome = self._failed(step, state, phase, exc.message, loc=exc.loc or step.loc,
                                   hint=exc.hint)
        except TargetError as exc:
            outcome = self._failed(step, state, phase, exc.message, unreachable=True)
        except RunbookError as exc:
            outcome = self._failed(step, state, phase, exc.message)
        except Exception as exc:  # a bug must not stop the rollback of the run
            path = write_crash_log(exc, f"step {step.id} on host {state.name}")
            where = f" (details in {path})" if path else ""
            outcome = self._failed(step, state, phase,
                                   f"internal error: {type(exc).__name__}: {exc}{where}")
        duration = time.perf_counter() - start
        outcome = replace(outcome, title=title)
        self._record(step, state, outcome, phase, duration)
        return outcome

    def _restore(self, step: Step, state: HostState, phase: str) -> Outcome:
        """A step that completed in the run being resumed: its variables, not its work."""
        run = self.run
        facts, simulated = state.restored.pop(step.id)
        state.facts.update(facts)
        if simulated:
            state.simulated.update(facts)
        state.stats.restored += 1
        message = f"completed in run {state.resumed_from}" if state.resumed_from else \
            "completed before"
        run.bus.emit(StepStart(run.run_id, state.name, step.id, step.title, step.action,
                               str(step.loc), phase))
        if facts:
            run.bus.emit(StepFacts(run.run_id, state.name, step.id, facts, simulated))
        run.bus.emit(StepEnd(run.run_id, state.name, step.id, step.title, "restored", False,
                             0.0, msg=message, phase=phase, loc=str(step.loc)))
        return Outcome("restored", StepResult(msg=message))

    def cannot_run(self, step: Step, state: HostState, phase: str, message: str, *,
                   loc: SourceLoc | None = None, hint: str | None = None) -> Outcome:
        """Report a step as failed without running it: a block whose ``when`` cannot be
        evaluated, a rollback step missing a value the journal masked."""
        run = self.run
        run.bus.emit(StepStart(run.run_id, state.name, step.id, step.title, step.action,
                               str(step.loc), phase))
        outcome = replace(self._failed(step, state, phase, message, loc=loc or step.loc,
                                       hint=hint), title=step.title)
        self._record(step, state, outcome, phase, 0.0)
        return outcome

    def _title(self, step: Step, state: HostState,
               snapshot: Mapping[str, Any] | None = None) -> str:
        title = step.title
        if "{{" in title:
            try:
                return str(self.run.templar.render(title, self.run.scope(state, step, snapshot)))
            except RunbookError:
                return title
        return title

    # ---------------------------------------------------------------- the step
    def _execute(self, step: Step, state: HostState, phase: str,
                 snapshot: Mapping[str, Any] | None) -> Outcome:
        run = self.run
        scope = run.scope(state, step, snapshot)
        action_cls = get_action(step.action or "")
        if action_cls is None:
            raise StepFailed(f"unknown action '{step.action}'")
        if step.loop is None:
            note = ""
            if step.when:
                holds, note = self._when(step.when, scope, state)
                if not holds:
                    return Outcome("skipped", StepResult(skipped=True, msg="condition false"),
                                   note=note)
            result = self._attempts(step, state, action_cls, scope, phase)
            return self._judge(step, state, result, note, snapshot, phase=phase)
        items = run.templar.render(step.loop, scope, step.loc)
        if isinstance(items, (str, bytes)) or not hasattr(items, "__iter__"):
            raise TemplateError(f"'loop' must give a list, got {type(items).__name__}",
                                loc=step.loc)
        results: list[dict[str, Any]] = []
        overall = StepResult(skipped=True)
        changed = failed = False
        note = ""
        for item in list(items):
            item_scope = scope.child({step.loop_var: item})
            if step.when:
                holds, note = self._when(step.when, item_scope, state)
                if not holds:
                    results.append({**StepResult(skipped=True).as_vars(), step.loop_var: item})
                    continue
            result = self._attempts(step, state, action_cls, item_scope, phase)
            item_outcome = self._judge(step, state, result, note, snapshot, item=item,
                                       push=False, phase=phase)
            results.append({**result.as_vars(), step.loop_var: item})
            changed = changed or result.changed
            overall = result
            if item_outcome.failed or (result.failed and not step.ignore_errors):
                failed = True
                break
            if step.rollback and not result.failed:
                self._push(step, state, {step.loop_var: item, "result": result.as_vars()},
                           snapshot)
        skipped = all(r.get("skipped") for r in results)
        combined = StepResult(
            changed=changed, failed=failed, skipped=skipped, rc=overall.rc,
            stdout=overall.stdout, stderr=overall.stderr, command=overall.command,
            msg=overall.msg if failed else f"{len(results)} item(s)",
            simulated=overall.simulated, attempts=overall.attempts,
            fields={"results": results})
        if skipped:
            return Outcome("skipped", combined, note=note)
        return self._judge(step, state, combined, note, snapshot, push=False, judged=True,
                           phase=phase)

    def _when(self, conditions: tuple[Condition, ...], scope: Any,
              state: HostState) -> tuple[bool, str]:
        templar = self.run.templar
        for condition in conditions:
            if not templar.truth(condition.expr, scope, condition.loc):
                return False, self._simulated_note(condition, state)
        note = ""
        for condition in conditions:
            note = note or self._simulated_note(condition, state)
        return True, note

    def _simulated_note(self, condition: Condition, state: HostState) -> str:
        if not state.simulated:
            return ""
        names = self.run.templar.names(condition.expr, condition=True) & state.simulated
        if names:
            return f"condition uses simulated result(s): {', '.join(sorted(names))}"
        return ""

    # ---------------------------------------------------------------- attempts
    def _attempts(self, step: Step, state: HostState, action_cls: type[Action], scope: Any,
                  phase: str) -> StepResult:
        run = self.run
        # rollback steps keep retrying while the run is being stopped; only a hard stop ends them
        if phase == "rollback":
            stopped, sleep = (lambda: run.hard_stopped), run.rollback_sleep
        else:
            stopped, sleep = (lambda: run.stopping), run.sleep

        def attempt(number: int) -> StepResult:
            begun = time.perf_counter()
            try:
                result = self._invoke(step, state, action_cls, scope, phase)
            except ActionTimeout as exc:
                result = StepResult(failed=True, msg=exc.message)
            except StepFailed as exc:
                base = exc.result if isinstance(exc.result, StepResult) else StepResult()
                hint = f" (hint: {exc.hint})" if exc.hint else ""
                result = base.but(failed=True, msg=exc.message + hint)
            except TargetError as exc:
                if number < step.retry.attempts and not stopped():
                    raise retry.RetryWanted(exc.message, None) from None
                raise
            result = result.but(duration=time.perf_counter() - begun, attempts=number)
            if result.simulated:
                return result
            result = self._conditions(step, result, scope)
            if step.retry.until:
                rscope = self._result_scope(step, scope, result)
                for condition in step.retry.until:
                    if not run.templar.truth(condition.expr, rscope, condition.loc):
                        raise retry.RetryWanted(
                            f"until not met: {condition.expr.strip()}",
                            result.but(failed=True, msg=f"'until' still false after {number} "
                                                        f"attempt(s): {condition.expr.strip()}"))
            if result.failed and not stopped():
                raise retry.RetryWanted(result.msg or "failed", result)
            return result

        def on_retry(number: int, delay: float, reason: str) -> None:
            state.stats.retried += 1
            run.bus.emit(Retry(run.run_id, state.name, step.id, number, step.retry.attempts,
                               round(delay, 3), reason))

        return retry.run(step.retry, attempt, sleep=sleep, on_retry=on_retry, stopped=stopped)

    def _invoke(self, step: Step, state: HostState, action_cls: type[Action],
                scope: Any, phase: str) -> StepResult:
        run = self.run
        args = self._render_args(step, action_cls, scope)
        # rollback steps are bounded by their own timeout only: undoing must not be cut
        # short by the run or block timeout that caused it
        deadline = state.deadline() if phase != "rollback" else None
        if step.timeout is not None:
            own = time.monotonic() + step.timeout
            deadline = own if deadline is None else min(deadline, own)
        if run.run_deadline is not None and phase != "rollback":
            deadline = run.run_deadline if deadline is None else min(deadline, run.run_deadline)
        if deadline is not None and deadline <= time.monotonic():
            raise ActionTimeout("no time left (block or run timeout reached)")
        target = state.host
        if step.delegate_to:
            name = str(run.templar.render(step.delegate_to, scope, step.loc))
            try:
                target = run.inventory.host(name)   # localhost is always known
            except RunbookError:
                raise TemplateError(f"delegate_to: unknown host '{name}'",
                                    loc=step.loc) from None
        templar = run.templar
        ctx = ActionContext(
            host=state.host, step=step,
            connection_factory=lambda: run.pool.get(target),
            docker_factory=lambda: run.pool.docker(target),
            render=lambda value: templar.render(value, scope, step.loc),
            truth=lambda expr: templar.truth(expr, scope, step.loc),
            render_text=lambda text: templar.render_text(text, scope, step.loc),
            runbook_dir=_step_dir(step, run.runbook_dir), dry_run=run.options.dry_run,
            diff=run.options.diff, deadline=deadline, assume_yes=run.options.assume_yes,
            interactive=run.options.interactive, prompt=self._prompt,
            log=lambda message: run.bus.emit(LogMessage(run.run_id, state.name, step.id,
                                                        str(args.get("level") or "info"),
                                                        MASK if step.no_log else message)),
            vars=scope,
            # a rollback step must finish its waits while the run is stopping
            cancelled=(lambda: run.hard_stopped) if phase == "rollback" else
            (lambda: run.stopping))
        action = self._instances.get(action_cls.name)
        if action is None:
            action = self._instances[action_cls.name] = action_cls()
        if not run.options.dry_run or action_cls.is_read_only(args):
            return action.apply(ctx, args)
        try:
            plan = action.plan(ctx, args)
        except CannotSimulate as exc:
            return StepResult(simulated=True, msg=str(exc),
                              fields={"dry_run": "cannot_simulate"})
        message = "; ".join(plan.changes) if plan.changes else (plan.reason or "no change")
        return StepResult(changed=plan.changed, simulated=True, msg=message, diff=plan.diff,
                          fields={**plan.fields, "dry_run": "planned",
                                  "changes": list(plan.changes)})

    def _render_args(self, step: Step, action_cls: type[Action], scope: Any) -> dict[str, Any]:
        templar = self.run.templar
        args: dict[str, Any] = {}
        params = action_cls.params
        for key, value in step.args.items():
            loc = step.arg_locs.get(key, step.loc)
            if key not in action_cls.raw_params:
                value = templar.render(value, scope, loc)
            spec = params.get(key)
            if spec is not None and value is not None:
                try:
                    value = coerce(spec, value)
                except ValueError as exc:
                    raise TemplateError(f"'{step.action}' parameter '{key}': {exc}",
                                        loc=loc) from None
                if spec.choices and value not in spec.choices:
                    raise TemplateError(f"'{step.action}' parameter '{key}' must be one of "
                                        f"{', '.join(map(str, spec.choices))}; got {value!r}",
                                        loc=loc)
            args[key] = value
        return args

    def _prompt(self, question: str) -> bool:
        if self.run.prompt is None:
            return False
        with self.run.prompt_lock:
            return self.run.prompt(question)

    def _result_scope(self, step: Step, scope: Any, result: StepResult) -> Any:
        view = result.as_vars()
        layer = {"result": view}
        if step.register:
            layer[step.register] = view
        return scope.child(layer)

    def _conditions(self, step: Step, result: StepResult, scope: Any) -> StepResult:
        """failed_when / changed_when override the action's verdict; then check."""
        if not (step.failed_when or step.changed_when or step.check):
            return result
        templar = self.run.templar
        rscope = self._result_scope(step, scope, result)
        if step.changed_when:
            changed = all(templar.truth(c.expr, rscope, c.loc) for c in step.changed_when)
            result = result.but(changed=changed)
        if step.failed_when:
            failed = all(templar.truth(c.expr, rscope, c.loc) for c in step.failed_when)
            msg = result.msg
            if failed and not result.failed:
                msg = f"failed_when is true: {' and '.join(c.expr.strip() for c in step.failed_when)}"
            result = result.but(failed=failed, msg=msg)
        if step.check and not result.failed:
            rscope = self._result_scope(step, scope, result)
            for condition in step.check:
                if not templar.truth(condition.expr, rscope, condition.loc):
                    text = condition.msg or f"check failed: {condition.expr.strip()}"
                    if condition.msg and "{" in condition.msg:
                        text = str(templar.render(condition.msg, rscope, condition.loc))
                    return result.but(failed=True, msg=text)
        return result

    # ---------------------------------------------------------------- verdict
    def _judge(self, step: Step, state: HostState, result: StepResult, note: str,
               snapshot: Mapping[str, Any] | None, item: Any = None, push: bool = True,
               judged: bool = False, phase: str = "steps") -> Outcome:
        if step.no_log:   # mask its values before a rollback snapshot can carry them
            self.run.redactor.add(_secret_values(result))
        if result.failed:
            if step.ignore_errors:
                return Outcome("failed", result, ignored=True, note=note)
            return Outcome("failed", result,
                           failure=self._failure(step, state, result, phase), note=note)
        if push and step.rollback:
            extra = {"result": result.as_vars()}
            self._push(step, state, extra, snapshot)
        if result.simulated:
            status = "unsimulated" if result.fields.get("dry_run") == "cannot_simulate" \
                else "simulated"
            return Outcome(status, result, note=note)
        return Outcome("changed" if result.changed else "ok", result, note=note)

    def push(self, step: Step, state: HostState, extra: Mapping[str, Any],
             snapshot: Mapping[str, Any] | None = None) -> None:
        """Public for blocks: push a completed step's (or block's) rollback."""
        self._push(step, state, extra, snapshot)

    def _push(self, step: Step, state: HostState, extra: Mapping[str, Any],
              snapshot: Mapping[str, Any] | None) -> None:
        """Put the step's rollback on the stack with the variables its steps read."""
        needed = self._rollback_names(step)
        view = {k: v for k, v in state.facts.items() if k in needed}
        if snapshot:
            view.update({k: v for k, v in snapshot.items() if k in needed})
        view.update({k: v for k, v in extra.items() if k in needed})
        if step.register and "result" in extra and step.register in needed:
            view[step.register] = extra["result"]
        title = self._title(step, state, snapshot)
        state.rollback_stack.append(RollbackEntry(step=step, snapshot=view, title=title))
        self.run.bus.emit(RollbackPushed(self.run.run_id, state.name, step.id, view, title))

    def _rollback_names(self, step: Step) -> frozenset[str]:
        """Names the rollback steps of ``step`` read (what their snapshot must keep)."""
        cached = self._names_cache.get(step.id)
        if cached is None:
            templar = self.run.templar
            names: set[str] = {step.loop_var, "result"}
            if step.register:
                names.add(step.register)
            for undo in step.rollback:
                for text in _strings(undo):
                    names |= templar.names(text)
                for condition in (*undo.when, *undo.check, *undo.failed_when,
                                  *undo.changed_when, *undo.retry.until):
                    names |= templar.names(condition.expr, condition=True)
            cached = self._names_cache[step.id] = frozenset(names)
        return cached

    def _failure(self, step: Step, state: HostState, result: StepResult,
                 phase: str = "steps") -> Failure:
        return Failure(host=state.name, step_id=step.id, step_name=step.title, loc=step.loc,
                       message=result.msg or "failed", command=result.command, rc=result.rc,
                       stderr_tail=_tail(result.stderr or ("" if result.rc is None else
                                                           result.stdout)), phase=phase)

    def _failed(self, step: Step, state: HostState, phase: str, message: str, *,
                loc: SourceLoc | None = None, hint: str | None = None,
                unreachable: bool = False) -> Outcome:
        text = message + (f" (hint: {hint})" if hint else "")
        failure = Failure(host=state.name, step_id=step.id, step_name=step.title,
                          loc=loc or step.loc, message=text, unreachable=unreachable,
                          phase=phase)
        result = StepResult(failed=True, msg=text)
        if step.ignore_errors and not unreachable:
            return Outcome("failed", result, ignored=True)
        return Outcome("unreachable" if unreachable else "failed", result, failure=failure)

    # ---------------------------------------------------------------- bookkeeping
    def _record(self, step: Step, state: HostState, outcome: Outcome, phase: str,
                duration: float) -> None:
        run = self.run
        result = outcome.result
        stats = state.stats
        facts: dict[str, Any] = {}
        if step.register:
            facts[step.register] = result.as_vars()
            if result.simulated:
                state.simulated.add(step.register)
            else:
                state.simulated.discard(step.register)
        action_cls = get_action(step.action or "")
        if action_cls is not None and action_cls.sets_vars and not outcome.failed and \
                outcome.status != "skipped":
            facts.update(result.fields)
        if step.no_log:   # before anything is written: the journal gets them masked
            run.redactor.add(_secret_values(result))
        if facts:
            state.facts.update(facts)
            if phase != "rollback":
                run.bus.emit(StepFacts(run.run_id, state.name, step.id, facts,
                                       result.simulated, no_log=step.no_log))
        status = outcome.status
        if phase == "rollback":
            pass   # counted as rolled back (or rollback failed) by the unwinding
        elif status == "skipped":
            stats.skipped += 1
        elif status == "unreachable":
            stats.unreachable += 1
        elif status == "failed":
            if outcome.ignored:
                stats.ignored += 1
            else:
                stats.failed += 1
        elif status == "simulated":
            stats.simulated += 1
            if result.changed:
                stats.changed += 1
        elif status == "unsimulated":
            stats.unsimulated += 1
        elif status == "changed":
            stats.changed += 1
        else:
            stats.ok += 1
        if outcome.failure is not None:
            state.failure = outcome.failure if phase != "rollback" else state.failure
            if outcome.failure.unreachable:
                state.unreachable = True
        hidden = step.no_log
        run.bus.emit(StepEnd(
            run.run_id, state.name, step.id, outcome.title or step.title, status, result.changed,
            round(duration, 6), attempts=result.attempts,
            msg=MASK if hidden and result.msg else result.msg, rc=result.rc, phase=phase,
            ignored=outcome.ignored, diff=None if hidden else result.diff,
            changes=tuple(result.fields.get("changes", ())) if not hidden else (),
            note=outcome.note, loc=str(step.loc),
            command=MASK if hidden and result.command else result.command,
            stderr_tail="" if hidden else (outcome.failure.stderr_tail if outcome.failure
                                           else ""),
            result=None if hidden else _summary(result)))


def _step_dir(step: Step, default: str) -> str:
    import os
    path = step.loc.path
    return os.path.dirname(os.path.abspath(path)) if path else default


def _strings(step: Step) -> list[str]:
    """Every string a step may render: name, args (deep), loop, delegate_to."""
    out: list[str] = []

    def visit(value: Any) -> None:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                visit(k)
                visit(v)
        elif isinstance(value, list):
            for v in value:
                visit(v)
    visit(step.name)
    visit(dict(step.args))
    visit(step.loop)
    visit(step.delegate_to)
    for v in step.vars.values():
        visit(getattr(v, "value", v))
    return out


def _tail(text: str, lines: int = 5) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def _summary(result: StepResult) -> dict[str, Any]:
    """The part of a result worth putting in a JSON event."""
    out: dict[str, Any] = {}
    for key in ("status", "elapsed", "dest", "path", "checksum", "confirmed"):
        if key in result.fields:
            out[key] = result.fields[key]
    if result.stdout and len(result.stdout) <= 4096:
        out["stdout"] = result.stdout
    return out


def _secret_values(result: StepResult) -> list[str]:
    values = [result.stdout, *result.stdout.splitlines()]
    for value in result.fields.values():
        if isinstance(value, str):
            values.append(value)
    return [v.strip() for v in values if isinstance(v, str) and len(v.strip()) >= 4]
