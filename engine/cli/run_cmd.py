"""``runbook run``: load, validate, pick hosts, run, print the recap, exit with a code."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

import click

from ..errors import InventoryError, UsageError, ValidationFailed
from .common import (extra_vars_option, inventory_option, load_inventory, output_option,
                     state_option)

__all__ = ["run", "prepare", "new_run_id", "Prepared"]


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(3).hex()


def _split_tags(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(t.strip() for v in values for t in v.split(",") if t.strip())


class Prepared:
    """A runbook ready to run: loaded, checked, params typed, hosts chosen."""

    def __init__(self, runbook: Any, inventory: Any, params: Any, hosts: list[Any], *,
                 given: dict[str, Any], inventory_path: str | None, limit: str | None) -> None:
        self.runbook = runbook
        self.inventory = inventory
        self.params = params
        self.hosts = hosts
        self.given = given
        self.inventory_path = os.path.abspath(inventory_path) if inventory_path else None
        self.limit = limit


def prepare(path: str, inventory_path: str | None, extra_vars: tuple[str, ...],
            limit: str | None, given: dict[str, Any] | None = None) -> Prepared:
    """Everything that can fail before a run starts; raises UserError (exit 2)."""
    from ..checker import check_runbook
    from ..loader import load_runbook
    from ..params import parse_extra_vars, resolve_params
    from ..templating import has_template, templar

    loaded = load_runbook(path)
    inventory = load_inventory(inventory_path)
    errors = [p for p in check_runbook(loaded, inventory, inventory_given=bool(inventory_path))
              if p.severity == "error"]
    if errors:
        raise ValidationFailed(errors)
    runbook = loaded.runbook
    assert runbook is not None
    if given is None:
        given = parse_extra_vars(extra_vars)
    params = resolve_params(runbook, given)
    pattern = runbook.hosts
    if has_template(pattern):
        pattern = str(templar().render(pattern, dict(params.values), runbook.hosts_loc))
    hosts = inventory.select(pattern, loc=runbook.hosts_loc)
    if limit:
        allowed = {h.name for h in inventory.select(limit)}
        hosts = [h for h in hosts if h.name in allowed]
    if not hosts:
        where = f" with --limit {limit}" if limit else ""
        raise InventoryError(f"no hosts match '{pattern}'{where}",
                             loc=runbook.hosts_loc, hint="check the pattern and the inventory "
                                                         "(runbook inventory --graph)")
    return Prepared(runbook, inventory, params, hosts, given=given,
                    inventory_path=inventory_path, limit=limit)


@click.command()
@click.argument("path", metavar="RUNBOOK", type=click.Path(dir_okay=False))
@inventory_option
@extra_vars_option
@click.option("--dry-run", "--check", "dry_run", is_flag=True,
              help="Change nothing: plan every step and say what would change.")
@click.option("--diff", is_flag=True, help="Show a unified diff of files that change.")
@click.option("--limit", "-l", metavar="PATTERN", help="Only hosts that also match this pattern.")
@click.option("--tags", "-t", multiple=True, metavar="TAGS", help="Only steps with these tags.")
@click.option("--skip-tags", multiple=True, metavar="TAGS", help="Skip steps with these tags.")
@click.option("--start-at", metavar="STEP_ID", help="Skip the steps before this one.")
@click.option("--step", "step_by_step", is_flag=True, help="Confirm each step on the terminal.")
@click.option("--forks", "-f", type=click.IntRange(1, 10000), help="Hosts worked on at once "
                                                                  "(default 20).")
@click.option("--yes", "-y", "assume_yes", is_flag=True,
              help="Answer yes to every confirm step.")
@click.option("--no-rollback", is_flag=True, help="Do not roll back on failure or Ctrl-C.")
@click.option("--grace", default="10s", show_default=True, metavar="DURATION",
              help="After Ctrl-C, how long running commands may finish.")
@output_option
@click.option("-v", "--verbose", count=True, help="Show command output.")
@state_option
@click.option("--no-journal", is_flag=True,
              help="Do not record the run (no history, resume or locks).")
def run(path: str, inventory_path: str | None, extra_vars: tuple[str, ...], dry_run: bool,
        diff: bool, limit: str | None, tags: tuple[str, ...], skip_tags: tuple[str, ...],
        start_at: str | None, step_by_step: bool, forks: int | None, assume_yes: bool,
        no_rollback: bool, grace: str, output: str, verbose: int, state_path: str | None,
        no_journal: bool) -> int:
    """Run a runbook against its hosts.

    \b
    Exit codes: 0 all ok; 1 a step failed (rollback, if any, completed);
    2 invalid runbook, inventory or params (nothing ran); 3 a rollback failed
    (needs a human); 4 could not start; 130 interrupted.
    """
    from ..model import parse_duration
    try:
        grace_seconds = parse_duration(grace)
    except ValueError as exc:
        raise UsageError(f"--grace: {exc}") from None
    prepared = prepare(path, inventory_path, extra_vars, limit)
    if start_at and start_at not in _main_step_ids(prepared.runbook):
        ids = _main_step_ids(prepared.runbook)
        from ..templating import suggest
        close = suggest(start_at, ids)
        raise UsageError(f"--start-at: no step with id '{start_at}'",
                         hint=f"did you mean '{close}'?" if close else
                         "step ids: " + ", ".join(ids[:12]))
    from ..executor.context import RunOptions
    options = RunOptions(dry_run=dry_run, diff=diff, forks=forks, tags=_split_tags(tags),
                         skip_tags=_split_tags(skip_tags), start_at=start_at,
                         step_by_step=step_by_step, assume_yes=assume_yes,
                         interactive=sys.stdin.isatty(), no_rollback=no_rollback,
                         grace_period=grace_seconds)
    return execute(prepared, options, output=output, verbose=verbose,
                   journal=not no_journal, state_path=state_path)


def _main_step_ids(runbook: Any) -> list[str]:
    """Ids --start-at accepts: steps and their block children (not preflight, not rollback)."""
    out: list[str] = []

    def visit(steps: Any) -> None:
        for step in steps:
            out.append(step.id)
            visit(step.children())
    visit(runbook.steps)
    return out


def execute(prepared: Prepared, options: Any, *, output: str, verbose: int,
            journal: bool = True, state_path: str | None = None, run_id: str | None = None,
            sinks: list[Any] | None = None, kind: str = "run",
            resumed_from: str | None = None, progress: Any = None,
            only_rollback: bool = False) -> int:
    """Run a prepared runbook with its output sinks, journal, locks and signal handling."""
    from ..executor.context import RunContext
    from ..executor.events import EventBus, RunStart
    from ..executor.runner import Executor
    from ..redact import Redactor
    from .errors_out import use_color
    from .output import JsonSink, LiveSink, PlainSink, RecapCollector

    runbook = prepared.runbook
    redactor = Redactor(prepared.params.secrets)
    for host in prepared.hosts:
        redactor.add(host.secrets)
    redactor.activate()   # crash logs are masked with it too
    bus = EventBus(redact=redactor.event)
    human = sys.stderr if output == "json" else sys.stdout
    live = None
    if output == "json":
        bus.subscribe(JsonSink(sys.stdout))
        bus.subscribe(PlainSink(sys.stderr, color=use_color(sys.stderr), verbose=verbose))
    elif human.isatty() and not os.environ.get("RUNBOOK_PLAIN") and not options.step_by_step:
        live = LiveSink(human, verbose=verbose)
        bus.subscribe(live)
    else:
        bus.subscribe(PlainSink(human, color=use_color(human), verbose=verbose))
    recap = RecapCollector()
    bus.subscribe(recap)
    for sink in sinks or ():
        bus.subscribe(sink)
    context = RunContext(run_id=run_id or new_run_id(), runbook=runbook,
                         inventory=prepared.inventory, params=prepared.params.values,
                         options=options, bus=bus, redactor=redactor)
    keeper = None
    if journal:
        keeper = _journal(context, prepared, options, state_path, kind, resumed_from)
    _prefetch(context, prepared, options)
    context.prompt = _prompter(live)
    context.confirm_step = _step_confirmer(live)
    shown_params = {k: ("********" if k in prepared.params.secret_names and v is not None else v)
                    for k, v in prepared.params.values.items()}
    bus.emit(RunStart(context.run_id, runbook.name, runbook.path,
                      tuple(h.name for h in prepared.hosts), options.dry_run, shown_params,
                      len(runbook.walk()), user=_user(), machine=os.uname().nodename))
    executor = Executor(context, prepared.hosts, progress=progress, resumed_from=resumed_from)
    restore = _install_signals(context, options.grace_period)
    try:
        report = executor.rollback_only() if only_rollback else executor.execute()
    finally:
        restore()
        if live is not None:
            live.stop()
        if keeper is not None:
            keeper.__exit__(None, None, None)
    recap.show(human, color=use_color(human), runbook=runbook.name, dry_run=options.dry_run)
    return report.exit_code


def _prefetch(context: Any, prepared: Prepared, options: Any) -> None:
    """Start the SSH handshakes of the hosts that go first, while the run starts up."""
    from ..executor.runner import DEFAULT_FORKS, batches
    runbook = prepared.runbook
    first = prepared.hosts if runbook.preflight else \
        (batches(prepared.hosts, runbook.serial) or [[]])[0]
    context.pool.prefetch(first, options.forks or runbook.forks or DEFAULT_FORKS)


def _journal(context: Any, prepared: Prepared, options: Any, state_path: str | None,
             kind: str, resumed_from: str | None) -> Any:
    """Open the store, take the locks (not for dry runs), subscribe the journal sink."""
    from ..executor.journal import JournalSink, LockKeeper, lock_names
    from ..store import open_store
    from ..store.base import LockHolder, RunRecord
    from ..templating import has_template, templar

    runbook = prepared.runbook
    store = open_store(state_path)
    hosts = [h.name for h in prepared.hosts]
    holder = LockHolder(context.run_id, _user(), os.uname().nodename, os.getpid())
    keeper = None
    if resumed_from is not None:
        # the run being continued was checked to be dead: its locks are ours to take
        store.release(resumed_from)
    if not options.dry_run and runbook.lock is not False:
        custom = runbook.lock if isinstance(runbook.lock, str) else None
        if custom and has_template(custom):
            custom = str(templar().render(custom, dict(prepared.params.values), runbook.loc))
        lease = float(os.environ.get("RUNBOOK_LOCK_LEASE", "30"))
        keeper = LockKeeper(store, lock_names(runbook, hosts, custom), holder, lease)
        keeper.__enter__()
    record = RunRecord(
        run_id=context.run_id, runbook=runbook.name, path=os.path.abspath(runbook.path),
        content_hash=runbook.content_hash, user=holder.user, machine=holder.machine,
        pid=holder.pid, started_at=time.time(), hosts=tuple(hosts),
        params=_journal_params(prepared), dry_run=options.dry_run, resumed_from=resumed_from,
        parent_kind=kind,
        options={"inventory": prepared.inventory_path, "limit": prepared.limit,
                 "tags": sorted(options.tags), "skip_tags": sorted(options.skip_tags),
                 "forks": options.forks, "dry_run": options.dry_run,
                 "no_rollback": options.no_rollback, "diff": options.diff,
                 "start_at": options.start_at})
    context.bus.subscribe(JournalSink(store, record))
    return keeper


def _journal_params(prepared: Prepared) -> dict[str, Any]:
    """Params as the journal keeps them: secrets masked, unless given as a reference."""
    from ..redact import MASK
    out: dict[str, Any] = {}
    secret = prepared.params.secret_names
    for name, value in prepared.params.values.items():
        if name in secret:
            if name not in prepared.given:
                continue   # its default: a resume gets the default again
            raw = prepared.given[name]
            ref = isinstance(raw, str) and str(raw).startswith(("env:", "file:"))
            out[name] = str(raw) if ref else (MASK if value is not None else None)
        else:
            out[name] = value
    return out


def _user() -> str:
    try:
        import pwd
        return os.environ.get("USER") or pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, OSError):  # no passwd entry in some containers
        return str(os.getuid())


def _prompter(live: Any) -> Any:
    def prompt(question: str) -> bool:
        if live is not None:
            live.stop()
        try:
            return click.confirm(question, default=False, err=True)
        except click.exceptions.Abort:
            return False
        finally:
            if live is not None:
                live.start()
    return prompt


def _step_confirmer(live: Any) -> Any:
    state = {"all": False}

    def confirm(step: Any, hosts: list[str]) -> str:
        if state["all"]:
            return "yes"
        answer = click.prompt(f"run step '{step.title}' on {len(hosts)} host(s)? "
                              "[y]es/[n]o/[c]ontinue without asking/[q]uit",
                              default="y", err=True, show_default=False).strip().lower()
        if answer.startswith("c"):
            state["all"] = True
            return "yes"
        return {"y": "yes", "n": "no", "q": "quit"}.get(answer[:1], "no")
    return confirm


def _install_signals(context: Any, grace: float) -> Any:
    """Ctrl-C / SIGTERM: stop starting steps, let commands finish for ``grace`` seconds,
    then cancel them; the executor rolls back.  A second signal stops at once."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: Any) -> None:
        name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        if context.stopping and context.stop_reason.startswith("interrupted"):
            print(f"\n{name} again: stopping now, without rollback", file=sys.stderr)
            context.hard_stop_event.set()
            context.pool.cancel_all()
            return
        context.stop(f"interrupted by {name}")
        print(f"\n{name}: no new step will start; running commands have {grace:g}s to "
              f"finish, then the completed steps are rolled back (again to stop at once)",
              file=sys.stderr)
        timer = threading.Timer(grace, context.pool.cancel_all)
        timer.daemon = True
        context.grace_timer = timer   # the executor cancels it before rolling back
        timer.start()

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return restore


