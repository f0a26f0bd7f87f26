"""A host's Host from its variable layers: merged vars, connection settings, secrets.

Settings are read under our names and Ansible's aliases, checked and converted;
``env:NAME``/``file:PATH`` passwords are resolved (once per load).
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Mapping

from ..model import SourceLoc
from .drafts import VarLayer, suggest_hint
from .model import (CONNECTION_KINDS, HOST_KEY_CHECKING, LOCAL_NAMES, SETTING_NAMES, SETTING_VARS,
                    ConnectionSettings, Host)

__all__ = ["HostSettings"]

_KINDS = {"local": "local", "ssh": "ssh", "smart": "ssh", "paramiko": "ssh",
          "paramiko_ssh": "ssh", "docker": "docker", "community.docker.docker": "docker",
          "community.docker.docker_api": "docker", "ansible.builtin.local": "local",
          "ansible.builtin.ssh": "ssh", "ansible.builtin.paramiko_ssh": "ssh"}
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class _Invalid(ValueError):
    """A setting's value is wrong; becomes a LoadError at the value."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class HostSettings:
    """Makes Hosts for one inventory; problems go to ``error`` (message, loc, hint=...)."""

    def __init__(self, base: str, environ: Mapping[str, str],
                 error: Callable[..., None]) -> None:
        self.base = base
        self.environ = environ
        self.error = error
        self._secrets: dict[tuple[str, Any], Any] = {}

    def make_host(self, name: str, loc: SourceLoc | None, groups: tuple[str, ...],
                  layers: list[VarLayer], force_local: bool = False) -> Host:
        merged: VarLayer = {}
        rank: dict[str, int] = {}
        for i, layer in enumerate(layers):
            merged.update(layer)
            for key in layer:
                if key in SETTING_NAMES:
                    rank[key] = i
        found: dict[str, tuple[str, Any, SourceLoc | None]] = {}
        for setting, names in SETTING_VARS.items():
            present = [(rank[key], -order, key) for order, key in enumerate(names)
                       if key in merged]
            if present:
                key = max(present)[2]
                value, value_loc = merged[key]
                if value is not None and value != "":
                    found[setting] = (key, value, value_loc)
        values: dict[str, Any] = {}
        resolved: dict[str, Any] = {}
        for setting, (key, value, value_loc) in found.items():
            try:
                if isinstance(value, str) and "{{" in value:
                    raise _Invalid(f"'{key}' is a template, but inventory values are data and "
                                   "are not rendered", hint="write the value itself")
                values[setting] = self.convert(setting, key, value)
            except _Invalid as exc:
                self.error(str(exc), value_loc, hint=exc.hint)
                continue
            if setting in ("password", "become_password"):
                resolved[key] = values[setting]
        kind = "local" if force_local else values.pop("connection", None)
        values.pop("connection", None)
        if kind is None:
            if values.get("container"):
                kind = "docker"
            elif name in LOCAL_NAMES and "address" not in values and "port" not in values:
                kind = "local"
            else:
                kind = "ssh"
        if kind == "ssh":
            values.setdefault("address", name)
        elif kind == "docker":
            values.setdefault("container", values.get("address") or name)
        extra = {k: v[0] for k, v in merged.items()
                 if k.startswith("ansible_") and k not in SETTING_NAMES}
        settings = ConnectionSettings(kind=kind, extra=extra, **values)
        host_vars = {k: v[0] for k, v in merged.items()}
        host_vars.update(resolved)
        secrets = frozenset(v for v in (settings.password, settings.become_password) if v)
        return Host(name, host_vars, groups, settings, loc, secrets)

    def convert(self, setting: str, key: str, value: Any) -> Any:
        """A setting's value checked and converted; _Invalid says what is wrong."""
        if setting == "connection":
            kind = _KINDS.get(value.strip().lower()) if isinstance(value, str) else None
            if kind is None:
                raise _Invalid(f"unknown connection kind '{value}' in '{key}'",
                               hint=suggest_hint(str(value), CONNECTION_KINDS)
                               or "use one of: local, ssh, docker")
            return kind
        if setting == "port":
            text = value.strip() if isinstance(value, str) else None
            number = int(text) if text and re.fullmatch(r"\d{1,5}", text) else value
            if isinstance(number, bool) or not isinstance(number, int) or \
                    not 1 <= number <= 65535:
                raise _Invalid(f"'{key}' must be a port number from 1 to 65535, got "
                               f"{value!r}", hint="for example: 22")
            return number
        if setting == "host_key_checking":
            text = str(value).strip().lower()
            if text in HOST_KEY_CHECKING:
                return text
            if value is True or text in _TRUE:
                return "strict"
            if value is False or text in _FALSE:
                return "off"
            raise _Invalid(f"'{key}' must be one of strict, accept-new, off, got {value!r}",
                           hint=suggest_hint(text, HOST_KEY_CHECKING) or
                           "false (Ansible's spelling) means off")
        if setting == "connect_timeout":
            try:
                seconds = float(value) if not isinstance(value, bool) else -1.0
            except (TypeError, ValueError):
                seconds = -1.0
            if not seconds > 0 or seconds == float("inf"):
                raise _Invalid(f"'{key}' must be a positive number of seconds, got {value!r}")
            return seconds
        if setting == "docker_tls_verify":
            text = str(value).strip().lower()
            if isinstance(value, bool) or text in _TRUE | _FALSE:
                return value if isinstance(value, bool) else text in _TRUE
            raise _Invalid(f"'{key}' must be true or false, got {value!r}")
        if isinstance(value, (dict, list, bool)):
            raise _Invalid(f"'{key}' must be a string, got {type(value).__name__} {value!r}")
        if setting in ("password", "become_password"):
            return self.secret(key, str(value))
        if setting in ("key_file", "known_hosts", "docker_cert_path"):
            return self.local_path(str(value))
        return str(value)

    def local_path(self, value: str) -> str:
        path = os.path.expanduser(value.strip())
        return path if os.path.isabs(path) else os.path.normpath(os.path.join(self.base, path))

    def secret(self, key: str, value: str) -> str:
        """A password as given, or read from ``env:NAME`` / ``file:PATH``."""
        cached = self._secrets.get((key, value))
        if cached is None:
            try:
                cached = self._read_secret(key, value)
            except _Invalid as exc:
                cached = exc
            self._secrets[(key, value)] = cached
        if isinstance(cached, _Invalid):
            raise cached
        return cached

    def _read_secret(self, key: str, value: str) -> str:
        if value.startswith("env:"):
            name = value[4:].strip()
            if name not in self.environ:
                raise _Invalid(f"environment variable '{name}' is not set (needed by '{key}')",
                               hint=f"export {name}=... before running, or change '{key}'"
                               if name else "write the variable's name after 'env:'")
            return self.environ[name]
        if value.startswith("file:"):
            path = self.local_path(value[5:])
            try:
                with open(path, encoding="utf-8") as f:
                    return f.read().rstrip("\r\n")
            except FileNotFoundError:
                raise _Invalid(f"secret file not found: {path} (needed by '{key}')",
                               hint="relative paths start at the inventory's folder") from None
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                raise _Invalid(f"cannot read secret file {path}: {reason}") from None
        return value
