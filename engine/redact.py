"""Masking secrets: every byte the engine writes passes through one Redactor.

Secret values (``secret: true`` params, inventory passwords, what ``no_log`` steps
produce) are replaced by ``********`` wherever they appear, also inside longer
strings (a templated command, the stdout of a command that echoed them).
"""

from __future__ import annotations

import re
import threading
from typing import Any, Iterable

__all__ = ["Redactor", "MASK", "mask_everywhere"]

_ACTIVE: list["Redactor"] = []

MASK = "********"
_MIN_LENGTH = 3   # shorter values would mask ordinary text ("0", "ok")


class Redactor:
    """Replaces known secret values with ``********`` in strings and structures."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        self.add(secrets)

    def add(self, secrets: Iterable[Any]) -> None:
        new = {str(s) for s in secrets if isinstance(s, (str, int)) and not isinstance(s, bool)
               and len(str(s)) >= _MIN_LENGTH and str(s) != MASK}
        with self._lock:
            if new - self._secrets:
                self._secrets |= new
                variants = set(self._secrets)
                for secret in self._secrets:   # also as shell-quoted / JSON-escaped text
                    variants.add(secret.replace("'", "'\"'\"'"))
                    variants.add(secret.replace("\\", "\\\\").replace('"', '\\"'))
                    variants.add(repr(secret)[1:-1])           # as Python's repr() shows it
                ordered = sorted(variants, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def activate(self) -> None:
        """Make this redactor mask crash logs and anything else written outside a run."""
        if self not in _ACTIVE:
            _ACTIVE.append(self)

    @property
    def active(self) -> bool:
        return self._pattern is not None

    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)

    def text(self, value: str) -> str:
        pattern = self._pattern
        if pattern is None or not value:
            return value
        return pattern.sub(MASK, value)

    def bytes(self, value: bytes) -> bytes:
        if self._pattern is None:
            return value
        return self.text(value.decode("utf-8", "surrogateescape")).encode("utf-8",
                                                                           "surrogateescape")

    def value(self, value: Any) -> Any:
        """Mask inside any structure of dicts, lists, tuples and strings."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.value(v) for v in value)
        return value

    def event(self, event: Any) -> Any:
        """A copy of an event with every field masked."""
        if self._pattern is None:
            return event
        changes = {}
        for name in event.fields():
            current = getattr(event, name)
            masked = self.value(current)
            if masked is not current and masked != current:
                changes[name] = masked
        return event.replace(**changes) if changes else event


def mask_everywhere(text: str) -> str:
    """Mask every secret any active run knows (for crash logs)."""
    for redactor in list(_ACTIVE):
        text = redactor.text(text)
    return text
