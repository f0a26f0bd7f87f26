"""The INI inventory format (Ansible's ``[group]``, ``[group:vars]``, ``[group:children]``)."""

from __future__ import annotations

import ast
import re
import warnings
from typing import Any

from ..model import SourceLoc
from .drafts import Drafts, GroupDraft, VarLayer, suggest_hint

__all__ = ["IniReader"]

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:[#;].*)?$")


class IniReader(Drafts):
    """Reads an INI inventory into the drafts."""

    def read_ini(self, text: str) -> None:
        group, state = "ungrouped", "hosts"
        defined = {"all", "ungrouped"}
        wanted: list[tuple[str, str, SourceLoc]] = []   # (group, where it was named, loc)
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            indent = len(raw) - len(raw.lstrip())
            loc = SourceLoc(self.path, lineno, indent + 1)
            section = _SECTION.match(line)
            if section:
                group, state = section.group(1), section.group(2) or "hosts"
                if state not in ("hosts", "vars", "children"):
                    self.error(f"unknown section type '{state}' in '{line}'", loc,
                               hint="a section is [group], [group:vars] or [group:children]")
                    state = "skip"
                    continue
                self.group(group, loc)
                if state == "vars":
                    wanted.append((group, f"[{group}:vars]", loc))
                else:
                    defined.add(group)
            elif line.startswith("[") and line.endswith("]"):
                self.error(f"invalid section header '{line}'", loc,
                           hint="write [group], [group:vars] or [group:children]; group "
                                "names have no spaces or ':'")
                state = "skip"
            elif state == "hosts":
                self.ini_host(self.groups[group], line, lineno, indent)
            elif state == "vars":
                key, eq, value = line.partition("=")
                if not eq or not key.strip():
                    self.error(f"expected key=value in [{group}:vars], got '{line}'", loc)
                    continue
                col = indent + len(key) + 2 + len(value) - len(value.lstrip())
                self.groups[group].vars[key.strip()] = (
                    _ini_value(value.strip()), SourceLoc(self.path, lineno, col))
            elif state == "children":
                match = _GROUP_NAME.match(line)
                if not match:
                    self.error(f"expected a group name in [{group}:children], got '{line}'",
                               loc)
                    continue
                self.group(match.group(1), loc)
                self.groups[group].children.setdefault(match.group(1), loc)
                wanted.append((match.group(1), f"[{group}:children]", loc))
        for name, where, loc in wanted:
            if name not in defined:
                self.error(f"{where} names group '{name}', which is never defined", loc,
                           hint=suggest_hint(name, defined) or
                           f"define it with a [{name}] or [{name}:children] section")

    def ini_host(self, group: GroupDraft, line: str, lineno: int, indent: int) -> None:
        tokens, bad_quote = _ini_tokens(line)
        if bad_quote is not None:
            self.error("unclosed quote in host line", SourceLoc(self.path, lineno,
                                                                indent + bad_quote + 1),
                       hint="close the quote, or escape it with a backslash")
            return
        if not tokens:
            return
        host_vars: VarLayer = {}
        for text, col in tokens[1:]:
            key, eq, value = text.partition("=")
            if not eq or not key:
                self.error(f"expected key=value after host '{tokens[0][0]}', got '{text}'",
                           SourceLoc(self.path, lineno, indent + col + 1),
                           hint='quote values that contain spaces: key="a b"')
                continue
            value_loc = SourceLoc(self.path, lineno, indent + col + len(key) + 2)
            host_vars[key] = (_ini_value(value), value_loc)
        name, col = tokens[0]
        self.add_hosts(group, name, SourceLoc(self.path, lineno, indent + col + 1), host_vars)


def _ini_tokens(line: str) -> tuple[list[tuple[str, int]], int | None]:
    """Split a host line like POSIX shlex with comments; tokens with their start index.

    Returns (tokens, None), or ([], index of an unclosed quote).
    """
    tokens: list[tuple[str, int]] = []
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i].isspace():
            i += 1
        if i >= n or line[i] == "#":
            break
        start, chars = i, []
        while i < n and not line[i].isspace():
            char = line[i]
            if char == "#":
                n = i  # a comment ends the token and the line
                break
            if char in "'\"":
                close = i + 1
                while close < n and line[close] != char:
                    if char == '"' and line[close] == "\\" and close + 1 < n and \
                            line[close + 1] in '"\\':
                        close += 1
                    chars.append(line[close])
                    close += 1
                if close >= n:
                    return [], i
                i = close + 1
            elif char == "\\" and i + 1 < n:
                chars.append(line[i + 1])
                i += 2
            else:
                chars.append(char)
                i += 1
        tokens.append(("".join(chars), start))
    return tokens, None


def _ini_value(text: str) -> Any:
    """An INI value as Ansible reads it: a Python literal if it is one, else the text."""
    if not text or (text[0].isalpha() and text not in ("True", "False", "None")
                    and not any(c in text for c in "'\"")):
        return text
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text
    return _plain(value, text)


def _plain(value: Any, text: str) -> Any:
    """Literal results as YAML would give them (bytes, tuples, sets, complex are odd)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (tuple, set, frozenset)):
        return [_plain(item, text) for item in value]
    if isinstance(value, list):
        return [_plain(item, text) for item in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, text) for k, v in value.items()}
    if isinstance(value, complex):
        return text
    return value
