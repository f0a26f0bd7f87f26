"""Rollback stacks, on_failure modes, block/rescue/always, and stopping a run
(what Ctrl-C and a second Ctrl-C do, simulated through the run's stop flags)."""

from __future__ import annotations

import time


from engine.executor.context import RunOptions

from helpers import fail, make_inventory, ok, run_yaml

LOCAL = ["localhost"]


def local() -> object:
    return make_inventory(LOCAL)


SIX = """
name: deploy
hosts: all
{extra}
steps:
  - id: s1
    name: step 1
    shell: "s1 {{{{ inventory_hostname }}}}"
    rollback:
      shell: "undo-s1 {{{{ inventory_hostname }}}}"
  - id: s2
    name: step 2
    shell: "s2 {{{{ inventory_hostname }}}}"
    changed_when: false
    rollback:
      shell: "undo-s2 {{{{ inventory_hostname }}}}"
  - id: s3
    name: step 3
    shell: "s3 {{{{ inventory_hostname }}}}"
    rollback:
      - shell: "undo-s3a {{{{ inventory_hostname }}}}"
      - shell: "undo-s3b {{{{ inventory_hostname }}}}"
  - id: s4
    name: step 4
    shell: "s4 {{{{ inventory_hostname }}}}"
    rollback:
      shell: "undo-s4 {{{{ inventory_hostname }}}}"
  - id: s5
    name: step 5
    shell: "s5 {{{{ inventory_hostname }}}}"
  - id: s6
    name: step 6
    shell: "s6 {{{{ inventory_hostname }}}}"
"""


def six(extra: str = "") -> str:
    return SIX.format(extra=extra)


def breaks(word: str, hosts: set[str] | None = None, code: int = 1):
    def handler(host: str, command: str):
        if command.split()[0] == word and (hosts is None or host in hosts):
            return fail(command, code, f"{word} failed\nsecond line")
        return None
    return handler


# -- the stack ---------------------------------------------------------------------

def test_failure_unwinds_the_stack_newest_first() -> None:
    outcome = run_yaml(six(), inventory=local(), handler=breaks("s4"))
    commands = outcome.log.commands()
    assert commands == ["s1 localhost", "s2 localhost", "s3 localhost", "s4 localhost",
                        # s4 failed: its own rollback is not on the stack
                        "undo-s3a localhost", "undo-s3b localhost",  # an entry's steps in order
                        "undo-s2 localhost",   # pushed although s2 reported no change
                        "undo-s1 localhost"]
    assert outcome.rollback_order() == [("localhost", "s3"), ("localhost", "s3"),
                                        ("localhost", "s2"), ("localhost", "s1")]
    (start,) = outcome.events.of("rollback_start")
    assert start.steps == 4
    (end,) = outcome.events.of("rollback_end")
    assert (end.ok, end.rolled_back, end.failed) == (True, 4, 0)
    assert outcome.exit_code == 1
    assert outcome.report.status == "rolled_back"
    host = outcome.end().hosts["localhost"]
    assert (host["rolled_back"], host["failed"], host["status"]) == (4, 1, "rolled_back")


def test_rollback_events_come_in_order() -> None:
    outcome = run_yaml(six(), inventory=local(), handler=breaks("s3"))
    kinds = [e.kind for e in outcome.events.events if e.kind.startswith("rollback")]
    assert kinds == ["rollback_start", "rollback_step", "rollback_step", "rollback_end"]
    steps = outcome.events.of("rollback_step")
    assert [(s.step, s.undoes, s.undoes_name, s.status) for s in steps] == [
        ("undo-s2", "s2", "step 2", "changed"), ("undo-s1", "s1", "step 1", "changed")]
    assert {e.phase for e in outcome.step_ends() if e.step.startswith("undo")} == {"rollback"}
    # the rollback follows the failure, and run_end comes last
    assert outcome.kinds().index("rollback_start") > max(
        i for i, e in enumerate(outcome.events.events)
        if e.kind == "step_end" and e.phase == "steps")
    assert outcome.kinds()[-1] == "run_end"


