"""The executor on fake hosts: parallelism, lock-step, batches, failure tolerance,
preflight, the order a step is evaluated in, retries, timeouts and register.

Rollback, blocks and stopping are in test_executor_rollback.py; tags, --start-at,
--step and dry runs in test_executor_selection.py.
"""

from __future__ import annotations

import re
import time

import pytest

from engine.executor.context import RunOptions
from engine.executor.runner import DEFAULT_FORKS, batches, tolerance_exceeded

from helpers import Concurrency, fail, make_inventory, ok, run_yaml

HOSTS5 = ["h1", "h2", "h3", "h4", "h5"]
HOSTS10 = [f"h{n}" for n in range(1, 11)]

THREE_STEPS = """
name: three steps
hosts: all
{extra}
steps:
  - id: one
    shell: "one {{{{ inventory_hostname }}}}"
    rollback:
      shell: "undo-one {{{{ inventory_hostname }}}}"
  - id: two
    shell: "two {{{{ inventory_hostname }}}}"
  - id: three
    shell: "three {{{{ inventory_hostname }}}}"
"""


def three_steps(extra: str = "") -> str:
    return THREE_STEPS.format(extra=extra)


def failing(step: str, hosts: set[str]):
    """A handler that fails ``step`` on ``hosts``."""
    def handler(host: str, command: str):
        if command.startswith(step + " ") and host in hosts:
            return fail(command, 1, f"{step} broke on {host}")
        return None
    return handler


# -- batches and the failure tolerance, as pure functions --------------------------

@pytest.mark.parametrize("serial, total, sizes", [
    ((), 5, [5]),
    ((2,), 5, [2, 2, 1]),
    ((1,), 3, [1, 1, 1]),
    (("25%",), 10, [2, 2, 2, 2, 2]),           # 2.5 rounds down
    (("10%",), 5, [1, 1, 1, 1, 1]),            # 0.5 rounds down, but at least one host
    (("100%",), 4, [4]),
    ((1, "50%"), 5, [1, 2, 2]),                # the last size repeats
    ((1, 3, "100%"), 10, [1, 3, 6]),
    ((10,), 3, [3]),
])
def test_batches_sizes(serial: tuple, total: int, sizes: list[int]) -> None:
    hosts = [f"h{n}" for n in range(total)]
    groups = batches(hosts, serial)
    assert [len(g) for g in groups] == sizes
    assert [h for g in groups for h in g] == hosts          # every host once, in order


def test_batches_of_no_hosts() -> None:
    assert batches([], ()) == []
    assert batches([], (2,)) == []


@pytest.mark.parametrize("failed, size, percentage, stops", [
    (3, 10, 30, False),      # 30% is not *more* than 30%
    (4, 10, 30, True),
    (1, 10, 0, True),        # 0%: any failure
    (0, 10, 0, False),
    (1, 3, 33, True),        # 33.3% > 33%
    (1, 3, 34, False),
    (2, 2, 100, False),      # 100% can never be exceeded
    (4, 5, None, False),     # without a percentage: only when every host failed
    (5, 5, None, True),
    (1, 1, None, True),
    (0, 0, None, False),
])
def test_tolerance_arithmetic(failed: int, size: int, percentage: float | None,
                              stops: bool) -> None:
    assert tolerance_exceeded(failed, size, percentage) is stops


# -- parallelism: forks ------------------------------------------------------------

def test_default_forks_is_20() -> None:
    counter = Concurrency(expect=20, timeout=0.2)
    hosts = [f"h{n}" for n in range(25)]
    outcome = run_yaml("name: t\nhosts: all\nsteps:\n  - shell: work\n", hosts=hosts,
                       handler=counter)
    assert DEFAULT_FORKS == 20
    assert counter.peak == 20
    assert len(outcome.log.commands()) == 25


@pytest.mark.parametrize("forks, runbook_forks, peak", [
    (None, None, 5),     # default 20: all five at once
    (2, None, 2),
    (1, None, 1),
    (None, 3, 3),        # the runbook's forks
    (2, 4, 2),           # --forks wins over the runbook
])
def test_hosts_run_in_parallel_up_to_forks(forks: int | None, runbook_forks: int | None,
                                           peak: int) -> None:
    counter = Concurrency(expect=peak)
    extra = f"forks: {runbook_forks}" if runbook_forks else ""
    outcome = run_yaml(f"name: t\nhosts: all\n{extra}\nsteps:\n  - shell: work\n",
                       hosts=HOSTS5, handler=counter, options=RunOptions(forks=forks))
    assert outcome.exit_code == 0
    assert counter.peak == peak
    assert len(outcome.log.commands()) == 5


