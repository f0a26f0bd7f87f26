"""Host-key checking against a known_hosts file: matching, verdicts, policy, accept-new.

Pure logic plus a process-wide cache (each known_hosts file is read once, again only
when it changes); the connection only hands in the server's key.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import os
import re
import threading
from dataclasses import dataclass
from typing import Sequence

import paramiko

from ..errors import HostKeyError

__all__ = ["KnownHost", "fingerprint", "parse_known_hosts", "check_host_key",
           "host_key_decision", "preferred_key_types", "rejection", "read_known_hosts",
           "add_known_host"]


def fingerprint(key_blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob."""
    digest = base64.b64encode(hashlib.sha256(key_blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


@dataclass(frozen=True)
class KnownHost:
    """One key line of a known_hosts file."""

    line: int
    patterns: tuple[str, ...]
    key_type: str
    key_b64: str
    marker: str | None = None        # "@revoked" or "@cert-authority"

    def matches(self, name: str) -> bool:
        found = False
        for pattern in self.patterns:
            negated = pattern.startswith("!")
            if _pattern_matches(pattern[1:] if negated else pattern, name):
                if negated:
                    return False
                found = True
        return found

    @property
    def fingerprint(self) -> str:
        try:
            return fingerprint(base64.b64decode(self.key_b64))
        except ValueError:
            return "(unreadable key)"


def _pattern_matches(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):
        try:
            salt_b64, hash_b64 = pattern[3:].split("|", 1)
            expected = base64.b64decode(hash_b64)
            actual = hmac.new(base64.b64decode(salt_b64), name.encode(), hashlib.sha1).digest()
        except ValueError:
            return False
        return hmac.compare_digest(expected, actual)
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, re.IGNORECASE) is not None


def parse_known_hosts(text: str) -> list[KnownHost]:
    """Every usable key line (comments, blanks and unreadable lines are skipped)."""
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = fields.pop(0) if fields[0].startswith("@") else None
        if len(fields) < 3:
            continue
        entries.append(KnownHost(number, tuple(fields[0].split(",")), fields[1], fields[2],
                                 marker))
    return entries


def check_host_key(entries: Sequence[KnownHost], name: str, key_type: str,
                   key_b64: str) -> tuple[str, list[KnownHost]]:
    """``("known"|"unknown"|"changed"|"revoked", the known_hosts lines concerned)``.

    A host known only by keys of other types counts as changed: we ask the server for
    the known type first, so being offered another one is suspicious."""
    matching = [e for e in entries if e.marker != "@cert-authority" and e.matches(name)]
    revoked = [e for e in matching if e.marker == "@revoked" and e.key_b64 == key_b64]
    if revoked:
        return "revoked", revoked
    plain = [e for e in matching if e.marker is None]
    if any(e.key_type == key_type and e.key_b64 == key_b64 for e in plain):
        return "known", []
    same_type = [e for e in plain if e.key_type == key_type]
    if same_type or plain:
        return "changed", same_type or plain
    return "unknown", []


def host_key_decision(policy: str, verdict: str) -> str:
    """``accept``, ``add`` (accept and write to known_hosts) or ``reject``."""
    if policy == "off" or verdict == "known":
        return "accept"
    if verdict == "unknown" and policy == "accept-new":
        return "add"
    return "reject"

def preferred_key_types(entries: Sequence[KnownHost], name: str) -> list[str]:
    """The key types known_hosts has for a name, to ask the server for first (as OpenSSH)."""
    wanted: list[str] = []
    for entry in entries:
        if entry.marker is None and entry.matches(name):
            names = ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] \
                if entry.key_type == "ssh-rsa" else [entry.key_type]
            wanted += [n for n in names if n not in wanted]
    return wanted


def rejection(verdict: str, lines: Sequence[KnownHost], *, offered: str, name: str,
              known_hosts: str, where: str, host: str, address: str,
              port: int) -> HostKeyError:
    """The HostKeyError for a rejected key: unknown (strict), revoked or changed."""
    kh = known_hosts
    if verdict == "unknown":
        return HostKeyError(
            f"{where}: unknown host key {offered}: {name} is not in {kh}"
            f"{'' if os.path.exists(kh) else ' (no such file)'} (host_key_checking is "
            f"strict)",
            host=host,
            hint=f"check the fingerprint, then add the key (ssh-keyscan -p {port} "
                 f"{address} >> {kh}) or set host_key_checking: accept-new")
    numbers = ", ".join(str(e.line) for e in lines)
    if verdict == "revoked":
        return HostKeyError(f"{where}: the server offers host key {offered}, which "
                            f"{kh} line {numbers} marks @revoked", host=host)
    known = ", ".join(f"{e.key_type} {e.fingerprint}" for e in lines)
    return HostKeyError(
        f"{where}: HOST KEY CHANGED: the server offers {offered} but {kh} line "
        f"{numbers} has {known} for {name}; if the change is expected, remove line "
        f"{numbers} of {kh}",
        host=host,
        hint=f"ssh-keygen -R '{name}' -f {kh}  (removes the old key of {name})")


# -- process-wide cache: each known_hosts file is read once -----------------------------

_lock = threading.Lock()
_cache: dict[str, tuple[tuple[int, int], list[KnownHost]]] = {}


def read_known_hosts(path: str) -> list[KnownHost]:
    """The entries of a known_hosts file ([] if it does not exist), cached until it changes."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return []
    signature = (st.st_mtime_ns, st.st_size)
    with _lock:
        cached = _cache.get(path)
        if cached is not None and cached[0] == signature:
            return cached[1]
        with open(path, encoding="utf-8", errors="replace") as f:
            entries = parse_known_hosts(f.read())
        _cache[path] = (signature, entries)
        return entries


def add_known_host(path: str, name: str, key: paramiko.PKey) -> None:
    """Append a key to known_hosts (once, even when several connections race to do it)."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, mode=0o700, exist_ok=True)
    with _lock, open(path, "a+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        text = f.read()
        verdict, _ = check_host_key(parse_known_hosts(text), name, key.get_name(),
                                    key.get_base64())
        if verdict == "unknown":
            f.write(("" if not text or text.endswith("\n") else "\n")
                    + f"{name} {key.get_name()} {key.get_base64()}\n")
        _cache.pop(path, None)
