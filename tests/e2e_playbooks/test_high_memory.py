"""playbooks/high-memory.yml: an app holding 300 MiB (the demo's /leak) is diagnosed from
its /metrics and docker stats, reported, then (with --yes) restarted; its resident memory
is verified to have dropped below the threshold."""

from __future__ import annotations

from tests.e2e_playbooks.conftest import (assert_dry_run_changes_nothing,
                                          assert_refused_at_confirm, container_state, metric,
                                          wait_until)

MIB = 1 << 20


def rss(stack) -> float:
    value = metric(stack.metrics(), "process_resident_memory_bytes")
    assert value is not None
    return value


def test_dry_run_on_a_healthy_stack_changes_nothing(stack, playbook):
    run = assert_dry_run_changes_nothing(stack, playbook, "high-memory")
    assert any("below the threshold of 256 MiB" in m for m in run.logs()), run.logs()


def test_leaking_app_is_diagnosed_reported_and_restarted(stack, playbook):
    status, _, _ = stack.get("/leak?mb=300", timeout=60)
    assert status == 200
    wait_until("the leak to be resident", lambda: rss(stack) > 300 * MIB, 20)
    leaking = container_state(stack, stack.app)

    run = playbook("high-memory")
    assert_refused_at_confirm(run)
    assert container_state(stack, stack.app) == leaking
    assert rss(stack) > 300 * MIB                                 # still leaking
    facts = run.facts()
    assert facts["high_memory"] is True
    assert facts["memory_bytes"] > 300 * MIB
    assert facts["probe"]["leaked_bytes"] == 300 * MIB
    assert facts["app"]["mem_bytes"] > 256 * MIB                  # docker stats agrees
    assert facts["app"]["restart_count"] == 0 and facts["app"]["state"] == "running"
    report = run.report()
    assert "at or above the threshold of 256 MiB" in report
    assert "| held on purpose by /leak (demo) | 300.0 |" in report
    assert "Last 40 log lines" in report and "GET /leak?mb=300" in report

    run = playbook("high-memory", yes=True)
    assert run.code == 0, run.result
    assert run.status("restart-app") == "changed"
    assert run.status("verify-memory") == "ok"
    after = container_state(stack, stack.app)
    assert after["id"] == leaking["id"] and after["started"] != leaking["started"]
    assert rss(stack) < 256 * MIB
    assert metric(stack.metrics(), "app_leaked_bytes") == 0
    report = run.report()
    assert "restart container " + stack.app in report and "**recovered**" in report
