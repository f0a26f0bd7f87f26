"""`runbook run` on several local hosts (h1..h5, kept apart by inventory_hostname in
paths) and its options: --forks, serial and max_fail_percentage, --limit, --tags,
--skip-tags, --start-at, --step, -e."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.clitools import Cli, Result

HOSTS = ["h1", "h2", "h3", "h4", "h5"]

FLEET = """\
name: fleet
hosts: all
{extra}
params:
  out: {{type: str, required: true}}
  bad: {{type: str, default: none}}
steps:
  - id: dir
    name: make host dir
    file: {{path: "{{{{ out }}}}/{{{{ inventory_hostname }}}}", state: directory}}
    rollback:
      file: {{path: "{{{{ out }}}}/{{{{ inventory_hostname }}}}", state: absent}}
  - id: work
    name: work
    shell: "sleep {{{{ pause | default(0) }}}}; touch {{{{ out }}}}/{{{{ inventory_hostname }}}}/work"
    vars:
      pause: 0
  - id: maybe_fail
    name: maybe fail
    shell: "test {{{{ inventory_hostname }}}} != {{{{ bad }}}}"
  - id: done
    name: done
    shell: "touch {{{{ out }}}}/{{{{ inventory_hostname }}}}/done"
"""


@pytest.fixture
def fleet(tmp_path: Path, inventory) -> Path:
    inventory(HOSTS)
    out = tmp_path / "out"
    out.mkdir()
    return out


def write_fleet(folder: Path, extra: str = "", pause: float = 0) -> None:
    text = FLEET.format(extra=extra)
    if pause:
        text = text.replace("pause: 0", f"pause: {pause}")
    (folder / "fleet.yml").write_text(text)


def run_fleet(cli, out: Path, *args: str) -> Result:
    """``cli`` is the subprocess runner or the in-process one."""
    return cli("run", "fleet.yml", "-i", "inventory.yml", "-o", "json", "-e", f"out={out}",
               *args)


def present(out: Path, name: str) -> set[str]:
    return {h for h in HOSTS if (out / h / name).exists()}


def peak_concurrency(result: Result, step: str) -> int:
    spans = [(s["ts"], e["ts"]) for s in result.of("step_start", step=step)
             for e in result.of("step_end", step=step, host=s["host"])]
    return max(sum(1 for a, b in spans if a <= start < b) for start, _ in spans)


# -- several hosts ---------------------------------------------------------------------

def test_all_hosts_run_every_step_in_lock_step(cli: Cli, tmp_path: Path, fleet: Path) -> None:
    write_fleet(tmp_path)
    result = run_fleet(cli, fleet)
    assert result.code == 0, result
    assert present(fleet, "done") == set(HOSTS)
    steps = ["dir", "work", "maybe_fail", "done"]
    for earlier, later in zip(steps, steps[1:]):
        last_end = max(i for i, e in enumerate(result.events)
                       if e["event"] == "step_end" and e["step"] == earlier)
        first_start = min(i for i, e in enumerate(result.events)
                          if e["event"] == "step_start" and e["step"] == later)
        assert last_end < first_start
    assert set(result.events[-1]["hosts"]) == set(HOSTS)


@pytest.mark.parametrize("forks, peak", [(None, 5), ("2", 2), ("1", 1)])
def test_forks_bounds_how_many_hosts_run_at_once(cli: Cli, tmp_path: Path, fleet: Path,
                                                 forks: str | None, peak: int) -> None:
    write_fleet(tmp_path, pause=0.2)
    args = ("--forks", forks) if forks else ()
    result = run_fleet(cli, fleet, *args)
    assert result.code == 0, result
    assert peak_concurrency(result, "work") == peak


def test_a_failing_host_is_rolled_back_while_the_others_finish(cli: Cli, tmp_path: Path,
                                                              fleet: Path) -> None:
    write_fleet(tmp_path)
    result = run_fleet(cli, fleet, "-e", "bad=h2")
    assert result.code == 1, result
    assert present(fleet, "done") == {"h1", "h3", "h4", "h5"}
    assert not (fleet / "h2").exists()
    assert [e["host"] for e in result.of("rollback_start")] == ["h2"]
    assert result.events[-1]["hosts"]["h2"]["status"] == "rolled_back"


def test_serial_and_max_fail_percentage_roll_back_batches_newest_first(
        cli: Cli, tmp_path: Path, fleet: Path) -> None:
    write_fleet(tmp_path, "serial: 2\nmax_fail_percentage: 0")
    result = run_fleet(cli, fleet, "-e", "bad=h3")
    assert result.code == 1, result
    assert [e["hosts"] for e in result.of("batch_start")] == [["h1", "h2"], ["h3", "h4"]]
    order = [e["host"] for e in result.of("rollback_start")]
    assert set(order[:2]) == {"h3", "h4"} and set(order[2:]) == {"h1", "h2"}
    assert not any((fleet / h).exists() for h in HOSTS)
    assert result.of("step_start", host="h5") == []
    end = result.events[-1]
    assert end["hosts"]["h5"]["status"] == "not_run"
    assert end["status"] == "rolled_back"
    reasons = {e["host"]: e["reason"] for e in result.of("rollback_start")}
    assert reasons["h1"] == "1 of 2 hosts failed, more than max_fail_percentage 0%"


def test_serial_without_percentage_goes_on_after_a_partly_failed_batch(
        cli: Cli, tmp_path: Path, fleet: Path) -> None:
    write_fleet(tmp_path, "serial: [1, 2]")
    result = run_fleet(cli, fleet, "-e", "bad=h1")
    # batch 1 failed wholly: the run stops there
    assert [e["hosts"] for e in result.of("batch_start")] == [["h1"]]
    assert result.code == 1
    assert present(fleet, "work") == set()
    assert not (fleet / "h1").exists()

    result = run_fleet(cli, fleet, "-e", "bad=h2")
    assert [e["hosts"] for e in result.of("batch_start")] == [["h1"], ["h2", "h3"], ["h4", "h5"]]
    assert present(fleet, "done") == {"h1", "h3", "h4", "h5"}


# -- which hosts, which steps ------------------------------------------------------------

def test_limit(inproc, tmp_path: Path, fleet: Path) -> None:
    write_fleet(tmp_path)
    result = run_fleet(inproc, fleet, "--limit", "h2:h4")
    assert result.code == 0, result
    assert present(fleet, "done") == {"h2", "h4"}
    assert result.events[0]["hosts"] == ["h2", "h4"]
    nothing = run_fleet(inproc, fleet, "--limit", "nobody*")
    assert nothing.code == 2


TAGS = """\
name: tags
steps:
  - {id: a, shell: touch a, tags: [deploy]}
  - {id: b, shell: touch b, tags: [config]}
  - {id: c, shell: touch c, tags: [always]}
  - {id: d, shell: touch d, tags: [never, debug]}
  - {id: e, shell: touch e}