def test_rollback_step_names_the_undone_step_as_it_was_shown() -> None:
    outcome = run_yaml("""
        name: t
        steps:
          - name: "deploy {{ inventory_hostname }}"
            shell: deploy
            rollback: {shell: undo}
          - shell: boom
        """, inventory=local(), handler=breaks("boom"))
    assert outcome.events.of("rollback_step")[0].undoes_name == "deploy localhost"


def test_rollback_steps_see_the_variables_of_the_step_they_undo() -> None:
    outcome = run_yaml("""
        name: t
        steps:
          - id: read
            shell: current-version
            register: old
          - id: switch
            shell: "switch 2.0"
            register: sw
            rollback:
              shell: "switch {{ old.stdout }} (was {{ sw.rc }}, {{ result.rc }})"
          - id: later
            set: {old: {stdout: "overwritten"}}
          - id: boom
            shell: boom
        """, inventory=local(), handler=lambda h, c: ok(c, "1.9") if c == "current-version"
        else (fail(c) if c == "boom" else None))
    assert outcome.log.commands()[-1] == "switch 1.9 (was 0, 0)"


def test_a_loop_pushes_one_entry_per_completed_item() -> None:
    outcome = run_yaml("""
        name: t
        steps:
          - id: each
            shell: "add {{ item }}"
            loop: [a, b, c]
            rollback:
              shell: "remove {{ item }}"
          - id: boom
            shell: boom
        """, inventory=local(), handler=breaks("boom"))
    assert outcome.log.commands()[-3:] == ["remove c", "remove b", "remove a"]


def test_a_failing_loop_item_is_not_pushed() -> None:
    outcome = run_yaml("""
        name: t
        steps:
          - id: each
            shell: "add {{ item }}"
            loop: [a, b, c]
            rollback:
              shell: "remove {{ item }}"
        """, inventory=local(), rules={"localhost": [("add b", 1, "", "")]})
    assert outcome.log.commands() == ["add a", "add b", "remove a"]


def test_a_rollback_step_is_retried_with_its_own_retries() -> None:
    tries = {"n": 0}

    def handler(host: str, command: str):
        if command == "undo":
            tries["n"] += 1
            return fail(command) if tries["n"] < 3 else ok(command)
        return fail(command) if command == "boom" else None
    outcome = run_yaml("""
        name: t
        steps:
          - id: s
            shell: change
            rollback:
              shell: undo
              retries: 3
              delay: 5
          - id: boom
            shell: boom
        """, inventory=local(), handler=handler, sleep=lambda s: None)
    assert outcome.log.commands() == ["change", "boom", "undo", "undo", "undo"]
    assert [e.step for e in outcome.events.of("retry")] == ["undo-s", "undo-s"]
    assert outcome.events.of("rollback_step")[0].status == "changed"
    assert outcome.exit_code == 1


def test_a_failing_rollback_step_is_reported_and_unwinding_goes_on() -> None:
    outcome = run_yaml(six(), inventory=local(),
                       handler=lambda h, c: fail(c, 7, "cannot undo") if c.startswith(
                           ("s5", "undo-s3a")) else None)
    commands = outcome.log.commands()
    assert commands[-5:] == ["undo-s4 localhost", "undo-s3a localhost", "undo-s3b localhost",
                             "undo-s2 localhost", "undo-s1 localhost"]
    statuses = [(e.step, e.status) for e in outcome.events.of("rollback_step")]
    assert statuses == [("undo-s4", "changed"), ("undo-s3", "failed"),
                        ("undo-s3-2", "changed"), ("undo-s2", "changed"),
                        ("undo-s1", "changed")]
    assert "exit code 7" in outcome.events.of("rollback_step")[1].msg
    (end,) = outcome.events.of("rollback_end")
    assert (end.ok, end.rolled_back, end.failed) == (False, 4, 1)
    assert outcome.exit_code == 3
    assert outcome.report.status == "rollback_failed"
    host = outcome.end().hosts["localhost"]
    assert (host["status"], host["rollback_failed"]) == ("rollback_failed", 1)
    # the original failure is still what the report names
    assert [f["step"] for f in outcome.end().failures] == ["s5"]


