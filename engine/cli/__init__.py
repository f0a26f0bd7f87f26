"""The ``runbook`` command.  Subcommands are imported only when invoked (fast --help)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import click

from .. import __version__

__all__ = ["main", "cli", "entry"]

# name -> (module, attribute, one-line help shown by --help without importing it)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("run_cmd", "run", "Run a runbook against its hosts."),
    "check": ("check_cmd", "check", "Validate runbooks (and inventories) without running them."),
    "inventory": ("inventory_cmd", "inventory", "Show hosts, groups and their variables."),
    "list": ("list_cmd", "list_runbooks", "List runbooks and playbooks with their params."),
    "schema": ("check_cmd", "schema", "Print the JSON Schema of the runbook format."),
    "history": ("journal_cmd", "history", "List past runs from the journal."),
    "show": ("journal_cmd", "show", "Show the timeline of one run."),
    "resume": ("resume_cmd", "resume", "Continue a failed or interrupted run."),
    "rollback": ("resume_cmd", "rollback", "Undo a run by running its recorded rollback steps."),
    "unlock": ("journal_cmd", "unlock", "Release a run lock by hand."),
}


class LazyGroup(click.Group):
    """A group whose subcommands live in modules imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._available(name)]

    def _available(self, name: str) -> bool:
        module = COMMANDS[name][0]
        return importlib.util.find_spec(f"{__name__}.{module}") is not None

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        spec = COMMANDS.get(name)
        if spec is None or not self._available(name):
            return None
        module = importlib.import_module(f"{__name__}.{spec[0]}")
        return getattr(module, spec[1])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="runbook")
def cli() -> None:
    """Runbook automation: run operational procedures step by step, with checks,
    retries and automatic rollback, on local, SSH and Docker targets.

    \b
    Examples:
      runbook check runbooks/deploy.yml
      runbook run runbooks/deploy.yml -i inventory/local.yml -e version=2 --dry-run
      runbook history --status failed
    """


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: user errors print cleanly, internal errors go to a log file."""
    from .errors_out import guarded
    return guarded(lambda: cli.main(args=argv, prog_name="runbook", standalone_mode=False))


def entry() -> None:
    """The console script: run, flush, and leave at once.

    Everything a run must keep is on disk when ``main`` returns (the journal commits
    each step, locks are released), so the interpreter's slow teardown (threads of SSH
    transports, garbage collection of a big heap) is skipped.
    """
    import os
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(int(code or 0))
