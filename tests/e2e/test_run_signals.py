"""Ctrl-C and SIGTERM on a real `runbook run`: no new step, a grace period for the
running command, the rollback of what completed, exit 130; a second Ctrl-C ends it
at once."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.e2e.clitools import Cli

pytestmark = pytest.mark.timeout(60)

RUNBOOK = """\
name: slow deploy
steps:
  - id: one
    name: step one
    shell: touch one
    rollback:
      shell: "{undo_one}"
  - id: two
    name: step two
    shell: touch two
    rollback:
      shell: "{undo_two}"
  - id: three
    name: step three
    shell: "touch three-started; sleep 30; touch three-done"
  - id: four
    name: step four
    shell: touch four
"""


def write(folder: Path, undo_one: str = "rm one", undo_two: str = "rm two") -> None:
    (folder / "slow.yml").write_text(RUNBOOK.format(undo_one=undo_one, undo_two=undo_two))


def step_started(step: str, phase: str = "steps"):
    return lambda e: e["event"] == "step_start" and e["step"] == step and e["phase"] == phase


@pytest.mark.parametrize("sig, name", [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")])
def test_interrupt_rolls_back_completed_steps_and_exits_130(cli: Cli, tmp_path: Path,
                                                            sig: int, name: str) -> None:
    write(tmp_path)
    run = cli.start("run", "slow.yml", "-o", "json", "--grace", "0.3s")
    run.wait_for(step_started("three"))
    assert (tmp_path / "one").exists() and (tmp_path / "two").exists()
    sent = time.monotonic()
    run.send(sig)
    result = run.finish()
    assert time.monotonic() - sent < 10           # not the 30 s of the running command
    assert result.code == 130, result
    trail = [t for t in result.trail() if t[0] != "step_start"]
    after_three = trail[trail.index(("step_end", "localhost", "three", "steps", "failed")):]
    assert after_three == [
        ("step_end", "localhost", "three", "steps", "failed"),
        ("rollback_start", "localhost"),
        ("step_end", "localhost", "undo-two", "rollback", "changed"),
        ("rollback_step", "localhost", "undo-two", "two", "changed"),
        ("step_end", "localhost", "undo-one", "rollback", "changed"),
        ("rollback_step", "localhost", "undo-one", "one", "changed"),
        ("rollback_end", "localhost"),
        ("run_end", "interrupted", 130),
    ]
    assert not result.of("step_start", step="four")
    assert result.of("rollback_start")[0]["reason"] == f"interrupted by {name}"
    assert not (tmp_path / "one").exists() and not (tmp_path / "two").exists()
    assert not (tmp_path / "three-done").exists()
    assert not (tmp_path / "four").exists()
    assert f"{name}: no new step will start" in result.stderr
    assert "RECAP  slow deploy  INTERRUPTED  exit 130" in result.stderr


def test_grace_period_lets_the_running_command_finish(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "short.yml").write_text("""\
name: short
steps:
  - id: one
    shell: touch one
    rollback: {shell: rm one}
  - id: two
    shell: "touch two-started; sleep 0.5; touch two-done"
  - id: three
    shell: touch three
""")
    run = cli.start("run", "short.yml", "-o", "json", "--grace", "5s")
    run.wait_for(step_started("two"))
    run.send(signal.SIGINT)
    result = run.finish()
    assert result.code == 130
    assert (tmp_path / "two-done").exists()       # finished within the grace period
    assert result.of("step_end", step="two")[0]["status"] == "changed"
    assert not (tmp_path / "three").exists()      # but nothing new started
    assert not (tmp_path / "one").exists()        # and step one was rolled back


def test_interrupt_with_no_rollback(cli: Cli, tmp_path: Path) -> None:
    write(tmp_path)
    run = cli.start("run", "slow.yml", "-o", "json", "--grace", "0.2s", "--no-rollback")
    run.wait_for(step_started("three"))
    run.send(signal.SIGINT)
    result = run.finish()
    assert result.code == 130
    assert result.of("rollback_start") == []
    assert (tmp_path / "one").exists() and (tmp_path / "two").exists()


def test_second_interrupt_during_a_slow_rollback_ends_at_once(cli: Cli, tmp_path: Path) -> None:
    write(tmp_path, undo_two="touch undo-two-started; sleep 30; rm two")
    run = cli.start("run", "slow.yml", "-o", "json", "--grace", "0.2s")
    run.wait_for(step_started("three"))
    run.send(signal.SIGINT)
    run.wait_for(step_started("undo-two", "rollback"))
    deadline = time.monotonic() + 5
    while not (tmp_path / "undo-two-started").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    sent = time.monotonic()
    run.send(signal.SIGINT)
    result = run.finish(timeout=15)
    assert time.monotonic() - sent < 5, result
    assert "again: stopping now, without rollback" in result.stderr
    # the rollback stopped where it was: step one was never undone
    assert not result.of("step_start", step="undo-one")
    assert (tmp_path / "one").exists()
    assert (tmp_path / "two").exists()
    (end,) = result.of("rollback_end")
    assert end["ok"] is False
    # what the code does: an unfinished rollback ends with exit 3 (needs a human)
    assert result.code == 3, result
    assert result.events[-1]["status"] == "rollback_failed"


def test_grace_timer_does_not_kill_the_rollback(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "grace.yml").write_text("""\
name: grace
steps:
  - id: one
    shell: touch one
    rollback: {shell: "sleep 1.2; rm one"}
  - id: two
    shell: "sleep 0.2; touch two-done"
  - id: three
    shell: touch three
""")
    run = cli.start("run", "grace.yml", "-o", "json", "--grace", "0.8s")
    run.wait_for(step_started("two"))
    run.send(signal.SIGINT)
    result = run.finish()
    assert result.of("rollback_step")[0]["status"] == "changed"
    assert not (tmp_path / "one").exists()
    assert result.code == 130
