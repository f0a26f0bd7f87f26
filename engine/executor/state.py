"""Per-host state of a run: variables, the rollback stack, failure, counters."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from ..model import SourceLoc, Step
from .events import HostStats

if TYPE_CHECKING:
    from ..inventory import Host

__all__ = ["Failure", "RollbackEntry", "HostState", "HostVars"]


@dataclass(frozen=True)
class Failure:
    """Why a host stopped: shown in the recap and recorded in the journal."""

    host: str
    step_id: str
    step_name: str
    loc: SourceLoc | None
    message: str
    command: str | None = None
    rc: int | None = None
    stderr_tail: str = ""
    unreachable: bool = False
    phase: str = "steps"

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "step": self.step_id, "name": self.step_name,
                "loc": str(self.loc) if self.loc else None, "message": self.message,
                "command": self.command, "rc": self.rc, "stderr_tail": self.stderr_tail,
                "unreachable": self.unreachable, "phase": self.phase}


@dataclass(frozen=True)
class RollbackEntry:
    """Rollback steps pushed when ``step`` completed, with the variables they need."""

    step: Step
    snapshot: Mapping[str, Any]
    title: str = ""               # the step's title as shown when it ran (rendered)
    pushed_at: float = field(default_factory=time.time)

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.step.rollback


class HostState:
    """Everything the run knows about one host; touched by one worker at a time."""

    def __init__(self, host: "Host", batch: int = 0) -> None:
        self.host = host
        self.name = host.name
        self.batch = batch
        self.facts: dict[str, Any] = {}           # registered results and set variables
        self.simulated: set[str] = set()          # fact names holding simulated results
        self.rollback_stack: list[RollbackEntry] = []
        self.failure: Failure | None = None
        self.unreachable = False
        self.stats = HostStats()
        self.block_vars: list[Mapping[str, Any]] = []
        self.deadlines: list[float] = []
        self.started = False
        self.completed = False          # went through every step of its batch
        self.rollback_ran = False
        self.rollback_failed = False
        self.builtins: dict[str, Any] = {}
        # resume: step id -> (facts it defined, whether they were simulated)
        self.restored: dict[str, tuple[dict[str, Any], bool]] = {}
        self.resumed_from: str | None = None

    @property
    def active(self) -> bool:
        return self.failure is None

    def deadline(self) -> float | None:
        return min(self.deadlines) if self.deadlines else None

    def status(self) -> str:
        """How the host ended: ok, failed, unreachable, rolled_back, rollback_failed,
        stopped (the run stopped before its last step), not_run."""
        if self.rollback_failed:
            return "rollback_failed"
        if self.unreachable:
            return "unreachable"
        if self.failure is not None:
            return "rolled_back" if self.rollback_ran else "failed"
        if self.rollback_ran:
            return "rolled_back"
        if self.completed:
            return "ok"
        return "stopped" if self.started else "not_run"


class HostVars(Mapping[str, Any]):
    """``hostvars['web1'].port``: every host's inventory variables and facts."""

    def __init__(self, states: Mapping[str, HostState], inventory_hosts: Mapping[str, "Host"]):
        self._states = states
        self._hosts = inventory_hosts

    def __getitem__(self, name: str) -> Any:
        host = self._hosts[name]
        merged = dict(host.vars)
        merged["inventory_hostname"] = name
        state = self._states.get(name)
        if state is not None:
            merged.update(state.facts)
        return merged

    def __iter__(self) -> Iterator[str]:
        return iter(self._hosts)

    def __len__(self) -> int:
        return len(self._hosts)
