"""Static checks that need the whole runbook (and, if given, the inventory).

- every variable a template or condition reads is defined somewhere before it is
  read: a param, a runbook/block/step var, an inventory variable, a name registered
  or set by an earlier step, the loop variable, or a built-in;
- a registered name is not used before the step that registers it;
- host patterns (``hosts``, literal ``delegate_to``) name hosts or groups that exist.

Without an inventory, names that could come from one are warnings, not errors.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Iterable

from .errors import InventoryError, LoadError
from .loader import LoadResult, Site
from .model import Runbook, SourceLoc, Step
from .templating import has_template, suggest, templar

if TYPE_CHECKING:
    from .inventory import Inventory

__all__ = ["check_runbook", "BUILTIN_NAMES"]

BUILTIN_NAMES = frozenset({
    "inventory_hostname", "inventory_hostname_short", "hostvars", "groups", "group_names",
    "run", "dry_run", "runbook_dir", "runbook_name", "true", "false", "none", "True", "False",
    "None",
})
#: what rescue steps see besides everything else
RESCUE_NAMES = frozenset({"failed_step"})


_DEFINED_TEST = re.compile(r"\b([A-Za-z_]\w*)\s+is\s+(?:not\s+)?defined\b")
_DEFAULTED = re.compile(r"\b([A-Za-z_]\w*)(?:\.\w+|\[[^\]]*\])*\s*\|\s*(?:default|d)\b")


@lru_cache(maxsize=8192)
def _guarded_names(text: str) -> frozenset[str]:
    """Names tested with ``is defined`` or given a ``| default(...)``."""
    return frozenset(_DEFINED_TEST.findall(text)) | frozenset(_DEFAULTED.findall(text))


def _guarded(text: str, name: str) -> bool:
    """``x is defined`` / ``x | default(...)``: the author knows it may not exist yet."""
    return name in _guarded_names(text)


def check_runbook(loaded: LoadResult, inventory: "Inventory | None" = None,
                  inventory_given: bool = False) -> list[LoadError]:
    """Problems found by the whole-runbook checks (the loader's are in ``loaded``)."""
    runbook = loaded.runbook
    if runbook is None:
        return []
    return _Checker(loaded, runbook, inventory, inventory_given).run()


class _Checker:
    def __init__(self, loaded: LoadResult, runbook: Runbook, inventory: "Inventory | None",
                 inventory_given: bool) -> None:
        self.loaded = loaded
        self.runbook = runbook
        self.inventory = inventory
        self.inventory_given = inventory_given
        self.problems: list[LoadError] = []
        self.templar = templar()
        self.globals = frozenset(self.templar.env.globals)
        self.inventory_vars: frozenset[str] = frozenset()
        if inventory is not None:
            names: set[str] = set()
            for host in inventory.hosts.values():
                names.update(host.vars)
            self.inventory_vars = frozenset(names)
        self.base = (BUILTIN_NAMES | self.globals | {p.name for p in runbook.params} |
                     set(runbook.vars) | self.inventory_vars)
        self.everything = self.base | set(loaded.registers) | \
            self._set_names(runbook.walk()) | set(loaded.include_names)
        self.reported: set[tuple[str, SourceLoc]] = set()
        self.maybe_inventory: dict[str, SourceLoc] = {}

    @staticmethod
    def _set_names(steps: Iterable[Step]) -> set[str]:
        return {key for step in steps if step.action == "set" for key in step.args}

    def run(self) -> list[LoadError]:
        self._hosts()
        for owner, sites in self.loaded.sites.items():
            if owner.startswith("vars."):
                for site in sites:
                    self._check_site(site, self.everything, lazy=True)
            elif owner == "lock":
                for site in sites:
                    self._check_lock(site)
        known = set(self.base)
        known = self._steps(self.runbook.preflight, known)
        self._steps(self.runbook.steps, known)
        if self.maybe_inventory:
            names = sorted(self.maybe_inventory)
            first = min(self.maybe_inventory.values(), key=lambda loc: (loc.path, loc.line,
                                                                        loc.col))
            shown = ", ".join(names[:12]) + (f" and {len(names) - 12} more"
                                             if len(names) > 12 else "")
            self.problems.append(LoadError(
                f"{len(names)} variable{'s' if len(names) != 1 else ''} not defined by this "
                f"runbook: {shown}", loc=first, severity="warning",
                hint="they may come from an inventory: pass -i to check them"))
        self.problems.sort(key=lambda p: (p.loc.path, p.loc.line, p.loc.col) if p.loc else
                           ("", 0, 0))
        return self.problems

    # -- hosts --------------------------------------------------------------------
    def _hosts(self) -> None:
        pattern = self.runbook.hosts
        if self.inventory is None or has_template(pattern):
            return
        self._pattern(pattern, self.runbook.hosts_loc or self.runbook.loc)
        for step in self.runbook.walk():
            if step.delegate_to and not has_template(step.delegate_to):
                self._pattern(step.delegate_to,
                              self.loaded.delegate_locs.get(step.path, step.loc), single=True)

    def _pattern(self, pattern: str, loc: SourceLoc, single: bool = False) -> None:
        assert self.inventory is not None
        try:
            hosts = self.inventory.select(pattern, loc=loc)
        except InventoryError as exc:
            severity = "error" if self.inventory_given else "warning"
            hint = exc.hint
            if not self.inventory_given:
                hint = "no inventory given (-i): only 'localhost' is known"
            self.problems.append(LoadError(exc.message, loc=loc, hint=hint, severity=severity))
            return
        if single and len(hosts) != 1:
            self.problems.append(LoadError(f"delegate_to '{pattern}' must name one host, "
                                           f"it matches {len(hosts)}", loc=loc))

    # -- names --------------------------------------------------------------------
    def _steps(self, steps: Iterable[Step], known: set[str]) -> set[str]:
        for step in steps:
            known = self._step(step, known)
        return known

    def _step(self, step: Step, known: set[str]) -> set[str]:
        scope = known | set(step.vars)
        guarded = set()
        for condition in step.when:
            for name in self.templar.names(condition.expr, condition=True):
                if name in self.loaded.registers and _guarded(condition.expr, name):
                    guarded.add(name)
        for site in self.loaded.sites.get(step.path, ()):
            self._check_site(site, scope | site.extra | guarded)
        after = set(known)
        if step.is_block:
            inner = self._steps(step.block or (), scope)
            inner = self._steps(step.rescue, inner | scope | RESCUE_NAMES)
            inner = self._steps(step.always, inner | scope)
            after |= inner - set(step.vars) - RESCUE_NAMES
        if step.register:
            after.add(step.register)
        if step.action == "set":
            after.update(step.args)
        if step.rollback:
            # the executor gives rollback steps the step's result and loop variable
            self._steps(step.rollback, after | set(step.vars) | {"result", step.loop_var})
        return after

    def _check_lock(self, site: Site) -> None:
        """A lock name is rendered before the run starts: only params are known then."""
        allowed = {p.name for p in self.runbook.params} | self.globals
        for name in sorted(self.templar.names(site.text) - allowed):
            self.problems.append(LoadError(
                f"the lock name can only use params, not '{name}'", loc=site.loc,
                hint="locks are taken before any step runs: declare it as a param"))

    def _check_site(self, site: Site, known: set[str] | frozenset[str],
                    lazy: bool = False) -> None:
        names = self.templar.names(site.text, condition=site.condition)
        for name in sorted(names - known - site.extra):
            key = (name, site.loc)
            if key in self.reported:
                continue
            self.reported.add(key)
            if name in self.loaded.registers and not lazy:
                if _guarded(site.text, name):
                    continue
                path = self.loaded.registers[name]
                step = self._step_at(path)
                if step is not None and step.loc.line == site.loc.line or \
                        (step is not None and self._site_in_step(site, step)):
                    self.problems.append(LoadError(
                        f"'{name}' is registered by this same step: it does not exist yet here",
                        loc=site.loc, hint="use 'result' (or the registered name) in until, "
                                           "check, failed_when and changed_when"))
                    continue
                where = f" (line {step.loc.line})" if step else ""
                self.problems.append(LoadError(
                    f"'{name}' is used before it is registered: the step that registers it"
                    f"{where} runs later", loc=site.loc,
                    hint="move this step after it, or guard with: when: "
                         f"{name} is defined"))
                continue
            if name in self.everything and not lazy:
                continue
            close = suggest(name, sorted(self.everything))
            if self.inventory_given or self.inventory_vars:
                severity = "error"
                hint = f"did you mean '{close}'?" if close else \
                    "define it in vars or params, or use '| default(...)'"
            else:
                # without an inventory only a near-certain typo is worth its own warning
                close = suggest(name, sorted(self.everything), cutoff=0.85)
                if not close:   # most likely an inventory variable: one summary for all
                    self.maybe_inventory.setdefault(name, site.loc)
                    continue
                severity = "warning"
                hint = f"did you mean '{close}'? (it may come from an inventory: pass -i " \
                       "to check)"
            if name in self.everything:
                continue
            self.problems.append(LoadError(f"undefined variable '{name}'", loc=site.loc,
                                           hint=hint, severity=severity))

    def _site_in_step(self, site: Site, step: Step) -> bool:
        return any(s is site for s in self.loaded.sites.get(step.path, ()))

    def _step_at(self, path: str) -> Step | None:
        for step in self.runbook.walk():
            if step.path == path:
                return step
        return None
