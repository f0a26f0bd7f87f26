"""``runbook history``, ``show``, ``unlock``, ``resume`` and ``rollback``: the run journal
from the command line."""

from __future__ import annotations

import difflib
import json
import os
import sys
import time
from dataclasses import asdict
from typing import Any, Iterable, Sequence

import click

from ..errors import EXIT_OK, UsageError, UserError
from ..store import describe_holder, local_time, process_alive, state_path as resolve_state_path
from .common import output_option, state_option
from .errors_out import use_color

__all__ = ["history", "show", "unlock", "find_run", "state_option"]

RUN_STATUSES = ("running", "ok", "failed", "rolled_back", "rollback_failed", "interrupted")
_RUN_STYLE = {"ok": ("ok", "green"), "failed": ("failed", "red"),
              "rolled_back": ("rolled back", "yellow"),
              "rollback_failed": ("ROLLBACK FAILED", "red"),
              "interrupted": ("interrupted", "magenta"), "running": ("running", "cyan")}
_STEP_STYLE = {"ok": ("ok", "green"), "changed": ("changed", "yellow"),
               "failed": ("FAILED", "red"), "unreachable": ("UNREACHABLE", "red"),
               "skipped": ("skipped", "cyan"), "simulated": ("would", "magenta"),
               "unsimulated": ("can't simulate", "magenta"), "restored": ("done before", "cyan")}
_FAILED = ("failed", "unreachable")


class _Out:
    """stdout with colour when it is a terminal (and NO_COLOR is unset)."""

    def __init__(self) -> None:
        self.color = use_color(sys.stdout)

    def style(self, text: str, **kwargs: Any) -> str:
        return click.style(text, **kwargs) if self.color else text

    def line(self, text: str = "") -> None:
        click.echo(text)


def _open(state_path: str | None) -> tuple[Any, str]:
    """(the store or None when there is no journal file yet, its path).  Reading
    commands do not create a journal: a mistyped --state would silently make one."""
    from ..store import open_store
    path = resolve_state_path(state_path)
    return (open_store(path) if os.path.exists(path) else None), path


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 1 else f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"


def _process_gone(run: Any) -> bool:
    """A 'running' run whose process no longer exists on this machine (killed, crashed)."""
    if run.status != "running" or run.machine != os.uname().nodename:
        return False
    return not process_alive(run.machine, run.pid)


def _run_status(run: Any, out: _Out) -> tuple[str, str]:
    """(plain text, styled text) of a run's status."""
    word, colour = _RUN_STYLE.get(run.status, (run.status, "white"))
    return word, out.style(word, fg=colour, bold=run.status == "rollback_failed")


def _notes(run: Any) -> str:
    notes = []
    if run.dry_run:
        notes.append("dry-run")
    if run.parent_kind in ("resume", "rollback") and run.resumed_from:
        notes.append(f"{run.parent_kind} of {run.resumed_from}")
    if _process_gone(run):
        notes.append(f"process {run.pid} gone")
    return ", ".join(notes)


def _table(out: _Out, header: Sequence[str], rows: list[list[tuple[str, str]]]) -> None:
    """Columns padded on the plain text, so colours do not break the alignment."""
    widths = [max([len(h)] + [len(row[i][0]) for row in rows]) for i, h in enumerate(header)]
    out.line(out.style("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(),
                       bold=True))
    for row in rows:
        cells = [styled + " " * (w - len(plain)) for (plain, styled), w in zip(row, widths)]
        out.line("  ".join(cells).rstrip())


def _plain(text: str) -> tuple[str, str]:
    return text, text


# -- history ------------------------------------------------------------------------------

@click.command()
@click.option("--runbook", "runbook_name", metavar="NAME", help="Only runs of this runbook.")
@click.option("--status", type=click.Choice(RUN_STATUSES), help="Only runs that ended so.")
@click.option("--host", metavar="HOST", help="Only runs that included this host.")
@click.option("--limit", "-n", type=click.IntRange(0), default=20, show_default=True,
              help="How many runs, newest first (0: all).")
