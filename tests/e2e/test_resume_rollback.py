"""``runbook resume`` and ``runbook rollback`` on real runs: what a resume skips and
restores (registered results, the rollback stack), when it refuses, and undoing a
finished run per host.  Exit codes as in docs/journal.md.

The runbook logs every step and every undo to ``log-<host>``; ``version`` registers a
value that is new at each execution, so a later step (or rollback step) that prints
it shows whether it got the value from the run it resumes.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.clitools import Cli, Result

pytestmark = pytest.mark.timeout(60)

HOSTS = ("h1", "h2", "h3")

RUNBOOK = """\
name: resumable
hosts: all
steps:
  - id: version
    shell: "echo 1.{{ inventory_hostname[-1] }}-$(cut -c1-8 /proc/sys/kernel/random/uuid)"
    register: ver
    rollback:
      id: undo-version
      shell: "echo 'undo version {{ ver.stdout }}' >> log-{{ inventory_hostname }}"
  - id: install
    shell: "echo 'install {{ ver.stdout }}' >> log-{{ inventory_hostname }}"
    rollback:
      id: undo-install
      shell: "echo 'undo install {{ ver.stdout }}' >> log-{{ inventory_hostname }}"
  - id: gate
    shell: "while [ ! -e go ]; do sleep 0.02; done"
    rollback:
      id: undo-gate
      shell: "echo 'undo gate' >> log-{{ inventory_hostname }}"
  - id: configure
    shell: >-
      test ! -e fail-configure-{{ inventory_hostname }} &&
      echo 'configure {{ ver.stdout }}' >> log-{{ inventory_hostname }}
    rollback:
      id: undo-configure
      shell: "echo 'undo configure' >> log-{{ inventory_hostname }}"
  - id: final
    shell: "echo 'final {{ ver.stdout }}' >> log-{{ inventory_hostname }}"
