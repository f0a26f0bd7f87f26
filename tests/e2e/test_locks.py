"""Run locks with real processes: one run per (lock, host) at a time, exit 4 naming the
holder, leases that expire after a kill -9, ``runbook unlock``, ``lock: false``,
custom lock names shared across runbooks, dry runs without locks.

The holder's step waits for a file ``go`` (a gate) so the other runs happen while it
holds its locks; every run appends to ``ran-<host>`` first, so a run that was refused
is seen not to have run anything.
"""

from __future__ import annotations

import getpass
import json
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from engine.store import local_time
from engine.store.sqlite import SqliteStore
from tests.e2e.clitools import Cli, Running

pytestmark = pytest.mark.timeout(60)

GATE = ("echo {tag} >> ran-{{{{ inventory_hostname }}}}; i=0; "
        "while [ ! -e go ] && [ $i -lt 750 ]; do sleep 0.02; i=$((i+1)); done")


def runbook(name: str, *, lock: str | None = None, tag: str = "x", params: str = "",
            safe: bool = False, quick: bool = False) -> str:
    """A runbook on all hosts whose one step waits at the gate (unless quick)."""
    text = f"name: {name}\nhosts: all\n"
    if lock is not None:
        text += f"lock: {lock}\n"
    if params:
        text += f"params:\n{params}"
    command = GATE.format(tag=tag).split(";")[0] if quick else GATE.format(tag=tag)
    text += "steps:\n  - id: wait\n    shell:\n      cmd: \"" + command + "\"\n"
    if safe:
        text += "      check_mode_safe: true\n"
    return text


@pytest.fixture
def folder(tmp_path: Path, inventory) -> Iterator[Path]:
    inventory(["h1", "h2", "h3"])
    (tmp_path / "deploy.yml").write_text(runbook("deploy"))
    yield tmp_path
    (tmp_path / "go").touch()        # let the gate of any killed holder end


def hold(cli: Cli, *args: str) -> Running:
    """Start a run and wait until it is inside its step (its locks taken)."""
    run = cli.start("run", *args, "-i", "inventory.yml", "-o", "json")
    run.wait_for(lambda e: e["event"] == "step_start")
    return run


def open_gate(folder: Path) -> None:
    (folder / "go").touch()


def ran(folder: Path, host: str = "h1") -> list[str]:
    path = folder / f"ran-{host}"
    return path.read_text().split() if path.exists() else []


def locks(folder: Path) -> dict[str, str]:
    """Lock name -> holder run id, read from the journal."""
    with SqliteStore(str(folder / ".state" / "state.db")) as store:
        return {lock.name: lock.holder.run_id for lock in store.locks()}


def kill9(run: Running) -> None:
    run.proc.send_signal(signal.SIGKILL)
    run.proc.wait()
    run.proc.stdout.close()
    run.proc.stderr.close()


HOLDER = re.compile(r"lock '(?P<name>[^']+)' is held by run (?P<run>\S+) \((?P<user>[^@]+)@"
                    r"(?P<machine>[^,]+), pid (?P<pid>\d+)\) since (?P<since>\d{4}-\d\d-\d\d "
                    r"\d\d:\d\d:\d\d), lease (?P<lease>expires|expired) ")


def refused(result, lock: str, holder: Running) -> re.Match[str]:
    """Exit 4, nothing on stdout, an error naming the lock and its holder."""
    assert result.code == 4, result
    assert result.stdout == "", result
    match = HOLDER.search(result.stderr)
    assert match, result.stderr
    assert match["name"] == lock
    assert match["run"] == holder.events[0]["run_id"]
    assert match["user"] == getpass.getuser() and match["machine"] == socket.gethostname()
    assert int(match["pid"]) == holder.proc.pid
    assert f"runbook unlock {lock}" in result.stderr     # the hint says how to free it
    return match


# -- one run at a time ---------------------------------------------------------------------

