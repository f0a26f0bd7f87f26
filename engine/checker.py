"""Static checks that need the whole runbook (and, if given, the inventory).

- every variable a template or condition reads is defined somewhere before it is
  read: a param, a runbook/block/step var, an inventory variable, a name registered
  or set by an earlier step, the loop variable, or a built-in;
- a registered name is not used before the step that registers it;
- host patterns (``hosts``, literal ``delegate_to``) name hosts or groups that exist.

Without an inventory, names that could come from one are warnings, not errors.
"""

from __future__ import annotations

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
    "None", "omit",
})


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
        self.everything = self.base | set(loaded.registers) | self._set_names(runbook.walk())
        self.reported: set[tuple[str, SourceLoc]] = set()

    @staticmethod
    def _set_names(steps: Iterable[Step]) -> set[str]:
        return {key for step in steps if step.action == "set" for key in step.args}

    def run(self) -> list[LoadError]:
        self._hosts()
        for owner, sites in self.loaded.sites.items():
            if owner.startswith("vars.") or owner == "lock":
                for site in sites:
                    self._check_site(site, self.everything, lazy=True)
        known = set(self.base)
        known = self._steps(self.runbook.preflight, known)
        self._steps(self.runbook.steps, known)
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
        for site in self.loaded.sites.get(step.path, ()):
            self._check_site(site, scope | site.extra)
        after = set(known)
        if step.is_block:
            inner = self._steps(step.block or (), scope)
            inner = self._steps(step.rescue, inner | scope)
            inner = self._steps(step.always, inner | scope)
            after |= inner - set(step.vars)
        if step.register:
            after.add(step.register)
        if step.action == "set":
            after.update(step.args)
        if step.rollback:
            self._steps(step.rollback, after | set(step.vars))
        return after

    def _check_site(self, site: Site, known: set[str] | frozenset[str],
                    lazy: bool = False) -> None:
        names = self.templar.names(site.text, condition=site.condition)
        for name in sorted(names - known - site.extra):
            key = (name, site.loc)
            if key in self.reported:
                continue
            self.reported.add(key)
            if name in self.loaded.registers and not lazy:
                path = self.loaded.registers[name]
                step = self._step_at(path)
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
                severity = "warning"
                hint = (f"did you mean '{close}'? " if close else "") + \
                    "(it may come from an inventory: pass -i to check)"
            if name in self.everything:
                continue
            self.problems.append(LoadError(f"undefined variable '{name}'", loc=site.loc,
                                           hint=hint, severity=severity))

    def _step_at(self, path: str) -> Step | None:
        for step in self.runbook.walk():
            if step.path == path:
                return step
        return None