def test_rollback_with_no_stack_is_a_plain_failure() -> None:
    outcome = run_yaml("name: t\nsteps:\n  - {id: s, shell: boom}\n", inventory=local(),
                       handler=breaks("boom"))
    assert outcome.events.of("rollback_start") == []
    assert outcome.exit_code == 1
    assert outcome.report.status == "failed"
    failure = outcome.end().failures[0]
    assert (failure["step"], failure["rc"], failure["command"]) == ("s", 1, "boom")
    assert failure["stderr_tail"] == "boom failed\nsecond line"
    assert failure["loc"].startswith("/virtual/runbook.yml:3:")


def test_no_rollback_option() -> None:
    outcome = run_yaml(six(), inventory=local(), handler=breaks("s4"),
                       options=RunOptions(no_rollback=True))
    assert not any(c.startswith("undo") for c in outcome.log.commands())
    assert outcome.exit_code == 1
    assert outcome.report.status == "failed"


# -- rolling batches: earlier batches are undone too, newest first -------------------

def test_serial_rolls_back_earlier_batches_newest_first() -> None:
    outcome = run_yaml(six("serial: 1"), hosts=["h1", "h2", "h3"],
                       handler=breaks("s4", {"h3"}))
    starts = [e.host for e in outcome.events.of("rollback_start")]
    assert starts == ["h3", "h2", "h1"]
    # h1 and h2 had completed every step: all four entries are undone, newest first
    assert [u for h, u in outcome.rollback_order("h2")] == ["s4", "s3", "s3", "s2", "s1"]
    assert [u for h, u in outcome.rollback_order("h3")] == ["s3", "s3", "s2", "s1"]
    order = outcome.log.entries
    assert order.index(("h3", "undo-s1 h3")) < order.index(("h2", "undo-s4 h2"))
    assert order.index(("h2", "undo-s1 h2")) < order.index(("h1", "undo-s4 h1"))
    assert outcome.exit_code == 1
    assert {outcome.end().hosts[h]["status"] for h in ("h1", "h2", "h3")} == {"rolled_back"}


def test_serial_batches_are_unwound_batch_by_batch() -> None:
    outcome = run_yaml(six("serial: 2"), hosts=["h1", "h2", "h3", "h4"],
                       handler=breaks("s2", {"h3", "h4"}))
    starts = [e.host for e in outcome.events.of("rollback_start")]
    assert set(starts[:2]) == {"h3", "h4"} and set(starts[2:]) == {"h1", "h2"}
    ends = outcome.events.of("rollback_end")
    newest_done = max(i for i, e in enumerate(outcome.events.events)
                      if e.kind == "rollback_end" and e.host in ("h3", "h4"))
    oldest_start = min(i for i, e in enumerate(outcome.events.events)
                       if e.kind == "rollback_start" and e.host in ("h1", "h2"))
    assert newest_done < oldest_start
    assert all(e.ok for e in ends)


def test_a_batch_with_a_survivor_only_undoes_the_failed_host() -> None:
    outcome = run_yaml(six("serial: 2"), hosts=["h1", "h2", "h3", "h4"],
                       handler=breaks("s2", {"h3"}))
    assert [e.host for e in outcome.events.of("rollback_start")] == ["h3"]
    assert outcome.end().hosts["h1"]["status"] == "ok"
    assert outcome.end().hosts["h4"]["status"] == "ok"


# -- on_failure --------------------------------------------------------------------