def test_parallel_hosts_take_the_time_of_one() -> None:
    start = time.monotonic()
    outcome = run_yaml("name: t\nhosts: all\nsteps:\n  - shell: work\n", hosts=HOSTS5,
                       delay=0.2)
    assert outcome.exit_code == 0
    assert time.monotonic() - start < 0.8         # one after the other: 1 s


# -- lock-step (linear) ------------------------------------------------------------

def test_each_step_runs_on_every_host_before_the_next_step() -> None:
    outcome = run_yaml(three_steps(), hosts=HOSTS5, delay={"h3": 0.1})
    steps = [command.split()[0] for command in outcome.log.commands()]
    assert steps == ["one"] * 5 + ["two"] * 5 + ["three"] * 5
    assert outcome.exit_code == 0


def test_a_failed_host_stops_while_the_others_go_on() -> None:
    outcome = run_yaml(three_steps(), hosts=HOSTS5, handler=failing("two", {"h2"}))
    assert outcome.statuses("two") == {"h1": "changed", "h2": "failed", "h3": "changed",
                                       "h4": "changed", "h5": "changed"}
    assert "h2" not in outcome.statuses("three")
    assert set(outcome.statuses("three")) == {"h1", "h3", "h4", "h5"}
    assert outcome.exit_code == 1
    assert outcome.end().hosts["h2"]["status"] == "rolled_back"
    assert outcome.end().hosts["h1"]["status"] == "ok"


# -- serial: rolling batches -------------------------------------------------------

def test_serial_runs_every_step_of_a_batch_before_the_next_batch() -> None:
    outcome = run_yaml(three_steps("serial: 2"), hosts=HOSTS5)
    assert outcome.exit_code == 0
    starts = outcome.events.of("batch_start")
    assert [(e.batch, e.batches, e.hosts) for e in starts] == [
        (1, 3, ("h1", "h2")), (2, 3, ("h3", "h4")), (3, 3, ("h5",))]
    order = [(host, command.split()[0]) for host, command in outcome.log.entries]
    first_of_batch2 = order.index(("h3", "one"))
    assert {h for h, _ in order[:first_of_batch2]} == {"h1", "h2"}
    assert len(order[:first_of_batch2]) == 6
    assert order[-3:] == [("h5", "one"), ("h5", "two"), ("h5", "three")]


def test_serial_list_makes_growing_batches() -> None:
    outcome = run_yaml(three_steps('serial: [1, "50%"]'), hosts=HOSTS5)
    assert [e.hosts for e in outcome.events.of("batch_start")] == [
        ("h1",), ("h2", "h3"), ("h4", "h5")]


def test_serial_percentage() -> None:
    outcome = run_yaml(three_steps('serial: "40%"'), hosts=HOSTS5)
    assert [len(e.hosts) for e in outcome.events.of("batch_start")] == [2, 2, 1]


def test_no_batch_start_event_without_serial() -> None:
    outcome = run_yaml(three_steps(), hosts=HOSTS5)
    assert outcome.events.of("batch_start") == []


# -- max_fail_percentage -----------------------------------------------------------

def test_max_fail_percentage_not_exceeded_goes_on() -> None:
    bad = {"h1", "h2", "h3"}
    outcome = run_yaml(three_steps("max_fail_percentage: 30"), hosts=HOSTS10,
                       handler=failing("two", bad))
    assert outcome.report.stop_reason == ""
    assert set(outcome.statuses("three")) == set(HOSTS10) - bad
    assert outcome.exit_code == 1
    # only the failed hosts were rolled back
    assert {host for host, _ in outcome.rollback_order()} == bad


def test_max_fail_percentage_exceeded_stops() -> None:
    bad = {"h1", "h2", "h3", "h4"}
    outcome = run_yaml(three_steps("max_fail_percentage: 30"), hosts=HOSTS10,
                       handler=failing("two", bad))
    assert "4 of 10 hosts failed" in outcome.report.stop_reason
    assert outcome.statuses("three") == {}
    assert outcome.exit_code == 1
    # the run stopped: every host that completed a step with a rollback is undone
    assert {host for host, _ in outcome.rollback_order()} == set(HOSTS10)


