"""runbooks/health-check.yml, baseline.yml and restart.yml against the demo stack.

health-check passes on a healthy stack and fails with a summary when a container is
stopped; baseline writes its JSON and flags a regression when the app is slowed down
(a /work?ms= request burning CPU meanwhile); restart keeps the data and ends healthy.
Dry runs of the three change nothing. Tests share one stack and leave it healthy.
"""

from __future__ import annotations

import json
import threading
import urllib.request

from tests.e2e_demo.conftest import http, logs, run_end, step_ends


def test_health_check_passes_on_a_healthy_stack(stack):
    stack.wait_healthy()
    r = stack.run("health-check")
    assert r.code == 0, r
    summary = [e for e in r.of("log") if e["step"] == "health-summary"][0]
    assert summary["level"] == "info" and summary["msg"].endswith("healthy")
    assert "3 containers, 3 running" in summary["msg"]


def test_health_check_fails_with_a_summary_when_a_container_is_stopped(stack):
    worker = f"{stack.worker_prefix}-1"
    stack.container(worker).stop(timeout=5)
    try:
        r = stack.run("health-check", "-e", "max_latency_ms=5000")
    finally:
        stack.container(worker).start()
    assert r.code == 1, r
    end = run_end(r)
    assert end["failures"][0]["step"] == "healthy"
    message = end["failures"][0]["message"]
    assert f"{worker} is exited" in message
    assert f"127.0.0.1:{stack.worker_base + 1}/health" in message   # its endpoint too
    summary = [e for e in r.of("log") if e["step"] == "health-summary"][0]
    assert summary["level"] == "error" and "UNHEALTHY" in summary["msg"]
    # it gathered everything: the other checks ran and passed
    assert all(e["status"] == "ok" for e in step_ends(r, "disk-headroom"))
    stack.wait_healthy()


def _burn(url: str, ms: int) -> threading.Thread:
    def go():
        try:
            urllib.request.urlopen(f"{url}/work?ms={ms}", timeout=120).read()
        except OSError:
            pass
    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def test_baseline_written_then_regression_flagged(stack):
    out = stack.baseline_dir
    args = ("-e", f"baseline_dir={out}", "-e", "requests=15", "-e", "name=demo-bl")
    r = stack.run("baseline", *args)
    assert r.code == 0, r
    [first] = sorted(out.glob("demo-bl-*.json"))
    doc = json.loads(first.read_text())
    assert set(doc["endpoints"]) == {"/health", "/", "/items"}
    for stats in doc["endpoints"].values():
        assert stats["requests"] == 15 and stats["errors"] == 0
        assert 0 < stats["p50_ms"] <= stats["p95_ms"] <= stats["max_ms"]
    assert set(doc["containers"]) == {stack.app, stack.cache, f"{stack.worker_prefix}-1"}
    assert doc["containers"][stack.app]["mem_usage_bytes"] > 0
    assert doc["containers"][stack.app]["restart_count"] == 0
    assert doc["regressed"] is False and doc["compared_with"] is None

    # the app burns CPU in one thread meanwhile: every request waits for the GIL
    burner = _burn(stack.app_url, 4000)
    r = stack.run("baseline", *args)
    assert r.code == 1, r
    failure = run_end(r)["failures"][0]
    assert failure["step"] == "no-regression"
    assert "performance regressed beyond 50" in failure["message"]
    second = sorted(out.glob("demo-bl-*.json"))[-1]
    doc2 = json.loads(second.read_text())
    assert doc2["compared_with"] == str(first) and doc2["regressed"] is True
    assert doc2["regressions"] and " ms (+" in doc2["regressions"][0]

    # reported, not failed, with fail_on_regression=false; still compared with the first
    # (a baseline that regressed is never the reference)
    r = stack.run("baseline", *args, "-e", "fail_on_regression=false",
                  "-e", "threshold_percent=0", "-e", "min_delta_ms=0")
    burner.join(60)
    assert r.code == 0, r
    third = sorted(out.glob("demo-bl-*.json"))[-1]
    assert json.loads(third.read_text())["compared_with"] == str(first)
    http("GET", stack.app_url + "/health")


def test_restart_keeps_the_data_and_ends_healthy(stack):
    stack.post_item({"id": "survives-restart", "n": 1})
    items = stack.items()
    data = stack.data_digest()
    names = [stack.cache, stack.app, f"{stack.worker_prefix}-1"]
    started = {n: stack.container(n).attrs["State"]["StartedAt"] for n in names}
    ids = {n: stack.container(n).id for n in names}
    r = stack.run("restart")
    assert r.code == 0, r
    order = [e["step"] for e in r.of("step_end") if e["step"].startswith("restart-the-")]
    assert order == ["restart-the-cache", "restart-the-app", "restart-the-workers-one-at-a-time"]
    for n in names:
        assert stack.container(n).id == ids[n]                       # restarted, not recreated
        assert stack.container(n).attrs["State"]["StartedAt"] != started[n]
        assert stack.health(n) == "healthy"
    assert stack.items() == items
    assert stack.data_digest() == data
    assert any("items, as before" in m for m in logs(r))


def test_dry_runs_change_nothing(stack):
    stack.wait_healthy()
    before = stack.state_digest()
    for runbook, args in (("health-check", ()), ("restart", ()),
                          ("baseline", ("-e", f"baseline_dir={stack.baseline_dir}"))):
        r = stack.run(runbook, "--dry-run", *args)
        assert r.code == 0, (runbook, r)
        assert run_end(r)["dry_run"] is True
    assert stack.state_digest() == before