def test_on_failure_abort_stops_without_rollback() -> None:
    outcome = run_yaml(six("on_failure: abort"), hosts=["h1", "h2", "h3"],
                       handler=breaks("s2", {"h2"}))
    commands = [c.split()[0] for c in outcome.log.commands()]
    assert not any(c.startswith("undo") for c in commands)
    assert "s3" not in commands                # nobody starts the next step
    assert outcome.report.stop_reason == "a step failed (on_failure: abort)"
    assert outcome.exit_code == 1
    assert outcome.report.status == "failed"


def test_on_failure_continue_carries_on_with_other_hosts() -> None:
    outcome = run_yaml(six("on_failure: continue"), hosts=["h1", "h2", "h3"],
                       handler=breaks("s2", {"h2"}))
    assert set(outcome.statuses("s6")) == {"h1", "h3"}
    assert not any(c.startswith("undo") for c in outcome.log.commands())
    assert outcome.exit_code == 1
    assert outcome.end().hosts["h2"]["status"] == "failed"


def test_on_failure_rollback_undoes_only_the_failed_host_while_others_go_on() -> None:
    outcome = run_yaml(six(), hosts=["h1", "h2", "h3"], handler=breaks("s2", {"h2"}))
    assert set(outcome.statuses("s6")) == {"h1", "h3"}
    assert outcome.rollback_order() == [("h2", "s1")]


# -- block / rescue / always -------------------------------------------------------

BLOCK = """
name: t
hosts: all
steps:
  - id: first
    shell: "first"
    rollback: {shell: "undo-first"}
  - id: group
    block:
      - id: inner
        shell: "inner {{ inventory_hostname }}"
        rollback: {shell: "undo-inner"}
      - id: inner2
        shell: "inner2"
    rescue:
      - id: fix
        shell: "fix {{ failed_step.step }} rc={{ failed_step.rc }}"
    always:
      - id: cleanup
        shell: "cleanup"
  - id: last
    shell: "last"
"""


def test_rescued_failure_does_not_trigger_rollback() -> None:
    outcome = run_yaml(BLOCK, hosts=["h1", "h2"], handler=breaks("inner", {"h2"}))
    assert outcome.log.commands("h2") == ["first", "inner h2", "fix inner rc=1", "cleanup",
                                          "last"]
    assert outcome.log.commands("h1") == ["first", "inner h1", "inner2", "cleanup", "last"]
    assert outcome.events.of("rollback_start") == []
    assert outcome.exit_code == 0
    stats = outcome.end().hosts["h2"]
    assert (stats["rescued"], stats["status"]) == (1, "ok")
    assert outcome.statuses("fix", "rescue") == {"h2": "changed"}
    assert outcome.statuses("cleanup", "always") == {"h1": "changed", "h2": "changed"}


def test_failing_rescue_fails_the_host_after_always_and_rolls_back() -> None:
    outcome = run_yaml(BLOCK, hosts=["h1"],
                       handler=lambda h, c: fail(c) if c.startswith(("inner", "fix")) else None)
    assert outcome.log.commands() == ["first", "inner h1", "fix inner rc=1", "cleanup",
                                      "undo-first"]
    assert outcome.exit_code == 1


def test_block_without_rescue_runs_always_then_rolls_back_inner_steps_too() -> None:
    text = BLOCK.replace("""    rescue:
      - id: fix
        shell: "fix {{ failed_step.step }} rc={{ failed_step.rc }}"
""", "")
    outcome = run_yaml(text, hosts=["h1"], handler=breaks("inner2"))
    assert outcome.log.commands() == ["first", "inner h1", "inner2", "cleanup", "undo-inner",
                                      "undo-first"]
    assert outcome.exit_code == 1
    assert [f["step"] for f in outcome.end().failures] == ["inner2"]


def test_block_when_false_skips_the_whole_block() -> None:
    text = BLOCK.replace("  - id: group\n", "  - id: group\n    when: inventory_hostname == 'h1'\n")
    outcome = run_yaml(text, hosts=["h1", "h2"])
    assert outcome.log.commands("h2") == ["first", "last"]
    assert outcome.statuses("group") == {"h2": "skipped"}


