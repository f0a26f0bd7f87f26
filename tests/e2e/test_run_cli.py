"""`runbook run` end to end on the local machine: the "done when" scenario (a deploy
that fails at step 4 of 6 and rolls back 3, 2, 1), its dry run, exit codes, the JSON
event stream and the recap."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.clitools import EVENT_KINDS, Cli, tree_digest

DEPLOY = """\
name: deploy app
description: deploy a release into a local folder
params:
  root: {type: str, required: true}
  version: {type: str, default: "2.0"}
vars:
  release: "{{ root }}/releases/{{ version }}"
steps:
  - id: release_dir
    name: create release dir
    file: {path: "{{ release }}", state: directory}
    rollback:
      file: {path: "{{ release }}", state: absent}
  - id: config
    name: write config
    copy:
      dest: "{{ root }}/app.conf"
      content: "version={{ version }}\\n"
    rollback:
      copy:
        dest: "{{ root }}/app.conf"
        content: "version=1.0\\n"
  - id: link
    name: switch current
    file: {path: "{{ root }}/current", src: "{{ release }}", state: link}
    rollback:
      file: {path: "{{ root }}/current", state: absent}
  - id: migrate
    name: run migrations
    shell: "echo migrating; echo 'ERROR: table users is locked' >&2; exit 3"
  - id: restart
    name: restart service
    shell: "touch {{ root }}/restarted"
  - id: health
    name: health check
    shell: "test -f {{ root }}/restarted"
"""

STEPS = ["release_dir", "config", "link", "migrate"]
NAMES = {"release_dir": "create release dir", "config": "write config",
         "link": "switch current", "migrate": "run migrations"}


def loc_of(text: str, needle: str) -> str:
    """``line:col`` of the step whose first key line contains ``needle``."""
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return f"{number}:{line.index('-') + 3}"
    raise AssertionError(needle)


@pytest.fixture
def deploy(tmp_path: Path) -> Path:
    (tmp_path / "deploy.yml").write_text(DEPLOY)
    root = tmp_path / "root"
    (root / "releases" / "1.0").mkdir(parents=True)
    (root / "app.conf").write_text("version=1.0\n")
    return root


def plain_story(stdout: str) -> list[tuple[str, ...]]:
    """What the plain output says, line by line, without times and paths."""
    story: list[tuple[str, ...]] = []
    for line in stdout.splitlines():
        if m := re.match(r"▶ (?:(\w+): )?(.+?)  \(", line):
            story.append(("step", m.group(2)) if not m.group(1) else ("step", m.group(1),
                                                                       m.group(2)))
        elif m := re.match(r"  (ok|changed|FAILED|skipped|would|can't simulate)\s+(\S+)", line):
            story.append((m.group(1), m.group(2)))
        elif m := re.match(r"↺ rollback (\S+) \((\d+) steps?, newest first\)", line):
            story.append(("rollback", m.group(1), m.group(2)))
        elif m := re.match(r"  (undone|UNDO FAILED)\s+(\S+)\s.*\(undoes '(.+)'\)", line):
            story.append((m.group(1), m.group(2), m.group(3)))
        elif m := re.match(r"↺ rollback of (\S+) (complete|INCOMPLETE)", line):
            story.append(("rollback " + m.group(2), m.group(1)))
        elif line.startswith("RECAP"):
            story.append(("RECAP",))
    return story


def recap_rows(stdout: str) -> dict[str, dict[str, str]]:
    """The recap table: host -> column -> value."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("RECAP"))
    header = lines[start + 1].split()
    assert header[0] == "host" and header[-1] == "status"
    rows = {}
    for line in lines[start + 2:]:
        cells = line.split()
        if len(cells) != len(header):
            break
        rows[cells[0]] = dict(zip(header[1:], cells[1:]))
    return rows


# -- the "done when" scenario --------------------------------------------------------

def test_done_when_plain_output(cli: Cli, deploy: Path) -> None:
    result = cli("run", "deploy.yml", "-e", f"root={deploy}")
    assert result.code == 1, result
    assert plain_story(result.stdout) == [
        ("step", "create release dir"), ("changed", "localhost"),
        ("step", "write config"), ("changed", "localhost"),
        ("step", "switch current"), ("changed", "localhost"),
        ("step", "run migrations"), ("FAILED", "localhost"),
        ("rollback", "localhost", "3"),
        ("undone", "localhost", "switch current"),
        ("undone", "localhost", "write config"),
        ("undone", "localhost", "create release dir"),
        ("rollback complete", "localhost"),
        ("RECAP",),
    ]
    assert "restart service" not in result.stdout
    assert "health check" not in result.stdout


