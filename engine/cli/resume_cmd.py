"""``runbook resume`` and ``runbook rollback``: continue or undo a recorded run."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import click

from ..errors import UsageError, UserError
from ..redact import MASK
from .common import extra_vars_option, output_option, state_option

__all__ = ["resume_run", "rollback_run", "resume", "rollback"]


def _load_record(store: Any, run_id: str, state_path: str | None) -> Any:
    from .journal_cmd import find_run
    return find_run(store, run_id, state_path)


def _alive(record: Any) -> bool:
    from ..store import process_alive
    return record.machine == os.uname().nodename and process_alive(record.machine, record.pid)


def _lineage_events(store: Any, record: Any) -> tuple[list[Any], list[list[Any]]]:
    """The events of the first run of this lineage, and of every run that continued it
    (resumes, rollbacks, resumes of those), oldest first."""
    runs = {r.run_id: r for r in store.list_runs(limit=5000)}
    runs.setdefault(record.run_id, record)
    root = record
    climbed = {root.run_id}
    while root.resumed_from and root.resumed_from in runs and \
            root.resumed_from not in climbed:
        root = runs[root.resumed_from]
        climbed.add(root.run_id)
    seen = {root.run_id}
    family: list[Any] = []
    frontier = [root.run_id]
    while frontier:
        parent = frontier.pop()
        for run in runs.values():
            if run.resumed_from == parent and run.run_id not in seen:
                seen.add(run.run_id)
                family.append(run)
                frontier.append(run.run_id)
    family.sort(key=lambda r: r.started_at)
    return store.events(root.run_id), [store.events(r.run_id) for r in family]


def _progress(store: Any, record: Any) -> Any:
    from ..executor.journal import read_progress
    events, later = _lineage_events(store, record)
    return read_progress(events, later)


def _check_file(record: Any, force: bool) -> None:
    try:
        with open(record.path, "rb") as f:
            text = f.read()
    except OSError as exc:
        raise UserError(f"cannot read the runbook of run {record.run_id}: {record.path}: "
                        f"{exc.strerror}") from None
    current = hashlib.sha256(text.decode("utf-8", "surrogateescape").encode(
        "utf-8", "surrogateescape")).hexdigest()
    if current != record.content_hash and not force:
        raise UserError(f"{record.path} changed since run {record.run_id} started",
                        hint="steps may no longer match the journal; check the change, then "
                             "pass --force to go on anyway")


def _given(record: Any, extra_vars: tuple[str, ...]) -> dict[str, Any]:
    from ..params import parse_extra_vars
    given = {k: v for k, v in dict(record.params).items() if v is not None}
    given.update(parse_extra_vars(extra_vars))
    missing = [k for k, v in given.items() if v == MASK]
    if missing:
        names = ", ".join(missing)
        raise UserError(f"secret param(s) {names} of run {record.run_id} were not stored",
                        hint="give them again with -e " +
                             " -e ".join(f"{m}=..." for m in missing) +
                             " (or pass secrets as env:NAME / file:PATH references)")
    return given


def _prepared(record: Any, given: dict[str, Any], hosts: list[str] | None) -> Any:
    from .run_cmd import prepare
    options = dict(record.options)
    prepared = prepare(record.path, options.get("inventory"), (), options.get("limit"),
                       given=given)
    wanted = list(hosts or record.hosts)
    by_name = {h.name: h for h in prepared.inventory.hosts.values()}
    missing = [h for h in wanted if h not in by_name]
    if missing:
        raise UserError(f"host(s) of run {record.run_id} no longer in the inventory: "
                        f"{', '.join(missing)}")
    prepared.hosts = [by_name[h] for h in wanted]
    return prepared


def resume_run(run_id: str, *, state_path: str | None, force: bool,
               extra_vars: tuple[str, ...], output: str, verbose: int, assume_yes: bool,
               dry_run: bool) -> int:
    """Continue a failed or interrupted run from where each host stopped."""
    import sys

    from ..executor.context import RunOptions
    from ..store import open_store
    from .run_cmd import execute

    store = open_store(state_path)
    record = _load_record(store, run_id, state_path)
    if record.dry_run:
        raise UsageError(f"run {record.run_id} was a dry run: there is nothing to resume")
    if record.status == "running" and _alive(record):
        raise UsageError(f"run {record.run_id} is still running (pid {record.pid} on "
                         f"{record.machine})")
    if record.status == "ok":
        raise UsageError(f"run {record.run_id} completed successfully: nothing to resume")
    _check_file(record, force)
    prepared = _prepared(record, _given(record, extra_vars), None)
    progress = _progress(store, record)
    saved = dict(record.options)
    options = RunOptions(dry_run=dry_run, diff=bool(saved.get("diff")), forks=saved.get("forks"),
                         tags=frozenset(saved.get("tags") or ()),
                         skip_tags=frozenset(saved.get("skip_tags") or ()),
                         assume_yes=assume_yes, interactive=sys.stdin.isatty(),
                         no_rollback=bool(saved.get("no_rollback")),
                         start_at=saved.get("start_at"))
    return execute(prepared, options, output=output, verbose=verbose, state_path=state_path,
                   kind="resume", resumed_from=record.run_id, progress=progress)


def rollback_run(run_id: str, *, state_path: str | None, hosts: tuple[str, ...], force: bool,
                 extra_vars: tuple[str, ...], output: str, verbose: int, assume_yes: bool,
                 dry_run: bool) -> int:
    """Run the recorded rollback steps of a run, newest first, per host."""
    import sys

    from ..executor.context import RunOptions
    from ..store import open_store
    from .run_cmd import execute

    store = open_store(state_path)
    record = _load_record(store, run_id, state_path)
    if record.status == "running" and _alive(record):
        raise UsageError(f"run {record.run_id} is still running (pid {record.pid})")
    _check_file(record, force)
    progress = _progress(store, record)
    for name in hosts:
        if name not in record.hosts:
            raise UsageError(f"host '{name}' was not part of run {record.run_id}",
                             hint="its hosts: " + ", ".join(record.hosts))
    chosen = [h for h in (hosts or record.hosts) if progress.get(h) and progress[h].stack]
    if not chosen:
        raise UsageError(f"run {record.run_id} has nothing to roll back",
                         hint="no step with 'rollback:' completed, or it was rolled back "
                              "already")
    prepared = _prepared(record, _given(record, extra_vars), chosen)
    options = RunOptions(dry_run=dry_run, assume_yes=assume_yes,
                         interactive=sys.stdin.isatty())
    return execute(prepared, options, output=output, verbose=verbose, state_path=state_path,
                   kind="rollback", resumed_from=record.run_id, progress=progress,
                   only_rollback=True)


_yes_option = click.option("--yes", "-y", "assume_yes", is_flag=True,
                           help="Answer yes to every confirm step.")
_dry_run_option = click.option("--dry-run", "--check", "dry_run", is_flag=True,
                               help="Change nothing: say what would be done.")
_force_option = click.option("--force", is_flag=True,
                             help="Go on even if the runbook file changed since the run.")
_verbose_option = click.option("-v", "--verbose", count=True, help="Show command output.")


@click.command()
@click.argument("run_id", metavar="RUN_ID")
@_force_option
@extra_vars_option
@output_option
@state_option
@_yes_option
@_dry_run_option
@_verbose_option
def resume(run_id: str, force: bool, extra_vars: tuple[str, ...], output: str,
           state_path: str | None, assume_yes: bool, dry_run: bool, verbose: int) -> int:
    """Continue a failed or interrupted run: each host goes on from the step where it
    stopped, with the variables earlier steps set.  Secret params that were not stored
    must be given again with -e."""
    return resume_run(run_id, state_path=state_path, force=force, extra_vars=extra_vars,
                      output=output, verbose=verbose, assume_yes=assume_yes, dry_run=dry_run)


@click.command()
@click.argument("run_id", metavar="RUN_ID")
@click.option("--host", "hosts", multiple=True, metavar="HOST",
              help="Only this host (repeatable).")
@_force_option
@extra_vars_option
@output_option
@state_option
@_yes_option
@_dry_run_option
@_verbose_option
def rollback(run_id: str, hosts: tuple[str, ...], force: bool, extra_vars: tuple[str, ...],
             output: str, state_path: str | None, assume_yes: bool, dry_run: bool,
             verbose: int) -> int:
    """Undo a run: run the rollback steps its completed steps recorded, newest first,
    on each host (or only --host)."""
    return rollback_run(run_id, state_path=state_path, hosts=hosts, force=force,
                        extra_vars=extra_vars, output=output, verbose=verbose,
                        assume_yes=assume_yes, dry_run=dry_run)