def test_block_retries_rerun_the_block_for_the_hosts_that_need_it() -> None:
    tries = {"n": 0}

    def handler(host: str, command: str):
        if command == "b" and host == "h2":
            tries["n"] += 1
            return fail(command) if tries["n"] == 1 else None
        return None
    outcome = run_yaml("""
        name: t
        hosts: all
        steps:
          - id: group
            retries: 1
            block:
              - {id: a, shell: a}
              - {id: b, shell: b}
        """, hosts=["h1", "h2"], handler=handler, sleep=lambda s: None)
    assert outcome.log.commands("h1") == ["a", "b"]
    assert outcome.log.commands("h2") == ["a", "b", "a", "b"]
    assert outcome.exit_code == 0


def test_rescue_and_always_run_after_a_block_timeout() -> None:
    outcome = run_yaml("""
        name: t
        steps:
          - id: group
            timeout: 0.1
            block:
              - {id: slow, shell: slow}
            rescue:
              - {id: fix, shell: fix}
            always:
              - {id: cleanup, shell: cleanup}
        """, inventory=local(), delay=0.3)
    assert "timed out" in outcome.step_ends("slow")[0].msg
    assert outcome.statuses("fix", "rescue") == {"localhost": "changed"}
    assert outcome.statuses("cleanup", "always") == {"localhost": "changed"}


def test_block_rollback_is_pushed_when_the_block_completes() -> None:
    outcome = run_yaml("""
        name: t
        steps:
          - id: group
            block:
              - shell: inside
            rollback:
              - shell: undo-group
          - id: boom
            shell: boom
        """, inventory=local(), handler=breaks("boom"))
    assert outcome.log.commands() == ["inside", "boom", "undo-group"]


# -- stopping: Ctrl-C, a second Ctrl-C ---------------------------------------------

def stop_after(step: str, hosts: int, reason: str = "interrupted by Ctrl-C"):
    """An event hook that stops the run once ``step`` ended on ``hosts`` hosts."""
    seen: list[str] = []

    def hook(event, run) -> None:
        if event.kind == "step_end" and event.step == step and event.phase == "steps":
            seen.append(event.host)
            if len(seen) == hosts:
                run.stop(reason)
    return hook


def test_interrupt_starts_no_new_step_and_rolls_back_what_completed() -> None:
    outcome = run_yaml(six(), hosts=["h1", "h2"], on_event=stop_after("s2", 2))
    words = [c.split()[0] for c in outcome.log.commands()]
    assert "s3" not in words
    assert [u for h, u in outcome.rollback_order("h1")] == ["s2", "s1"]
    assert [u for h, u in outcome.rollback_order("h2")] == ["s2", "s1"]
    assert outcome.exit_code == 130
    assert outcome.report.status == "interrupted"
    assert outcome.end().status == "interrupted"


def test_interrupt_with_no_rollback() -> None:
    outcome = run_yaml(six(), inventory=local(), on_event=stop_after("s2", 1),
                       options=RunOptions(no_rollback=True))
    assert outcome.events.of("rollback_start") == []
    assert outcome.exit_code == 130


def test_interrupt_rolls_back_only_with_on_failure_rollback() -> None:
    for mode in ("abort", "continue"):
        outcome = run_yaml(six(f"on_failure: {mode}"), inventory=local(),
                           on_event=stop_after("s2", 1))
        assert outcome.events.of("rollback_start") == [], mode
        assert outcome.exit_code == 130


def _retry_then_interrupt():
    def hook(event, run) -> None:
        if event.kind == "retry":
            run.stop("interrupted by Ctrl-C")
    return run_yaml("name: t\nsteps:\n  - {id: s, shell: flaky, retries: 5, delay: 10}\n",
                    inventory=local(), rules={"localhost": [("flaky", 1, "", "")]},
                    on_event=hook)


