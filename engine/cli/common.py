"""Options and helpers shared by several commands."""

from __future__ import annotations

import os
from typing import Any, Callable

import click

__all__ = ["inventory_option", "extra_vars_option", "output_option", "load_inventory",
           "expand_paths", "state_option"]


def state_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--state", "state_path", metavar="PATH", envvar="RUNBOOK_STATE",
                        type=click.Path(dir_okay=False),
                        help="The run journal (SQLite). Default: "
                             "$XDG_STATE_HOME/runbook/state.db. [env: RUNBOOK_STATE]")(f)


def inventory_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-i", "--inventory", "inventory_path", metavar="FILE",
                        envvar="RUNBOOK_INVENTORY", type=click.Path(dir_okay=False),
                        help="Inventory file (YAML or INI). Default: localhost only. "
                             "[env: RUNBOOK_INVENTORY]")(f)


def extra_vars_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-e", "--extra-vars", "extra_vars", multiple=True, metavar="NAME=VALUE",
                        help="A param: name=value, @file.yml, or a JSON/YAML mapping. "
                             "Repeatable.")(f)


def output_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--output", "-o", "output", type=click.Choice(["text", "json"]),
                        default="text", show_default=True,
                        help="json: machine-readable output on stdout.")(f)


def load_inventory(path: str | None) -> Any:
    """The inventory at ``path``, or the implicit localhost-only one."""
    from ..inventory import Inventory
    if path:
        return Inventory.load(path)
    return Inventory.implicit()


def expand_paths(paths: tuple[str, ...]) -> list[str]:
    """Files as given; folders become the runbooks inside them (not files named _*)."""
    out: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
                for name in sorted(files):
                    if name.endswith((".yml", ".yaml")) and not name.startswith(("_", ".")):
                        out.append(os.path.join(root, name))
        else:
            out.append(path)
    return out
