"""What a run prints: JSON lines, plain lines, or a live view on a terminal; the recap.

- ``JsonSink``: one JSON object per event and line (the stable interface).
- ``PlainSink``: one line per host and step, for logs and pipes.
- ``LiveSink``: the plain lines plus a live status area (rich) while steps run:
  which step, each host running / retrying (attempt n of m) / done, elapsed time
  and a progress bar for the batch.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO

import click

from ..executor.events import (BatchStart, Event, LogMessage, Retry, RollbackEnd, RollbackStart,
                               RollbackStep, RunEnd, RunStart, StepEnd, StepStart)

__all__ = ["JsonSink", "PlainSink", "LiveSink", "RecapCollector", "print_recap"]

_STATUS_STYLE = {"ok": "green", "changed": "yellow", "failed": "red", "unreachable": "red",
                 "skipped": "cyan", "simulated": "magenta", "unsimulated": "magenta",
                 "restored": "blue"}
_STATUS_WORD = {"ok": "ok", "changed": "changed", "failed": "FAILED", "unreachable": "UNREACHABLE",
                "skipped": "skipped", "simulated": "would", "unsimulated": "can't simulate",
                "restored": "done"}


class JsonSink:
    """One JSON event per line on a stream (stdout for --output json)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def handle(self, event: Event) -> None:
        if event.internal:
            return
        self.stream.write(json.dumps(event.to_json(), default=str, separators=(",", ":")))
        self.stream.write("\n")
        self.stream.flush()


