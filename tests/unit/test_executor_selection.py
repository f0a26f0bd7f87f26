"""Which steps run (--tags, --skip-tags, always/never, --start-at, --step) and what a
dry run does (plans, cannot-simulate, simulated registers, notes, counts)."""

from __future__ import annotations

import time

import pytest

from engine.cli.run_cmd import prepare
from engine.errors import InventoryError, ParamError
from engine.executor.context import RunOptions

from helpers import make_inventory, run_yaml

TAGGED = """
name: tagged
steps:
  - {id: a, shell: a, tags: [x]}
  - {id: b, shell: b, tags: [y]}
  - {id: c, shell: c, tags: [always]}
  - {id: d, shell: d, tags: [never]}
  - {id: e, shell: e, tags: [never, x]}
  - id: blk
    tags: [z]
    block:
      - {id: f, shell: f}
      - {id: g, shell: g, tags: [y]}
  - {id: h, shell: h}
"""


@pytest.mark.parametrize("tags, skip, expected", [
    ((), (), "abcfgh"),                  # never-tagged steps do not run by default
    (("x",), (), "ace"),                 # always runs; never+x runs when x is asked for
    (("y",), (), "bcg"),                 # a block runs for its tagged children only
    (("z",), (), "cfg"),                 # children inherit the block's tags
    (("never",), (), "cde"),
    (("all",), (), "abcfgh"),
    (("x", "y"), (), "abceg"),
    ((), ("x",), "bcfgh"),
    ((), ("always",), "abfgh"),          # always is skipped only when asked by name
    ((), ("z",), "abch"),
    (("y",), ("z",), "bc"),
])
def test_tags_and_skip_tags(tags: tuple[str, ...], skip: tuple[str, ...],
                            expected: str) -> None:
    outcome = run_yaml(TAGGED, inventory=make_inventory(["localhost"]),
                       options=RunOptions(tags=frozenset(tags), skip_tags=frozenset(skip)))
    assert "".join(outcome.log.commands()) == expected
    assert outcome.exit_code == 0


def test_preflight_ignores_tags() -> None:
    outcome = run_yaml("""
        name: t
        preflight:
          - {id: pre, shell: pre}
        steps:
          - {id: a, shell: a, tags: [x]}
          - {id: b, shell: b}
        """, inventory=make_inventory(["localhost"]), options=RunOptions(tags=frozenset({"x"})))
    assert outcome.log.commands() == ["pre", "a"]


def test_preflight_counts_as_always() -> None:
    text = "name: t\npreflight:\n  - {id: pre, shell: pre}\nsteps:\n  - {id: a, shell: a}\n"
    skipped = run_yaml(text, inventory=make_inventory(["localhost"]),
                       options=RunOptions(skip_tags=frozenset({"always"})))
    assert skipped.log.commands() == ["a"]
    started = run_yaml(text, inventory=make_inventory(["localhost"]),
                       options=RunOptions(start_at="a"))
    assert started.log.commands() == ["pre", "a"]


def test_rollback_steps_run_whatever_the_tags() -> None:
    outcome = run_yaml("""
        name: t
        steps:
          - {id: a, shell: a, tags: [x], rollback: {shell: undo-a, tags: [other]}}
          - {id: b, shell: boom, tags: [x]}
        """, inventory=make_inventory(["localhost"]), options=RunOptions(tags=frozenset({"x"})),
        rules={"localhost": [("boom", 1, "", "")]})
    assert outcome.log.commands() == ["a", "boom", "undo-a"]


@pytest.mark.parametrize("start_at, expected", [
    ("a", "abcfgh"),
    ("c", "cfgh"),
    ("g", "gh"),          # into a block: the block is entered, earlier children skipped
    ("h", "h"),
])
def test_start_at(start_at: str, expected: str) -> None:
    outcome = run_yaml(TAGGED, inventory=make_inventory(["localhost"]),
                       options=RunOptions(start_at=start_at))
    assert "".join(outcome.log.commands()) == expected


def test_start_at_keeps_preflight_and_pushes_no_rollback_for_skipped_steps() -> None:
    outcome = run_yaml("""
        name: t
        preflight:
          - {id: pre, shell: pre}
        steps:
          - {id: a, shell: a, rollback: {shell: undo-a}}
          - {id: b, shell: b, rollback: {shell: undo-b}}
          - {id: c, shell: boom}
        """, inventory=make_inventory(["localhost"]), options=RunOptions(start_at="b"),
        rules={"localhost": [("boom", 1, "", "")]})
    assert outcome.log.commands() == ["pre", "b", "boom", "undo-b"]


# -- --step: confirm each step ------------------------------------------------------

def scripted(*answers: str):
    asked: list[tuple[str, list[str]]] = []
    queue = list(answers)

    def confirm(step, hosts: list[str]) -> str:
        asked.append((step.id, hosts))
        return queue.pop(0)
    return confirm, asked