@output_option
@state_option
def history(runbook_name: str | None, status: str | None, host: str | None, limit: int,
            output: str, state_path: str | None) -> int:
    """List past runs from the journal, newest first."""
    store, path = _open(state_path)
    runs = []
    if store is not None:
        try:
            runs = store.list_runs(runbook=runbook_name, status=status, host=host,
                                   limit=limit)
        finally:
            store.close()
    if output == "json":
        json.dump([asdict(run) for run in runs], sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return EXIT_OK
    if not runs:
        if store is None:
            click.echo(f"no runs recorded yet (no journal at {path})", err=True)
        else:
            filtered = runbook_name or status or host
            click.echo("no runs match" if filtered else "no runs recorded yet", err=True)
        return EXIT_OK
    out = _Out()
    now = time.time()
    rows = []
    for run in runs:
        if run.ended_at is not None:
            took = _duration(run.ended_at - run.started_at)
        elif run.status == "running" and not _process_gone(run):
            took = _duration(now - run.started_at) + "…"
        else:
            took = "-"
        rows.append([_plain(run.run_id), _plain(local_time(run.started_at)), _plain(took),
                     _plain(run.runbook), _run_status(run, out), _plain(str(len(run.hosts))),
                     _plain(f"{run.user}@{run.machine}"), _plain(_notes(run))])
    _table(out, ["RUN ID", "STARTED", "DURATION", "RUNBOOK", "STATUS", "HOSTS", "BY", ""],
           rows)
    return EXIT_OK


# -- show ---------------------------------------------------------------------------------

def find_run(store: Any, run_id: str, path: str | None = None) -> Any:
    """The run with this id or unique id prefix; UserError (exit 2) with did-you-mean."""
    run = store.get_run(run_id)
    if run is not None:
        return run
    ids = [r.run_id for r in store.list_runs(limit=1000)]
    close = [i for i in ids if run_id in i][:3] or \
        difflib.get_close_matches(run_id, ids, n=3, cutoff=0.6)
    if close:
        hint = "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    else:
        hint = "'runbook history' lists the runs" if ids else "the journal has no runs yet"
    where = f" in the journal {path}" if path else " in the journal"
    raise UserError(f"no run '{run_id}'{where}", hint=hint)


@click.command()
@click.argument("run_id", metavar="RUN_ID")
@click.option("--host", metavar="HOST", help="Only this host's timeline.")
@output_option
@state_option
def show(run_id: str, host: str | None, output: str, state_path: str | None) -> int:
    """Show the timeline of one run: per host, each step with its outcome, the failure
    and the rollback.  RUN_ID may be a unique prefix."""
    store, path = _open(state_path)
    if store is None:
        raise UserError(f"no run '{run_id}': there is no journal at {path}",
                        hint="runs are recorded in the journal that --state or RUNBOOK_STATE "
                             "name, else in $XDG_STATE_HOME/runbook/state.db")
    try:
        run = find_run(store, run_id, path)
        hosts = list(run.hosts)
        events = store.events(run.run_id)
    finally:
        store.close()
    for event in events:
        if event.host is not None and event.host not in hosts:
            hosts.append(event.host)
    if host is not None and host not in hosts:
        close = difflib.get_close_matches(host, hosts, n=1, cutoff=0.6)
        raise UsageError(f"run {run.run_id} has no host '{host}'",
                         hint=f"did you mean '{close[0]}'?" if close else
                         "its hosts: " + ", ".join(hosts))
    if output == "json":
        shown = [e for e in events if host is None or e.host == host]
        json.dump({"run": asdict(run), "events": [asdict(e) for e in shown]}, sys.stdout,
                  indent=2, default=str)
        sys.stdout.write("\n")
        return EXIT_OK
    out = _Out()
    end = next((e.data for e in reversed(events) if e.kind == "run_end"), None)
    _show_header(out, run, end)
    for name in hosts if host is None else [host]:
        out.line()
        _show_host(out, name, [e for e in events if e.host == name], end)
    return EXIT_OK


def _show_header(out: _Out, run: Any, end: Any) -> None:
    plain, styled = _run_status(run, out)
    code = f" · exit {run.exit_code}" if run.exit_code is not None else ""
    mode = out.style(" · DRY RUN", fg="magenta", bold=True) if run.dry_run else ""
    out.line(out.style(f"run {run.run_id}", bold=True) + f" · {run.runbook} · " + styled +
             code + mode)

    def field(label: str, value: str) -> None:
        out.line(f"  {label:<9}{value}")

    field("runbook", run.path)
    field("by", f"{run.user}@{run.machine}, pid {run.pid}")
    when = local_time(run.started_at)
    if run.ended_at is not None:
        when += f", ended {_clock(run.ended_at)} ({_duration(run.ended_at - run.started_at)})"
    elif _process_gone(run):
        when += out.style(f", no end recorded: process {run.pid} is gone (killed or "
                          f"crashed); 'runbook resume {run.run_id}' continues it", fg="red")
    field("started", when)
    params = " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, default=str)}"
                      for k, v in dict(run.params).items())
    field("params", params or "(none)")
    field("hosts", f"{', '.join(run.hosts)} ({len(run.hosts)})")
    if run.resumed_from:
        verb = {"resume": "resumes", "rollback": "undoes"}.get(run.parent_kind, "follows")
        field(verb, f"run {run.resumed_from}")
    if end is not None and end.get("failures"):
        count = len(end["failures"])
        field("failed", f"{count} host{'s' if count != 1 else ''}: " +
              ", ".join(str(f.get("host")) for f in end["failures"]))


