"""playbooks/disk-almost-full.yml: an app whose data dir (a 32 MiB tmpfs, the demo's disk
drill) is 94 % full of an old scratch file is diagnosed (df, du, the cleanup candidates),
reported, then (with --yes) cleaned: old files matching the cleanup globs go, fresh ones
and the app's items stay; dangling images with the given labels are pruned."""

from __future__ import annotations

import io
import json

import pytest

from tests.e2e_playbooks.conftest import (STACK_LABEL, assert_dry_run_changes_nothing,
                                          assert_refused_at_confirm)


def used_percent(stack) -> int:
    row = stack.exec(stack.app, "df", "-P", "-k", "/data").splitlines()[-1].split()
    return int(row[4].rstrip("%"))


def files(stack) -> set[str]:
    return set(stack.exec(stack.app, "find", "/data", "-type", "f").split())


def dangling_image(stack) -> str:
    """An untagged image labelled for this stack: built twice under one tag."""
    base = stack.infra.image("busybox")
    image_id = ""
    for n in (1, 2):
        dockerfile = f"FROM {base}\nLABEL {STACK_LABEL}={stack.prefix} build={n}\n"
        image, _ = stack.docker.images.build(fileobj=io.BytesIO(dockerfile.encode()),
                                             tag=f"{stack.prefix}-junk:1", rm=True,
                                             network_mode="none")
        image_id = image_id or image.id
    return image_id


def test_dry_run_on_a_healthy_stack_changes_nothing(stack, playbook):
    run = assert_dry_run_changes_nothing(stack, playbook, "disk-almost-full")
    assert any(": ok;" in m and "0 cleanup candidate(s)" in m for m in run.logs()), run.logs()


@pytest.fixture
def full_disk(stack):
    """The app on a 32 MiB tmpfs, 30 MiB of it an old scratch file."""
    stack.replace_app(tmpfs_mb=32)
    assert stack.post("/items", json.dumps({"id": "keep-me"}).encode())[0] == 201
    stack.exec(stack.app, "sh", "-c",
               "mkdir -p /data/tmp /data/results"
               " && dd if=/dev/zero of=/data/tmp/ballast bs=1M count=30 2>/dev/null"
               " && touch -d '3 hours ago' /data/tmp/ballast"
               " && echo fresh > /data/tmp/fresh && echo '{}' > /data/results/new.json")
    assert used_percent(stack) >= 90
    yield
    stack.replace_app()                       # back on its volume for the next tests


def test_full_data_dir_is_diagnosed_reported_and_cleaned(stack, playbook, full_disk):
    before = files(stack)
    junk = dangling_image(stack)

    run = playbook("disk-almost-full")
    assert_refused_at_confirm(run)
    assert files(stack) == before and used_percent(stack) >= 90
    facts = run.facts()
    assert facts["data_full"] is True and facts["docker_full"] is False
    assert facts["app"]["disk"]["used_percent"] >= 90 and facts["app"]["disk"]["size_kb"] == 32768
    assert facts["candidates"] == 1 and facts["candidate_bytes"] == 30 << 20
    report = run.report()
    assert "/data/tmp/ballast" in report                          # the candidate list
    assert "Largest entries of /data" in report and "/data/tmp" in report
    assert "| app data dir /data (in " in report

    run = playbook("disk-almost-full", yes=True, docker_threshold_percent=0, prune_until="0s",
                   prune_labels=[f"{STACK_LABEL}={stack.prefix}"])
    assert run.code == 0, run.result
    assert run.status("delete-files") == "changed"
    assert run.status("prune-images") == "changed"
    assert run.status("verify-disk") == "ok"
    assert files(stack) == before - {"/data/tmp/ballast"}          # fresh files and items stay
    assert "/data/items/keep-me.json" in files(stack)
    assert used_percent(stack) < 90
    assert stack.get("/health")[0] == 200
    assert junk not in {i.id for i in stack.docker.images.list(all=True)}
    report = run.report()
    assert "- deleted 1 file(s):" in report and "`/data/tmp/ballast`" in report
    assert "pruned 1 images" in report and "**recovered**" in report


def test_full_data_dir_without_candidates_fails_clearly(stack, playbook, full_disk):
    stack.exec(stack.app, "touch", "/data/tmp/ballast")             # recent: not a candidate

    run = playbook("disk-almost-full", yes=True)
    assert run.code == 1, run.result
    failure = run.end["failures"][0]
    assert failure["step"] == "something-can-be-deleted"
    assert "no file matches tmp/*, results/*.json older than 60 minutes" in failure["message"]
    assert "/data/tmp/ballast" in files(stack)
    assert "**NOT RECOVERED**" in run.report()