def test_max_fail_percentage_zero_stops_at_the_first_failure() -> None:
    outcome = run_yaml(three_steps("serial: 2\nmax_fail_percentage: 0"), hosts=HOSTS5,
                       handler=failing("two", {"h4"}))
    assert [e.hosts for e in outcome.events.of("batch_start")] == [("h1", "h2"), ("h3", "h4")]
    assert not any(host == "h5" for host, _ in outcome.log.entries)
    assert outcome.end().hosts["h5"]["status"] == "not_run"
    assert outcome.statuses("three") == {"h1": "changed", "h2": "changed"}
    assert outcome.exit_code == 1


def test_max_fail_percentage_counts_per_batch() -> None:
    # 1 of 2 is 50%: not more than 50, so the next batches run
    outcome = run_yaml(three_steps("serial: 2\nmax_fail_percentage: 50"), hosts=HOSTS5,
                       handler=failing("one", {"h1", "h3"}))
    assert len(outcome.events.of("batch_start")) == 3
    assert outcome.statuses("three") == {"h2": "changed", "h4": "changed", "h5": "changed"}


def test_without_percentage_a_batch_stops_the_run_only_when_all_its_hosts_fail() -> None:
    partly = run_yaml(three_steps("serial: 2"), hosts=HOSTS5, handler=failing("two", {"h1"}))
    assert len(partly.events.of("batch_start")) == 3
    assert set(partly.statuses("three")) == {"h2", "h3", "h4", "h5"}
    assert partly.report.stop_reason == ""

    wholly = run_yaml(three_steps("serial: 2"), hosts=HOSTS5,
                      handler=failing("two", {"h3", "h4"}))
    assert len(wholly.events.of("batch_start")) == 2
    assert wholly.report.stop_reason == "every host of the batch failed"
    assert not any(host == "h5" for host, _ in wholly.log.entries)


def test_unreachable_host_counts_as_failed_and_others_go_on() -> None:
    outcome = run_yaml(three_steps(), hosts=HOSTS5, unreachable=["h2"])
    assert outcome.statuses("one")["h2"] == "unreachable"
    assert set(outcome.statuses("three")) == {"h1", "h3", "h4", "h5"}
    end = outcome.end()
    assert end.hosts["h2"]["unreachable"] == 1
    assert end.hosts["h2"]["status"] == "unreachable"
    assert end.failures[0]["unreachable"] is True
    assert outcome.exit_code == 1


def test_unreachable_hosts_count_toward_max_fail_percentage() -> None:
    outcome = run_yaml(three_steps("max_fail_percentage: 20"), hosts=HOSTS5,
                       unreachable=["h1", "h2"])
    assert "2 of 5 hosts failed" in outcome.report.stop_reason
    assert outcome.statuses("two") == {}


def test_unreachable_is_retried_when_the_step_has_retries() -> None:
    outcome = run_yaml("name: t\nsteps:\n  - shell: x\n    retries: 2\n",
                       inventory=make_inventory(["localhost"]), unreachable=["localhost"],
                       sleep=lambda seconds: None)
    assert len(outcome.fakes["localhost"].commands) == 3
    assert outcome.step_ends()[0].status == "unreachable"


# -- preflight ---------------------------------------------------------------------

PREFLIGHT = """
name: with preflight
hosts: all
preflight:
  - id: disk
    shell: "check-disk {{ inventory_hostname }}"
  - id: version
    shell: "check-version {{ inventory_hostname }}"
steps:
  - id: change
    shell: "change {{ inventory_hostname }}"
    rollback:
      shell: undo
"""


def test_preflight_runs_first_on_all_hosts() -> None:
    outcome = run_yaml(PREFLIGHT, hosts=HOSTS5)
    words = [command.split()[0] for command in outcome.log.commands()]
    assert words == ["check-disk"] * 5 + ["check-version"] * 5 + ["change"] * 5
    assert {e.phase for e in outcome.step_ends("disk")} == {"preflight"}
    assert outcome.exit_code == 0


def test_a_preflight_failure_on_one_host_changes_nothing_anywhere() -> None:
    outcome = run_yaml(PREFLIGHT, hosts=HOSTS5, handler=failing("check-disk", {"h4"}))
    assert not any(command.startswith("change") for command in outcome.log.commands())
    assert outcome.step_ends("change") == []
    assert "preflight failed on h4" in outcome.report.stop_reason
    assert outcome.rollback_order() == []
    assert outcome.exit_code == 1
    assert [f["host"] for f in outcome.end().failures] == ["h4"]