def test_interrupt_ends_the_pause_between_retries_at_once() -> None:
    start = time.monotonic()
    outcome = _retry_then_interrupt()
    assert time.monotonic() - start < 2
    assert len(outcome.log.commands()) <= 2
    assert outcome.events.of("retry")[0].attempt == 1
    assert len(outcome.events.of("retry")) == 1
    assert outcome.exit_code == 130


def test_interrupt_during_the_pause_starts_no_new_attempt() -> None:
    outcome = _retry_then_interrupt()
    assert outcome.log.commands() == ["flaky"]


def test_rollback_steps_keep_retrying_while_the_run_stops() -> None:
    tries = {"n": 0}

    def handler(host: str, command: str):
        if command == "undo":
            tries["n"] += 1
            return fail(command) if tries["n"] < 2 else ok(command)
        return None
    outcome = run_yaml("""
        name: t
        steps:
          - {id: s, shell: change, rollback: {shell: undo, retries: 2, delay: 0.05}}
          - {id: t, shell: next}
        """, inventory=local(), handler=handler, on_event=stop_after("s", 1))
    assert outcome.log.commands() == ["change", "undo", "undo"]
    assert outcome.exit_code == 130


def test_second_interrupt_during_rollback_stops_at_once() -> None:
    def hook(event, run) -> None:
        if event.kind == "step_end" and event.step == "s3" and event.phase == "steps":
            run.stop("interrupted by Ctrl-C")
        if event.kind == "rollback_step":
            run.hard_stop_event.set()
    outcome = run_yaml(six(), inventory=local(), on_event=hook)
    assert [u for h, u in outcome.rollback_order()] == ["s3"]   # undo-s3a only
    assert not any(c.startswith(("undo-s3b", "undo-s2", "undo-s1"))
                   for c in outcome.log.commands())
    (end,) = outcome.events.of("rollback_end")
    assert end.ok is False
    # what the code does: an unfinished rollback is exit 3 (needs a human)
    assert outcome.exit_code == 3
    assert outcome.report.status == "rollback_failed"


def test_second_interrupt_before_rollback_skips_it() -> None:
    def hook(event, run) -> None:
        if event.kind == "step_end" and event.step == "s2":
            run.stop("interrupted by Ctrl-C")
            run.hard_stop_event.set()
    outcome = run_yaml(six(), inventory=local(), on_event=hook)
    assert outcome.events.of("rollback_start") == []
    assert outcome.exit_code == 130


def test_rollback_failure_wins_over_interrupted() -> None:
    outcome = run_yaml(six(), inventory=local(), on_event=stop_after("s2", 1),
                       handler=lambda h, c: fail(c) if c.startswith("undo-s1") else None)
    assert outcome.exit_code == 3


def test_interrupt_keeps_queued_hosts_from_starting_the_step() -> None:
    outcome = run_yaml(six(), hosts=["h1", "h2", "h3"], options=RunOptions(forks=1),
                       on_event=stop_after("s1", 1))
    assert outcome.log.commands("h2") == []
    assert outcome.log.commands("h3") == []


def test_run_timeout_stops_the_run() -> None:
    start = time.monotonic()
    outcome = run_yaml(six("timeout: 0.15"), inventory=local(), delay=0.1)
    assert time.monotonic() - start < 0.6
    assert outcome.statuses("s2") == {"localhost": "failed"}
    assert "timed out" in outcome.step_ends("s2")[0].msg
    assert outcome.step_ends("s3") == []
    assert outcome.events.of("rollback_start")


def test_run_timeout_still_lets_the_rollback_run() -> None:
    outcome = run_yaml(six("timeout: 0.15"), inventory=local(), delay=0.1)
    assert [e.status for e in outcome.events.of("rollback_step")] == ["changed"]
    assert outcome.exit_code == 1