"""


@pytest.mark.parametrize("args, made", [
    ((), "abce"),
    (("--tags", "deploy"), "ac"),
    (("--tags", "deploy,config"), "abc"),
    (("-t", "deploy", "-t", "debug"), "acd"),
    (("--skip-tags", "config"), "ace"),
    (("--skip-tags", "always"), "abe"),
    (("--tags", "debug"), "cd"),
    (("--start-at", "c"), "ce"),
])
def test_tags_skip_tags_and_start_at(inproc, tmp_path: Path, args: tuple[str, ...],
                                     made: str) -> None:
    (tmp_path / "tags.yml").write_text(TAGS)
    result = inproc("run", "tags.yml", *args)
    assert result.code == 0, result
    assert "".join(x for x in "abcde" if (tmp_path / x).exists()) == made


def test_extra_vars(inproc, tmp_path: Path) -> None:
    (tmp_path / "params.yml").write_text("""\
name: params
params:
  name: {type: str, required: true}
  copies: {type: int, default: 1}
  flags: {type: list, default: []}
steps:
  - copy:
      dest: "{{ name }}.txt"
      content: "{{ copies * 2 }} {{ flags | join('+') }}\\n"
""")
    (tmp_path / "more.yml").write_text("copies: 3\n")
    result = inproc("run", "params.yml", "-e", "name=out", "-e", "@more.yml", "-e",
                 '{"flags": ["x", "y"]}')
    assert result.code == 0, result
    assert (tmp_path / "out.txt").read_text() == "6 x+y\n"


# -- --step ------------------------------------------------------------------------------

STEPWISE = """\
name: stepwise
steps:
  - {id: a, name: step a, shell: touch a, rollback: {shell: rm a}}
  - {id: b, name: step b, shell: touch b}
  - {id: c, name: step c, shell: touch c}
  - {id: d, name: step d, shell: touch d}