def test_a_preflight_failure_is_reported_as_preflight() -> None:
    outcome = run_yaml(PREFLIGHT, hosts=["h1"], handler=failing("check-disk", {"h1"}))
    assert outcome.end().failures[0]["phase"] == "preflight"


# -- the order a step is evaluated in -----------------------------------------------

def _tracer(trace: list[str], until_true_from: int = 1):
    calls = {"until": 0}

    def t(name: str, value: bool = True) -> bool:
        trace.append(name)
        if name == "until":
            calls["until"] += 1
            return calls["until"] >= until_true_from
        return value
    return t


def test_evaluation_order_when_action_conditions_check_until() -> None:
    trace: list[str] = []
    outcome = run_yaml("""
        name: t
        steps:
          - id: s
            shell: act
            when: t('when')
            failed_when: t('failed_when', false)
            changed_when: t('changed_when')
            check: t('check')
            until: t('until')
            retries: 2
            delay: 0
        """, inventory=make_inventory(["localhost"], {"localhost": {"t": _tracer(trace, 2)}}),
        handler=lambda host, command: trace.append("action"))
    attempt = ["action", "changed_when", "failed_when", "check", "until"]
    # `when` once; every retry re-runs the action and every check after it
    assert trace == ["when"] + attempt + attempt
    assert outcome.exit_code == 0
    assert outcome.step_ends()[0].attempts == 2


def test_when_is_evaluated_per_loop_item() -> None:
    trace: list[str] = []
    outcome = run_yaml("""
        name: t
        steps:
          - id: s
            shell: "act {{ item }}"
            loop: [1, 2, 3]
            when: t('when') and item != 2
        """, inventory=make_inventory(["localhost"], {"localhost": {"t": _tracer(trace)}}))
    assert outcome.log.commands() == ["act 1", "act 3"]
    assert trace == ["when"] * 3


def test_when_false_skips_without_running() -> None:
    outcome = run_yaml("name: t\nsteps:\n  - {id: s, shell: act, when: 1 > 2, register: r}\n"
                       "  - {id: after, shell: 'after {{ r.skipped }}'}\n",
                       inventory=make_inventory(["localhost"]))
    assert outcome.log.commands() == ["after True"]
    assert outcome.statuses("s") == {"localhost": "skipped"}
    assert outcome.end().hosts["localhost"]["skipped"] == 1


def test_failed_when_overrides_the_exit_code_both_ways() -> None:
    outcome = run_yaml("""
        name: t
        steps:
          - id: accepted
            shell: exits-1
            failed_when: r.rc > 1
            register: r
          - id: refused
            shell: prints-error
            failed_when: "'ERROR' in r2.stdout"
            register: r2
        """, inventory=make_inventory(["localhost"]),
        rules={"localhost": [("exits-1", 1, "", ""), ("prints-error", 0, "ERROR x", "")]})
    assert outcome.statuses("accepted") == {"localhost": "changed"}
    assert outcome.statuses("refused") == {"localhost": "failed"}
    assert "failed_when is true" in outcome.step_ends("refused")[0].msg


def test_changed_when_decides_changed_and_check_sees_it() -> None:
    outcome = run_yaml("""
        name: t
        steps:
          - id: s
            shell: look
            changed_when: false
            check: not r.changed
            register: r
        """, inventory=make_inventory(["localhost"]))
    assert outcome.statuses("s") == {"localhost": "ok"}
    assert outcome.end().hosts["localhost"]["changed"] == 0


def test_check_runs_after_failed_when_and_only_when_not_failed() -> None:
    outcome = run_yaml("""
        name: t
        steps:
          - id: rescued_by_failed_when
            shell: exits-3
            failed_when: false
            check: r.rc == 3
            register: r
          - id: checked
            shell: health
            check:
              - that: "'healthy' in r2.stdout"
                msg: "not healthy: {{ r2.stdout }}"
            register: r2
        """, inventory=make_inventory(["localhost"]),
        rules={"localhost": [("exits-3", 3, "", ""), ("health", 0, "sick", "")]})
    assert outcome.statuses("rescued_by_failed_when") == {"localhost": "changed"}
    end = outcome.step_ends("checked")[0]
    assert end.status == "failed"
    assert end.msg == "not healthy: sick"


