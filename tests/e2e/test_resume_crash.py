"""kill -9 of a real ``runbook run`` at random points of a multi-step, multi-host run,
then ``runbook resume``: every run ends in the same state as an uninterrupted one, no
step the journal recorded as completed runs again, the journal stays readable.

The runbook (``RUNBOOK`` below) runs on three local hosts.  Every command first
appends ``<host> <key> <uuid>`` to the host's ledger (``ledger/<host>``), sleeps a few
tens of milliseconds (so kills land inside steps) and then writes its state file
(``state/<host>/<step>``).  Later steps use values registered earlier (``tok``,
``looped``) and a ``set`` variable, so a resume that restored a wrong result would
leave a different state.  Two steps have a rollback, used at the end of some kill
points (``runbook rollback``) to check that the rollback stack survived crash and
resume.

What is allowed: a step that was killed half way (its ``step_start`` is in the journal,
its ``step_end`` is not) runs again on resume, so its ledger line appears twice (a
killed loop runs all its items again).  What is not: a step whose ``step_end``
(ok/changed) was in the journal at the kill running again after resume.

Kill points: a delay after the run's first JSON event, uniform over the duration of an
uninterrupted run (measured first); one point in ten is a delay from the spawn, before
the run starts.  About one kill point in three kills the resume too (once it has
recorded the steps it restores: see test_resume_of_a_resume_killed_while_restoring)
and resumes that resume.  Two kill points run at a time, each with its own folder and
journal (``RUNBOOK_STATE``).  A kill that lands before the run is journaled is followed
by a fresh ``runbook run`` (nothing ran); a kill after the run completed by checking
that ``resume`` refuses it.

A kill of ``runbook`` does not kill the commands it started (they run in their own
sessions): the test waits for those leftovers to finish before resuming, as an
operator would (``RUNBOOK_CRASH_MARK`` in their environment finds them).

Seed: ``RUNBOOK_CRASH_SEED`` (printed; run with ``-s`` to see it), number of kill
points: ``RUNBOOK_CRASH_POINTS`` (default 32).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.clitools import Cli

pytestmark = pytest.mark.timeout(240)

SEED = int(os.environ.get("RUNBOOK_CRASH_SEED") or 20240501)
POINTS = int(os.environ.get("RUNBOOK_CRASH_POINTS") or 32)
HOSTS = ("h1", "h2", "h3")

INVENTORY = "all:\n  hosts:\n" + "".join(f"    {h}: {{connection: local}}\n" for h in HOSTS)


def _mark(key: str) -> str:
    """The ledger line a command writes first: host, key, a fresh uuid."""
    return (f'echo "{{{{ inventory_hostname }}}} {key} $(cat /proc/sys/kernel/random/uuid)" '
            f'>> {{{{ led }}}}')


RUNBOOK = f"""\
name: crash deploy
hosts: all
vars:
  st: "state/{{{{ inventory_hostname }}}}"
  led: "ledger/{{{{ inventory_hostname }}}}"
steps:
  - id: prepare
    name: prepare
    shell: >-
      mkdir -p {{{{ st }}}} ledger && {_mark('prepare')} && sleep 0.03 &&
      echo ready > {{{{ st }}}}/prepare
  - id: token
    name: make a token
    shell: >-
      {_mark('token')} && sleep 0.03 &&
      cat /proc/sys/kernel/random/uuid | tee {{{{ st }}}}/token
    register: tok
  - id: config
    name: write the config
    shell: >-
      {_mark('config')} && sleep 0.04 &&
      echo 'token={{{{ tok.stdout }}}}' > {{{{ st }}}}/config
    rollback:
      id: undo-config
      shell: "rm -f {{{{ st }}}}/config"
  - id: fanout
    name: fan out
    shell: >-
      {_mark('loop-{{ item }}')} && sleep 0.02 &&
      echo {{{{ item }}}} > {{{{ st }}}}/loop-{{{{ item }}}} && echo item-{{{{ item }}}}
    loop: [a, b, c]
    register: looped
  - id: summary
    name: summary
    shell: >-
      {_mark('summary')} && sleep 0.03 &&
      echo '{{{{ looped.results | map(attribute="stdout") | join(",") }}}}' > {{{{ st }}}}/summary
  - id: name-release
    name: name the release
    set:
      release: "r-{{{{ tok.stdout[:8] }}}}-{{{{ looped.results | length }}}}"
  - id: release
    name: release
    shell: >-
      {_mark('release')} && sleep 0.05 && echo '{{{{ release }}}}' > {{{{ st }}}}/release
    rollback:
      id: undo-release
      shell: "rm -f {{{{ st }}}}/release"
  - id: finish
    name: finish
    when: looped.results | length == 3
    shell: >-
      {_mark('finish')} && sleep 0.03 && echo 'done {{{{ release }}}}' > {{{{ st }}}}/finish
