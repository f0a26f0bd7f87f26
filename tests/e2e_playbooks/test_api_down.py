"""playbooks/api-down.yml: a stopped API is diagnosed, the report saved, then (with --yes)
started again and verified; an API that is unhealthy because its cache is down gets the
cache started and itself restarted."""

from __future__ import annotations

from tests.e2e_playbooks.conftest import (assert_dry_run_changes_nothing,
                                          assert_refused_at_confirm, container_state, wait_until)


def test_dry_run_on_a_healthy_stack_changes_nothing(stack, playbook):
    run = assert_dry_run_changes_nothing(stack, playbook, "api-down")
    assert any("the API answers" in m for m in run.logs()), run.logs()
    assert run.status("remediation") == "skipped"


def test_stopped_api_is_diagnosed_reported_and_restarted(stack, playbook):
    stack.docker.containers.get(stack.app).stop(timeout=10)
    stopped = container_state(stack, stack.app)

    # a dry run plans the remediation and changes nothing
    run = playbook("api-down", dry_run=True)
    assert run.code == 0, run.result
    assert run.status("restart-app") == "simulated"
    assert run.step("restart-app")["changes"] == [f"start container {stack.app}"]
    assert run.status("verify-health") == "skipped"
    assert container_state(stack, stack.app) == stopped and not run.report_dir.exists()

    # no terminal, no --yes: diagnosis and report, then the confirm step stops the run
    run = playbook("api-down")
    assert_refused_at_confirm(run)
    assert container_state(stack, stack.app) == stopped          # nothing changed
    facts = run.facts()
    assert facts["api_down"] is True
    assert facts["app"]["state"] == "exited" and facts["app"]["running"] is False
    assert facts["app"]["restart_count"] == 0
    assert facts["probe"]["health_status"] is None               # nothing answered
    report = run.report()
    assert "| state | exited" in report and "| restart count | 0 |" in report
    assert "signal 15: shutting down" in report                  # the log tail
    assert "| image | runbook-demo/app:1" in report
    assert "Connection refused" in report

    # --yes: the same diagnosis, then the remediation and its verification
    run = playbook("api-down", yes=True)
    assert run.code == 0, run.result
    assert run.status("restart-app") == "changed"
    assert run.status("verify-health") == "ok"
    assert stack.health(stack.app) == "healthy"
    assert stack.get("/health")[0] == 200
    report = run.report()
    assert "start container " + stack.app in report
    assert "GET /health -> 200" in report and "**recovered**" in report
    assert any("recovered" in m for m in run.logs())


def test_api_unhealthy_because_the_cache_is_down_gets_both_back(stack, playbook):
    stack.docker.containers.get(stack.cache).stop(timeout=10)
    # the app's /health checks Redis: it answers 503 and Docker marks it unhealthy
    wait_until("the app to be unhealthy", lambda: stack.health(stack.app) == "unhealthy", 20)
    app_before = container_state(stack, stack.app)

    run = playbook("api-down", yes=True)
    assert run.code == 0, run.result
    facts = run.facts()
    assert facts["api_down"] is True and facts["app"]["health"] == "unhealthy"
    assert facts["cache"]["running"] is False
    assert facts["probe"]["health_status"] == 503
    assert run.status("start-cache") == "changed"
    assert run.status("restart-app") == "changed"
    assert stack.health(stack.cache) == "healthy" and stack.health(stack.app) == "healthy"
    assert container_state(stack, stack.app)["started"] != app_before["started"]
    assert "the cache container is exited" in run.report()