def test_until_retries_until_true_and_register_holds_the_last_attempt() -> None:
    count = {"n": 0}

    def counter(host: str, command: str):
        if command == "count":
            count["n"] += 1
            return ok(command, stdout=str(count["n"]))
        return None
    outcome = run_yaml("""
        name: t
        steps:
          - id: poll
            shell: count
            register: r
            until: r.stdout | int >= 3
            retries: 5
            delay: 0
          - id: after
            shell: "after {{ r.stdout }} {{ r.attempts }}"
        """, inventory=make_inventory(["localhost"]), handler=counter)
    assert outcome.log.commands() == ["count", "count", "count", "after 3 3"]
    assert [e.attempt for e in outcome.events.of("retry")] == [1, 2]
    assert outcome.end().hosts["localhost"]["retried"] == 2


def test_until_never_true_fails_after_all_attempts() -> None:
    outcome = run_yaml("""
        name: t
        steps:
          - id: poll
            shell: status
            register: r
            until: "'up' in r.stdout"
            retries: 2
            delay: 0
        """, inventory=make_inventory(["localhost"]),
        rules={"localhost": [("status", 0, "down", "")]})
    end = outcome.step_ends("poll")[0]
    assert end.status == "failed"
    assert end.attempts == 3
    assert "'until' still false after 3 attempt(s)" in end.msg
    assert outcome.exit_code == 1


def test_failed_check_is_retried_with_the_action() -> None:
    answers = iter(["starting", "starting", "ready"])
    outcome = run_yaml("""
        name: t
        steps:
          - id: s
            shell: probe
            register: r
            check: r.stdout == 'ready'
            retries: 3
        """, inventory=make_inventory(["localhost"]),
        handler=lambda host, command: ok(command, next(answers)), sleep=lambda s: None)
    assert outcome.log.commands() == ["probe"] * 3
    assert outcome.step_ends()[0].status == "changed"
    assert outcome.step_ends()[0].attempts == 3


def test_retries_without_until_only_retry_failures() -> None:
    outcome = run_yaml("name: t\nsteps:\n  - {id: s, shell: fine, retries: 4}\n",
                       inventory=make_inventory(["localhost"]))
    assert outcome.log.commands() == ["fine"]
    assert outcome.events.of("retry") == []


def test_delay_grows_by_backoff() -> None:
    pauses: list[float] = []
    outcome = run_yaml("""
        name: t
        steps:
          - id: s
            shell: flaky
            retries: 3
            delay: 1
            backoff: 2
        """, inventory=make_inventory(["localhost"]),
        rules={"localhost": [("flaky", 1, "", "not yet")]}, sleep=pauses.append)
    assert pauses == [1.0, 2.0, 4.0]
    retries = outcome.events.of("retry")
    assert [(e.attempt, e.attempts, e.delay) for e in retries] == [(1, 4, 1.0), (2, 4, 2.0),
                                                                  (3, 4, 4.0)]
    assert retries[0].reason == "exit code 1"
    assert outcome.step_ends()[0].attempts == 4
    assert outcome.exit_code == 1


def test_delay_is_really_waited() -> None:
    start = time.monotonic()
    run_yaml("name: t\nsteps:\n  - {id: s, shell: flaky, retries: 2, delay: 0.1, backoff: 1.5}\n",
             inventory=make_inventory(["localhost"]),
             rules={"localhost": [("flaky", 1, "", "")]})
    assert time.monotonic() - start >= 0.25       # 0.1 + 0.15


def test_timeout_bounds_each_attempt() -> None:
    start = time.monotonic()
    outcome = run_yaml("name: t\nsteps:\n  - {id: s, shell: slow, timeout: 0.1, retries: 1}\n",
                       inventory=make_inventory(["localhost"]), delay=0.3,
                       sleep=lambda s: None)
    elapsed = time.monotonic() - start
    end = outcome.step_ends()[0]
    assert end.status == "failed"
    assert re.search(r"timed out after 0\.\d+s", end.msg)
    assert end.attempts == 2
    assert len(outcome.fakes["localhost"].commands) == 2
    assert 0.2 <= elapsed < 0.55          # each attempt got its own 0.1 s, not 0.3


def test_block_timeout_bounds_the_whole_group() -> None:
    start = time.monotonic()
    outcome = run_yaml("""
        name: t
        steps:
          - id: group
            timeout: 0.25
            block:
              - {id: a, shell: a}
              - {id: b, shell: b}
              - {id: c, shell: c}
              - {id: d, shell: d}
        """, inventory=make_inventory(["localhost"]), delay=0.1)
    assert time.monotonic() - start < 0.6
    assert outcome.statuses("a") == {"localhost": "changed"}
    assert outcome.statuses("b") == {"localhost": "changed"}
    assert outcome.statuses("c") == {"localhost": "failed"}
    assert "timed out" in outcome.step_ends("c")[0].msg
    assert outcome.step_ends("d") == []