def test_step_by_step_asks_once_per_step_for_all_hosts() -> None:
    confirm, asked = scripted("yes", "no", "yes")
    outcome = run_yaml("""
        name: t
        hosts: all
        steps:
          - {id: a, shell: a}
          - {id: b, shell: b}
          - {id: c, shell: c}
        """, hosts=["h1", "h2"], options=RunOptions(step_by_step=True), confirm_step=confirm)
    assert asked == [("a", ["h1", "h2"]), ("b", ["h1", "h2"]), ("c", ["h1", "h2"])]
    assert outcome.log.commands("h1") == ["a", "c"]
    assert outcome.log.commands("h2") == ["a", "c"]
    assert outcome.exit_code == 0


def test_step_by_step_quit_stops_the_run() -> None:
    confirm, asked = scripted("yes", "quit")
    outcome = run_yaml("""
        name: t
        steps:
          - {id: a, shell: a, rollback: {shell: undo-a}}
          - {id: b, shell: b}
          - {id: c, shell: c}
        """, inventory=make_inventory(["localhost"]), options=RunOptions(step_by_step=True),
        confirm_step=confirm)
    assert [a for a, _ in asked] == ["a", "b"]
    assert outcome.report.stop_reason == "stopped at the operator's request (--step)"
    # what the code does: quitting counts as a stop, so what completed is rolled back
    assert outcome.log.commands() == ["a", "undo-a"]
    assert outcome.exit_code == 1


def test_step_by_step_asks_for_steps_inside_blocks_not_for_the_block() -> None:
    confirm, asked = scripted("yes", "yes")
    run_yaml("""
        name: t
        steps:
          - id: blk
            block:
              - {id: inner, shell: inner}
          - {id: after, shell: after}
        """, inventory=make_inventory(["localhost"]), options=RunOptions(step_by_step=True),
        confirm_step=confirm)
    assert [a for a, _ in asked] == ["inner", "after"]


# -- --limit, -e: prepare() --------------------------------------------------------

def _files(tmp_path, runbook: str, inventory: str) -> tuple[str, str]:
    rb = tmp_path / "rb.yml"
    rb.write_text(runbook)
    inv = tmp_path / "inv.yml"
    inv.write_text(inventory)
    return str(rb), str(inv)


INV = """
all:
  children:
    web:
      hosts:
        web1: {connection: local}
        web2: {connection: local}
    db:
      hosts:
        db1: {connection: local}
"""


@pytest.mark.parametrize("limit, names", [
    (None, ["web1", "web2", "db1"]),
    ("web", ["web1", "web2"]),
    ("web2:db1", ["web2", "db1"]),
    ("all:!web1", ["web2", "db1"]),
    ("web*", ["web1", "web2"]),
])
def test_limit_narrows_the_hosts(tmp_path, limit: str | None, names: list[str]) -> None:
    rb, inv = _files(tmp_path, "name: t\nhosts: all\nsteps:\n  - shell: x\n", INV)
    prepared = prepare(rb, inv, (), limit)
    assert [h.name for h in prepared.hosts] == names


def test_limit_that_matches_nothing_is_a_usage_error(tmp_path) -> None:
    rb, inv = _files(tmp_path, "name: t\nhosts: db\nsteps:\n  - shell: x\n", INV)
    with pytest.raises(InventoryError) as info:
        prepare(rb, inv, (), "web")
    assert info.value.exit_code == 2


def test_extra_vars_are_typed_params(tmp_path) -> None:
    rb, inv = _files(tmp_path, """
name: t
params:
  count: {type: int, required: true}
  dry: {type: bool, default: false}
steps:
  - shell: x
""", INV)
    prepared = prepare(rb, inv, ("count=3", "dry=true"), None)
    assert prepared.params.values == {"count": 3, "dry": True}
    with pytest.raises(ParamError) as info:
        prepare(rb, inv, ("count=three",), None)
    assert info.value.exit_code == 2
    with pytest.raises(ParamError):
        prepare(rb, inv, (), None)


# -- dry run -----------------------------------------------------------------------

DRY = """
name: dry
steps:
  - {id: arbitrary, shell: "mutate", register: ra}
  - {id: guarded, shell: "make thing", args: {creates: /thing}, register: rg}
  - {id: already, shell: "make other", args: {creates: /etc/app.conf}}
  - {id: reader, shell: "cat /etc/version", args: {check_mode_safe: true}, register: ver}
  - {id: write, copy: {dest: /etc/app.conf, content: "new\\n"}, register: wr}
  - {id: remove, file: {path: /etc/old.conf, state: absent}}
  - {id: restart, shell: "restart", args: {creates: /run/x}, when: wr.changed}
  - {id: when_unsim, shell: "never", when: ra.changed}
  - {id: uses_real, shell: "echo {{ ver.stdout }}", args: {creates: /y}, when: ver.rc == 0}
  - {id: set, set: {flag: 1}}
  - {id: check, assert: {that: "flag == 1"}}
"""