"""

#: step id -> the ledger keys its commands write
LEDGER_KEYS = {"prepare": ["prepare"], "token": ["token"], "config": ["config"],
               "fanout": ["loop-a", "loop-b", "loop-c"], "summary": ["summary"],
               "name-release": [], "release": ["release"], "finish": ["finish"]}
STEPS = list(LEDGER_KEYS)
COMPLETED = ("ok", "changed", "restored")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RELEASE = re.compile(r"r-[0-9a-f]{8}-")

_INPROC = threading.Lock()   # the in-process CLI swaps sys.stdout: one at a time


# -- helpers ------------------------------------------------------------------------------

def inproc(state: Path, *argv: str) -> tuple[int, str, str]:
    """``runbook ARGV`` in this process (cheap: show/history/unlock after every kill)."""
    from click.testing import CliRunner

    from engine.cli import main
    env = {"NO_COLOR": "1", "RUNBOOK_STATE": str(state), "FORCE_COLOR": None}
    with _INPROC, CliRunner().isolation(env=env) as (out, err, _):
        code = main(list(argv))
        sys.stdout.flush()
        sys.stderr.flush()
        return int(code or 0), out.getvalue().decode(), err.getvalue().decode()


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The complete JSON lines of a (possibly killed) process's stdout."""
    text = path.read_text() if path.exists() else ""
    lines = text.split("\n")[:-1]    # the last piece has no newline: cut by the kill
    return [json.loads(line) for line in lines if line]


def ledger(folder: Path) -> dict[tuple[str, str], int]:
    """(host, key) -> how many times a command wrote that line."""
    counts: dict[tuple[str, str], int] = {}
    for host in HOSTS:
        path = folder / "ledger" / host
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            name, key, uuid = line.split()
            assert name == host and UUID.fullmatch(uuid), line
            counts[(host, key)] = counts.get((host, key), 0) + 1
    return counts


def state_tree(folder: Path) -> dict[str, str]:
    """Every state file with its content, uuids replaced by <uuid> (check_tokens checks
    that they agree)."""
    root = folder / "state"
    return {str(p.relative_to(root)): RELEASE.sub("r-<uuid>-", UUID.sub("<uuid>", p.read_text()))
            for p in sorted(root.rglob("*")) if p.is_file()}


def check_tokens(folder: Path) -> None:
    """The registered token the later steps used is the one the token step produced."""
    for host in HOSTS:
        st = folder / "state" / host
        token = (st / "token").read_text().strip()
        assert UUID.fullmatch(token)
        assert (st / "config").read_text() == f"token={token}\n"
        assert (st / "release").read_text() == f"r-{token[:8]}-3\n"
        assert (st / "finish").read_text() == f"done r-{token[:8]}-3\n"