"""


def made(folder: Path) -> str:
    return "".join(x for x in "abcd" if (folder / x).exists())


@pytest.mark.parametrize("answers, expected, code", [
    ("y\nn\ny\ny\n", "acd", 0),
    ("n\nc\n", "bcd", 0),           # continue: no more questions
    ("y\ny\nq\n", "b", 1),          # quit: the run stops and step a is rolled back
])
def test_step_confirms_each_step_from_stdin(cli: Cli, tmp_path: Path, answers: str,
                                            expected: str, code: int) -> None:
    (tmp_path / "stepwise.yml").write_text(STEPWISE)
    result = cli("run", "stepwise.yml", "--step", input=answers)
    assert made(tmp_path) == expected, result
    assert result.code == code
    assert result.stderr.count("run step '") == len(answers.split())
    assert "run step 'step a' on 1 host(s)?" in result.stderr


def test_step_on_a_terminal(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "stepwise.yml").write_text(STEPWISE)
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(cli.argv(("run", "stepwise.yml", "--step")), cwd=tmp_path,
                            env=cli.env, stdin=secondary, stdout=secondary, stderr=secondary,
                            close_fds=True)
    os.close(secondary)
    seen = b""
    answers = [b"y\r", b"n\r", b"y\r", b"n\r"]
    answered = 0
    deadline = time.monotonic() + 20
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            seen += chunk
            if seen.count(b"[q]uit") > answered and answered < len(answers):
                os.write(primary, answers[answered])
                answered += 1
        proc.wait(timeout=10)
    finally:
        os.close(primary)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, seen.decode(errors="replace")
    assert made(tmp_path) == "ac"
    assert seen.count(b"[q]uit") == 4


def test_start_at_a_rollback_step_is_a_usage_error(inproc, tmp_path: Path) -> None:
    (tmp_path / "stepwise.yml").write_text(STEPWISE)
    result = inproc("run", "stepwise.yml", "--start-at", "undo-a")
    assert made(tmp_path) == ""
    assert result.code == 2


def test_preflight_failure_on_one_host_changes_nothing_anywhere(inproc, tmp_path: Path,
                                                                 fleet: Path) -> None:
    write_fleet(tmp_path)
    text = (tmp_path / "fleet.yml").read_text().replace("steps:\n", """preflight:
  - id: healthy
    name: host is healthy
    shell: "test {{ inventory_hostname }} != {{ bad }}"
steps:
""", 1)
    (tmp_path / "fleet.yml").write_text(text)
    result = run_fleet(inproc, fleet, "-e", "bad=h4")
    assert result.code == 1, result
    assert list(fleet.iterdir()) == []
    assert {e["phase"] for e in result.of("step_start")} == {"preflight"}
    assert len(result.of("step_end", step="healthy")) == 5
    assert result.events[-1]["failures"][0]["host"] == "h4"


def test_retry_and_log_events(inproc, tmp_path: Path) -> None:
    (tmp_path / "events.yml").write_text("""\
name: events
steps:
  - id: flaky
    shell: "test -f marker || { touch marker; echo 'not yet' >&2; exit 1; }"
    retries: 2
    delay: 0.05
    backoff: 2
  - id: say
    log: {msg: "hello {{ inventory_hostname }}", level: warning}
""")
    result = inproc("run", "events.yml", "-o", "json")
    assert result.code == 0, result
    (retry,) = result.of("retry")
    assert (retry["host"], retry["step"], retry["attempt"], retry["attempts"], retry["delay"],
            retry["reason"]) == ("localhost", "flaky", 1, 3, 0.05, "exit code 1")
    (log,) = result.of("log")
    assert (log["host"], log["step"], log["level"], log["msg"]) == (
        "localhost", "say", "warning", "hello localhost")
    flaky = result.of("step_end", step="flaky")[0]
    assert (flaky["attempts"], flaky["status"]) == (2, "changed")
    assert result.events[-1]["hosts"]["localhost"]["retried"] == 1
