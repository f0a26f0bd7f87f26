"""What every part of a run shares: options, the event bus, connections, stop flags."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..connections import ConnectionPool
from ..redact import Redactor
from ..templating import Scope, Templar, templar
from .events import EventBus
from .state import HostState, HostVars

if TYPE_CHECKING:
    from ..inventory import Inventory
    from ..model import Runbook, Step

__all__ = ["RunOptions", "RunContext"]


@dataclass(frozen=True)
class RunOptions:
    """How to run: everything the command line can change."""

    dry_run: bool = False
    diff: bool = False
    forks: int | None = None
    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()
    start_at: str | None = None
    step_by_step: bool = False
    assume_yes: bool = False
    interactive: bool = False
    no_rollback: bool = False
    grace_period: float = 10.0


@dataclass
class RunContext:
    """Shared by the executor, the step runner and rollback; one per run."""

    run_id: str
    runbook: "Runbook"
    inventory: "Inventory"
    params: Mapping[str, Any]
    options: RunOptions
    bus: EventBus
    redactor: Redactor
    pool: ConnectionPool = field(default_factory=ConnectionPool)
    templar: Templar = field(default_factory=templar)
    states: dict[str, HostState] = field(default_factory=dict)
    prompt: Callable[[str], bool] | None = None
    confirm_step: Callable[["Step", list[str]], str] | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    hard_stop_event: threading.Event = field(default_factory=threading.Event)
    stop_reason: str = ""
    run_deadline: float | None = None
    prompt_lock: threading.Lock = field(default_factory=threading.Lock)
    grace_timer: threading.Timer | None = None

    def end_grace(self) -> None:
        """The interrupted steps are over: the grace timer must not kill the rollback."""
        timer = self.grace_timer
        if timer is not None:
            timer.cancel()
            self.grace_timer = None

    def __post_init__(self) -> None:
        self.runbook_dir = os.path.dirname(os.path.abspath(self.runbook.path))
        self.runbook_vars = dict(self.runbook.vars)
        self.hostvars = HostVars(self.states, self.inventory.hosts)
        self.groups = {name: list(self._group_hosts(name)) for name in self.inventory.groups}

    def _group_hosts(self, name: str) -> list[str]:
        try:
            return [h.name for h in self.inventory.select(name)]
        except Exception:  # a group that selects nothing
            return []

    # -- stopping ----------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()

    @property
    def hard_stopped(self) -> bool:
        return self.hard_stop_event.is_set()

    def stop(self, reason: str) -> None:
        if not self.stop_event.is_set():
            self.stop_reason = reason
            self.stop_event.set()

    def sleep(self, seconds: float) -> None:
        """A pause that ends early when the run is being stopped."""
        self.stop_event.wait(seconds)

    def rollback_sleep(self, seconds: float) -> None:
        self.hard_stop_event.wait(seconds)

    # -- variables ---------------------------------------------------------------
    def builtins(self, state: HostState) -> dict[str, Any]:
        if not state.builtins:
            host = state.host
            state.builtins = {
                "inventory_hostname": host.name,
                "inventory_hostname_short": host.name.split(".")[0],
                "group_names": [g for g in host.groups if g not in ("all", "ungrouped")],
                "groups": self.groups,
                "hostvars": self.hostvars,
                "run": {"id": self.run_id, "runbook": self.runbook.name,
                        "dry_run": self.options.dry_run},
                "dry_run": self.options.dry_run,
                "runbook_dir": self.runbook_dir,
                "runbook_name": self.runbook.name,
            }
        return state.builtins

    def scope(self, state: HostState, step: "Step | None" = None,
              extra: Mapping[str, Any] | None = None) -> Scope:
        """The variables a step sees on a host, highest precedence first."""
        layers: list[Mapping[str, Any]] = []
        if extra:
            layers.append(extra)
        layers.append(self.params)
        layers.append(state.facts)
        if step is not None and step.vars:
            layers.append(step.vars)
        layers.extend(reversed(state.block_vars))
        layers.append(self.runbook_vars)
        layers.append(state.host.vars)
        layers.append(self.builtins(state))
        return Scope(layers, self.templar)

