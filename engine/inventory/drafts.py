"""The groups and hosts read so far, and how readers report problems (with did-you-mean)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from ..errors import LoadError
from ..model import SourceLoc
from .host_ranges import expand_host

__all__ = ["VarLayer", "GroupDraft", "HostDraft", "Drafts", "suggest_hint"]

VarLayer = dict[str, tuple[Any, "SourceLoc | None"]]  # name -> (value, where the value is)


@dataclass
class GroupDraft:
    """A group as read so far (mutable: several places in the files may add to it)."""

    name: str
    loc: SourceLoc | None
    hosts: dict[str, None] = field(default_factory=dict)
    children: dict[str, SourceLoc | None] = field(default_factory=dict)
    vars: VarLayer = field(default_factory=dict)
    file_vars: VarLayer = field(default_factory=dict)


@dataclass
class HostDraft:
    """A host as read so far: its inline vars and its host_vars file's vars."""

    name: str
    loc: SourceLoc | None
    vars: VarLayer = field(default_factory=dict)
    file_vars: VarLayer = field(default_factory=dict)


class Drafts:
    """Drafts of one inventory's groups and hosts, filled by the format readers."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[LoadError] = []
        self._seen: set[tuple[str, SourceLoc | None]] = set()
        self._reset()

    def _reset(self) -> None:
        self.groups: dict[str, GroupDraft] = {}
        self.hosts: dict[str, HostDraft] = {}
        self.localhost = HostDraft("localhost", None)
        self.problems.clear()
        self._seen.clear()
        self.group("all", None)
        self.group("ungrouped", None)

    def error(self, message: str, loc: SourceLoc | None, hint: str | None = None,
              severity: str = "error") -> None:
        if (message, loc) not in self._seen:
            self._seen.add((message, loc))
            self.problems.append(LoadError(message, loc=loc, hint=hint, severity=severity))

    def group(self, name: str, loc: SourceLoc | None) -> GroupDraft:
        draft = self.groups.get(name)
        if draft is None:
            draft = self.groups[name] = GroupDraft(name, loc)
        elif draft.loc is None:
            draft.loc = loc
        return draft

    def add_hosts(self, group: GroupDraft, pattern: str, loc: SourceLoc,
                  host_vars: VarLayer) -> None:
        try:
            names, port = expand_host(pattern)
        except ValueError as exc:
            self.error(f"bad host range in '{pattern}': {exc}", loc)
            return
        if port is not None:
            host_vars = {"ansible_port": (port, loc), **host_vars}
        for name in names:
            draft = self.hosts.get(name)
            if draft is None:
                draft = self.hosts[name] = HostDraft(name, loc)
            draft.vars.update(host_vars)
            group.hosts[name] = None


def suggest_hint(word: str, candidates: Iterable[str]) -> str | None:
    """'did you mean ...?' for the closest candidate, or None."""
    from ..templating import suggest
    match = suggest(word, sorted(candidates))
    return f"did you mean '{match}'?" if match else None

