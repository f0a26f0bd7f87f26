"""runbooks/scale.yml against the demo stack: 1 -> 3 -> 1 workers, a failed scale-up
rolled back to the previous count, idempotence and the dry run.

The stack starts with one worker made by demo/stack.sh (without docker.scale's labels):
the first scale adopts it. Tests run in order and leave one worker.
"""

from __future__ import annotations

import socket

from tests.e2e_demo.conftest import http, logs, run_end, step_ends


def worker_health(stack, n: int) -> int:
    status, _ = http("GET", f"http://127.0.0.1:{stack.worker_base + n}/health")
    return status


def test_scale_up_to_three(stack):
    assert stack.worker_names() == [f"{stack.worker_prefix}-1"]
    r = stack.run("scale", "-e", "replicas=3")
    assert r.code == 0, r
    assert step_ends(r, "adopt-workers-started-without-docker-scale")[0]["status"] == "changed"
    scaled = step_ends(r, "scale-the-workers")[0]
    assert scaled["status"] == "changed"
    assert f"{stack.worker_prefix}: 1 -> 3 replica(s)" in scaled["msg"]
    names = [f"{stack.worker_prefix}-{n}" for n in (1, 2, 3)]
    assert stack.worker_names() == names
    for n, name in enumerate(names, 1):
        c = stack.container(name)
        assert stack.health(name) == "healthy"
        assert c.attrs["Config"]["Labels"]["runbook.scale"] == stack.worker_prefix
        assert c.attrs["Config"]["Labels"]["runbook-test"] == "1"
        assert worker_health(stack, n) == 200
    assert any("scaled" in m and "from 1 to 3" in m for m in logs(r))


def test_scale_again_changes_nothing(stack):
    ids = {n: stack.container(n).id for n in stack.worker_names()}
    r = stack.run("scale", "-e", "replicas=3")
    assert r.code == 0, r
    assert step_ends(r, "adopt-workers-started-without-docker-scale")[0]["status"] == "skipped"
    assert step_ends(r, "scale-the-workers")[0]["status"] == "ok"
    assert {n: stack.container(n).id for n in stack.worker_names()} == ids


def test_scale_down_to_one(stack):
    r = stack.run("scale", "-e", "replicas=1")
    assert r.code == 0, r
    assert stack.worker_names() == [f"{stack.worker_prefix}-1"]
    assert stack.health(f"{stack.worker_prefix}-1") == "healthy"


def test_failed_scale_up_rolls_back_to_the_previous_count(stack):
    """Replica 3 cannot listen (its port is taken): it exits, the health gate fails, and
    the rollback scales back to 1."""
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", stack.worker_base + 3))
    blocker.listen(1)
    try:
        r = stack.run("scale", "-e", "replicas=3")
    finally:
        blocker.close()
    assert r.code == 1, r
    end = run_end(r)
    assert end["status"] == "rolled_back"
    assert end["failures"][0]["step"] == "scale-the-workers"
    assert f"{stack.worker_prefix}-3" in end["failures"][0]["message"]
    undone = r.of("rollback_step", undoes="remember-the-previous-count")
    assert [e["status"] for e in undone] == ["changed", "ok"]
    assert stack.worker_names() == [f"{stack.worker_prefix}-1"]
    stack.wait_healthy(f"{stack.worker_prefix}-1")


def test_scale_refuses_a_count_out_of_range(stack):
    r = stack.run("scale", "-e", "replicas=50")
    assert r.code == 1, r
    assert "replicas must be between 0 and 9" in run_end(r)["failures"][0]["message"]
    assert stack.worker_names() == [f"{stack.worker_prefix}-1"]


def test_dry_run_changes_nothing(stack):
    before = stack.state_digest()
    r = stack.run("scale", "-e", "replicas=3", "--dry-run")
    assert r.code == 0, r
    scaled = step_ends(r, "scale-the-workers")[0]
    assert scaled["status"] == "simulated" and scaled["changed"] is True
    assert stack.state_digest() == before
    assert stack.worker_names() == [f"{stack.worker_prefix}-1"]