def test_done_when_recap(cli: Cli, deploy: Path) -> None:
    result = cli("run", "deploy.yml", "-e", f"root={deploy}")
    out = result.stdout
    recap = out[out.index("RECAP"):]
    assert re.match(r"RECAP  deploy app  FAILED, ROLLED BACK  exit 1  ", recap)
    assert recap_rows(out) == {"localhost": {
        "ok": "0", "changed": "3", "failed": "1", "skipped": "0", "retried": "0",
        "rolled_back": "3", "unreachable": "0", "status": "rolled_back"}}
    failure = recap[recap.index("FAILED: "):].splitlines()
    where = loc_of(DEPLOY, "- id: migrate")
    assert failure[0] == f"FAILED: localhost at step 'run migrations' (deploy.yml:{where})"
    assert "  exit code 3" in failure
    assert ("  command:   echo migrating; echo 'ERROR: table users is locked' >&2; exit 3"
            in failure)
    tail = failure.index("  last output:")
    assert failure[tail + 1] == "    | ERROR: table users is locked"
    assert failure[-1] == ("rolled back on localhost: 'switch current', 'write config', "
                           "'create release dir'")


def test_done_when_json_events(cli: Cli, deploy: Path) -> None:
    result = cli("run", "deploy.yml", "-e", f"root={deploy}", "--output", "json")
    assert result.code == 1
    h = "localhost"
    expected = [("run_start",)]
    for step in STEPS:
        expected.append(("step_start", h, step, "steps"))
        expected.append(("step_end", h, step, "steps",
                         "failed" if step == "migrate" else "changed"))
    expected.append(("rollback_start", h))
    for undone in ("link", "config", "release_dir"):
        expected += [("step_start", h, f"undo-{undone}", "rollback"),
                     ("step_end", h, f"undo-{undone}", "rollback", "changed"),
                     ("rollback_step", h, f"undo-{undone}", undone, "changed")]
    expected += [("rollback_end", h), ("run_end", "rolled_back", 1)]
    assert result.trail() == expected
    start = result.events[0]
    assert (start["runbook"], start["hosts"], start["dry_run"]) == ("deploy app", ["localhost"],
                                                                   False)
    assert start["params"] == {"root": str(deploy), "version": "2.0"}
    failed = result.of("step_end", step="migrate")[0]
    assert failed["rc"] == 3
    assert failed["command"].endswith("exit 3")
    assert failed["stderr_tail"] == "ERROR: table users is locked"
    assert failed["name"] == "run migrations"
    assert failed["loc"] == "deploy.yml:" + loc_of(DEPLOY, "- id: migrate")
    (rollback_start,) = result.of("rollback_start")
    assert rollback_start["steps"] == 3
    assert [e["undoes_name"] for e in result.of("rollback_step")] == [
        "switch current", "write config", "create release dir"]
    (rollback_end,) = result.of("rollback_end")
    assert (rollback_end["ok"], rollback_end["rolled_back"], rollback_end["failed"]) == \
        (True, 3, 0)
    end = result.events[-1]
    assert end["failures"][0]["step"] == "migrate"
    assert end["failures"][0]["rc"] == 3
    assert end["hosts"][h]["rolled_back"] == 3 and end["hosts"][h]["status"] == "rolled_back"


def test_done_when_leaves_the_target_as_it_was(cli: Cli, deploy: Path) -> None:
    before = tree_digest(deploy)
    result = cli("run", "deploy.yml", "-e", f"root={deploy}")
    assert result.code == 1
    after = tree_digest(deploy)
    assert not (deploy / "releases" / "2.0").exists()
    assert not (deploy / "current").is_symlink()
    assert not (deploy / "restarted").exists()
    assert (deploy / "app.conf").read_text() == "version=1.0\n"
    assert {k: v.rsplit(" ", 1)[0] for k, v in after.items()} == \
        {k: v.rsplit(" ", 1)[0] for k, v in before.items()}


