"""Step types.  Each is a class in a module of its family, found here by name.

Modules are imported only when a step of theirs is checked or run, so start-up
stays fast and nothing here imports the docker SDK or paramiko.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .schema import ParamSpec

if TYPE_CHECKING:
    from .base import Action

__all__ = ["get_action", "action_names", "ParamSpec"]

_BUILTIN: dict[str, str] = {
    "shell": "command:Shell",
    "command": "command:Command",
    "script": "command:Script",
    "copy": "files:Copy",
    "template": "files:Template",
    "file": "files:File",
    "fetch": "files:Fetch",
    "wait_for": "wait:WaitFor",
    "http": "http:Http",
    "assert": "control:Assert",
    "set": "control:Set",
    "fail": "control:Fail",
    "pause": "control:Pause",
    "confirm": "control:Confirm",
    "log": "control:Log",
    "docker.container": "docker_container:Container",
    "docker.image": "docker_image:Image",
    "docker.exec": "docker:Exec",
    "docker.inspect": "docker:Inspect",
    "docker.info": "docker:Info",
    "docker.logs": "docker:Logs",
    "docker.stats": "docker:Stats",
    "docker.scale": "docker_scale:Scale",
    "docker.compose": "docker_compose:Compose",
    "docker.prune": "docker_image:Prune",
}

_LOADED: dict[str, "type[Action]"] = {}


def action_names() -> list[str]:
    """Every action name a runbook may use, sorted."""
    return sorted(_BUILTIN)


def get_action(name: str) -> "type[Action] | None":
    """The Action class for a name, or None when there is no such action."""
    cls = _LOADED.get(name)
    if cls is not None:
        return cls
    target = _BUILTIN.get(name)
    if target is None:
        return None
    module_name, class_name = target.split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    cls = getattr(module, class_name)
    _LOADED[name] = cls
    return cls


def register(name: str, target: str) -> None:
    """Add an action (``"module:Class"`` relative to this package) to the registry."""
    _BUILTIN[name] = target
    _LOADED.pop(name, None)
