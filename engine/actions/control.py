"""Steps that steer the run itself: ``assert``, ``set``, ``fail``, ``pause``, ``confirm``, ``log``.

They run on the runner and never touch a target, so they behave the same in a
dry run (``pause`` and ``confirm`` only say what they would do).
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from ..errors import CheckFailed, StepFailed
from .base import Action, ActionContext, Plan, StepResult
from .schema import ParamSpec

__all__ = ["Assert", "Set", "Fail", "Pause", "Confirm", "Log", "condition_entries"]


def condition_entries(value: Any) -> list[tuple[str, str | None]]:
    """``that`` as (expression, message) pairs; accepts a string, bool, list or mappings."""
    items = value if isinstance(value, list) else [value]
    out: list[tuple[str, str | None]] = []
    for item in items:
        if isinstance(item, dict):
            out.append((_expr(item.get("that")), item.get("msg")))
        else:
            out.append((_expr(item), None))
    return out


def _expr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _RunnerAction(Action):
    runner_side = True
    read_only = True
    supports_dry_run = True

    def plan(self, ctx: ActionContext, args: Mapping[str, Any]) -> Plan:
        return Plan(changed=False, reason="changes nothing")


class Assert(_RunnerAction):
    """Fail unless every condition holds."""

    name = "assert"
    shorthand = "that"
    summary = "fail unless conditions hold"
    raw_params = ("that",)
    params = {"that": ParamSpec("condition", required=True,
                                doc="conditions (bare Jinja2 expressions) that must all hold"),
              "msg": ParamSpec("str", doc="message when a condition is false"),
              "success_msg": ParamSpec("str", doc="message when all hold")}

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        for expr, message in condition_entries(args["that"]):
            if not ctx.truth(expr):
                text = message or args.get("msg") or f"assertion failed: {expr.strip()}"
                raise CheckFailed(str(ctx.render(text)),
                                  result=StepResult(failed=True, msg=str(ctx.render(text))))
        return StepResult(msg=str(args.get("success_msg") or "all assertions passed"))


class Set(_RunnerAction):
    """Set host variables for the following steps (values are rendered now)."""

    name = "set"
    summary = "set variables for later steps"
    free_form = True
    sets_vars = True
    params: Mapping[str, ParamSpec] = {}

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        return StepResult(fields=dict(args))


class Fail(_RunnerAction):
    """Stop this host with a message."""

    name = "fail"
    shorthand = "msg"
    summary = "fail with a message"
    params = {"msg": ParamSpec("str", default="failed as requested by the runbook",
                               doc="why the run stops")}

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        message = str(args.get("msg") or "failed as requested by the runbook")
        return StepResult(failed=True, msg=message)


class Pause(_RunnerAction):
    """Wait for a while (interruptible).  A dry run only says how long it would wait."""

    name = "pause"
    read_only = False
    shorthand = "duration"
    summary = "wait for a duration"
    params = {"duration": ParamSpec("duration", required=True, doc="how long to wait"),
              "reason": ParamSpec("str", doc="shown while waiting")}

    def plan(self, ctx: ActionContext, args: Mapping[str, Any]) -> Plan:
        return Plan(changed=False, reason=f"would wait {args['duration']:g}s")

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        seconds = float(args["duration"])
        if args.get("reason"):
            ctx.log(f"waiting {seconds:g}s: {args['reason']}")
        end = time.monotonic() + seconds
        limit = ctx.deadline if ctx.deadline is not None else end
        while not ctx.cancelled():
            now = time.monotonic()
            if now >= end:
                break
            if now >= limit:
                return StepResult(failed=True, msg=f"timed out after {seconds - (end - now):.1f}s "
                                                   f"of a {seconds:g}s pause")
            time.sleep(min(end - now, limit - now, 0.1))
        return StepResult(msg=f"waited {seconds:g}s")


class Confirm(_RunnerAction):
    """Ask the operator before going on; ``--yes`` answers for them.  A dry run does not
    ask: it says what it would ask."""

    name = "confirm"
    read_only = False
    shorthand = "prompt"
    summary = "ask the operator to confirm (or --yes)"
    params = {"prompt": ParamSpec("str", default="Continue?", doc="the question")}

    def plan(self, ctx: ActionContext, args: Mapping[str, Any]) -> Plan:
        return Plan(changed=False, reason=f"would ask: {args.get('prompt') or 'Continue?'}")

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        question = str(args.get("prompt") or "Continue?")
        if ctx.assume_yes:
            return StepResult(msg=f"confirmed by --yes: {question}", fields={"confirmed": True})
        if not ctx.interactive or ctx.prompt is None:
            raise StepFailed(f"confirmation needed: {question}",
                             hint="run on a terminal to answer, or pass --yes to confirm "
                                  "every prompt")
        if ctx.prompt(question):
            return StepResult(msg=f"confirmed: {question}", fields={"confirmed": True})
        return StepResult(failed=True, msg=f"not confirmed: {question}",
                          fields={"confirmed": False})


class Log(_RunnerAction):
    """Write a message to the output and the journal."""

    name = "log"
    shorthand = "msg"
    summary = "write a message to the output and the journal"
    params = {"msg": ParamSpec("any", required=True, doc="the message (any value)"),
              "level": ParamSpec("str", default="info", choices=("info", "warning", "error"))}

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        message = args["msg"]
        text = message if isinstance(message, str) else repr(message)
        ctx.log(text)
        return StepResult(msg=text, fields={"level": args.get("level") or "info"})