def test_done_when_dry_run_changes_nothing_and_says_what_it_would_do(
        cli: Cli, deploy: Path) -> None:
    before = tree_digest(deploy)
    result = cli("run", "deploy.yml", "-e", f"root={deploy}", "--dry-run", "--diff")
    assert tree_digest(deploy) == before
    assert result.code == 0, result
    out = result.stdout
    assert "DRY RUN (nothing will be changed)" in out.splitlines()[0]
    assert plain_story(out) == [
        ("step", "create release dir"), ("would", "localhost"),
        ("step", "write config"), ("would", "localhost"),
        ("step", "switch current"), ("would", "localhost"),
        ("step", "run migrations"), ("can't simulate", "localhost"),
        ("step", "restart service"), ("can't simulate", "localhost"),
        ("step", "health check"), ("can't simulate", "localhost"),
        ("RECAP",),
    ]
    assert f"create directory {deploy}/releases/2.0" in out
    assert f"update content of {deploy}/app.conf" in out
    assert f"link {deploy}/current -> {deploy}/releases/2.0" in out
    assert "-version=1.0" in out and "+version=2.0" in out
    assert "cannot be simulated" in out
    assert re.search(r"RECAP  deploy app \(dry run\)  OK  exit 0", out)
    assert "dry run: 3 step(s) simulated, 3 could not be simulated; nothing was changed" in out
    rows = recap_rows(out)
    assert (rows["localhost"]["simulated"], rows["localhost"]["unsimulated"]) == ("3", "3")


def test_done_when_dry_run_json(cli: Cli, deploy: Path) -> None:
    before = tree_digest(deploy)
    result = cli("run", "deploy.yml", "-e", f"root={deploy}", "--dry-run", "-o", "json")
    assert tree_digest(deploy) == before
    statuses = [(e["step"], e["status"], e["changed"]) for e in result.of("step_end")]
    assert statuses == [("release_dir", "simulated", True), ("config", "simulated", True),
                        ("link", "simulated", True), ("migrate", "unsimulated", False),
                        ("restart", "unsimulated", False), ("health", "unsimulated", False)]
    config = result.of("step_end", step="config")[0]
    assert config["changes"] == [f"update content of {deploy}/app.conf"]
    assert result.events[0]["dry_run"] is True
    end = result.events[-1]
    assert (end["dry_run"], end["exit_code"], end["status"]) == (True, 0, "ok")
    assert (end["hosts"]["localhost"]["simulated"],
            end["hosts"]["localhost"]["unsimulated"]) == (3, 3)
    assert result.of("rollback_start") == []


# -- JSON output as an interface -------------------------------------------------------

def test_json_output_is_only_json_on_stdout_and_human_output_on_stderr(
        cli: Cli, deploy: Path) -> None:
    result = cli("run", "deploy.yml", "-e", f"root={deploy}", "-o", "json")
    assert result.events                           # parse_events checked every line
    assert {e["event"] for e in result.events} <= EVENT_KINDS
    assert result.events[0]["event"] == "run_start"
    assert result.events[-1]["event"] == "run_end"
    assert len({e["run_id"] for e in result.events}) == 1
    assert "RECAP" in result.stderr
    assert "▶ run migrations" in result.stderr
    for event in result.of("step_start") + result.of("step_end"):
        assert {"host", "step", "name", "phase", "loc", "ts"} <= set(event)
    for event in result.of("step_end"):
        assert isinstance(event["changed"], bool)
        assert isinstance(event["duration"], float) and event["duration"] >= 0
        assert event["status"] in ("ok", "changed", "failed", "skipped", "unreachable",
                                   "simulated", "unsimulated")
        assert event["attempts"] >= 1


# -- exit codes ------------------------------------------------------------------------

def test_exit_0_when_everything_is_ok(inproc, tmp_path: Path) -> None:
    (tmp_path / "ok.yml").write_text(
        "name: ok\nsteps:\n  - shell: touch made\n  - file: {path: made, state: file}\n")
    result = inproc("run", "ok.yml")
    assert result.code == 0, result
    assert (tmp_path / "made").exists()
    assert re.search(r"RECAP  ok  OK  exit 0", result.stdout)


@pytest.mark.parametrize("runbook, extra, message", [
    ("name: bad\nsteps:\n  - shell: touch made\n  - shel: oops\n", (),
     "unknown action 'shel'"),
    ("name: bad\nparams:\n  n: {type: int, required: true}\nsteps:\n  - shell: touch made\n",
     (), "missing required param 'n'"),
    ("name: bad\nparams:\n  n: {type: int}\nsteps:\n  - shell: touch made\n",
     ("-e", "n=many"), "param 'n'"),
    ("name: bad\nsteps:\n  - shell: touch made\n", ("-e", "unknown=1"), "unknown param"),
    ("name: bad\nhosts: web\nsteps:\n  - shell: touch made\n", ("-i", "inv.yml"), "web"),
    ("name: bad\nsteps:\n  - shell: touch made\n", ("-i", "broken.yml"), "broken.yml"),
    ("name: bad\nsteps:\n  - shell: touch made\n", ("--start-at", "nope"), "--start-at"),
    ("name: bad\nsteps:\n  - shell: touch made\n", ("--grace", "soon"), "--grace"),
    ("name: bad\nsteps:\n  - shell: touch made\n", ("--forks", "0"), "forks"),
])
def test_exit_2_for_invalid_input_and_nothing_runs(inproc, tmp_path: Path, runbook: str,
                                                   extra: tuple[str, ...],
                                                   message: str) -> None:
    (tmp_path / "rb.yml").write_text(runbook)
    (tmp_path / "inv.yml").write_text("all:\n  hosts:\n    h1: {connection: local}\n")
    (tmp_path / "broken.yml").write_text("all:\n  hosts:\n    h1: {connection: telepathy}\n")
    result = inproc("run", "rb.yml", *extra)
    assert result.code == 2, result
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "made").exists()