class PlainSink:
    """Readable lines: a header per step, a line per host, retries and rollbacks."""

    def __init__(self, stream: TextIO, *, color: bool = False, verbose: int = 0) -> None:
        self.stream = stream
        self.color = color
        self.verbose = verbose
        self._current: tuple[str, str] | None = None
        self._step_total = 0
        self._step_index: dict[str, int] = {}
        self._hosts = 0

    # -- writing -----------------------------------------------------------------
    def style(self, text: str, **kwargs: Any) -> str:
        return click.style(text, **kwargs) if self.color else text

    def write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    # -- events ------------------------------------------------------------------
    def handle(self, event: Event) -> None:
        method = getattr(self, "on_" + event.kind, None)
        if method is not None:
            method(event)

    def on_run_start(self, event: RunStart) -> None:
        self._step_total = event.steps
        self._hosts = len(event.hosts)
        mode = self.style(" · DRY RUN (nothing will be changed)", fg="magenta", bold=True) \
            if event.dry_run else ""
        hosts = f"{len(event.hosts)} host{'s' if len(event.hosts) != 1 else ''}"
        self.write(self.style(f"runbook {event.runbook}", bold=True) +
                   f" · run {event.run_id} · {hosts}{mode}")

    def on_batch_start(self, event: BatchStart) -> None:
        self._current = None
        self.write(self.style(f"── batch {event.batch}/{event.batches}: "
                              f"{', '.join(event.hosts[:8])}"
                              f"{' …' if len(event.hosts) > 8 else ''}", bold=True))

    def on_step_start(self, event: StepStart) -> None:
        key = (event.step, event.phase)
        if self._current == key:
            return
        self._current = key
        if event.phase == "rollback":
            return
        where = event.loc.rsplit(":", 1)[0] if event.loc else ""
        action = f"{event.action} · " if event.action else ""
        phase = "" if event.phase == "steps" else f"{event.phase}: "
        self.write(self.style("▶ ", fg="blue", bold=True) + phase +
                   self.style(event.name, bold=True) + self.style(f"  ({action}{where})",
                                                                 dim=True))

    def on_step_end(self, event: StepEnd) -> None:
        if event.phase == "rollback":
            return
        word = _STATUS_WORD.get(event.status, event.status)
        if event.ignored:
            word = "failed (ignored)"
        colour = _STATUS_STYLE.get(event.status, "white")
        line = "  " + self.style(f"{word:<9}", fg=colour, bold=event.status == "failed") + \
            f" {event.host}"
        if event.duration >= 0.001:
            line += self.style(f"  {event.duration:.2f}s", dim=True)
        if event.attempts > 1:
            line += self.style(f"  after {event.attempts} attempts", fg="yellow")
        detail = event.msg
        if event.status in ("ok", "changed") and not self.verbose and \
                not event.msg.startswith(("skipped", "create", "update", "remove", "fetched")):
            detail = ""
        if detail:
            line += "  " + detail.splitlines()[0][:200]
        if event.note:
            line += self.style(f"  ({event.note})", fg="magenta")
        self.write(line)
        if event.status in ("failed", "unreachable") and not event.ignored:
            for extra in event.msg.splitlines()[1:6]:
                self.write("            " + extra)
            if event.stderr_tail and event.stderr_tail not in event.msg:
                for extra in event.stderr_tail.splitlines()[-5:]:
                    self.write(self.style("            | " + extra, fg="red"))
        if event.diff:
            for extra in event.diff.rstrip("\n").splitlines():
                fg = "green" if extra.startswith("+") else "red" if extra.startswith("-") \
                    else None
                self.write("      " + (self.style(extra, fg=fg) if fg else extra))
        if self.verbose and event.result and event.result.get("stdout"):
            for extra in str(event.result["stdout"]).splitlines()[:20]:
                self.write(self.style("      > " + extra, dim=True))

    def on_retry(self, event: Retry) -> None:
        self.write("  " + self.style(f"{'retry':<9}", fg="yellow") +
                   f" {event.host}  attempt {event.attempt}/{event.attempts} failed: "
                   f"{event.reason.splitlines()[0][:160] if event.reason else ''}"
                   f"; next in {event.delay:g}s")

    def on_rollback_start(self, event: RollbackStart) -> None:
        self._current = None
        self.write(self.style(f"↺ rollback {event.host}", fg="yellow", bold=True) +
                   f" ({event.steps} step{'s' if event.steps != 1 else ''}, newest first): "
                   f"{event.reason}")

    def on_rollback_step(self, event: RollbackStep) -> None:
        ok = event.status not in ("failed", "unreachable")
        word = "undone" if ok else "UNDO FAILED"
        self.write("  " + self.style(f"{word:<11}", fg="yellow" if ok else "red", bold=not ok) +
                   f" {event.host}  {event.name}" +
                   self.style(f"  (undoes '{event.undoes_name}')", dim=True) +
                   (f"  {event.msg.splitlines()[0][:160]}" if event.msg and not ok else ""))

    def on_rollback_end(self, event: RollbackEnd) -> None:
        if event.ok:
            self.write(self.style(f"↺ rollback of {event.host} complete", fg="yellow") +
                       f" ({event.rolled_back} step{'s' if event.rolled_back != 1 else ''})")
        else:
            self.write(self.style(f"↺ rollback of {event.host} INCOMPLETE", fg="red", bold=True)
                       + f": {event.failed} step(s) failed; the host needs a human")

    def on_log(self, event: LogMessage) -> None:
        colour = {"warning": "yellow", "error": "red"}.get(event.level)
        self.write("  " + self.style(f"{'log':<9}", fg=colour or "blue") +
                   f" {event.host}  {event.msg}")

    def on_run_end(self, event: RunEnd) -> None:
        pass


