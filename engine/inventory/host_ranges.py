"""Host names as inventories write them: ``name``, ``name:port``, ``[ipv6]:port``, ranges."""

from __future__ import annotations

import re
import string

__all__ = ["expand_host"]

_MAX_RANGE = 100_000
_RANGE = re.compile(r"\[([^\]:\[]*):([^\]:\[]*)(?::([^\]:\[]*))?\]")
_HOST_PORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])+):(\d+)$")
_IPV6 = re.compile(r"^\[([0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)\](?::(\d+))?$")


def expand_host(pattern: str) -> tuple[list[str], int | None]:
    """Host names from ``name``, ``name:port`` or a range ``web[01:03]``; ValueError if bad."""
    port: int | None = None
    ipv6 = _IPV6.match(pattern)
    if ipv6:
        return [ipv6.group(1)], int(ipv6.group(2)) if ipv6.group(2) else None
    with_port = _HOST_PORT.match(pattern)
    if with_port:
        pattern, port = with_port.group(1), int(with_port.group(2))
    if not pattern:
        raise ValueError("empty host name")
    return _expand_ranges(pattern), port


def _expand_ranges(name: str) -> list[str]:
    match = _RANGE.search(name)
    if not match:
        return [name]
    head, tail = name[:match.start()], name[match.end():]
    begin, end, step_text = match.group(1) or "0", match.group(2), match.group(3) or "1"
    if not end:
        raise ValueError("a range needs an end value, as in [1:3]")
    if not step_text.isdigit() or int(step_text) == 0:
        raise ValueError(f"the step '{step_text}' must be a positive number")
    step = int(step_text)
    letters = string.ascii_letters
    if len(begin) == 1 == len(end) and begin in letters and end in letters:
        if letters.index(begin) > letters.index(end):
            raise ValueError(f"the range [{begin}:{end}] is empty: begin must be <= end")
        values = list(letters[letters.index(begin):letters.index(end) + 1:step])
    elif begin.isdigit() and end.isdigit():
        width = len(begin) if begin[0] == "0" and len(begin) > 1 else 0
        if width and len(end) != width:
            raise ValueError(f"zero-padded bounds must have the same width ('{begin}', "
                             f"'{end}')")
        if int(begin) > int(end):
            raise ValueError(f"the range [{begin}:{end}] is empty: begin must be <= end")
        if (int(end) - int(begin)) // step >= _MAX_RANGE:
            raise ValueError(f"it makes more than {_MAX_RANGE} hosts")
        values = [str(n).zfill(width) for n in range(int(begin), int(end) + 1, step)]
    else:
        raise ValueError(f"bounds must be numbers or single letters, got '{begin}:{end}'")
    rest = _expand_ranges(tail)
    if len(values) * len(rest) > _MAX_RANGE:
        raise ValueError(f"it makes more than {_MAX_RANGE} hosts")
    return [head + value + suffix for value in values for suffix in rest]
