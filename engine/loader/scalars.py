"""Loader mixin: single-value fields (strings, booleans, numbers, durations, choices)."""

from __future__ import annotations

from typing import Iterable

from yaml.nodes import Node, ScalarNode

from .. import yamlsrc
from ..model import parse_duration
from ..templating import has_template, suggest
from .reporting import _Reporting


class _Scalars(_Reporting):
    """Check one scalar value against the type a field wants."""

    def _string(self, doc: yamlsrc.Document, node: Node | None, what: str,
                template_ok: bool = True) -> str | None:
        if node is None or yamlsrc.is_null(node):
            return None
        if not isinstance(node, ScalarNode) or isinstance(yamlsrc.to_python(node), bool):
            self.error(doc.loc(node), f"'{what}' must be a string, found {yamlsrc.kind_name(node)}")
            return None
        value = str(node.value)
        if template_ok:
            self._template_syntax(doc, node, value)
        return value

    def _bool(self, doc: yamlsrc.Document, node: Node | None, what: str) -> bool:
        if node is None or yamlsrc.is_null(node):
            return False
        value = yamlsrc.to_python(node) if isinstance(node, ScalarNode) else None
        if not isinstance(value, bool):
            self.error(doc.loc(node), f"'{what}' must be true or false, found "
                                      f"{yamlsrc.kind_name(node)}")
            return False
        return value

    def _int(self, doc: yamlsrc.Document, node: Node | None, what: str, low: int | None = None,
             high: int | None = None) -> int | None:
        if node is None or yamlsrc.is_null(node):
            return None
        value = yamlsrc.to_python(node) if isinstance(node, ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int):
            hint = "templates are not allowed here: write a number" \
                if isinstance(value, str) and has_template(value) else None
            self.error(doc.loc(node), f"'{what}' must be an integer, found "
                                      f"{yamlsrc.kind_name(node)}", hint=hint)
            return None
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            self.error(doc.loc(node), f"'{what}' must be {bounds}, got {value}")
            return None
        return value

    def _number(self, doc: yamlsrc.Document, node: Node | None, what: str,
                low: float | None = None, high: float | None = None) -> float | None:
        if node is None or yamlsrc.is_null(node):
            return None
        value = yamlsrc.to_python(node) if isinstance(node, ScalarNode) else None
        if isinstance(value, str) and value.endswith("%"):
            try:
                value = float(value[:-1])
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.error(doc.loc(node), f"'{what}' must be a number, found "
                                      f"{yamlsrc.kind_name(node)}")
            return None
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            self.error(doc.loc(node), f"'{what}' must be {bounds}, got {value}")
            return None
        return float(value)

    def _duration(self, doc: yamlsrc.Document, node: Node | None, what: str) -> float | None:
        if node is None or yamlsrc.is_null(node):
            return None
        value = yamlsrc.to_python(node) if isinstance(node, ScalarNode) else None
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            readable = isinstance(value, (str, int, float)) and not isinstance(value, bool)
            self.error(doc.loc(node), f"'{what}': {exc}" if readable else
                       f"'{what}' must be a duration (30s, 5m, 1h or seconds), found "
                       f"{yamlsrc.kind_name(node)}")
            return None
        return seconds

    def _choice(self, doc: yamlsrc.Document, node: Node | None, what: str,
                choices: Iterable[str], default: str | None) -> str | None:
        if node is None or yamlsrc.is_null(node):
            return default
        value = yamlsrc.to_python(node) if isinstance(node, ScalarNode) else None
        choices = tuple(choices)
        if value not in choices:
            close = suggest(str(value), choices) if isinstance(value, str) else None
            self.error(doc.loc(node), f"'{what}' must be one of {', '.join(choices)}; got "
                                      f"{value!r}" if value is not None else
                       f"'{what}' must be one of {', '.join(choices)}",
                       hint=f"did you mean '{close}'?" if close else None)
            return default
        return value
