"""playbooks/high-error-rate.yml: an app failing every request (the demo's /fail?rate=1)
is diagnosed with probe requests, reported, then (with --yes) restarted, or rolled back
when the previous image is given; the error share is verified after."""

from __future__ import annotations

import json

from tests.e2e_playbooks.conftest import (assert_dry_run_changes_nothing,
                                          assert_refused_at_confirm, container_state)


def fail_rate(stack) -> float:
    status, _, body = stack.get("/fail")
    assert status == 200
    return json.loads(body)["fail_rate"]


def error_share(stack, n: int = 20) -> float:
    codes = [stack.get(["/", "/items"][i % 2])[0] for i in range(n)]
    return sum(1 for c in codes if c is None or c >= 500) / n


def test_dry_run_on_a_healthy_stack_changes_nothing(stack, playbook):
    run = assert_dry_run_changes_nothing(stack, playbook, "high-error-rate")
    assert any("0 of 20 probe requests answered 5xx" in m for m in run.logs()), run.logs()


def test_failing_app_is_diagnosed_reported_and_restarted(stack, playbook):
    assert stack.get("/fail?rate=1")[0] == 200
    assert error_share(stack) == 1.0
    failing = container_state(stack, stack.app)

    run = playbook("high-error-rate")
    assert_refused_at_confirm(run)
    assert container_state(stack, stack.app) == failing
    assert fail_rate(stack) == 1.0                               # still failing
    facts = run.facts()
    assert facts["error_rate_high"] is True
    assert facts["traffic"]["share"] == 1.0 and facts["traffic"]["errors"] == 20
    assert facts["rollback_to"] == "" and facts["rollback_ok"] is False
    assert facts["plan"].startswith(f"restart {stack.app}")
    assert facts["probe"]["injected_failure_ratio"] == 1.0
    report = run.report()
    assert "error share **100.0 %**" in report
    assert "**Not known.** Give it with `-e previous_image=<repo:tag>`" in report
    assert "runbook-demo/app" in report and "| restart count | 0 |" in report

    run = playbook("high-error-rate", yes=True)
    assert run.code == 0, run.result
    assert run.status("restart-app") == "changed"
    assert run.status("rollback-app") == "skipped"
    assert run.status("error-share-ok") == "ok"
    assert fail_rate(stack) == 0.0
    assert error_share(stack) == 0.0
    report = run.report()
    assert "error share after: 0.0 %" in report and "**recovered**" in report


def test_bad_deploy_is_rolled_back_to_the_given_previous_image(stack, playbook):
    stack.replace_app("runbook-demo/app:2")                       # "deployed" version 2
    assert stack.get("/fail?rate=0.5")[0] == 200                  # ... which fails half the time

    run = playbook("high-error-rate", yes=True, previous_image="runbook-demo/app:1",
                   probe_requests=30)
    assert run.code == 0, run.result
    facts = run.facts()
    assert facts["error_rate_high"] is True and facts["rollback_ok"] is True
    assert facts["plan"] == f"roll back {stack.app} from runbook-demo/app:2 to runbook-demo/app:1"
    assert run.status("rollback-app") == "changed"
    assert run.status("restart-app") == "skipped"
    info = stack.inspect(stack.app)
    assert info["Config"]["Image"] == "runbook-demo/app:1"
    assert info["Config"]["Labels"]["runbook.rolled-back-from"] == "runbook-demo/app:2"
    assert info["HostConfig"]["Binds"] == [f"{stack.prefix}-data:/data:rw"]   # the same spec
    assert stack.get("/")[1].get("X-App-Version") == "1"
    assert error_share(stack) == 0.0
    assert "from the param previous_image" in run.report()