def _show_host(out: _Out, host: str, events: list[Any], end: Any) -> None:
    status = ""
    if end is not None:
        status = str((end.get("hosts") or {}).get(host, {}).get("status", ""))
    colour = "green" if status == "ok" else "yellow" if status in ("rolled_back", "not_run") \
        else "red"
    word = status.replace("_", " ")
    out.line(out.style(host, bold=True) + (f"  {out.style(word, fg=colour)}" if status else ""))
    if not events:
        out.line("  (no step recorded)")
        return
    ended = _matched_starts(events)
    pad = " " * 12
    width = min(40, max([len(str(e.data.get("name") or e.step)) for e in events
                         if e.kind in ("step_start", "step_end", "rollback_step")] or [0]))
    for index, event in enumerate(events):
        data = event.data
        if event.kind == "step_start" and index not in ended:
            out.line(f"  {_clock(event.ts)}  " + out.style(f"{'started':<11}", fg="red") +
                     f" {data.get('name', event.step)}" +
                     out.style("  (no end recorded: the run stopped here)", fg="red"))
        elif event.kind == "step_end" and event.phase != "rollback":
            _show_step(out, event, pad, width)
        elif event.kind == "retry":
            reason = str(data.get("reason") or "").splitlines()
            out.line(pad + out.style(f"{'retry':<11}", fg="yellow") +
                     f" attempt {data.get('attempt')}/{data.get('attempts')} failed" +
                     (f": {reason[0][:160]}" if reason else "") +
                     f"; next in {data.get('delay', 0):g}s")
        elif event.kind == "log":
            level = str(data.get("level", "info"))
            colour = {"warning": "yellow", "error": "red"}.get(level, "blue")
            out.line(pad + out.style(f"{'log':<11}", fg=colour) + f" {data.get('msg', '')}")
        elif event.kind == "rollback_start":
            steps = int(data.get("steps") or 0)
            out.line("  " + out.style("↺ rollback", fg="yellow", bold=True) +
                     f" ({steps} step{'s' if steps != 1 else ''}, newest first): "
                     f"{data.get('reason', '')}")
        elif event.kind == "rollback_step":
            ok = data.get("status") not in _FAILED
            word = "undone" if ok else "UNDO FAILED"
            out.line(f"  {_clock(event.ts)}  " +
                     out.style(f"{word:<11}", fg="yellow" if ok else "red", bold=not ok) +
                     f" {str(data.get('name')):<{width}}" +
                     out.style(f"  {_duration(float(data.get('duration') or 0))}", dim=True) +
                     out.style(f"  undoes '{data.get('undoes_name')}'", dim=True))
            if not ok and data.get("msg"):
                for text in str(data["msg"]).splitlines()[:6]:
                    out.line(pad + "  " + text)
        elif event.kind == "rollback_end":
            if data.get("ok"):
                out.line("  " + out.style("↺ rollback complete", fg="yellow") +
                         f" ({data.get('rolled_back', 0)} undone)")
            else:
                out.line("  " + out.style("↺ rollback INCOMPLETE", fg="red", bold=True) +
                         f": {data.get('failed', 0)} step(s) failed; the host needs a human")


def _matched_starts(events: list[Any]) -> set[int]:
    """Indexes of step_start events that have their step_end."""
    open_starts: dict[tuple[Any, Any], list[int]] = {}
    matched: set[int] = set()
    for index, event in enumerate(events):
        key = (event.step, event.phase)
        if event.kind == "step_start":
            open_starts.setdefault(key, []).append(index)
        elif event.kind == "step_end" and open_starts.get(key):
            matched.add(open_starts[key].pop())
    return matched


def _show_step(out: _Out, event: Any, pad: str, width: int) -> None:
    data = event.data
    status = str(data.get("status", event.status))
    word, colour = _STEP_STYLE.get(status, (status, "white"))
    if data.get("ignored"):
        word, colour = "failed (ignored)", "yellow"
    failed = status in _FAILED and not data.get("ignored")
    phase = "" if event.phase in (None, "steps") else f"{event.phase}: "
    name = f"{phase}{data.get('name', event.step)}"
    line = f"  {_clock(event.ts)}  " + out.style(f"{word:<11}", fg=colour, bold=failed) + \
        f" {name:<{width}}"
    duration = float(data.get("duration") or 0)
    line += out.style(f"  {_duration(duration)}", dim=True) if duration >= 0.001 else "  -"
    if failed and data.get("loc"):
        line += out.style(f"  at {data['loc']}", dim=True)
    attempts = int(data.get("attempts") or 1)
    if attempts > 1:
        line += out.style(f"  {attempts} attempts", fg="yellow")
    message = str(data.get("msg") or "")
    if message and not failed:
        line += "  " + message.splitlines()[0][:200]
    if data.get("note"):
        line += out.style(f"  ({data['note']})", fg="magenta")
    out.line(line)
    if not failed:
        return
    for text in message.splitlines()[:8]:
        out.line(pad + "  " + text)
    if data.get("command") and data["command"] not in message:
        out.line(pad + f"  command:   {data['command']}")
    if data.get("rc") is not None and f"exit code {data['rc']}" not in message:
        out.line(pad + f"  exit code: {data['rc']}")
    tail = str(data.get("stderr_tail") or "")
    if tail and tail not in message:
        out.line(pad + "  last output:")
        for text in tail.splitlines()[-5:]:
            out.line(out.style(pad + f"    | {text}", fg="red"))