"""
STEPS = ("version", "install", "gate", "configure", "final")


@pytest.fixture
def folder(tmp_path: Path, inventory) -> Path:
    inventory(list(HOSTS))
    (tmp_path / "rb.yml").write_text(RUNBOOK)
    return tmp_path


def log(folder: Path, host: str = "h1") -> list[str]:
    path = folder / f"log-{host}"
    return path.read_text().splitlines() if path.exists() else []


def version(folder: Path, host: str = "h1") -> str:
    """The registered value the (last) install step used."""
    installs = [line.split()[1] for line in log(folder, host) if line.startswith("install ")]
    assert installs, log(folder, host)
    return installs[-1]


def run_id(result: Result) -> str:
    return result.of("run_start")[0]["run_id"]


def statuses(result: Result, host: str = "h1") -> dict[str, str]:
    return {e["step"]: e["status"] for e in result.of("step_end", host=host, phase="steps")}


def undone(result: Result, host: str = "h1") -> list[str]:
    return [e["undoes"] for e in result.of("rollback_step", host=host)]


def kill_at_gate(cli: Cli) -> str:
    """Start a run, kill -9 it while every host waits at the gate; its id.  Its locks
    are released by hand (a resume does not take over a dead run's locks: see
    test_locks.py::test_resume_of_a_killed_run_takes_over_its_locks)."""
    run = cli.start("run", "rb.yml", "-i", "inventory.yml", "-o", "json")
    for _ in HOSTS:
        run.wait_for(lambda e: e["event"] == "step_start" and e["step"] == "gate")
    time.sleep(0.1)
    run.proc.send_signal(signal.SIGKILL)
    run.proc.wait()
    killed = run.events[0]["run_id"]
    assert cli("unlock", "--run", killed).code == 0
    return killed


# -- what resume skips and restores --------------------------------------------------------

def test_resume_restores_registered_results_and_skips_completed_steps(cli: Cli,
                                                                     folder: Path) -> None:
    killed = kill_at_gate(cli)
    before = {h: version(folder, h) for h in HOSTS}
    (folder / "go").touch()
    resumed = cli("resume", killed, "-o", "json")
    assert resumed.code == 0, resumed
    start = resumed.of("run_start")[0]
    assert start["run_id"] != killed
    for host in HOSTS:
        assert statuses(resumed, host) == {"version": "restored", "install": "restored",
                                           "gate": "changed", "configure": "changed",
                                           "final": "changed"}
        # the version registered before the kill, not a new one
        assert log(folder, host) == [f"install {before[host]}", f"configure {before[host]}",
                                     f"final {before[host]}"]
    restored = resumed.of("step_end", host="h1", step="version")[0]
    assert restored["msg"] == f"completed in run {killed}"
    history = json.loads(cli("history", "--output=json").stdout)
    mine = next(r for r in history if r["run_id"] == start["run_id"])
    assert mine["resumed_from"] == killed and mine["parent_kind"] == "resume"
    shown = cli("show", start["run_id"])
    assert f"resumes    run {killed}" in shown.stdout or f"resumes  run {killed}" in shown.stdout
    assert "done before" in shown.stdout


def test_a_failure_after_resume_rolls_back_what_completed_before_it(cli: Cli,
                                                                   folder: Path) -> None:
    killed = kill_at_gate(cli)
    before = version(folder)
    (folder / "go").touch()
    (folder / "fail-configure-h1").touch()      # only h1 fails after the resume
    resumed = cli("resume", killed, "-o", "json")
    assert resumed.code == 1, resumed
    assert resumed.of("run_end")[0]["status"] == "rolled_back"
    # newest first: the step done in the resume, then those done before it
    assert undone(resumed) == ["gate", "install", "version"]
    assert [e["step"] for e in resumed.of("rollback_step", host="h1")] == \
        ["undo-gate", "undo-install", "undo-version"]
    # the rollback steps rendered with the values of the run that was resumed
    assert log(folder) == [f"install {before}", "undo gate", f"undo install {before}",
                           f"undo version {before}"]
    # the other hosts completed and were not rolled back
    for host in ("h2", "h3"):
        assert undone(resumed, host) == []
        assert log(folder, host)[-1].startswith("final ")


def test_resume_of_a_rolled_back_run_runs_everything_again(cli: Cli, folder: Path) -> None:
    (folder / "go").touch()
    for host in HOSTS:
        (folder / f"fail-configure-{host}").touch()
    failed = cli("run", "rb.yml", "-i", "inventory.yml", "-o", "json")
    assert failed.code == 1 and failed.of("run_end")[0]["status"] == "rolled_back"
    first = version(folder)
    assert undone(failed) == ["gate", "install", "version"]
    for host in HOSTS:
        (folder / f"fail-configure-{host}").unlink()
    resumed = cli("resume", run_id(failed), "-o", "json")
    assert resumed.code == 0, resumed
    for host in HOSTS:
        assert set(statuses(resumed, host).values()) == {"changed"}      # nothing restored
    assert version(folder) != first                   # 'version' ran again: a new value
    assert resumed.of("run_end")[0]["hosts"]["h1"]["restored"] == 0


def test_resume_goes_on_per_host(cli: Cli, folder: Path) -> None:
    """h1 failed and was rolled back at the end of the batch; h2 and h3 completed: the
    resume runs everything again on h1 and restores everything on the others."""
    (folder / "go").touch()
    (folder / "fail-configure-h1").touch()
    failed = cli("run", "rb.yml", "-i", "inventory.yml", "-o", "json")
    assert failed.code == 1
    assert failed.of("run_end")[0]["hosts"]["h1"]["status"] == "rolled_back"
    assert failed.of("run_end")[0]["hosts"]["h2"]["status"] == "ok"
    (folder / "fail-configure-h1").unlink()
    resumed = cli("resume", run_id(failed), "-o", "json")
    assert resumed.code == 0, resumed
    assert set(statuses(resumed, "h1").values()) == {"changed"}
    for host in ("h2", "h3"):
        assert set(statuses(resumed, host).values()) == {"restored"}
        assert len([line for line in log(folder, host) if line.startswith("final")]) == 1


def test_resume_keeps_the_options_of_the_run(cli: Cli, folder: Path) -> None:
    (folder / "go").touch()
    (folder / "fail-configure-h1").touch()
    failed = cli("run", "rb.yml", "-i", "inventory.yml", "-o", "json", "--limit", "h1:h2",
                 "--no-rollback")
    assert failed.code == 1
    assert undone(failed) == []                       # --no-rollback
    (folder / "fail-configure-h1").unlink()
    resumed = cli("resume", run_id(failed), "-o", "json")
    assert resumed.code == 0, resumed
    assert resumed.of("run_start")[0]["hosts"] == ["h1", "h2"]      # --limit kept
    assert statuses(resumed, "h1") == {"version": "restored", "install": "restored",
                                       "gate": "restored", "configure": "changed",
                                       "final": "changed"}
    assert log(folder, "h3") == []


# -- when resume refuses ---------------------------------------------------------------------

def test_resume_refuses_a_changed_runbook_unless_forced(cli: Cli, folder: Path) -> None:
    killed = kill_at_gate(cli)
    (folder / "go").touch()
    path = folder / "rb.yml"
    path.write_text(RUNBOOK.replace("echo 'final", "echo 'last"))
    refused = cli("resume", killed)
    assert refused.code == 2, refused
    assert f"{path} changed since run {killed} started" in refused.stderr
    assert "--force" in refused.stderr
    assert log(folder) == [f"install {version(folder)}"]          # nothing ran
    rollback = cli("rollback", killed)
    assert rollback.code == 2 and "changed since run" in rollback.stderr
    forced = cli("resume", killed, "--force", "-o", "json")
    assert forced.code == 0, forced
    assert log(folder)[-1].startswith("last ")            # the new file was used


def test_resume_of_a_completed_run_is_refused(cli: Cli, folder: Path) -> None:
    (folder / "go").touch()
    done = cli("run", "rb.yml", "-i", "inventory.yml", "-o", "json")
    assert done.code == 0
    again = cli("resume", run_id(done))
    assert again.code == 2
    assert f"run {run_id(done)} completed successfully: nothing to resume" in again.stderr
    assert len(log(folder)) == 3                        # nothing ran again


def test_resume_and_rollback_refusals_and_exit_codes(cli: Cli, folder: Path) -> None:
    (folder / "go").touch()
    dry = cli("run", "rb.yml", "-i", "inventory.yml", "--dry-run", "-o", "json")
    assert dry.code == 0
    resumed = cli("resume", run_id(dry))
    assert resumed.code == 2 and "was a dry run: there is nothing to resume" in resumed.stderr
    unknown = cli("resume", "20000101-000000-000000")
    assert unknown.code == 2 and "no run '20000101-000000-000000'" in unknown.stderr
    done = cli("run", "rb.yml", "-i", "inventory.yml", "-o", "json")
    stranger = cli("rollback", run_id(done), "--host", "web9")
    assert stranger.code == 2 and "host 'web9' was not part of run" in stranger.stderr
    # a run still going: resume and rollback refuse
    (folder / "go").unlink()
    running = cli.start("run", "rb.yml", "-i", "inventory.yml", "-o", "json", "--limit", "h1")
    running.wait_for(lambda e: e["event"] == "step_start" and e["step"] == "gate")
    live = running.events[0]["run_id"]
    for command in ("resume", "rollback"):
        result = cli(command, live)
        assert result.code == 2 and f"run {live} is still running" in result.stderr, result
    (folder / "go").touch()
    assert running.finish().code == 0


def test_resume_by_unique_prefix(cli: Cli, folder: Path) -> None:
    killed = kill_at_gate(cli)
    (folder / "go").touch()
    resumed = cli("resume", killed[:-2], "-o", "json")
    assert resumed.code == 0, resumed
    assert resumed.of("run_start")[0]["run_id"] != killed


# -- runbook rollback ----------------------------------------------------------------------------

def test_rollback_of_a_successful_run_undoes_it_in_reverse_order_per_host(cli: Cli,
                                                                          folder: Path) -> None:
    (folder / "go").touch()
    done = cli("run", "rb.yml", "-i", "inventory.yml", "-o", "json")
    assert done.code == 0
    versions = {h: version(folder, h) for h in HOSTS}
    # --host: only that host
    only = cli("rollback", run_id(done), "--host", "h2", "-o", "json")
    assert only.code == 0, only
    assert only.of("run_end")[0]["status"] == "rolled_back"
    assert undone(only, "h2") == ["configure", "gate", "install", "version"]
    assert undone(only, "h1") == [] and log(folder, "h1")[-1].startswith("final")
    assert log(folder, "h2")[-4:] == ["undo configure", "undo gate",
                                      f"undo install {versions['h2']}",
                                      f"undo version {versions['h2']}"]
    assert only.of("run_start")[0]["hosts"] == ["h2"]
    # every host
    everything = cli("rollback", run_id(done), "-o", "json")
    assert everything.code == 0, everything
    for host in ("h1", "h3"):
        assert undone(everything, host) == ["configure", "gate", "install", "version"]
        assert log(folder, host)[-1] == f"undo version {versions[host]}"
    rollback_id = run_id(everything)
    history = json.loads(cli("history", "--output=json").stdout)
    record = next(r for r in history if r["run_id"] == rollback_id)
    assert record["parent_kind"] == "rollback" and record["resumed_from"] == run_id(done)
    assert record["status"] == "rolled_back" and record["exit_code"] == 0
    assert f"rollback of {run_id(done)}" in cli("history").stdout
    assert "undoes   run" in cli("show", rollback_id).stdout


def test_a_second_rollback_has_nothing_to_roll_back(cli: Cli, folder: Path) -> None:
    (folder / "go").touch()
    done = cli("run", "rb.yml", "-i", "inventory.yml", "-o", "json")
    assert cli("rollback", run_id(done), "--host", "h1").code == 0
    rest = cli("rollback", run_id(done), "-o", "json")
    assert rest.code == 0
    assert undone(rest, "h1") == [], "h1 was undone twice"
    again = cli("rollback", run_id(done))
    assert again.code == 2, again
    assert "has nothing to roll back" in again.stderr
    assert log(folder, "h1").count("undo gate") == 1


def test_rollback_with_nothing_to_undo_exits_2(cli: Cli, folder: Path) -> None:
    (folder / "plain.yml").write_text("name: plain\nhosts: all\nsteps:\n  - shell: 'true'\n")
    done = cli("run", "plain.yml", "-i", "inventory.yml", "-o", "json")
    assert done.code == 0
    nothing = cli("rollback", run_id(done))
    assert nothing.code == 2
    assert f"run {run_id(done)} has nothing to roll back" in nothing.stderr


def test_rollback_of_a_rolled_back_run_has_nothing_to_do(cli: Cli, folder: Path) -> None:
    (folder / "go").touch()
    for host in HOSTS:
        (folder / f"fail-configure-{host}").touch()
    failed = cli("run", "rb.yml", "-i", "inventory.yml", "-o", "json")
    assert failed.code == 1
    again = cli("rollback", run_id(failed))
    assert again.code == 2 and "nothing to roll back" in again.stderr


def test_a_failing_rollback_step_exits_3(cli: Cli, folder: Path) -> None:
    (folder / "go").touch()
    done = cli("run", "rb.yml", "-i", "inventory.yml", "-o", "json")
    assert done.code == 0
    # the runbook now has an undo that fails: rollback reruns it from the file
    (folder / "rb.yml").write_text(RUNBOOK.replace("echo 'undo gate'", "exit 5; echo"))
    result = cli("rollback", run_id(done), "--host", "h1", "--force", "-o", "json")
    assert result.code == 3, result
    assert result.of("run_end")[0]["status"] == "rollback_failed"
    steps = result.of("rollback_step", host="h1")
    assert [(e["undoes"], e["status"]) for e in steps] == [
        ("configure", "changed"), ("gate", "failed"), ("install", "changed"),
        ("version", "changed")]                  # a failed undo does not stop the others


def test_rollback_after_a_resume_undoes_restored_steps_too(cli: Cli, folder: Path) -> None:
    killed = kill_at_gate(cli)
    before = version(folder)
    (folder / "go").touch()
    resumed = cli("resume", killed, "-o", "json")
    assert resumed.code == 0
    undo = cli("rollback", run_id(resumed), "--host", "h1", "-o", "json")
    assert undo.code == 0, undo
    assert undone(undo) == ["configure", "gate", "install", "version"]
    assert log(folder)[-2:] == [f"undo install {before}", f"undo version {before}"]


MID_ROLLBACK = """\
name: mid rollback
steps:
  - id: a
    shell: "echo a >> log"
    rollback:
      id: undo-a
      shell: "while [ ! -e go-undo ]; do sleep 0.02; done; echo undo-a >> log"
  - id: b
    shell: "echo b >> log; touch b-done"
    rollback:
      id: undo-b
      shell: "echo undo-b >> log; rm b-done"
  - id: c
    shell: "test ! -e fail-c && echo c >> log"