class LiveSink(PlainSink):
    """PlainSink lines, plus a live status area redrawn while steps run (rich)."""

    def __init__(self, stream: TextIO, *, verbose: int = 0) -> None:
        super().__init__(stream, color=True, verbose=verbose)
        from rich.console import Console
        from rich.live import Live
        self.lock = threading.RLock()
        self.running: dict[str, tuple[str, float, str]] = {}   # host -> (step, since, note)
        self.step_name = ""
        self.step_started = time.monotonic()
        self.done_hosts = 0
        self.total_hosts = 0
        self.run_started = time.monotonic()
        self.active = False
        self.console = Console(file=stream, highlight=False, soft_wrap=True)
        self.live = Live(console=self.console, refresh_per_second=8, transient=True,
                         get_renderable=self._render, redirect_stdout=False,
                         redirect_stderr=False)

    def write(self, line: str) -> None:
        with self.lock:
            if self.active:
                self.live.console.print(line, markup=False, highlight=False)
            else:
                super().write(line)

    def start(self) -> None:
        self.live.start()
        self.active = True

    def stop(self) -> None:
        if self.active:
            self.active = False
            self.live.stop()

    def _render(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text
        now = time.monotonic()
        table = Table.grid(padding=(0, 1))
        title = Text.assemble(("● ", "blue bold"), (self.step_name or "starting", "bold"),
                              (f"  {now - self.step_started:5.1f}s", "dim"),
                              (f"   run {now - self.run_started:5.1f}s", "dim"))
        table.add_row(title)
        if self.total_hosts > 1:
            bar = Table.grid(padding=(0, 1))
            bar.add_row(ProgressBar(total=max(1, self.total_hosts), completed=self.done_hosts,
                                    width=30),
                        Text(f"{self.done_hosts}/{self.total_hosts} hosts done"))
            table.add_row(bar)
        shown = sorted(self.running.items())[:12]
        for host, (step, since, note) in shown:
            table.add_row(Text.assemble(("  ⠿ ", "yellow"), (host, "bold"), "  ",
                                        (note or "running", "yellow"),
                                        (f"  {now - since:.1f}s", "dim")))
        if len(self.running) > 12:
            table.add_row(Text(f"  … and {len(self.running) - 12} more running", style="dim"))
        return table

    def on_run_start(self, event: RunStart) -> None:
        super().on_run_start(event)
        self.total_hosts = len(event.hosts)
        self.start()

    def on_step_start(self, event: StepStart) -> None:
        with self.lock:
            if self._current != (event.step, event.phase):
                self.done_hosts = 0
                self.step_started = time.monotonic()
                self.step_name = event.name if event.phase != "rollback" else \
                    f"rollback: {event.name}"
            self.running[event.host] = (event.step, time.monotonic(), "")
        super().on_step_start(event)

    def on_step_end(self, event: StepEnd) -> None:
        with self.lock:
            self.running.pop(event.host, None)
            self.done_hosts += 1
        super().on_step_end(event)

    def on_retry(self, event: Retry) -> None:
        with self.lock:
            step, since, _ = self.running.get(event.host, (event.step, time.monotonic(), ""))
            self.running[event.host] = (step, since, f"retrying (attempt {event.attempt + 1} of "
                                                     f"{event.attempts})")
        super().on_retry(event)

    def on_run_end(self, event: RunEnd) -> None:
        self.stop()


def print_recap(event: RunEnd, stream: TextIO, *, color: bool, runbook: str,
                dry_run: bool) -> None:
    """The table per host, then each failure with what was rolled back."""
    def style(text: str, **kwargs: Any) -> str:
        return click.style(text, **kwargs) if color else text

    verdict = {"ok": ("OK", "green"), "failed": ("FAILED", "red"),
               "rolled_back": ("FAILED, ROLLED BACK", "yellow"),
               "rollback_failed": ("ROLLBACK FAILED: NEEDS A HUMAN", "red"),
               "interrupted": ("INTERRUPTED", "red")}.get(event.status, (event.status, "white"))
    if event.status == "rolled_back" and event.exit_code == 0:
        verdict = ("ROLLED BACK", "yellow")
    mode = " (dry run)" if dry_run else ""
    print("", file=stream)
    print(style("RECAP", bold=True) + f"  {runbook}{mode}  " +
          style(verdict[0], fg=verdict[1], bold=True) +
          f"  exit {event.exit_code}  {event.duration:.2f}s  run {event.run_id}", file=stream)
    columns = ["ok", "changed", "failed", "skipped", "retried", "rolled_back", "unreachable"]
    if dry_run:
        columns += ["simulated", "unsimulated"]
    if any(h.get("ignored") for h in event.hosts.values()):
        columns.append("ignored")
    if any(h.get("restored") for h in event.hosts.values()):
        columns.append("restored")
    if any(h.get("rollback_failed") for h in event.hosts.values()):
        columns.append("rollback_failed")
    width = max([4] + [len(h) for h in event.hosts]) + 2
    header = "host".ljust(width) + "".join(f"{c:>{len(c) + 2}}" for c in columns) + "   status"
    print(style(header, bold=True), file=stream)
    for host, stats in event.hosts.items():
        row = host.ljust(width)
        for column in columns:
            value = stats.get(column, 0)
            cell = f"{value:>{len(column) + 2}}"
            if value and column in ("failed", "unreachable", "rollback_failed"):
                cell = style(cell, fg="red", bold=True)
            elif value and column == "changed":
                cell = style(cell, fg="yellow")
            elif value and column == "rolled_back":
                cell = style(cell, fg="yellow")
            row += cell
        status = str(stats.get("status", ""))
        row += "   " + style(status, fg="green" if status == "ok" else
                             "yellow" if status in ("rolled_back", "not_run", "stopped")
                             else "red")
        print(row, file=stream)
    if event.stop_reason:
        print(style("stopped early: ", fg="yellow", bold=True) + event.stop_reason, file=stream)
    if dry_run:
        simulated = sum(int(h.get("simulated", 0)) for h in event.hosts.values())
        unsimulated = sum(int(h.get("unsimulated", 0)) for h in event.hosts.values())
        print(f"dry run: {simulated} step(s) simulated, {unsimulated} could not be simulated; "
              "nothing was changed", file=stream)
    for failure in event.failures:
        print("", file=stream)
        kind = "UNREACHABLE" if failure.get("unreachable") else "FAILED"
        print(style(kind, fg="red", bold=True) +
              f": {failure['host']} at step '{failure['name']}' ({failure['loc']})", file=stream)
        message = str(failure.get("message") or "")
        for line in message.splitlines()[:8]:
            print(f"  {line}", file=stream)
        if failure.get("command") and failure["command"] not in message:
            print(f"  command:   {failure['command']}", file=stream)
        if failure.get("rc") is not None and f"exit code {failure['rc']}" not in message:
            print(f"  exit code: {failure['rc']}", file=stream)
        tail = failure.get("stderr_tail")
        if tail and tail not in message:
            print("  last output:", file=stream)
            for line in str(tail).splitlines()[-5:]:
                print(style(f"    | {line}", fg="red"), file=stream)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


class RecapCollector:
    """Keeps what the recap needs: the run's end and what each rollback did."""

    def __init__(self) -> None:
        self.end: Any = None
        self.rollbacks: dict[str, list[Any]] = {}

    def handle(self, event: Any) -> None:
        if event.kind == "run_end":
            self.end = event
        elif event.kind == "rollback_step":
            self.rollbacks.setdefault(event.host, []).append(event)

    def show(self, stream: TextIO, *, color: bool, runbook: str, dry_run: bool) -> None:
        """The recap table and failures, then what each host's rollback undid."""
        if self.end is None:
            return
        print_recap(self.end, stream, color=color, runbook=runbook, dry_run=dry_run)
        self._print_rollbacks(stream, color)

    def _print_rollbacks(self, stream: Any, color: bool) -> None:
        for host, steps in self.rollbacks.items():
            done = [s for s in steps if s.status not in ("failed", "unreachable")]
            failed = [s for s in steps if s.status in ("failed", "unreachable")]
            undone = list(dict.fromkeys(s.undoes_name for s in done))   # once each
            line = f"rolled back on {host}: " + ", ".join(f"'{name}'" for name in undone)
            if not done:
                line = f"rollback on {host}: nothing undone"
            print(line, file=stream)
            for step in failed:
                text = (f"  rollback step '{step.name}' (undoing '{step.undoes_name}') FAILED: "
                        f"{step.msg}")
                print(click.style(text, fg="red") if color else text, file=stream)
