"""Host patterns (``web*``, ``a:b``, ``a:&b``, ``a:!b``, ``~regex``) resolved to host names."""

from __future__ import annotations

import fnmatch
import re
from typing import Iterable, Mapping

from ..errors import InventoryError
from ..model import SourceLoc
from .drafts import suggest_hint
from .model import Group, Host

__all__ = ["HostPatterns", "names_hint"]

_PATTERN_TERM = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")


class HostPatterns:
    """Resolves patterns against an inventory's hosts and groups (both kept by reference)."""

    def __init__(self, hosts: Mapping[str, Host], groups: Mapping[str, Group],
                 has_localhost: bool) -> None:
        self.hosts = hosts
        self.groups = groups
        self._has_localhost = has_localhost
        self._index = {name: i for i, name in enumerate(self.hosts)}
        self._index.setdefault("localhost", len(self._index))
        members: dict[str, list[str]] = {name: [] for name in self.groups}
        for host in self.hosts.values():
            for group in host.groups:
                members.setdefault(group, []).append(host.name)
        self._members = {name: frozenset(names) for name, names in members.items()}
        self._everyone = frozenset(self.hosts)
        self._cache: dict[str, tuple[str, ...]] = {}

    def known_names(self) -> frozenset[str]:
        """Host and group names a pattern may use."""
        extra = {"localhost"} if self._has_localhost else set()
        return frozenset(self.hosts) | frozenset(self.groups) | extra

    def names(self, pattern: str, loc: SourceLoc | None = None) -> tuple[str, ...]:
        """The host names a pattern names, in inventory order, without duplicates."""
        names = self._cache.get(pattern)
        if names is None:
            names = self._resolve(pattern, loc)
            self._cache[pattern] = names
        return names

    def _resolve(self, pattern: str, loc: SourceLoc | None) -> tuple[str, ...]:
        terms = [term for part in pattern.split(",") for term in _PATTERN_TERM.findall(part)]
        if not terms:
            raise InventoryError(f"empty host pattern '{pattern}'", loc=loc,
                                 hint="name a host, a group, or 'all'")
        unions = [term for term in terms if term[0] not in "!&"]
        selected = set() if unions else set(self._everyone)
        for term in unions:
            selected |= self._match(term, pattern, loc)
        for term in terms:
            if term[0] == "&":
                selected &= self._match(term[1:], pattern, loc)
        for term in terms:
            if term[0] == "!":
                selected -= self._match(term[1:], pattern, loc)
        return tuple(sorted(selected, key=self._index.__getitem__))

    def _match(self, term: str, pattern: str, loc: SourceLoc | None) -> frozenset[str]:
        if term in ("all", "*"):
            return self._everyone
        if term in self.hosts:
            return frozenset((term,))
        if term in self._members:
            return self._members[term]
        if term == "localhost" and self._has_localhost:
            return frozenset((term,))
        if not term:
            raise InventoryError(f"a '!' or '&' in pattern '{pattern}' is not followed by a "
                                 "name", loc=loc)
        if term[0] != "~" and not any(char in term for char in "*?["):
            raise InventoryError(f"unknown host or group '{term}' in pattern '{pattern}'",
                                 loc=loc, hint=names_hint(term, self.known_names()))
        try:
            regex = re.compile(term[1:] if term[0] == "~" else fnmatch.translate(term))
        except (re.error, RecursionError, OverflowError) as exc:
            raise InventoryError(f"invalid regular expression '{term[1:]}' in pattern "
                                 f"'{pattern}': {exc}", loc=loc) from None
        groups = [name for name in self.groups if regex.match(name)]
        found = {name for name in self.hosts if regex.match(name)}
        for group in groups:
            found |= self._members[group]
        if not groups and not found:
            raise InventoryError(f"no host or group matches '{term}' in pattern '{pattern}'",
                                 loc=loc, hint=names_hint(term, self.known_names()))
        return frozenset(found)



def names_hint(word: str, candidates: Iterable[str]) -> str:
    names = sorted(candidates)
    match = suggest_hint(word, names)
    if match:
        return match
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return f"known names: {shown}" if names else "the inventory is empty"

