"""``runbook check`` and ``runbook schema``."""

from __future__ import annotations

import json
import sys

import click

from ..errors import EXIT_OK, EXIT_USAGE, LoadError, UserError, ValidationFailed
from .common import expand_paths, extra_vars_option, inventory_option, output_option, \
    load_inventory
from .errors_out import print_problems

__all__ = ["check", "schema"]


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@inventory_option
@extra_vars_option
@output_option
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option("--actions", "list_actions", is_flag=True,
              help="List every action with its parameters, then exit.")
def check(paths: tuple[str, ...], inventory_path: str | None, extra_vars: tuple[str, ...],
          output: str, strict: bool, list_actions: bool) -> int:
    """Validate runbooks (files or folders) without running anything.

    Reports every problem as file:line:col with the line and a hint; exits 2 when
    any error is found (or any warning, with --strict).
    """
    if list_actions:
        _print_actions(output)
        return EXIT_OK
    files = expand_paths(paths)
    if not files and not inventory_path:
        raise click.UsageError("give runbook files or folders to check (or -i to check an "
                               "inventory)")
    from ..checker import check_runbook
    from ..loader import load_runbook
    from ..params import parse_extra_vars, resolve_params

    problems: list[LoadError] = []
    summaries: list[dict[str, object]] = []
    inventory = None
    try:
        inventory = load_inventory(inventory_path)
    except ValidationFailed as exc:
        problems.extend(exc.problems)
    except UserError as exc:
        problems.append(LoadError(exc.message, loc=exc.loc, hint=exc.hint))
    given = parse_extra_vars(extra_vars) if extra_vars else None
    for path in files:
        loaded = load_runbook(path, raise_errors=False)
        found = list(loaded.problems)
        if loaded.runbook is not None and not loaded.errors:
            found.extend(check_runbook(loaded, inventory, inventory_given=bool(inventory_path)))
            if given is not None:
                try:
                    resolve_params(loaded.runbook, given)
                except UserError as exc:
                    for each in getattr(exc, "problems", None) or [exc]:
                        found.append(LoadError(each.message, loc=each.loc, hint=each.hint))
        problems.extend(found)
        errors = sum(1 for p in found if p.severity == "error")
        summaries.append({"path": path, "ok": errors == 0,
                          "steps": len(loaded.runbook.walk()) if loaded.runbook else 0,
                          "errors": errors, "warnings": len(found) - errors})
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = len(problems) - errors
    failed = errors > 0 or (strict and warnings > 0)
    if output == "json":
        json.dump({"ok": not failed, "files": summaries,
                   "problems": [_problem_json(p) for p in problems]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_USAGE if failed else EXIT_OK
    print_problems(problems)
    for summary in summaries:
        if summary["ok"]:
            click.echo(f"ok: {summary['path']} ({summary['steps']} steps)", err=True)
    if problems:
        click.echo(f"{errors} error{'s' if errors != 1 else ''}, "
                   f"{warnings} warning{'s' if warnings != 1 else ''}", err=True)
    return EXIT_USAGE if failed else EXIT_OK


def _problem_json(problem: LoadError) -> dict[str, object]:
    loc = problem.loc
    return {"path": loc.path if loc else None, "line": loc.line if loc else None,
            "col": loc.col if loc else None, "severity": problem.severity,
            "message": problem.message, "hint": problem.hint}


def _print_actions(output: str) -> None:
    from ..actions import action_names, get_action
    rows = []
    for name in action_names():
        action = get_action(name)
        assert action is not None
        rows.append({"name": name, "summary": action.summary,
                     "dry_run": "plans" if action.supports_dry_run else "cannot simulate",
                     "params": {k: {"type": s.type, "required": s.required, "doc": s.doc}
                                for k, s in action.params.items()}})
    if output == "json":
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    for row in rows:
        click.echo(f"{row['name']:<18} {row['summary']}")
        for key, spec in row["params"].items():  # type: ignore[attr-defined]
            flag = " (required)" if spec["required"] else ""
            click.echo(f"    {key:<16} {spec['type']:<10}{flag} {spec['doc']}")


@click.command()
def schema() -> int:
    """Print the JSON Schema of the runbook format (for editors)."""
    from ..format_schema import runbook_schema
    json.dump(runbook_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EXIT_OK
