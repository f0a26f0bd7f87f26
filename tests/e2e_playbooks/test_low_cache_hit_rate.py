"""playbooks/low-cache-hit-rate.yml: a Redis that refuses writes (maxmemory 1) and was
flushed, or a stopped cache, is diagnosed (Redis INFO, a read-through probe), reported,
then (with --yes) restarted and warmed; reads are verified to hit the cache again."""

from __future__ import annotations

import json

from tests.e2e_playbooks.conftest import (assert_dry_run_changes_nothing,
                                          assert_refused_at_confirm, container_state)

ITEMS = [f"it{i}" for i in range(6)]


def x_cache(stack, item: str) -> str | None:
    status, headers, _ = stack.get(f"/items/{item}")
    assert status == 200, status
    return headers.get("X-Cache")


def test_dry_run_on_a_healthy_stack_changes_nothing(stack, playbook):
    for item in ITEMS:
        assert stack.post("/items", json.dumps({"id": item, "n": 1}).encode())[0] == 201
        x_cache(stack, item)                                      # cached now
    run = assert_dry_run_changes_nothing(stack, playbook, "low-cache-hit-rate")
    assert any("the cache works: 5 of 5 second reads hit" in m for m in run.logs()), run.logs()


def test_full_and_flushed_cache_is_diagnosed_reported_restarted_and_warmed(stack, playbook):
    stack.redis("CONFIG", "SET", "maxmemory", "1")                # every cache write refused
    stack.redis("FLUSHALL")
    assert x_cache(stack, ITEMS[0]) == "miss" and x_cache(stack, ITEMS[0]) == "miss"
    cache_before = container_state(stack, stack.cache)

    run = playbook("low-cache-hit-rate")
    assert_refused_at_confirm(run)
    assert container_state(stack, stack.cache) == cache_before
    assert stack.redis("CONFIG", "GET", "maxmemory").split()[-1] == "1"
    facts = run.facts()
    assert facts["cache_full"] is True and facts["not_retaining"] is True
    assert facts["cache_down"] is False
    assert facts["second_hits"] == 0 and facts["probed"] == 5
    assert facts["cached_items"] == 0 and facts["items_stored"] == len(ITEMS)
    assert facts["redis"]["maxmemory"] == "1"
    report = run.report()
    assert "Redis is full" in report and "0 of 5 second reads were cache hits" in report
    assert f"### Container `{stack.cache}`" in report and "Ready to accept connections" in report

    run = playbook("low-cache-hit-rate", yes=True)
    assert run.code == 0, run.result
    assert run.status("restart-cache") == "changed"
    assert run.status("warm-cache") == "ok"
    assert run.status("hits-ok") == "ok"
    assert stack.redis("CONFIG", "GET", "maxmemory").split()[-1] == "0"
    assert all(x_cache(stack, item) == "hit" for item in ITEMS)
    report = run.report()
    assert f"- warmed: {len(ITEMS)} item(s)" in report and "**recovered**" in report


def test_stopped_cache_is_started_again(stack, playbook):
    stack.docker.containers.get(stack.cache).stop(timeout=10)

    run = playbook("low-cache-hit-rate", yes=True)
    assert run.code == 0, run.result
    facts = run.facts()
    assert facts["cache_down"] is True and facts["cache"]["state"] == "exited"
    assert run.status("restart-cache") == "changed"
    assert stack.health(stack.cache) == "healthy"
    assert stack.get("/health")[0] == 200
    assert x_cache(stack, ITEMS[-1]) == "hit"