def leftovers(mark: bytes) -> list[int]:
    """Processes (commands of a killed run) that carry this environment entry."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if mark in env.split(b"\0"):
            found.append(int(name))
    return found


def wait_leftovers(mark: bytes, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while leftovers(mark):
        assert time.monotonic() < deadline, f"commands of the killed run still running: {mark!r}"
        time.sleep(0.005)


def integrity(db: Path) -> None:
    conn = sqlite3.connect(str(db))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


def run_ids(db: Path) -> list[str]:
    from engine.store.sqlite import SqliteStore
    if not db.exists():
        return []
    with SqliteStore(str(db)) as store:
        return [r.run_id for r in store.list_runs(limit=0)]


def journal(db: Path, run_id: str) -> tuple[Any, list[Any]]:
    from engine.store.sqlite import SqliteStore
    with SqliteStore(str(db)) as store:
        record = store.get_run(run_id)
        return record, store.events(run_id)


def release_all_locks(db: Path) -> None:
    """The killed process's locks (this journal is private to one kill point).  Needed
    because resume does not take over the locks of the dead run it resumes (see
    test_resume_of_a_killed_run_takes_over_its_locks)."""
    from engine.store.sqlite import SqliteStore
    if not db.exists():
        return
    with SqliteStore(str(db)) as store:
        for lock in store.locks():
            store.unlock(lock.name)


# -- one kill point ------------------------------------------------------------------------

@dataclass
class Timing:
    first_event: float   # process start -> run_start on stdout
    run: float           # run_start -> exit


@dataclass
class Point:
    number: int
    seed: int
    folder: Path
    kills: list[str] = field(default_factory=list)     # where each kill landed
    final: str = ""
    reran: int = 0                                      # step executions that ran twice

    @property
    def db(self) -> Path:
        return self.folder / ".state" / "state.db"


class Scenario:
    """One kill point: run, kill -9, check, resume (maybe killed again), ..., compare."""

    def __init__(self, point: Point, timing: Timing, reference: dict[str, str]) -> None:
        self.p = point
        self.rng = random.Random(point.seed)
        self.timing = timing
        self.reference = reference
        self.cli = Cli(point.folder)
        self.mark = f"RUNBOOK_CRASH_MARK={point.folder}".encode()
        self.env = dict(self.cli.env, RUNBOOK_CRASH_MARK=str(point.folder))
        self.known: list[str] = []            # run ids of the chain, oldest first
        self.completed: set[tuple[str, str]] = set()   # (host, step) done per the journal
        self.frozen: dict[tuple[str, str], int] = {}   # ledger counts that may not grow
        self.processes = 0
        self.completed_before: set[tuple[str, str]] = set()

    def where(self) -> str:
        return (f"kill point {self.p.number} (seed {SEED}, point seed {self.p.seed}, "
                f"kills: {self.p.kills})")

    # -- processes
    def spawn(self, *args: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
        self.processes += 1
        out = self.p.folder / f"out-{self.processes}.jsonl"
        err = self.p.folder / f"err-{self.processes}.txt"
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.Popen([sys.executable, "-m", "engine.cli", *args],
                                    cwd=self.p.folder, env=self.env, stdout=o, stderr=e,
                                    stdin=subprocess.DEVNULL)
        return proc, out, err

    def kill_somewhere(self, proc: subprocess.Popen[bytes], out: Path, early: bool,
                       restoring: set[tuple[str, str]] | None = None) -> str:
        """kill -9 at a random moment: before the run starts (early), else inside it.
        A resume (``restoring``: the steps it restores) is killed only once it has
        recorded all of them: killed before, its journal lacks what the run it resumed
        had done (see test_resume_of_a_resume_killed_while_restoring)."""
        started = time.monotonic()
        if early:
            delay = self.rng.uniform(0.5, 1.1) * self.timing.first_event
            time.sleep(max(0.0, delay - (time.monotonic() - started)))
            where = f"{delay:.3f}s after spawn"
        else:
            delay = self.rng.uniform(0.0, 1.02 * self.timing.run)
            while out.stat().st_size == 0 and proc.poll() is None:
                time.sleep(0.002)
            if restoring:
                def restored() -> set[tuple[str, str]]:
                    return {(e["host"], e["step"]) for e in json_lines(out)
                            if e["event"] == "step_end" and e["status"] == "restored"}
                while not restoring <= restored() and proc.poll() is None:
                    time.sleep(0.002)
            time.sleep(delay)
            where = f"{delay:.3f}s after run_start" + (" and its restores" if restoring else "")
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        code = proc.wait()
        lines = json_lines(out)
        last = lines[-1] if lines else {}
        label = f"{where} after {len(lines)} events (last {last.get('event')} " \
                f"{last.get('host', '')} {last.get('step', '')})"
        if code != -signal.SIGKILL:
            label += f", but it had ended with {code}"
        return label

    # -- checks after a process ended (killed or not)
    def after_process(self, out: Path, ledger_before: dict[tuple[str, str], int]) -> str | None:
        """Check the journal of the process that just ended; the run id it recorded."""
        wait_leftovers(self.mark)
        self.completed_before = set(self.completed)
        integrity(self.p.db)
        ids = run_ids(self.p.db)
        new = [i for i in ids if i not in self.known]
        assert len(new) <= 1, (self.where(), new)
        now = ledger(self.p.folder)
        grown = {k: n - ledger_before.get(k, 0) for k, n in now.items()
                 if n > ledger_before.get(k, 0)}
        # a frozen (completed) step never runs again
        for key, count in self.frozen.items():
            assert now.get(key, 0) == count, \
                f"{self.where()}: {key} completed before a kill ran again after resume"
        if not new:
            # nothing reached the journal: then nothing ran either
            assert not grown, f"{self.where()}: steps ran without a journaled run: {grown}"
            return None
        run_id = new[0]
        self.known.append(run_id)
        record, events = journal(self.p.db, run_id)
        assert record is not None
        # every event the process printed was journaled before (the journal is written
        # before the other outputs)
        stored = {(e.kind, e.host, e.step, e.phase, e.status) for e in events}
        for line in json_lines(out):
            if line["event"] in ("step_start", "step_end"):
                key = (line["event"], line["host"], line["step"], line["phase"],
                       line.get("status"))
                assert key in stored, f"{self.where()}: printed but not journaled: {key}"
        # a command ran only after its step_start was durable
        started = {(e.host, e.step) for e in events if e.kind == "step_start"}
        for (host, key), _ in grown.items():
            step = next(s for s, keys in LEDGER_KEYS.items() if key in keys)
            assert (host, step) in started, \
                f"{self.where()}: {host} {key} ran, but no step_start in the journal"
        # seq numbers are 1..n: nothing lost in the middle
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events[0].kind == "run_start"
        # what the journal says completed: its ledger lines are there, and frozen now
        for e in events:
            if e.kind == "step_end" and e.phase == "steps" and e.status in COMPLETED:
                self.completed.add((e.host, e.step))
        for host, step in self.completed:
            for key in LEDGER_KEYS[step]:
                assert now.get((host, key), 0) >= 1, \
                    f"{self.where()}: the journal says {host} {step} completed, no ledger"
                self.frozen.setdefault((host, key), now[(host, key)])
        # the journal reads back through the CLI
        code, text, err = inproc(self.p.db, "show", run_id)
        assert code == 0 and f"run {run_id}" in text and "Traceback" not in err, (text, err)
        code, text, err = inproc(self.p.db, "history", "-o", "json", "-n", "0")
        assert code == 0, err
        assert run_id in {r["run_id"] for r in json.loads(text)}, text
        return run_id

    # -- the whole kill point
    def play(self) -> Point:
        early = self.rng.random() < 0.1
        kill_resume = self.rng.random() < 0.3
        before = ledger(self.p.folder)
        proc, out, _ = self.spawn("run", "deploy.yml", "-i", "inventory.yml", "-o", "json")
        self.p.kills.append("run " + self.kill_somewhere(proc, out, early))
        current = self.after_process(out, before)
        for attempt in range(6):
            release_all_locks(self.p.db)
            before = ledger(self.p.folder)
            if current is None:      # killed before anything was journaled: run again
                args: tuple[str, ...] = ("run", "deploy.yml", "-i", "inventory.yml", "-o",
                                         "json")
            else:
                record, _ = journal(self.p.db, current)
                if record.status == "ok":
                    code, _, err = inproc(self.p.db, "resume", current)
                    assert code == 2 and "nothing to resume" in err, err
                    self.p.final = f"the killed process had completed ({current})"
                    break
                args = ("resume", current, "-o", "json")
            proc, out, err_path = self.spawn(*args)
            if kill_resume and attempt == 0:
                restoring = set(self.completed) if args[0] == "resume" else set()
                self.p.kills.append(f"{args[0]} " +
                                    self.kill_somewhere(proc, out, False, restoring))
                if proc.returncode == -signal.SIGKILL:
                    current = self.after_process(out, before) or current
                    continue
            code = proc.wait(timeout=60)
            ended = self.after_process(out, before)
            assert code == 0, (self.where(), args, err_path.read_text())
            assert ended is not None
            self.final_checks(ended, out)
            self.p.final = f"{args[0]} {ended} ok"
            current = ended
            break
        else:
            raise AssertionError(f"{self.where()}: never completed")
        assert state_tree(self.p.folder) == self.reference, self.where()
        check_tokens(self.p.folder)
        counts = ledger(self.p.folder)
        self.p.reran = sum(n - 1 for n in counts.values())
        assert all(n <= len(self.p.kills) + 1 for n in counts.values()), (self.where(), counts)
        if self.p.number % 4 == 0:
            self.rollback(current)
        return self.p

    def final_checks(self, run_id: str, out: Path) -> None:
        record, events = journal(self.p.db, run_id)
        assert record.status == "ok" and record.exit_code == 0, self.where()
        ends = {(e.host, e.step): e.status for e in events
                if e.kind == "step_end" and e.phase == "steps"}
        assert set(ends) == {(h, s) for h in HOSTS for s in STEPS}, (self.where(), ends)
        before = self.completed_before
        for key, status in ends.items():
            # completed in an earlier process of the chain: restored, not run
            expected = ("restored",) if key in before else ("ok", "changed")
            assert status in expected, (self.where(), key, status)
        assert [e.kind for e in events][-1] == "run_end"
        printed = json_lines(out)
        assert printed[-1]["event"] == "run_end" and printed[-1]["status"] == "ok"

    def rollback(self, run_id: str) -> None:
        """The rollback stack survived the crash and the resume: undo it all."""
        result = self.cli("rollback", run_id, "-o", "json")
        assert result.code == 0, (self.where(), result)
        for host in HOSTS:
            undone = [e["step"] for e in result.of("rollback_step", host=host)]
            assert undone == ["undo-release", "undo-config"], (self.where(), host, undone)
            st = self.p.folder / "state" / host
            assert not (st / "release").exists() and not (st / "config").exists()
            assert (st / "finish").exists()


# -- the test ---------------------------------------------------------------------------------

def _setup(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "deploy.yml").write_text(RUNBOOK)
    (folder / "inventory.yml").write_text(INVENTORY)


def _uninterrupted(folder: Path) -> tuple[Timing, dict[str, str]]:
    _setup(folder)
    cli = Cli(folder)
    start = time.monotonic()
    run = cli.start("run", "deploy.yml", "-i", "inventory.yml", "-o", "json")
    run.wait_for(lambda e: e["event"] == "run_start")
    first = time.monotonic() - start
    result = run.finish()
    total = time.monotonic() - start
    assert result.code == 0, result
    assert result.of("run_end")[0]["status"] == "ok"
    counts = ledger(folder)
    assert counts == {(h, k): 1 for h in HOSTS for keys in LEDGER_KEYS.values() for k in keys}
    check_tokens(folder)
    return Timing(first, total - first), state_tree(folder)


def test_kill_9_at_random_points_then_resume(tmp_path: Path) -> None:
    print(f"\ncrash test seed: {SEED} (replay with RUNBOOK_CRASH_SEED={SEED}), "
          f"{POINTS} kill points")
    started = time.monotonic()
    timing, reference = _uninterrupted(tmp_path / "uninterrupted")
    assert len(reference) == 3 * 9
    rng = random.Random(SEED)
    points = []
    for number in range(POINTS):
        folder = tmp_path / f"kp{number:02d}"
        _setup(folder)
        points.append(Point(number, rng.randrange(2 ** 32), folder))
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(lambda p: Scenario(p, timing, reference).play(), points))
    for p in done:
        print(f"  point {p.number:2d}: {'; '.join(p.kills)} -> {p.final}, "
              f"{p.reran} command(s) ran twice")
    finals = {p.final.split()[0] for p in done}
    print(f"  {len(done)} kill points in {time.monotonic() - started:.1f}s "
          f"(uninterrupted run: {timing.first_event:.2f}s to start, {timing.run:.2f}s run)")
    assert len(done) == POINTS
    assert "resume" in finals    # most kill points land inside the run


def test_resume_of_a_killed_resume(tmp_path: Path) -> None:
    """Deterministic kill points: the run is killed once its JSON output shows a
    step_end of step 'config', its resume once it shows one of 'fanout'; resuming the
    resume restores what both killed processes completed and finishes the work."""
    folder = tmp_path / "chain"
    _setup(folder)
    cli = Cli(folder)
    mark = f"RUNBOOK_CRASH_MARK={folder}".encode()
    cli.env["RUNBOOK_CRASH_MARK"] = str(folder)
    db = folder / ".state" / "state.db"

    run = cli.start("run", "deploy.yml", "-i", "inventory.yml", "-o", "json")
    run.wait_for(lambda e: e["event"] == "step_end" and e["step"] == "config")
    run.proc.send_signal(signal.SIGKILL)
    run.proc.wait()
    first = run.events[0]["run_id"]
    wait_leftovers(mark)
    release_all_locks(db)
    record, events = journal(db, first)
    assert record.status == "running"          # a killed run stays 'running'
    done_first = {(e.host, e.step) for e in events
                  if e.kind == "step_end" and e.status in ("ok", "changed")}
    assert {(h, s) for h in HOSTS for s in ("prepare", "token")} <= done_first
    after_first = ledger(folder)

    resume = cli.start("resume", first, "-o", "json")
    resume.wait_for(lambda e: e["event"] == "step_end" and e["step"] == "fanout")
    resume.proc.send_signal(signal.SIGKILL)
    resume.proc.wait()
    second = resume.events[0]["run_id"]
    wait_leftovers(mark)
    release_all_locks(db)
    record, events = journal(db, second)
    assert record.resumed_from == first and record.parent_kind == "resume"
    done_second = {(e.host, e.step) for e in events
                   if e.kind == "step_end" and e.status in ("ok", "changed", "restored")}
    assert done_first <= done_second
    after_second = ledger(folder)

    final = cli("resume", second, "-o", "json")
    assert final.code == 0, final
    third = final.of("run_start")[0]["run_id"]
    assert journal(db, third)[0].resumed_from == second
    restored = {(e["host"], e["step"]) for e in final.of("step_end", status="restored")}
    assert restored == done_second
    check_tokens(folder)
    counts = ledger(folder)
    for host, step in done_first:       # completed before the first kill: ran once
        for key in LEDGER_KEYS[step]:
            assert counts[(host, key)] == after_first[(host, key)] == 1, (host, key, counts)
    for host, step in done_second:      # completed before the second kill: not again
        for key in LEDGER_KEYS[step]:
            assert counts[(host, key)] == after_second[(host, key)], (host, key, counts)
    code, text, _ = inproc(db, "history", "-o", "json")
    history = {r["run_id"]: r for r in json.loads(text)}
    assert [history[i]["status"] for i in (first, second, third)] == \
        ["running", "running", "ok"]


CHAIN = """\
name: chain
hosts: all
steps:
  - id: one
    shell: >-
      echo one >> log-{{ inventory_hostname }} && test ! -e fail-{{ inventory_hostname }} &&
      while [ -e hold-{{ inventory_hostname }} ] && [ ! -e go ]; do sleep 0.02; done
  - id: two
    shell: "echo two >> log-{{ inventory_hostname }}"
  - id: three
    shell: "echo three >> log-{{ inventory_hostname }}"
  - id: four
    shell: "test ! -e fail4-{{ inventory_hostname }} && echo four >> log-{{ inventory_hostname }}"
