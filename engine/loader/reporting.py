"""The loader's shared state and what it records: problems and template sites."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .. import yamlsrc
from ..errors import LoadError
from ..model import SourceLoc
from ..templating import has_template, suggest, templar
from .keys import _ANSIBLE_HINTS


@dataclass(frozen=True)
class Site:
    """A template or condition in the runbook, for the static checks."""

    text: str
    loc: SourceLoc
    condition: bool
    extra: frozenset[str] = frozenset()


class _Reporting:
    """The base of the loader's mixins: its state, problem reporting and template sites."""

    def __init__(self) -> None:
        self.problems: list[LoadError] = []
        self.sites: dict[str, list[Site]] = {}
        self.registers: dict[str, str] = {}
        self.delegate_locs: dict[str, SourceLoc] = {}
        self.ids: dict[str, SourceLoc] = {}
        self.reserved_ids: set[str] = set()
        self.include_stack: list[str] = []
        self.outer_names: set[str] = set()
        self.include_names: set[str] = set()
        self.includes: list[str] = []
        self.templar = templar()

    # ---------------------------------------------------------------- reporting
    def error(self, loc: SourceLoc, message: str, hint: str | None = None) -> None:
        self.problems.append(LoadError(message, loc=loc, hint=hint))

    def warn(self, loc: SourceLoc, message: str, hint: str | None = None) -> None:
        self.problems.append(LoadError(message, loc=loc, hint=hint, severity="warning"))

    def _unknown_key(self, doc: yamlsrc.Document, key_node: Node, key: str,
                     allowed: Iterable[str], what: str, also: Iterable[str] = ()) -> None:
        loc = doc.loc(key_node)
        if key in _ANSIBLE_HINTS:
            self.error(loc, f"unknown key '{key}' in {what}", hint=_ANSIBLE_HINTS[key])
            return
        close = suggest(key, [*allowed, *also])
        hint = f"did you mean '{close}'?" if close else "allowed keys: " + ", ".join(allowed)
        self.error(loc, f"unknown key '{key}' in {what}", hint=hint)

    # ---------------------------------------------------------------- templates
    def _template_syntax(self, doc: yamlsrc.Document, node: Node, text: str) -> None:
        if has_template(text):
            problem = self.templar.syntax_error(text)
            if problem:
                self.error(doc.loc(node), problem)

    def _templates_in(self, doc: yamlsrc.Document, node: Node, owner: str,
                      extra: frozenset[str] = frozenset(), depth: int = 0) -> None:
        """Check the syntax of every template inside a value and record it as a site."""
        if depth > 50:
            return
        if isinstance(node, ScalarNode):
            if node.tag == "tag:yaml.org,2002:str" and has_template(node.value):
                self._template_syntax(doc, node, node.value)
                self._site(doc, node, owner, node.value, condition=False, extra=extra)
        elif isinstance(node, SequenceNode):
            for child in node.value:
                self._templates_in(doc, child, owner, extra, depth + 1)
        elif isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                self._templates_in(doc, key_node, owner, extra, depth + 1)
                self._templates_in(doc, value_node, owner, extra, depth + 1)

    def _site(self, doc: yamlsrc.Document, node: Node, owner: str, text: str, *,
              condition: bool, extra: frozenset[str] = frozenset()) -> None:
        self.sites.setdefault(owner, []).append(Site(text, doc.loc(node), condition, extra))
