"""``runbook list``: the runbooks and playbooks in some folders, with their params."""

from __future__ import annotations

import json
import os
import sys

import click

from ..errors import EXIT_OK
from .common import expand_paths, output_option

__all__ = ["list_runbooks"]


def _default_dirs() -> list[str]:
    here = os.getcwd()
    found = [d for d in ("runbooks", "playbooks") if os.path.isdir(os.path.join(here, d))]
    if found:
        return found
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return [p for p in (os.path.join(package_root, "runbooks"),
                        os.path.join(package_root, "playbooks")) if os.path.isdir(p)]


@click.command("list")
@click.argument("folders", nargs=-1, type=click.Path(exists=True, file_okay=False))
@output_option
def list_runbooks(folders: tuple[str, ...], output: str) -> int:
    """List runbooks and playbooks under FOLDERS (default: ./runbooks and ./playbooks)
    with their description and params.  Files that do not load are listed with their
    first error."""
    from ..loader import load_runbook
    paths = expand_paths(tuple(folders) or tuple(_default_dirs()))
    rows = []
    for path in paths:
        loaded = load_runbook(path, raise_errors=False)
        book = loaded.runbook
        if book is None or loaded.errors:
            first = loaded.errors[0] if loaded.errors else None
            rows.append({"path": path, "name": None, "valid": False,
                         "error": str(first) if first else "cannot load"})
            continue
        rows.append({
            "path": path, "name": book.name, "valid": True,
            "description": (book.description or "").strip(), "hosts": book.hosts,
            "steps": len(book.walk()),
            "params": [{"name": p.name, "type": p.type, "required": p.required,
                        "default": None if p.secret else p.default, "secret": p.secret,
                        "choices": list(p.choices), "description": p.description}
                       for p in book.params]})
    if output == "json":
        json.dump(rows, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return EXIT_OK
    if not rows:
        click.echo("no runbooks found", err=True)
        return EXIT_OK
    for row in rows:
        if not row["valid"]:
            click.echo(click.style(f"{row['path']}", bold=True) + "  " +
                       click.style(f"invalid: {row['error']}", fg="red"))
            continue
        click.echo(click.style(str(row["name"]), bold=True) + f"  ({row['path']}, "
                   f"{row['steps']} steps, hosts: {row['hosts']})")
        if row["description"]:
            first = str(row["description"]).splitlines()[0]
            click.echo(f"    {first}")
        for param in row["params"]:  # type: ignore[union-attr]
            bits = [param["type"]]
            if param["required"]:
                bits.append("required")
            elif param["default"] is not None:
                bits.append(f"default {param['default']!r}")
            if param["choices"]:
                bits.append("one of " + ", ".join(map(str, param["choices"])))
            if param["secret"]:
                bits.append("secret")
            text = f"    -e {param['name']}=…  ({', '.join(bits)})"
            if param["description"]:
                text += f"  {param['description']}"
            click.echo(text)
    return EXIT_OK