"""


def test_resume_of_a_run_killed_during_its_rollback(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "mid.yml").write_text(MID_ROLLBACK)
    (tmp_path / "fail-c").touch()
    run = cli.start("run", "mid.yml", "-o", "json")
    run.wait_for(lambda e: e["event"] == "step_start" and e["step"] == "undo-a")
    time.sleep(0.3)                     # its command has started
    run.proc.send_signal(signal.SIGKILL)
    run.proc.wait()
    killed = run.events[0]["run_id"]
    (tmp_path / "go-undo").touch()      # the undo of 'a' left behind finishes
    deadline = time.monotonic() + 10
    while "undo-a" not in (tmp_path / "log").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert (tmp_path / "log").read_text().split() == ["a", "b", "undo-b", "undo-a"]
    (tmp_path / "fail-c").unlink()
    assert cli("unlock", "--run", killed).code == 0
    resumed = cli("resume", killed, "-o", "json")
    # either the resume redoes what was undone, or it refuses and asks for a human
    if resumed.code == 0:
        assert (tmp_path / "b-done").exists(), "resume ended OK but step b is undone"
        assert (tmp_path / "log").read_text().split()[-3:] == ["a", "b", "c"]
    else:
        assert resumed.code in (2, 3), resumed


def test_resume_keeps_start_at(cli: Cli, folder: Path) -> None:
    (folder / "go").touch()
    (folder / "fail-configure-h1").touch()
    failed = cli("run", "rb.yml", "-i", "inventory.yml", "--limit", "h1", "--start-at",
                 "gate", "--no-rollback", "-o", "json")
    assert failed.code == 1
    assert statuses(failed) == {"gate": "changed", "configure": "failed"}
    (folder / "fail-configure-h1").unlink()
    resumed = cli("resume", run_id(failed), "-o", "json")
    assert resumed.code in (0, 1), resumed
    assert "version" not in statuses(resumed) and "install" not in statuses(resumed)