"""


def test_resume_of_a_resume_killed_while_restoring(tmp_path: Path) -> None:
    """Deterministic: in the original run h2 fails at step one and h1 fails at step
    four (h1 completed one, two, three).  The first resume restores one on h1 and holds
    h2 inside step one (lock-step: h1's two and three are not restored yet); it is
    killed there.  Resuming that resume must still know h1 did two and three."""
    folder = tmp_path / "chain"
    folder.mkdir()
    (folder / "chain.yml").write_text(CHAIN)
    (folder / "inventory.yml").write_text("all:\n  hosts:\n    h1: {connection: local}\n"
                                          "    h2: {connection: local}\n")
    cli = Cli(folder)
    (folder / "fail-h2").touch()
    (folder / "fail4-h1").touch()
    failed = cli("run", "chain.yml", "-i", "inventory.yml", "--no-rollback", "-o", "json")
    assert failed.code == 1, failed
    first = failed.events[0]["run_id"]
    (folder / "fail-h2").unlink()
    (folder / "fail4-h1").unlink()
    (folder / "hold-h2").touch()
    resume = cli.start("resume", first, "-o", "json")
    resume.wait_for(lambda e: e["event"] == "step_start" and e["host"] == "h2")
    time.sleep(0.3)
    resume.proc.send_signal(signal.SIGKILL)
    resume.proc.wait()
    second = resume.events[0]["run_id"]
    (folder / "go").touch()                     # the held command left behind ends
    time.sleep(0.1)
    assert cli("unlock", "--run", second).code == 0
    final = cli("resume", second, "-o", "json")
    assert final.code == 0, final
    assert (folder / "log-h1").read_text().split() == ["one", "two", "three", "four"]
