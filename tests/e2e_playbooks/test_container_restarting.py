"""playbooks/container-restarting.yml: an app (version 2, "just deployed") that crashed 3
times (POST /crash; Docker restarted it each time) is diagnosed (restart count, last log
lines), reported, then (with --yes) rolled back to the previous image named by its
runbook.previous-image label, and watched to stay up."""

from __future__ import annotations

from tests.e2e_playbooks.conftest import (assert_dry_run_changes_nothing,
                                          assert_refused_at_confirm, container_state,
                                          wait_until)


def crash(stack, times: int) -> None:
    """POST /crash and wait for Docker to restart it, ``times`` times."""
    for _ in range(times):
        count = stack.inspect(stack.app)["RestartCount"]
        assert stack.post("/crash")[0] == 202
        wait_until("docker to restart the app",
                   lambda: stack.inspect(stack.app)["RestartCount"] > count, 20)
        stack.wait_healthy(stack.app, 20)


def test_dry_run_on_a_healthy_stack_changes_nothing(stack, playbook):
    run = assert_dry_run_changes_nothing(stack, playbook, "container-restarting")
    assert any("restarted 0 time(s)" in m and "not looping" in m for m in run.logs()), run.logs()


def test_crash_loop_is_diagnosed_reported_and_rolled_back(stack, playbook):
    stack.replace_app("runbook-demo/app:2", labels={"runbook.previous-image": "runbook-demo/app:1"})
    crash(stack, 3)
    looping = container_state(stack, stack.app)
    assert looping["restarts"] == 3

    run = playbook("container-restarting", observe_seconds=1)
    assert_refused_at_confirm(run)
    assert container_state(stack, stack.app) == looping
    facts = run.facts()
    assert facts["looping"] is True and facts["watched"]["restart_count"] == 3
    assert facts["app"]["restart_count"] == 3 and facts["app"]["image"] == "runbook-demo/app:2"
    assert facts["rollback_to"] == "runbook-demo/app:1" and facts["rollback_ok"] is True
    report = run.report()
    assert "| restart count (Docker) | 3, then 3" in report
    assert report.count('"POST /crash HTTP/1.1" 202') == 3          # the log tail
    assert "from the container label runbook.previous-image" in report
    assert "planned remediation: roll back" in report

    run = playbook("container-restarting", yes=True, observe_seconds=2)
    assert run.code == 0, run.result
    assert run.status("rollback-app") == "changed"
    assert run.status("verify-loop-ended") == "ok"
    after = container_state(stack, stack.app)
    assert after["image"] == "runbook-demo/app:1" and after["restarts"] == 0 and after["running"]
    labels = stack.inspect(stack.app)["Config"]["Labels"]
    assert "runbook.previous-image" not in labels                  # no rollback to app:2 later
    assert labels["runbook.rolled-back-from"] == "runbook-demo/app:2"
    assert stack.get("/health")[0] == 200
    report = run.report()
    assert "image runbook-demo/app:1, restart count 0 (before: 3): **recovered**" in report


def test_crash_loop_without_a_previous_image_is_restarted_cleanly(stack, playbook):
    crash(stack, 1)
    before = container_state(stack, stack.app)

    run = playbook("container-restarting", yes=True, observe_seconds=1, restart_threshold=1)
    assert run.code == 0, run.result
    assert run.facts()["rollback_to"] == ""
    assert any("no previous image to roll back to" in m for m in run.logs())
    assert run.status("restart-app") == "changed"
    after = container_state(stack, stack.app)
    assert after["id"] == before["id"] and after["restarts"] == 0
