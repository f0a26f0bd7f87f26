"""``wait_for``: wait until a port opens or closes, or a path (or text in it) appears."""

from __future__ import annotations

import re
import time
from typing import Any, Iterable, Mapping

from .base import Action, ActionContext, Plan, StepResult
from .schema import ParamSpec

__all__ = ["WaitFor"]


class WaitFor(Action):
    """Poll the target until a condition holds or the timeout passes."""

    name = "wait_for"
    summary = "wait for a port, a path, or text in a file"
    supports_dry_run = True
    params = {
        "port": ParamSpec("int", doc="TCP port to watch (checked from the target's side)"),
        "host": ParamSpec("str", default="127.0.0.1", doc="address the port is on"),
        "path": ParamSpec("path", doc="file to watch"),
        "search_regex": ParamSpec("str", doc="wait until the file contains a match"),
        "state": ParamSpec("str", default="started",
                           choices=("started", "stopped", "present", "absent"),
                           doc="started/present: wait until it is there; stopped/absent: "
                               "until it is gone"),
        "timeout": ParamSpec("duration", default=60, doc="give up after this long"),
        "delay": ParamSpec("duration", default=0, doc="wait this long before the first check"),
        "sleep": ParamSpec("duration", default=0.5, doc="pause between checks"),
        "msg": ParamSpec("str", doc="message when it times out"),
    }
    one_of = (("port", "path"),)
    exclusive = (("port", "path"),)

    @staticmethod
    def check_args(args: Mapping[str, Any]) -> Iterable[tuple[str, str | None]]:
        if args.get("search_regex") and not args.get("path"):
            return [("search_regex needs 'path'", "search_regex")]
        port = args.get("port")
        if isinstance(port, int) and not 1 <= port <= 65535:
            return [(f"port {port} is not between 1 and 65535", "port")]
        return []

    def _what(self, args: Mapping[str, Any]) -> str:
        if args.get("port") is not None:
            return f"{args.get('host') or '127.0.0.1'}:{args['port']}"
        if args.get("search_regex"):
            return f"/{args['search_regex']}/ in {args['path']}"
        return str(args["path"])

    def _holds(self, ctx: ActionContext, args: Mapping[str, Any]) -> bool:
        want_present = (args.get("state") or "started") in ("started", "present")
        if args.get("port") is not None:
            present = ctx.conn.probe_tcp(str(args.get("host") or "127.0.0.1"), int(args["port"]))
        elif args.get("search_regex"):
            data = ctx.conn.read_bytes(str(args["path"]))
            present = data is not None and re.search(
                str(args["search_regex"]), data.decode("utf-8", "replace"), re.M) is not None
        else:
            present = ctx.conn.stat(str(args["path"])).exists
        return present == want_present

    def plan(self, ctx: ActionContext, args: Mapping[str, Any]) -> Plan:
        holds = self._holds(ctx, args)
        state = args.get("state") or "started"
        now = "already" if holds else "not yet"
        return Plan(changed=False, reason=f"would wait for {self._what(args)} to be {state} "
                                          f"({now} the case)")

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        start = time.monotonic()
        timeout = float(args.get("timeout") if args.get("timeout") is not None else 60)
        left = ctx.remaining(timeout)
        deadline = start + (left if left is not None else timeout)
        delay = float(args.get("delay") or 0)
        pause = max(0.05, float(args.get("sleep") if args.get("sleep") is not None else 0.5))
        if delay:
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        state = args.get("state") or "started"
        checks = 0
        while True:
            checks += 1
            if self._holds(ctx, args):
                elapsed = time.monotonic() - start
                return StepResult(msg=f"{self._what(args)} is {state} after {elapsed:.1f}s",
                                  fields={"elapsed": round(elapsed, 3), "checks": checks})
            if time.monotonic() + pause > deadline or ctx.cancelled():
                elapsed = time.monotonic() - start
                message = args.get("msg") or (f"timed out after {elapsed:.1f}s waiting for "
                                              f"{self._what(args)} to be {state}")
                return StepResult(failed=True, msg=str(message),
                                  fields={"elapsed": round(elapsed, 3), "checks": checks})
            time.sleep(pause)