# -- unlock ---------------------------------------------------------------------------------

@click.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--all-expired", is_flag=True, help="Release every lock whose lease expired.")
@click.option("--run", "run_id", metavar="RUN_ID", help="Release every lock of this run.")
@click.option("--list", "list_only", is_flag=True, help="Show the locks, release nothing.")
@state_option
def unlock(names: tuple[str, ...], all_expired: bool, run_id: str | None, list_only: bool,
           state_path: str | None) -> int:
    """Release run locks by hand (a run killed with -9 keeps its locks until their
    lease expires).  Prints what it released and who held it."""
    if list_only and (names or all_expired or run_id):
        raise UsageError("--list shows the locks; give it alone")
    if not (list_only or names or all_expired or run_id):
        raise UsageError("say which locks to release",
                         hint="runbook unlock NAME..., --all-expired or --run RUN_ID; "
                              "--list shows them")
    store, path = _open(state_path)
    if store is None:
        if list_only:
            click.echo(f"no locks held (no journal at {path})", err=True)
            return EXIT_OK
        raise UserError(f"no locks to release: there is no journal at {path}")
    try:
        return _unlock(store, names, all_expired, run_id, list_only)
    finally:
        store.close()


def _unlock(store: Any, names: tuple[str, ...], all_expired: bool, run_id: str | None,
            list_only: bool) -> int:
    out = _Out()
    now = time.time()
    if list_only:
        locks = store.locks()
        if not locks:
            click.echo("no locks held", err=True)
            return EXIT_OK
        rows = []
        for lock in locks:
            left = lock.expires - now
            lease = (_plain(f"expires in {_duration(left)}") if left > 0 else
                     (f"EXPIRED {_duration(-left)} ago",
                      out.style(f"EXPIRED {_duration(-left)} ago", fg="red")))
            holder = lock.holder
            rows.append([_plain(lock.name), _plain(holder.run_id),
                         _plain(f"{holder.user}@{holder.machine} pid {holder.pid}"),
                         _plain(local_time(lock.since)), lease])
        _table(out, ["LOCK", "RUN", "HELD BY", "SINCE", "LEASE"], rows)
        return EXIT_OK
    released: list[Any] = []
    missing: list[str] = []
    existing = [lock.name for lock in store.locks()] if names else []
    for name in dict.fromkeys(names):
        record = store.unlock(name)
        if record is None:
            missing.append(name)
        else:
            released.append(record)
    if run_id:
        run = store.get_run(run_id)
        holder_id = run.run_id if run is not None else run_id
        mine = [lock for lock in store.locks() if lock.holder.run_id == holder_id]
        store.release(holder_id)
        released.extend(mine)
        if not mine:
            click.echo(f"run {holder_id} holds no locks", err=True)
    if all_expired:
        expire = getattr(store, "unlock_expired", None)
        if expire is not None:
            expired = list(expire(now))
        else:   # a backend without it: one by one
            expired = [lock for lock in store.locks()
                       if lock.expires <= now and store.unlock(lock.name) is not None]
        released.extend(expired)
        if not expired:
            click.echo("no expired locks", err=True)
    _print_released(out, released, now)
    if missing:
        close = [difflib.get_close_matches(m, existing, n=1, cutoff=0.6) for m in missing]
        hints = [f"'{c[0]}'" for c in close if c]
        raise UserError("no lock named " + ", ".join(f"'{m}'" for m in missing),
                        hint=f"did you mean {' or '.join(hints)}?" if hints else
                        "runbook unlock --list shows the locks")
    return EXIT_OK


def _print_released(out: _Out, released: Iterable[Any], now: float) -> None:
    for lock in released:
        out.line(f"released lock '{lock.name}', held by {describe_holder(lock, now)}")
        if lock.expires > now:
            click.echo(out.style("  warning:", fg="yellow", bold=True) +
                       f" its lease was still live: if run {lock.holder.run_id} is still "
                       f"working, it goes on without the lock", err=True)
