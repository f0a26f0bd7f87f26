"""runbooks/backup.yml and runbooks/restore.yml against the demo stack: a byte-for-byte
round trip (items through the app's API, a Redis key, the volume's file hashes), the
archive's manifest and checksum, retention, the disk preflight, a damaged archive
rolled back to the safety backup, the confirmation, and dry runs.

Tests share one stack and run in order; each leaves the stack healthy.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from pathlib import Path

from tests.e2e_demo.conftest import logs, run_end, step_ends

DAY = 86400


def archives(folder: Path, prefix: str) -> list[Path]:
    return sorted(folder.glob(f"{prefix}-*.tar.gz"))


def check_archive(path: Path) -> dict:
    """What the backup promises: a .sha256 that matches, a manifest that matches the
    content; returns BACKUP.json."""
    expected, name = (path.parent / (path.name + ".sha256")).read_text().split()
    assert name == path.name
    assert hashlib.sha256(path.read_bytes()).hexdigest() == expected
    with tarfile.open(path) as tar:
        names = tar.getnames()
        assert "MANIFEST.sha256" in names and "cache/dump.rdb" in names
        manifest = tar.extractfile("MANIFEST.sha256").read().decode().splitlines()
        assert manifest, "empty manifest"
        for line in manifest:
            digest, member = line.split("  ", 1)
            assert hashlib.sha256(tar.extractfile(member).read()).hexdigest() == digest, member
        files = [m.name for m in tar.getmembers() if m.isfile()
                 and m.name.startswith(("data/", "cache/"))]
        assert sorted(files) == sorted(line.split("  ", 1)[1] for line in manifest)
        return json.loads(tar.extractfile("BACKUP.json").read())


def test_backup_then_restore_round_trips_the_data(stack):
    for i in range(5):
        stack.post_item({"id": f"item{i}", "payload": "x" * (100 * i), "n": i})
    stack.redis("SET", "session:42", "alice")
    stack.redis("RPUSH", "jobs-parked", "a", "b")
    want_items = stack.items()
    want_data = stack.data_digest()
    assert {f"./items/item{i}.json" for i in range(5)} <= set(want_data)

    r = stack.run("backup")
    assert r.code == 0, r
    [archive] = archives(stack.backup_dir, stack.prefix)
    meta = check_archive(archive)
    assert meta["service"] == stack.prefix and meta["files"] >= 6
    with tarfile.open(archive) as tar:
        backed_up = {m.name[len("data/"):]: hashlib.sha256(tar.extractfile(m).read()).hexdigest()
                     for m in tar.getmembers() if m.isfile() and m.name.startswith("data/")}
    assert {f"./{k}": v for k, v in backed_up.items()} == want_data
    assert any(f"wrote {archive}" in m and "verified" in m for m in logs(r))
    assert not list(stack.backup_dir.glob("*.partial"))
    assert not [c for c in stack.containers() if "helper" in c.name]

    # the data changes after the backup
    for i in range(3):
        stack.delete_item(f"item{i}")
    stack.post_item({"id": "after-backup"})
    stack.redis("DEL", "session:42")
    assert stack.data_digest() != want_data

    r = stack.run("restore", "--yes")
    assert r.code == 0, r
    assert run_end(r)["status"] == "ok"
    assert [e["status"] for e in step_ends(r, "confirm-the-restore")] == ["ok"]
    assert any(f"restored {archive.name}" in m for m in logs(r))
    # the same items, the same bytes, the same Redis keys
    assert stack.items() == want_items
    assert stack.data_digest() == want_data
    assert stack.redis("GET", "session:42") == "alice"
    assert stack.redis("LRANGE", "jobs-parked", "0", "-1").split() == ["a", "b"]
    # a safety backup of the data as it was before the restore, verified too
    [safety] = archives(stack.backup_dir / "safety", f"{stack.prefix}-pre-restore")
    check_archive(safety)
    with tarfile.open(safety) as tar:
        assert "data/items/after-backup.json" in tar.getnames()
    stack.wait_healthy()
    assert not [c for c in stack.containers() if "helper" in c.name]


def _fake_archive(path: Path, age_days: float) -> None:
    path.write_bytes(b"not really a backup")
    side = path.parent / (path.name + ".sha256")
    side.write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
    stamp = time.time() - age_days * DAY
    for p in (path, side):
        os.utime(p, (stamp, stamp))


def test_retention_removes_only_old_archives(stack):
    d = stack.backup_dir
    old = [d / f"{stack.prefix}-20200101T000000Z-aaaaaa.tar.gz",
           d / f"{stack.prefix}-20200102T000000Z-bbbbbb.tar.gz"]
    recent = d / f"{stack.prefix}-20200103T000000Z-cccccc.tar.gz"
    other_service = d / "someone-else-20200101T000000Z-dddddd.tar.gz"
    notes = d / "notes.txt"
    for p in old:
        _fake_archive(p, 10)
    _fake_archive(recent, 3)
    _fake_archive(other_service, 30)
    notes.write_text("keep me")
    os.utime(notes, (time.time() - 40 * DAY,) * 2)
    existing = set(archives(d, stack.prefix)) - set(old) - {recent}

    r = stack.run("backup", "-e", "keep_days=7")
    assert r.code == 0, r
    for p in old:
        assert not p.exists() and not (d / (p.name + ".sha256")).exists()
    for p in (recent, other_service, notes):
        assert p.exists(), p
    assert (d / (recent.name + ".sha256")).exists()
    new = set(archives(d, stack.prefix)) - existing - {recent}
    assert len(new) == 1
    check_archive(new.pop())
    retention = step_ends(r, "backup.retention")[0]
    out = retention["result"]["stdout"]
    assert f"deleted: {old[0].name}" in out and f"deleted: {old[1].name}" in out
    assert recent.name not in out
    recent.unlink()
    (d / (recent.name + ".sha256")).unlink()


def test_backup_fails_clearly_when_disk_is_short(stack):
    before = sorted(stack.backup_dir.rglob("*"))
    r = stack.run("backup", "-e", "reserve_mb=100000000")
    assert r.code == 1, r
    end = run_end(r)
    assert end["failures"][0]["phase"] == "preflight"
    assert "not enough disk for the backup" in end["failures"][0]["message"]
    assert "reserve 100000000 MiB" in end["failures"][0]["message"]
    assert sorted(stack.backup_dir.rglob("*")) == before


def test_damaged_archive_is_refused_and_the_safety_backup_reapplied(stack):
    """An archive whose content does not match its manifest (but whose .sha256 does):
    the restore fails after the service was stopped, and the rollback re-applies the
    safety backup: same data, everything healthy again."""
    bad = stack.backup_dir / f"{stack.prefix}-20991231T000000Z-bad000.tar.gz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("MANIFEST.sha256", b"0" * 64 + b"  data/items/evil.json\n"),
                           ("data/items/evil.json", b'{"id": "evil"}'),
                           ("cache/dump.rdb", b"junk")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    bad.write_bytes(buf.getvalue())
    (stack.backup_dir / (bad.name + ".sha256")).write_text(
        f"{hashlib.sha256(bad.read_bytes()).hexdigest()}  {bad.name}\n")
    want_items = stack.items()
    want_data = stack.data_digest()
    stack.redis("SET", "still-here", "1")

    r = stack.run("restore", "--yes", "-e", f"backup={bad.name}")
    assert r.code == 1, r
    end = run_end(r)
    assert end["status"] == "rolled_back"
    assert end["failures"][0]["step"].startswith("replace-the-data-with-the-archive-s")
    undone = r.of("rollback_step", undoes="safety-backup-is-ready")
    assert undone and all(e["status"] in ("ok", "changed") for e in undone)
    stack.wait_healthy()
    assert stack.items() == want_items
    assert stack.data_digest() == want_data
    assert stack.redis("GET", "still-here") == "1"
    bad.unlink()
    (stack.backup_dir / (bad.name + ".sha256")).unlink()


def test_restore_needs_a_confirmation(stack):
    """Without --yes (and no terminal to ask), the confirm step fails before anything
    is touched."""
    app = stack.container(stack.app)
    safety_before = sorted((stack.backup_dir / "safety").glob("*"))
    r = stack.run("restore")
    assert r.code == 1, r
    assert run_end(r)["failures"][0]["step"] == "confirm-the-restore"
    assert stack.container(stack.app).attrs["State"]["StartedAt"] == app.attrs["State"]["StartedAt"]
    assert sorted((stack.backup_dir / "safety").glob("*")) == safety_before


def test_dry_runs_change_nothing(stack):
    before = stack.state_digest()
    dump = stack.cache_dump_digest()
    for runbook, args in (("backup", ()), ("restore", ("--yes",))):
        r = stack.run(runbook, "--dry-run", *args)
        assert r.code == 0, (runbook, r)
        assert run_end(r)["dry_run"] is True
    assert stack.state_digest() == before
    assert stack.cache_dump_digest() == dump