def test_exit_2_points_at_the_line(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "rb.yml").write_text("name: bad\nsteps:\n  - shell: ok\n  - shel: oops\n")
    result = cli("run", "rb.yml")
    assert result.stderr.startswith("rb.yml:4:5: error: unknown action 'shel'")
    assert "did you mean 'shell'?" in result.stderr


def test_exit_3_when_a_rollback_step_fails(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "rb.yml").write_text("""\
name: broken undo
steps:
  - id: one
    name: step one
    shell: touch one
    rollback:
      shell: rm one
  - id: two
    name: step two
    shell: touch two
    rollback:
      shell: "echo 'cannot remove two' >&2; exit 5"
  - id: three
    name: step three
    shell: "false"
""")
    result = cli("run", "rb.yml")
    assert result.code == 3, result
    story = plain_story(result.stdout)
    assert story[-4:] == [("UNDO FAILED", "localhost", "step two"),
                          ("undone", "localhost", "step one"),
                          ("rollback INCOMPLETE", "localhost"), ("RECAP",)]
    assert "RECAP  broken undo  ROLLBACK FAILED: NEEDS A HUMAN  exit 3" in result.stdout
    assert "FAILED: exit code 5" in result.stdout
    assert recap_rows(result.stdout)["localhost"]["rollback_failed"] == "1"
    assert not (tmp_path / "one").exists()        # the unwinding went on
    json_result = cli("run", "rb.yml", "-o", "json")
    assert json_result.code == 3
    assert json_result.events[-1]["status"] == "rollback_failed"
    (end,) = json_result.of("rollback_end")
    assert (end["ok"], end["rolled_back"], end["failed"]) == (False, 1, 1)


def test_exit_1_without_rollback_steps(inproc, tmp_path: Path) -> None:
    (tmp_path / "rb.yml").write_text("name: plain\nsteps:\n  - shell: 'exit 4'\n")
    result = inproc("run", "rb.yml", "-o", "json")
    assert result.code == 1
    assert result.events[-1]["status"] == "failed"
    assert "RECAP  plain  FAILED  exit 1" in result.stderr


def test_recap_counts_retries_and_skips(inproc, tmp_path: Path) -> None:
    (tmp_path / "rb.yml").write_text("""\
name: counts
steps:
  - name: flaky
    shell: "test -f marker || { touch marker; exit 1; }"
    retries: 2
    delay: 0.05
  - name: never
    shell: "true"
    when: false
  - name: read
    shell: "cat marker"
    changed_when: false
""")
    result = inproc("run", "rb.yml")
    assert result.code == 0, result
    assert recap_rows(result.stdout)["localhost"] == {
        "ok": "1", "changed": "1", "failed": "0", "skipped": "1", "retried": "1",
        "rolled_back": "0", "unreachable": "0", "status": "ok"}
    assert "retry     localhost  attempt 1/3 failed: exit code 1" in result.stdout


def test_recap_shows_an_unreachable_host(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text("""\
all:
  hosts:
    h1: {connection: local}
    down: {connection: ssh, address: 127.0.0.1, port: 1, user: nobody}
""")
    (tmp_path / "rb.yml").write_text(
        "name: reach\nhosts: all\nsteps:\n  - shell: 'touch {{ inventory_hostname }}'\n")
    result = cli("run", "rb.yml", "-i", "inv.yml")
    assert result.code == 1
    rows = recap_rows(result.stdout)
    assert (rows["down"]["unreachable"], rows["down"]["status"]) == ("1", "unreachable")
    assert rows["h1"]["status"] == "ok"
    assert "UNREACHABLE: down at step" in result.stdout
    assert (tmp_path / "h1").exists()
