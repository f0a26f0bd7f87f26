"""``runbook history``, ``show`` and ``unlock`` on a journal filled through the Store API,
and what the user sees when the journal file is broken."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
import pytest
from click.testing import CliRunner

from engine.executor.events import (Event, Retry, RollbackEnd, RollbackStart, RollbackStep,
                                    RunEnd, RunStart, StepEnd, StepStart)
from engine.store import local_time
from engine.store.base import JournalEvent, LockHolder, RunRecord
from engine.store.sqlite import SCHEMA_VERSION, SqliteStore

T0 = 1714557600.0
FAILED_RUN = "20240501-120000-a1b2c3"
DRY_RUN = "20240501-130000-d4e5f6"
DEAD_RUN = "20240501-140000-0a0b0c"


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli(*argv: str, state: Path) -> Result:
    """``runbook ARGV`` in-process, the way the console script runs it."""
    from engine.cli import main
    env = {"NO_COLOR": "1", "RUNBOOK_STATE": str(state), "FORCE_COLOR": None}
    with CliRunner().isolation(env=env) as (out, err, _):
        code = main(list(argv))
        sys.stdout.flush()
        sys.stderr.flush()
        result = Result(int(code or 0), out.getvalue().decode(), err.getvalue().decode())
    assert "Traceback" not in result.err and "internal error" not in result.err, result.err
    return result


def _put(store: SqliteStore, event: Event) -> None:
    """What the journal sink does with an event: its JSON form, indexed columns."""
    data = event.to_json()
    store.append([JournalEvent(data["run_id"], event.kind, data["ts"], host=data.get("host"),
                               step=data.get("step"), phase=data.get("phase"),
                               status=data.get("status"), data=data)])


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "state.db"
    store = SqliteStore(str(path))
    run = FAILED_RUN
    store.begin_run(RunRecord(run, "deploy", "/srv/runbooks/deploy.yml", "a" * 64, "alice",
                              "ops1", 4242, T0, ("web1", "web2"),
                              {"version": "2.1", "password": "********"},
                              {"inventory": "inventory/prod.yml"}))
    _put(store, RunStart(run, "deploy", "/srv/runbooks/deploy.yml", ("web1", "web2"), False,
                         {}, 3, ts=T0))
    for host in ("web1", "web2"):
        _put(store, StepStart(run, host, "check", "Check disk space", "shell",
                              "deploy.yml:10:7", ts=T0 + 1))
        _put(store, StepEnd(run, host, "check", "Check disk space", "ok", False, 0.12,
                            ts=T0 + 1.2))
        _put(store, StepStart(run, host, "deploy", "Deploy the app", "copy", "deploy.yml:20:7",
                              ts=T0 + 2))
        if host == "web2":
            _put(store, Retry(run, host, "deploy", 1, 3, 2.0, "connection reset by peer",
                              ts=T0 + 3))
        _put(store, StepEnd(run, host, "deploy", "Deploy the app", "changed", True, 3.02,
                            attempts=2 if host == "web2" else 1, msg="update /etc/app.conf",
                            ts=T0 + 5))
        _put(store, StepStart(run, host, "restart", "Restart the service", "shell",
                              "deploy.yml:31:7", ts=T0 + 6))
    _put(store, StepEnd(run, "web1", "restart", "Restart the service", "ok", True, 1.0,
                        ts=T0 + 7))
    _put(store, StepEnd(run, "web2", "restart", "Restart the service", "failed", False, 1.5,
                        msg="the service did not come back", rc=3,
                        loc="deploy.yml:31:7", command="systemctl restart app",
                        stderr_tail="Job for app.service failed.\nSee journalctl -xe",
                        ts=T0 + 7.5))
    _put(store, RollbackStart(run, "web2", 2, "step 'restart' failed", ts=T0 + 8))
    _put(store, RollbackStep(run, "web2", "restore", "Restore the config", "deploy",
                             "Deploy the app", "ok", 0.5, ts=T0 + 8.5))
    _put(store, RollbackStep(run, "web2", "reload", "Reload the proxy", "deploy",
                             "Deploy the app", "failed", 0.25, msg="proxy unreachable",
                             ts=T0 + 8.8))
    _put(store, RollbackEnd(run, "web2", False, 1, 1, ts=T0 + 9))
    _put(store, RunEnd(run, "rollback_failed", 3, 9.3,
                       {"web1": {"ok": 3, "status": "ok"},
                        "web2": {"failed": 1, "rollback_failed": 1, "status": "rollback_failed"}},
                       ({"host": "web2", "step": "restart", "name": "Restart the service",
                         "loc": "deploy.yml:31:7", "message": "the service did not come back",
                         "command": "systemctl restart app", "rc": 3},), ts=T0 + 9.3))
    store.finish_run(run, "rollback_failed", 3, T0 + 9.3)

    store.begin_run(RunRecord(DRY_RUN, "backup", "/srv/runbooks/backup.yml", "b" * 64, "bob",
                              "ops2", 99, T0 + 3600, ("db1",), {}, {}, dry_run=True))
    store.finish_run(DRY_RUN, "ok", 0, T0 + 3600 + 75)

    dead = _dead_pid()
    store.begin_run(RunRecord(DEAD_RUN, "deploy", "/srv/runbooks/deploy.yml", "a" * 64, "carol",
                              socket.gethostname(), dead, T0 + 7200, ("web1",),
                              {"version": "2.2"}, {}, resumed_from=FAILED_RUN,
                              parent_kind="resume"))
    _put(store, StepStart(DEAD_RUN, "web1", "deploy", "Deploy the app", "copy",
                          "deploy.yml:20:7", ts=T0 + 7201))
    store.acquire(["deploy@web1"], LockHolder(DEAD_RUN, "carol", socket.gethostname(), dead),
                  300)
    store.acquire(["backup@db1"], LockHolder(DRY_RUN, "bob", "ops2", 99), -90)
    store.close()
    return path


# -- history ------------------------------------------------------------------------------

def test_history_table(journal: Path) -> None:
    result = cli("history", state=journal)
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].split() == ["RUN", "ID", "STARTED", "DURATION", "RUNBOOK", "STATUS",
                                "HOSTS", "BY"]
    assert [line.split()[0] for line in lines[1:]] == [DEAD_RUN, DRY_RUN, FAILED_RUN]
    dead, dry, failed = lines[1:]
    assert local_time(T0) in failed and "9.3s" in failed and "ROLLBACK FAILED" in failed
    assert "alice@ops1" in failed and " 2 " in failed
    assert "1m15s" in dry and "ok" in dry.split() and "dry-run" in dry
    assert "running" in dead and f"resume of {FAILED_RUN}" in dead and "gone" in dead
    header = lines[0]
    for line in lines[1:]:              # the columns line up
        assert line.index(local_time(T0)[:10]) == header.index("STARTED")


def test_history_filters_and_limit(journal: Path) -> None:
    def ids(*args: str) -> list[str]:
        result = cli("history", *args, state=journal)
        assert result.code == 0, result.err
        return [line.split()[0] for line in result.out.splitlines()[1:]]

    assert ids("--runbook", "backup") == [DRY_RUN]
    assert ids("--status", "rollback_failed") == [FAILED_RUN]
    assert ids("--host", "web1") == [DEAD_RUN, FAILED_RUN]
    assert ids("--limit", "1") == [DEAD_RUN]
    result = cli("history", "--runbook", "nothing", state=journal)
    assert (result.code, result.out, result.err) == (0, "", "no runs match\n")
    assert cli("history", "--status", "bogus", state=journal).code == 2


def test_history_json(journal: Path) -> None:
    result = cli("history", "--output", "json", state=journal)
    runs = json.loads(result.out)
    assert [r["run_id"] for r in runs] == [DEAD_RUN, DRY_RUN, FAILED_RUN]
    failed = runs[2]
    assert failed["status"] == "rollback_failed" and failed["exit_code"] == 3
    assert failed["hosts"] == ["web1", "web2"]
    assert failed["params"] == {"version": "2.1", "password": "********"}
    assert runs[1]["dry_run"] is True


def test_reading_commands_do_not_create_a_journal(tmp_path: Path) -> None:
    missing = tmp_path / "new" / "state.db"
    result = cli("history", state=missing)
    assert (result.code, result.out) == (0, "")
    assert result.err == f"no runs recorded yet (no journal at {missing})\n"
    shown = cli("show", "x", state=missing)
    assert shown.code == 2 and f"there is no journal at {missing}" in shown.err
    assert cli("unlock", "--list", state=missing).code == 0
    assert cli("unlock", "x", state=missing).code == 2
    assert not missing.parent.exists()
    SqliteStore(str(tmp_path / "empty.db")).close()
    empty = cli("history", state=tmp_path / "empty.db")
    assert (empty.code, empty.err) == (0, "no runs recorded yet\n")


# -- show ---------------------------------------------------------------------------------

def test_show_timeline(journal: Path) -> None:
    result = cli("show", FAILED_RUN, state=journal)
    assert result.code == 0, result.err
    out = result.out
    header, web1, web2 = out.split("\n\n")
    assert header.splitlines()[0] == f"run {FAILED_RUN} · deploy · ROLLBACK FAILED · exit 3"
    assert "runbook  /srv/runbooks/deploy.yml" in header
    assert "by       alice@ops1, pid 4242" in header
    assert f"started  {local_time(T0)}, ended " in header and "(9.3s)" in header
    assert "params   version=2.1 password=********" in header
    assert "hosts    web1, web2 (2)" in header
    assert web1.splitlines()[0] == "web1  ok"
    assert [line.split()[1] for line in web1.splitlines()[1:]] == ["ok", "changed", "ok"]
    lines = web2.splitlines()
    assert lines[0] == "web2  rollback failed"
    text = "\n".join(lines)
    assert "retry       attempt 1/3 failed: connection reset by peer; next in 2s" in text
    assert "2 attempts" in next(line for line in lines if "Deploy the app" in line)
    failed = next(line for line in lines if "FAILED" in line)
    assert "Restart the service" in failed and "1.5s" in failed and "deploy.yml:31:7" in failed
    for part in ("the service did not come back", "command:   systemctl restart app",
                 "exit code: 3", "| Job for app.service failed.", "| See journalctl -xe",
                 "↺ rollback (2 steps, newest first): step 'restart' failed",
                 "undoes 'Deploy the app'", "UNDO FAILED", "proxy unreachable",
                 "rollback INCOMPLETE: 1 step(s) failed"):
        assert part in text, part
    undone = next(line for line in lines if "undone" in line)
    assert "Restore the config" in undone


def test_show_one_host_by_prefix(journal: Path) -> None:
    result = cli("show", FAILED_RUN[:12], "--host", "web1", state=journal)
    assert result.code == 0, result.err
    assert "\nweb1  ok\n" in result.out and "web2" not in result.out.split("\n\n", 1)[1]


def test_show_json(journal: Path) -> None:
    result = cli("show", FAILED_RUN, "-o", "json", state=journal)
    shown = json.loads(result.out)
    assert shown["run"]["run_id"] == FAILED_RUN
    events = shown["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["kind"] == "run_start" and events[-1]["kind"] == "run_end"
    failed = next(e for e in events if e["status"] == "failed" and e["kind"] == "step_end")
    assert failed["data"]["command"] == "systemctl restart app" and failed["host"] == "web2"
    only = json.loads(cli("show", FAILED_RUN, "-o", "json", "--host", "web1",
                          state=journal).out)["events"]
    assert only and {e["host"] for e in only} == {"web1"}


def test_show_a_run_whose_process_died(journal: Path) -> None:
    result = cli("show", DEAD_RUN, state=journal)
    assert result.code == 0, result.err
    assert "no end recorded: process" in result.out and "is gone" in result.out
    assert f"resumes  run {FAILED_RUN}" in result.out
    assert "started     Deploy the app  (no end recorded: the run stopped here)" in result.out


def test_show_unknown_or_ambiguous_run(journal: Path) -> None:
    unknown = cli("show", "a1b2c3", state=journal)
    assert unknown.code == 2 and unknown.out == ""
    assert f"error: no run 'a1b2c3' in the journal {journal}" in unknown.err
    assert f"did you mean '{FAILED_RUN}'?" in unknown.err
    typo = cli("show", "20240501-120000-a1b2c4", state=journal)
    assert typo.code == 2 and f"did you mean '{FAILED_RUN}'" in typo.err
    ambiguous = cli("show", "20240501", state=journal)
    assert ambiguous.code == 2 and "is ambiguous" in ambiguous.err
    assert DRY_RUN in ambiguous.err and FAILED_RUN in ambiguous.err
    host = cli("show", FAILED_RUN, "--host", "web3", state=journal)
    assert host.code == 2 and "has no host 'web3'" in host.err and "'web2'" in host.err


# -- unlock ---------------------------------------------------------------------------------

def test_unlock_list(journal: Path) -> None:
    result = cli("unlock", "--list", state=journal)
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].split() == ["LOCK", "RUN", "HELD", "BY", "SINCE", "LEASE"]
    backup, deploy = lines[1:]
    assert backup.startswith("backup@db1") and DRY_RUN in backup and "bob@ops2 pid 99" in backup
    assert "EXPIRED 1m30s ago" in backup
    assert deploy.startswith("deploy@web1") and "expires in 4m" in deploy


def test_unlock_by_name_prints_the_holder(journal: Path) -> None:
    result = cli("unlock", "backup@db1", state=journal)
    assert result.code == 0, result.err
    assert result.out.startswith(f"released lock 'backup@db1', held by run {DRY_RUN} "
                                 f"(bob@ops2, pid 99) since ")
    assert "lease expired" in result.out and result.err == ""
    live = cli("unlock", "deploy@web1", state=journal)
    assert live.code == 0 and "released lock 'deploy@web1'" in live.out
    assert "warning: its lease was still live" in live.err
    assert "no locks held" in cli("unlock", "--list", state=journal).err


def test_unlock_expired_and_by_run(journal: Path) -> None:
    expired = cli("unlock", "--all-expired", state=journal)
    assert expired.code == 0
    assert expired.out.splitlines() == [line for line in expired.out.splitlines()
                                        if line.startswith("released lock 'backup@db1'")]
    assert len(expired.out.splitlines()) == 1
    assert "no expired locks" in cli("unlock", "--all-expired", state=journal).err
    by_run = cli("unlock", "--run", DEAD_RUN[:13], state=journal)
    assert by_run.code == 0 and "released lock 'deploy@web1'" in by_run.out


def test_unlock_mistakes(journal: Path) -> None:
    typo = cli("unlock", "deploy@web", state=journal)
    assert typo.code == 2 and "no lock named 'deploy@web'" in typo.err
    assert "did you mean 'deploy@web1'?" in typo.err
    nothing = cli("unlock", state=journal)
    assert nothing.code == 2 and "say which locks to release" in nothing.err
    both = cli("unlock", "--list", "x", state=journal)
    assert both.code == 2 and "--list" in both.err
    assert len(cli("unlock", "--list", state=journal).out.splitlines()) == 3


# -- resume and rollback are wired ------------------------------------------------------------

@pytest.mark.parametrize("command", ["resume", "rollback"])
def test_resume_and_rollback_take_a_run_id(journal: Path, command: str) -> None:
    assert "RUN_ID" in cli(command, "--help", state=journal).out
    result = cli(command, "no-such-run", state=journal)
    assert result.code == 2
    assert "no-such-run" in result.err or "not implemented yet" in result.err


# -- a broken journal -----------------------------------------------------------------------------

def test_corrupt_journal_exits_4_with_a_clean_message(tmp_path: Path) -> None:
    broken = tmp_path / "state.db"
    broken.write_bytes(b"\x00garbage, not SQLite\n" * 512)
    for argv in (["history"], ["show", "x"], ["unlock", "--list"]):
        result = cli(*argv, state=broken)
        assert result.code == 4, (argv, result.err)
        assert result.err.startswith(f"error: run journal {broken}: cannot open it: "
                                     f"file is not a database\n  hint: ")
        assert "move it away" in result.err and result.out == ""


def test_corrupt_journal_in_a_real_process(tmp_path: Path) -> None:
    broken = tmp_path / "state.db"
    broken.write_bytes(os.urandom(8192))
    env = dict(os.environ, NO_COLOR="1")
    proc = subprocess.run([sys.executable, "-m", "engine", "history", "--state", str(broken)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 4
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: run journal ")
    assert "move it away" in proc.stderr


def test_newer_journal_exits_4(journal: Path) -> None:
    import sqlite3
    conn = sqlite3.connect(str(journal))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    result = cli("history", state=journal)
    assert result.code == 4
    assert f"schema version {SCHEMA_VERSION + 5}" in result.err and "upgrade runbook" in \
        result.err


def test_state_option_beats_the_environment(journal: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    result = cli("history", "--state", str(other), state=journal)
    assert result.code == 0 and f"no journal at {other}" in result.err
    assert cli("history", state=journal).out.count("\n") == 4
