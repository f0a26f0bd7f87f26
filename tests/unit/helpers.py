"""Running a runbook in-process on FakeConnections, for executor tests.

    outcome = run_yaml('''
        name: t
        hosts: all
        steps:
          - {id: deploy, shell: deploy}
    ''', hosts=["h1", "h2"], rules={"h2": [("deploy", 1, "", "boom")]})
    assert outcome.exit_code == 1
    assert outcome.statuses("deploy") == {"h1": "changed", "h2": "failed"}

The runbook goes through the real loader (``load_runbook(path, text)``), the hosts
are real ``Host`` objects, and every connection is a ``FakeConnection`` made by
``ConnectionPool(factory=...)``; the events are collected in order.
"""

from __future__ import annotations

import textwrap
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from engine.connections import ConnectionPool
from engine.connections.base import CommandResult
from engine.connections.fake import FakeConnection
from engine.executor.context import RunContext, RunOptions
from engine.executor.events import Event, EventBus
from engine.executor.runner import Executor, RunReport
from engine.inventory import ConnectionSettings, Group, Host, Inventory
from engine.loader import load_runbook
from engine.model import Runbook
from engine.params import resolve_params
from engine.redact import Redactor

__all__ = ["Collector", "Outcome", "make_inventory", "load", "run_yaml", "run_runbook",
           "CommandLog", "Concurrency", "ok", "fail"]


class Collector:
    """A sink that keeps the public events, those of the JSON output, in order
    (internal ones, which only feed the journal, are left out)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.hook: Callable[[Event], None] | None = None

    def handle(self, event: Event) -> None:
        if getattr(event, "internal", False):
            return
        self.events.append(event)
        if self.hook is not None:
            self.hook(event)

    def of(self, kind: str, **match: Any) -> list[Event]:
        return [e for e in self.events if e.kind == kind and
                all(getattr(e, k) == v for k, v in match.items())]


class CommandLog:
    """Every command of every fake host, in the order they ran: (host, command)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def add(self, host: str, command: str) -> None:
        with self._lock:
            self.entries.append((host, command))

    def commands(self, host: str | None = None) -> list[str]:
        return [c for h, c in self.entries if host is None or h == host]

    def index(self, host: str, needle: str) -> int:
        for number, (h, command) in enumerate(self.entries):
            if h == host and needle in command:
                return number
        raise AssertionError(f"{needle!r} never ran on {host}: {self.entries}")


def ok(command: str = "", stdout: str = "") -> CommandResult:
    return CommandResult(command, 0, stdout, "", 0.0)


def fail(command: str = "", code: int = 1, stderr: str = "boom") -> CommandResult:
    return CommandResult(command, code, "", stderr, 0.0)


@dataclass
class Outcome:
    """What one run left: the report, the events, the fake connections."""

    report: RunReport
    events: Collector
    fakes: dict[str, FakeConnection]
    log: CommandLog
    run: RunContext

    @property
    def exit_code(self) -> int:
        return self.report.exit_code

    def step_ends(self, step: str | None = None, phase: str | None = None) -> list[Any]:
        return [e for e in self.events.of("step_end")
                if (step is None or e.step == step) and (phase is None or e.phase == phase)]

    def statuses(self, step: str, phase: str = "steps") -> dict[str, str]:
        return {e.host: e.status for e in self.step_ends(step, phase)}

    def ran(self, host: str, needle: str) -> bool:
        return any(needle in c for c in self.fakes[host].commands)

    def rollback_order(self, host: str | None = None) -> list[tuple[str, str]]:
        return [(e.host, e.undoes) for e in self.events.of("rollback_step")
                if host is None or e.host == host]

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events.events]

    def end(self) -> Any:
        (end,) = self.events.of("run_end")
        return end


def make_inventory(names: Iterable[str], host_vars: Mapping[str, Mapping[str, Any]] | None = None,
                   groups: Mapping[str, Sequence[str]] | None = None) -> Inventory:
    """An inventory of hosts (all reached through fakes), with optional groups."""
    host_vars = host_vars or {}
    groups = dict(groups or {})
    names = list(names)
    hosts = {}
    for name in names:
        member = tuple(g for g, members in groups.items() if name in members)
        hosts[name] = Host(name, dict(host_vars.get(name, {})),
                           ("all",) + (member or ("ungrouped",)),
                           ConnectionSettings(kind="local"))
    group_objs = {"all": Group("all", children=tuple(groups) + ("ungrouped",)),
                  "ungrouped": Group("ungrouped", hosts=tuple(
                      n for n in names if not any(n in m for m in groups.values())))}
    for group, members in groups.items():
        group_objs[group] = Group(group, hosts=tuple(members))
    return Inventory(hosts, group_objs)