DRY_FILES = {"localhost": {"/etc/app.conf": b"old\n", "/etc/old.conf": b"x"}}


def dry(diff: bool = False):
    return run_yaml(DRY, inventory=make_inventory(["localhost"]),
                    options=RunOptions(dry_run=True, diff=diff),
                    files={"localhost": dict(DRY_FILES["localhost"])},
                    rules={"localhost": [("cat /etc/version", 0, "1.2", "")]})


def test_dry_run_runs_only_what_reads() -> None:
    outcome = dry()
    assert outcome.fakes["localhost"].commands == ["cat /etc/version"]
    assert outcome.fakes["localhost"].files == DRY_FILES["localhost"]
    assert outcome.exit_code == 0


def test_dry_run_statuses_and_messages() -> None:
    outcome = dry()
    ends = {e.step: e for e in outcome.step_ends()}
    assert ends["arbitrary"].status == "unsimulated"
    assert "cannot be simulated" in ends["arbitrary"].msg
    assert (ends["guarded"].status, ends["guarded"].changed) == ("simulated", True)
    assert ends["guarded"].changes == ("would run: make thing",)
    assert (ends["already"].status, ends["already"].changed) == ("simulated", False)
    assert ends["already"].msg == "skipped: /etc/app.conf exists"
    assert ends["reader"].status in ("ok", "changed")     # really ran
    assert ends["write"].status == "simulated"
    assert ends["write"].changes == ("update content of /etc/app.conf",)
    assert ends["remove"].changes == ("remove /etc/old.conf",)
    assert ends["set"].status == "ok" and ends["check"].status == "ok"


def test_dry_run_registers_are_marked_simulated_and_conditions_say_so() -> None:
    outcome = dry()
    facts = outcome.run.states["localhost"].facts
    assert facts["wr"]["simulated"] is True
    assert facts["wr"]["dry_run"] == "planned"
    assert facts["ra"]["simulated"] is True
    assert facts["ra"]["dry_run"] == "cannot_simulate"
    assert facts["ver"]["simulated"] is False
    ends = {e.step: e for e in outcome.step_ends()}
    assert ends["restart"].status == "simulated"
    assert ends["restart"].note == "condition uses simulated result(s): wr"
    assert ends["when_unsim"].status == "skipped"
    assert ends["when_unsim"].note == "condition uses simulated result(s): ra"
    assert ends["uses_real"].note == ""


def test_dry_run_counts() -> None:
    outcome = dry()
    stats = outcome.end().hosts["localhost"]
    # guarded, already, write, remove, restart, uses_real
    assert stats["simulated"] == 6
    assert stats["unsimulated"] == 1
    assert outcome.end().dry_run is True


def test_dry_run_diff_of_files() -> None:
    outcome = dry(diff=True)
    diff = {e.step: e.diff for e in outcome.step_ends()}["write"]
    assert "--- /etc/app.conf (before)" in diff
    assert "+++ /etc/app.conf (after)" in diff
    assert "-old" in diff and "+new" in diff
    without = {e.step: e.diff for e in dry().step_ends()}["write"]
    assert without is None


def test_dry_run_rollback_is_planned_not_run() -> None:
    outcome = run_yaml("""
        name: t
        steps:
          - {id: s1, copy: {dest: /a, content: x}, rollback: {shell: undo-s1}}
          - {id: s2, shell: probe, args: {check_mode_safe: true}}
        """, inventory=make_inventory(["localhost"]), options=RunOptions(dry_run=True),
        rules={"localhost": [("probe", 1, "", "")]})
    assert outcome.fakes["localhost"].commands == ["probe"]
    assert [e.status for e in outcome.events.of("rollback_step")] == ["unsimulated"]
    assert outcome.fakes["localhost"].files == {}


def test_dry_run_does_not_wait_for_a_pause() -> None:
    start = time.monotonic()
    outcome = run_yaml("name: t\nsteps:\n  - pause: 0.5\n",
                       inventory=make_inventory(["localhost"]), options=RunOptions(dry_run=True))
    assert time.monotonic() - start < 0.3
    assert outcome.step_ends()[0].msg.startswith("would wait")


def test_dry_run_does_not_ask_for_confirmation() -> None:
    outcome = run_yaml("name: t\nsteps:\n  - confirm: deploy to prod?\n",
                       inventory=make_inventory(["localhost"]), options=RunOptions(dry_run=True))
    assert outcome.exit_code == 0
    assert outcome.step_ends()[0].msg == "would ask: deploy to prod?"
