"""`runbook run --dry-run` changes nothing on any target, whatever the step types, and
says for each step what it would do or that it cannot be simulated."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.clitools import Cli, tree_digest

EVERYTHING = """\
name: everything
hosts: all
params:
  root: {type: str, required: true}
vars:
  here: "{{ root }}/{{ inventory_hostname }}"
steps:
  - {id: mkdir, file: {path: "{{ here }}/new", state: directory}}
  - {id: touch, file: {path: "{{ here }}/touched", state: touch}}
  - {id: remove, file: {path: "{{ here }}/old.txt", state: absent}}
  - {id: chmod, file: {path: "{{ here }}/keep.txt", mode: "0600"}}
  - {id: link, file: {path: "{{ here }}/link", src: "{{ here }}/keep.txt", state: link}}
  - {id: copy, copy: {dest: "{{ here }}/keep.txt", content: "changed\\n"}, register: copied}
  - {id: copy_src, copy: {dest: "{{ here }}/from-src.txt", src: files/source.txt}}
  - {id: template, template: {src: files/app.conf.j2, dest: "{{ here }}/app.conf"}}
  - {id: guarded, shell: "touch {{ here }}/guarded", args: {creates: "{{ here }}/guarded"}}
  - {id: arbitrary, shell: "rm -rf {{ here }}"}
  - {id: argv, command: ["rm", "-f", "{{ here }}/keep.txt"]}
  - {id: script, script: files/wipe.sh}
  - {id: reader, shell: "cat {{ here }}/keep.txt", args: {check_mode_safe: true},
     register: content}
  - {id: fetch, fetch: {src: "{{ here }}/keep.txt", dest: "{{ root }}/fetched/"}}
  - {id: wait, wait_for: {path: "{{ here }}/keep.txt", timeout: 1}}
  - {id: facts, set: {seen: "{{ content.stdout }}"}}
  - {id: verify, assert: {that: "seen == 'original'"}}
  - {id: say, log: "would restart: {{ copied.changed }}"}
  - {id: restart, shell: "touch {{ here }}/restarted", args: {removes: "{{ here }}/keep.txt"},
     when: copied.changed}
"""


@pytest.fixture
def target(tmp_path: Path, inventory) -> Path:
    inventory(["h1", "h2"])
    (tmp_path / "everything.yml").write_text(EVERYTHING)
    files = tmp_path / "files"
    files.mkdir()
    (files / "source.txt").write_text("from source\n")
    (files / "app.conf.j2").write_text("host={{ inventory_hostname }}\n")
    (files / "wipe.sh").write_text("#!/bin/sh\nrm -rf \"$HOME/nothing\"\n")
    root = tmp_path / "root"
    for host in ("h1", "h2"):
        here = root / host
        here.mkdir(parents=True)
        (here / "old.txt").write_text("old\n")
        (here / "keep.txt").write_text("original")
        (here / "keep.txt").chmod(0o644)
    return root


def test_dry_run_changes_no_file(cli: Cli, tmp_path: Path, target: Path) -> None:
    before = tree_digest(tmp_path)
    result = cli("run", "everything.yml", "-i", "inventory.yml", "-e", f"root={target}",
                 "--dry-run", "--diff", "-o", "json")
    after = tree_digest(tmp_path)

    def without_state(tree: dict[str, str]) -> dict[str, str]:   # the journal's own files
        return {k: v for k, v in tree.items() if not k.startswith(".state")}
    assert without_state(after) == without_state(before), result
    assert result.code == 0, result
    assert len(before) > 12


def test_dry_run_says_what_each_step_would_do(cli: Cli, target: Path) -> None:
    result = cli("run", "everything.yml", "-i", "inventory.yml", "-e", f"root={target}",
                 "--dry-run", "--diff", "-o", "json")
    ends = {e["step"]: e for e in result.of("step_end", host="h1")}
    here = f"{target}/h1"
    simulated = {"mkdir": [f"create directory {here}/new"],
                 "touch": [f"create empty file {here}/touched"],
                 "remove": [f"remove {here}/old.txt"],
                 "chmod": [f"mode of {here}/keep.txt 0644 -> 0600"],
                 "link": [f"link {here}/link -> {here}/keep.txt"],
                 "copy": [f"update content of {here}/keep.txt"],
                 "copy_src": [f"create {here}/from-src.txt (12 bytes)"],
                 "template": [f"create {here}/app.conf (8 bytes)"],
                 "guarded": [f"would run: touch {here}/guarded"],
                 "restart": [f"would run: touch {here}/restarted"]}
    for step, changes in simulated.items():
        assert (ends[step]["status"], ends[step]["changes"]) == ("simulated", changes), step
    for step in ("arbitrary", "argv", "script"):
        assert ends[step]["status"] == "unsimulated", step
        assert "cannot be simulated" in ends[step]["msg"]
    assert ends["reader"]["status"] in ("ok", "changed")       # it only reads: it ran
    assert ends["reader"]["result"]["stdout"] == "original"
    assert ends["fetch"]["status"] == "simulated"
    assert ends["wait"]["status"] == "simulated"
    assert ends["facts"]["status"] == "ok" and ends["verify"]["status"] == "ok"
    assert "+changed" in ends["copy"]["diff"] and "-original" in ends["copy"]["diff"]
    assert "+host=h1" in ends["template"]["diff"]
    assert ends["restart"]["note"] == "condition uses simulated result(s): copied"
    (log,) = result.of("log", host="h1")
    assert log["msg"] == "would restart: True"
    hosts = result.events[-1]["hosts"]
    assert (hosts["h1"]["simulated"], hosts["h1"]["unsimulated"]) == (12, 3)
    assert result.events[-1]["dry_run"] is True


def test_dry_run_recap_counts(cli: Cli, target: Path) -> None:
    result = cli("run", "everything.yml", "-i", "inventory.yml", "-e", f"root={target}",
                 "--dry-run")
    assert result.code == 0, result
    assert "dry run: 24 step(s) simulated, 6 could not be simulated; nothing was changed" \
        in result.stdout
    assert "(condition uses simulated result(s): copied)" in result.stdout


def test_real_run_of_the_same_runbook_does_change(cli: Cli, tmp_path: Path,
                                                   target: Path) -> None:
    """The control experiment: the dry-run test would notice changes."""
    (tmp_path / "everything.yml").write_text(EVERYTHING.split("  - {id: arbitrary")[0])
    before = tree_digest(target)
    result = cli("run", "everything.yml", "-i", "inventory.yml", "-e", f"root={target}")
    assert result.code == 0, result
    assert tree_digest(target) != before
    assert (target / "h1" / "keep.txt").read_text() == "changed\n"
    assert (target / "h2" / "app.conf").read_text() == "host=h2\n"