def test_two_concurrent_runs_exactly_one_runs(cli: Cli, folder: Path) -> None:
    argv = ["run", "deploy.yml", "-i", "inventory.yml", "-o", "json"]
    procs = [subprocess.Popen(cli.argv(tuple(argv)), cwd=folder, env=cli.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    # the loser exits at once; the winner waits at the gate
    deadline = time.monotonic() + 20
    while all(p.poll() is None for p in procs):
        assert time.monotonic() < deadline, "neither run ended: both hold the lock?"
        time.sleep(0.02)
    loser = next(p for p in procs if p.poll() is not None)
    winner = next(p for p in procs if p is not loser)
    out, err = loser.communicate()
    assert loser.returncode == 4, err
    assert out == ""
    open_gate(folder)
    win_out, win_err = winner.communicate(timeout=20)
    assert winner.returncode == 0, win_err
    winner_id = json.loads(win_out.splitlines()[0])["run_id"]
    match = HOLDER.search(err)
    assert match, err
    assert match["name"] in ("deploy@h1", "deploy@h2", "deploy@h3")
    assert match["run"] == winner_id and int(match["pid"]) == winner.pid
    assert match["user"] == getpass.getuser() and match["machine"] == socket.gethostname()
    assert abs(time.mktime(time.strptime(match["since"], "%Y-%m-%d %H:%M:%S")) -
               time.time()) < 30
    assert ran(folder) == ["x"]                       # the step ran once, not twice
    history = cli("history")
    assert history.stdout.count("deploy") == 1        # the refused run is not recorded
    assert locks(folder) == {}                        # the winner released its locks


def test_a_second_run_is_refused_while_the_first_holds_and_runs_after(cli: Cli,
                                                                      folder: Path) -> None:
    holder = hold(cli, "deploy.yml")
    second = cli("run", "deploy.yml", "-i", "inventory.yml")
    match = refused(second, "deploy@h1", holder)
    since = locks(folder)
    assert set(since) == {"deploy@h1", "deploy@h2", "deploy@h3"}
    assert match["lease"] == "expires"
    assert "hint: wait for that run to finish" in second.stderr
    assert ran(folder) == ["x"]
    open_gate(folder)
    assert holder.finish().code == 0
    assert locks(folder) == {}
    third = cli("run", "deploy.yml", "-i", "inventory.yml")
    assert third.code == 0, third


def test_locks_are_per_host_and_all_or_none(cli: Cli, folder: Path) -> None:
    holder = hold(cli, "deploy.yml", "--limit", "h1")
    assert locks(folder) == {"deploy@h1": holder.events[0]["run_id"]}
    # every host: refused because of h1, and takes none of h2, h3 meanwhile
    everything = cli("run", "deploy.yml", "-i", "inventory.yml")
    refused(everything, "deploy@h1", holder)
    assert set(locks(folder)) == {"deploy@h1"}
    assert ran(folder, "h2") == []
    # other hosts are free
    open_gate(folder)       # (the gate is shared: let the other hosts' run end at once)
    others = cli("run", "deploy.yml", "-i", "inventory.yml", "--limit", "h2:h3")
    assert others.code == 0, others
    assert holder.finish().code == 0


def test_a_live_holder_renews_its_lease(cli: Cli, folder: Path) -> None:
    cli.env["RUNBOOK_LOCK_LEASE"] = "1.5"
    holder = hold(cli, "deploy.yml")
    time.sleep(3.2)                        # more than two leases: renewed, not expired
    second = cli("run", "deploy.yml", "-i", "inventory.yml")
    assert refused(second, "deploy@h1", holder)["lease"] == "expires"
    open_gate(folder)
    assert holder.finish().code == 0


def test_resume_and_rollback_take_the_locks_too(cli: Cli, folder: Path) -> None:
    (folder / "flaky.yml").write_text(
        "name: deploy\nhosts: all\nsteps:\n"
        "  - id: one\n    shell: touch one-{{ inventory_hostname }}\n"
        "    rollback: {shell: 'rm one-{{ inventory_hostname }}'}\n"
        "  - id: two\n    shell: test -e ok-to-go\n")
    failed = cli("run", "flaky.yml", "-i", "inventory.yml", "--no-rollback", "-o", "json")
    assert failed.code == 1
    run_id = failed.events[0]["run_id"]
    holder = hold(cli, "deploy.yml")       # same runbook name: same locks
    resume = cli("resume", run_id)
    refused(resume, "deploy@h1", holder)
    rollback = cli("rollback", run_id)
    refused(rollback, "deploy@h1", holder)
    open_gate(folder)
    assert holder.finish().code == 0
    assert cli("rollback", run_id).code == 0


def test_locks_are_released_after_failure_and_interruption(cli: Cli, folder: Path) -> None:
    (folder / "fails.yml").write_text("name: deploy\nhosts: all\nsteps:\n  - shell: 'false'\n")
    assert cli("run", "fails.yml", "-i", "inventory.yml").code == 1
    assert locks(folder) == {}
    holder = hold(cli, "deploy.yml", "--grace", "0.1s")
    holder.send(signal.SIGTERM)
    assert holder.finish().code == 130
    assert locks(folder) == {}
    assert cli("run", "fails.yml", "-i", "inventory.yml").code == 1   # not 4


# -- a holder that died ----------------------------------------------------------------------

def test_lease_of_a_killed_holder_expires_then_the_next_run_proceeds(cli: Cli,
                                                                     folder: Path) -> None:
    cli.env["RUNBOOK_LOCK_LEASE"] = "2"
    holder = hold(cli, "deploy.yml")
    killed_at = time.time()
    kill9(holder)
    # the lease is still live: refused, and the lock is listed with the dead pid
    second = cli("run", "deploy.yml", "-i", "inventory.yml")
    refused(second, "deploy@h1", holder)
    listed = cli("unlock", "--list")
    assert "deploy@h1" in listed.stdout and f"pid {holder.proc.pid}" in listed.stdout
    assert "expires in" in listed.stdout
    history = cli("history")
    assert f"process {holder.proc.pid} gone" in history.stdout
    # once the lease expired, the next run takes the locks over
    with SqliteStore(str(folder / ".state" / "state.db")) as store:
        expires = max(lock.expires for lock in store.locks())
    assert expires - killed_at <= 2.5
    time.sleep(max(0.0, expires - time.time()) + 0.1)
    listed = cli("unlock", "--list")
    assert "EXPIRED" in listed.stdout
    open_gate(folder)
    third = cli("run", "deploy.yml", "-i", "inventory.yml", "-o", "json")
    assert third.code == 0, third
    assert locks(folder) == {}


def test_unlock_by_hand_releases_a_dead_runs_lock(cli: Cli, folder: Path) -> None:
    holder = hold(cli, "deploy.yml")        # default lease: 30 s
    run_id = holder.events[0]["run_id"]
    kill9(holder)
    assert cli("run", "deploy.yml", "-i", "inventory.yml").code == 4
    # release h1 only: a run on h1 may go, a run on every host still may not
    released = cli("unlock", "deploy@h1")
    assert released.code == 0, released
    assert released.stdout.startswith(f"released lock 'deploy@h1', held by run {run_id} "
                                      f"({getpass.getuser()}@{socket.gethostname()}, "
                                      f"pid {holder.proc.pid}) since ")
    assert "its lease was still live" in released.stderr
    assert set(locks(folder)) == {"deploy@h2", "deploy@h3"}
    open_gate(folder)
    assert cli("run", "deploy.yml", "-i", "inventory.yml", "--limit", "h1").code == 0
    assert cli("run", "deploy.yml", "-i", "inventory.yml").code == 4
    # the rest at once
    again = cli("unlock", "deploy@h2", "deploy@h3")
    assert again.code == 0 and again.stdout.count("released lock") == 2
    assert cli("run", "deploy.yml", "-i", "inventory.yml").code == 0
    # unlocking what is not held: exit 2 with a pointer
    missing = cli("unlock", "deploy@h1")
    assert missing.code == 2 and "no lock named 'deploy@h1'" in missing.stderr


def test_unlock_run_releases_every_lock_of_a_run(cli: Cli, folder: Path) -> None:
    holder = hold(cli, "deploy.yml")
    run_id = holder.events[0]["run_id"]
    kill9(holder)
    released = cli("unlock", "--run", run_id)
    assert released.code == 0 and released.stdout.count("released lock") == 3
    assert locks(folder) == {}


# -- lock: false, custom names, dry runs ------------------------------------------------------

def test_lock_false_takes_no_lock(cli: Cli, folder: Path) -> None:
    (folder / "free.yml").write_text(runbook("free", lock="false", tag="first"))
    holder = hold(cli, "free.yml")
    assert locks(folder) == {}
    (folder / "free2.yml").write_text(runbook("free", lock="false", tag="second", quick=True))
    second = cli("run", "free2.yml", "-i", "inventory.yml")
    assert second.code == 0, second                  # ran while the first one runs
    assert holder.proc.poll() is None
    assert ran(folder) == ["first", "second"]
    open_gate(folder)
    assert holder.finish().code == 0


def test_custom_lock_is_shared_across_runbooks_with_the_same_param(cli: Cli,
                                                                  folder: Path) -> None:
    env_param = "  env: {choices: [prod, staging], required: true}\n"
    (folder / "migrate.yml").write_text(
        runbook("migrate", lock='"db-{{ env }}"', params=env_param, tag="migrate"))
    (folder / "backup.yml").write_text(
        runbook("backup", lock='"db-{{ env }}"', params=env_param, tag="backup", quick=True))
    holder = hold(cli, "migrate.yml", "-e", "env=prod")
    assert set(locks(folder)) == {"db-prod@h1", "db-prod@h2", "db-prod@h3"}
    # another runbook, same env: the same lock
    same = cli("run", "backup.yml", "-i", "inventory.yml", "-e", "env=prod")
    refused(same, "db-prod@h1", holder)
    # another env: another lock, both for the other runbook and for the same one
    other = cli("run", "backup.yml", "-i", "inventory.yml", "-e", "env=staging")
    assert other.code == 0, other
    assert ran(folder) == ["migrate", "backup"]
    open_gate(folder)
    staging = cli("run", "migrate.yml", "-i", "inventory.yml", "-e", "env=staging")
    assert staging.code == 0, staging
    assert holder.finish().code == 0


def test_dry_runs_take_no_lock(cli: Cli, folder: Path) -> None:
    (folder / "safe.yml").write_text(runbook("deploy", safe=True, tag="dry"))
    (folder / "quick.yml").write_text(runbook("deploy", safe=True, tag="quick", quick=True))
    # a dry run while a real run holds the locks: goes ahead
    holder = hold(cli, "deploy.yml")
    dry = cli("run", "quick.yml", "-i", "inventory.yml", "--dry-run", "-o", "json")
    assert dry.code == 0, dry
    assert dry.of("run_start")[0]["dry_run"] is True
    assert ran(folder) == ["x", "quick"]        # check_mode_safe: it did run, unlocked
    open_gate(folder)
    assert holder.finish().code == 0
    (folder / "go").unlink()
    # a dry run in progress holds nothing: a real run goes ahead meanwhile
    dry_holder = cli.start("run", "safe.yml", "-i", "inventory.yml", "--dry-run", "-o", "json")
    dry_holder.wait_for(lambda e: e["event"] == "step_start")
    assert locks(folder) == {}
    open_gate(folder)
    real = cli("run", "deploy.yml", "-i", "inventory.yml")
    assert real.code == 0, real
    assert dry_holder.finish().code == 0


def test_lock_message_uses_local_time_of_the_lock(cli: Cli, folder: Path) -> None:
    holder = hold(cli, "deploy.yml")
    with SqliteStore(str(folder / ".state" / "state.db")) as store:
        lock = next(lock for lock in store.locks() if lock.name == "deploy@h1")
    second = cli("run", "deploy.yml", "-i", "inventory.yml")
    match = refused(second, "deploy@h1", holder)
    assert match["since"] == local_time(lock.since)
    open_gate(folder)
    holder.finish()


# -- resume after a crash --------------------------------------------------------------------

def test_resume_of_a_killed_run_takes_over_its_locks(cli: Cli, folder: Path) -> None:
    holder = hold(cli, "deploy.yml")
    run_id = holder.events[0]["run_id"]
    kill9(holder)
    open_gate(folder)
    resume = cli("resume", run_id)
    assert resume.code == 0, resume