def test_timeout_bounds_a_pause() -> None:
    start = time.monotonic()
    outcome = run_yaml("name: t\nsteps:\n  - {id: s, pause: 0.6, timeout: 0.1}\n",
                       inventory=make_inventory(["localhost"]))
    assert time.monotonic() - start < 0.4
    assert outcome.step_ends()[0].status == "failed"


# -- register ----------------------------------------------------------------------

def test_register_stores_a_typed_result() -> None:
    outcome = run_yaml("""
        name: t
        steps:
          - id: s
            shell: list
            register: r
          - id: w
            copy: {dest: /etc/app.conf, content: "hello\\n"}
            register: w
        """, inventory=make_inventory(["localhost"]),
        rules={"localhost": [("list", 0, "a\nb\n", "warn\n")]})
    facts = outcome.run.states["localhost"].facts
    r = facts["r"]
    assert r["rc"] == 0
    assert r["stdout"] == "a\nb"
    assert r["stderr"] == "warn"
    assert r["stdout_lines"] == ["a", "b"]
    assert r["changed"] is True and r["failed"] is False and r["skipped"] is False
    assert isinstance(r["duration"], float) and r["duration"] >= 0
    assert r["attempts"] == 1 and r["simulated"] is False
    w = facts["w"]
    assert w["dest"] == "/etc/app.conf"           # the action's own fields
    assert len(w["checksum"]) == 64
    assert w["rc"] is None and w["changed"] is True


def test_registered_result_is_seen_by_later_steps_on_the_same_host_only() -> None:
    outcome = run_yaml("""
        name: t
        hosts: all
        steps:
          - id: read
            shell: "version {{ inventory_hostname }}"
            register: v
          - id: use
            shell: "use {{ v.stdout }} {{ v.rc }}"
        """, hosts=["h1", "h2"],
        handler=lambda host, command: ok(command, f"v-{host}") if command.startswith(
            "version") else None)
    assert "use v-h1 0" in outcome.fakes["h1"].commands
    assert "use v-h2 0" in outcome.fakes["h2"].commands


def test_register_of_a_failed_ignored_step() -> None:
    outcome = run_yaml("""
        name: t
        steps:
          - {id: s, shell: bad, register: r, ignore_errors: true}
          - {id: after, shell: "after {{ r.failed }} {{ r.rc }} {{ r.stderr }}"}
        """, inventory=make_inventory(["localhost"]),
        rules={"localhost": [("bad", 4, "", "nope")]})
    assert outcome.log.commands() == ["bad", "after True 4 nope"]
    end = outcome.step_ends("s")[0]
    assert end.status == "failed" and end.ignored is True
    assert outcome.exit_code == 0
    assert outcome.end().hosts["localhost"]["ignored"] == 1


def test_register_of_a_loop_has_one_result_per_item() -> None:
    outcome = run_yaml("""
        name: t
        steps:
          - {id: s, shell: "echo {{ item }}", loop: [a, b], register: r}
          - {id: after, shell: "after {{ r.results | map(attribute='item') | join(',') }}"}
        """, inventory=make_inventory(["localhost"]))
    assert outcome.log.commands()[-1] == "after a,b"
    results = outcome.run.states["localhost"].facts["r"]["results"]
    assert [(x["item"], x["rc"]) for x in results] == [("a", 0), ("b", 0)]


def test_loop_stops_at_the_first_failed_item() -> None:
    outcome = run_yaml("name: t\nsteps:\n  - {id: s, shell: 'do {{ item }}', loop: [1, 2, 3]}\n",
                       inventory=make_inventory(["localhost"]),
                       rules={"localhost": [("do 2", 1, "", "")]})
    assert outcome.log.commands() == ["do 1", "do 2"]
    assert outcome.statuses("s") == {"localhost": "failed"}


def test_params_are_visible_to_steps() -> None:
    outcome = run_yaml("""
        name: t
        params:
          version: {type: str, required: true}
          count: {type: int, default: 2}
        steps:
          - shell: "deploy {{ version }} x{{ count + 1 }}"
        """, inventory=make_inventory(["localhost"]), params={"version": "1.2"})
    assert outcome.log.commands() == ["deploy 1.2 x3"]