def load(text: str, path: str = "/virtual/runbook.yml") -> Runbook:
    runbook = load_runbook(path, textwrap.dedent(text)).runbook
    assert runbook is not None
    return runbook


def run_runbook(runbook: Runbook, *, hosts: Sequence[str] = ("h1",),
                rules: Mapping[str, Sequence[tuple[str, int, str, str]]] | None = None,
                handler: Callable[[str, str], CommandResult | None] | None = None,
                unreachable: Iterable[str] = (), delay: float | Mapping[str, float] = 0.0,
                params: Mapping[str, Any] | None = None, options: RunOptions | None = None,
                inventory: Inventory | None = None,
                host_vars: Mapping[str, Mapping[str, Any]] | None = None,
                confirm_step: Callable[[Any, list[str]], str] | None = None,
                on_event: Callable[[Event, RunContext], None] | None = None,
                sleep: Callable[[float], None] | None = None,
                files: Mapping[str, Mapping[str, bytes]] | None = None) -> Outcome:
    """Run a loaded runbook on fake hosts and collect what happened.

    ``handler(host, command)`` answers commands before ``rules``; ``sleep`` replaces
    the pause between retries (and rollback retries) so tests need not wait.
    """
    inventory = inventory or make_inventory(hosts, host_vars)
    selected = inventory.select(runbook.hosts)
    log = CommandLog()
    down = set(unreachable)
    fakes: dict[str, FakeConnection] = {}
    for host in inventory.hosts.values():
        name = host.name
        host_delay = delay.get(name, 0.0) if isinstance(delay, Mapping) else delay

        def answer(command: str, name: str = name) -> CommandResult | None:
            log.add(name, command)
            return handler(name, command) if handler is not None else None

        fake = FakeConnection(name, (rules or {}).get(name, ()), handler=answer,
                              unreachable=name in down, delay=host_delay)
        for path, data in (files or {}).get(name, {}).items():
            fake.files[path] = data
        fakes[name] = fake
    events = Collector()
    bus = EventBus()
    bus.subscribe(events)
    resolved = resolve_params(runbook, dict(params or {}))
    run = RunContext(run_id="test-run", runbook=runbook, inventory=inventory,
                     params=resolved.values, options=options or RunOptions(), bus=bus,
                     redactor=Redactor(), pool=ConnectionPool(factory=lambda h: fakes[h.name]))
    run.confirm_step = confirm_step
    if sleep is not None:
        run.sleep = sleep            # type: ignore[method-assign]
        run.rollback_sleep = sleep   # type: ignore[method-assign]
    if on_event is not None:
        events.hook = lambda event: on_event(event, run)
    report = Executor(run, selected).execute()
    return Outcome(report, events, fakes, log, run)


def run_yaml(text: str, **kwargs: Any) -> Outcome:
    return run_runbook(load(text), **kwargs)


class Concurrency:
    """Counts how many commands run at the same time (give it as ``handler``).

    A command waits (up to ``timeout``) until ``expect`` commands run together, then
    holds ``hold`` seconds more: on a loaded machine the expected overlap still
    happens, and an executor running more than ``expect`` at once shows a higher peak.
    """

    def __init__(self, expect: int, hold: float = 0.02, timeout: float = 0.5) -> None:
        self.expect = expect
        self.hold = hold
        self.timeout = timeout
        self.current = 0
        self.peak = 0
        self._generation = 0
        self._cond = threading.Condition()

    def __call__(self, host: str, command: str) -> CommandResult | None:
        with self._cond:
            self.current += 1
            self.peak = max(self.peak, self.current)
            generation = self._generation
            if self.current >= self.expect:
                self._generation += 1
                self._cond.notify_all()
            else:
                self._cond.wait_for(lambda: self._generation != generation, self.timeout)
        time.sleep(self.hold)
        with self._cond:
            self.current -= 1
        return None
