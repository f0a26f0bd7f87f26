"""``runbook inventory``: show hosts, groups, merged variables and connection settings.

Secrets (passwords and any value equal to a resolved secret) are shown as ``********``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import click

from ..errors import UsageError
from .common import inventory_option, load_inventory, output_option
from .errors_out import print_problems

__all__ = ["inventory"]

MASK = "********"


@click.command("inventory")
@inventory_option
@click.option("--graph", is_flag=True, help="Show groups and hosts as a tree.")
@click.option("--host", "host_name", metavar="NAME",
              help="Show one host's merged variables and connection settings.")
@click.option("--list", "list_hosts", is_flag=True,
              help="List hosts with their groups, connection kind, address and port.")
@output_option
def inventory(inventory_path: str | None, graph: bool, host_name: str | None,
              list_hosts: bool, output: str) -> None:
    """Show hosts, groups and their variables.

    \b
    Examples:
      runbook inventory -i inventory/staging.yml --graph
      runbook inventory -i hosts.ini --host web01 -o json
    """
    if sum((graph, host_name is not None, list_hosts)) > 1:
        raise UsageError("--graph, --host and --list show different views: give only one")
    inv = load_inventory(inventory_path)
    if inv.warnings:
        print_problems(inv.warnings)
    secrets = inv.secrets
    if host_name is not None:
        data: Any = _host_view(inv.host(host_name), secrets)
    elif graph:
        data = _graph_tree(inv, "all")
    elif list_hosts:
        data = [_list_row(host) for host in inv.hosts.values()]
    else:
        data = {"path": inv.path, "groups": {
            name: {"hosts": list(group.hosts), "children": list(group.children),
                   "vars": _mask(dict(group.vars), secrets, mask_keys=True)}
            for name, group in inv.groups.items()}}
    if output == "json":
        click.echo(json.dumps(_plain(data), indent=2, ensure_ascii=False))
    elif host_name is not None:
        import yaml
        click.echo(yaml.safe_dump(_plain(data), sort_keys=False, allow_unicode=True,
                                  default_flow_style=False).rstrip("\n"))
    elif graph:
        click.echo("\n".join(_graph_lines(data, 0)))
    elif list_hosts:
        click.echo(_table(data))
    else:
        click.echo(_summary(inv))


def _plain(value: Any) -> Any:
    """Only JSON types (dates and other odd values become strings)."""
    return json.loads(json.dumps(value, default=str))


def _mask(value: Any, secrets: frozenset[str], mask_keys: bool = False) -> Any:
    """A copy with secrets replaced by ``********`` (and password keys, if asked)."""
    from ..inventory import SECRET_VARS
    if isinstance(value, dict):
        return {k: MASK if mask_keys and k in SECRET_VARS and v not in (None, "")
                else _mask(v, secrets, mask_keys) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(item, secrets, mask_keys) for item in value]
    if isinstance(value, str) and secrets:
        if value in secrets:
            return MASK
        for secret in secrets:
            if len(secret) >= 4 and secret in value:
                value = value.replace(secret, MASK)
    return value


def _host_view(host: Any, secrets: frozenset[str]) -> dict[str, Any]:
    settings = dataclasses.asdict(host.connection)
    for key in ("password", "become_password"):
        if settings.get(key):
            settings[key] = MASK
    return {"host": host.name, "groups": list(host.groups),
            "vars": _mask(dict(host.vars), secrets, mask_keys=True),
            "connection": _mask(settings, secrets)}


def _list_row(host: Any) -> dict[str, Any]:
    conn = host.connection
    return {"host": host.name, "groups": [g for g in host.groups if g != "all"],
            "connection": conn.kind, "address": conn.address, "port": conn.port,
            "user": conn.user, "container": conn.container}


def _graph_tree(inv: Any, name: str) -> dict[str, Any]:
    group = inv.groups[name]
    return {"group": name,
            "children": [_graph_tree(inv, child) for child in sorted(group.children)],
            "hosts": [] if name == "all" else list(group.hosts)}


def _graph_lines(node: dict[str, Any], depth: int) -> list[str]:
    """Lines like ``ansible-inventory --graph``: @all:, then  |--@web:,  |  |--h1."""
    def indent(text: str, level: int) -> str:
        return "  |" * level + "--" + text if level else text
    lines = [indent(f"@{node['group']}:", depth)]
    for child in node["children"]:
        lines.extend(_graph_lines(child, depth + 1))
    lines.extend(indent(host, depth + 1) for host in node["hosts"])
    return lines


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no hosts"
    head = ("HOST", "GROUPS", "CONNECTION", "ADDRESS", "PORT")
    cells = [head] + [(r["host"], ",".join(r["groups"]) or "-", r["connection"],
                       r["address"] or r["container"] or "-",
                       "-" if r["port"] is None else str(r["port"])) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in cells)


def _summary(inv: Any) -> str:
    """Each group with its direct hosts and children, then a count."""
    lines: list[str] = []
    for name, group in inv.groups.items():
        members = sum(1 for host in inv.hosts.values() if name in host.groups)
        lines.append(f"@{name}: {_count(members, 'host')}")
        if group.children:
            lines.append("  children: " + ", ".join(group.children))
        if group.hosts:
            lines.append("  hosts: " + ", ".join(group.hosts))
    source = inv.path or "implicit inventory (no -i)"
    lines.append(f"{_count(len(inv.hosts), 'host')}, {_count(len(inv.groups), 'group')} "
                 f"from {source}")
    return "\n".join(lines)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
