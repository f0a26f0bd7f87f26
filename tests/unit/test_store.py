"""The SQLite run journal: location, schema and migrations, group commit, durability
against kill -9, locks (in one process and across processes), errors."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from engine.errors import LockHeld, StoreError, UserError
from engine.store import default_state_path, lock_held, open_store, state_path
from engine.store.base import JournalEvent, LockHolder, LockRecord, RunRecord
from engine.store.group_commit import _Ticket
from engine.store.sqlite import APPLICATION_ID, SCHEMA_VERSION, GroupCommit, SqliteStore


def record(run_id: str = "20240501-120000-aaaaaa", **changes: Any) -> RunRecord:
    values: dict[str, Any] = dict(
        run_id=run_id, runbook="deploy", path="/srv/runbooks/deploy.yml", content_hash="ab" * 32,
        user="alice", machine="ops1", pid=4242, started_at=1714557600.0, hosts=("web1", "web2"),
        params={"version": "2.1", "password": "********"},
        options={"inventory": "inventory/prod.yml", "tags": []})
    values.update(changes)
    return RunRecord(**values)


def event(run_id: str, n: int = 0, *, kind: str = "log", host: str | None = "web1",
          **data: Any) -> JournalEvent:
    return JournalEvent(run_id=run_id, kind=kind, ts=time.time(), host=host, step=f"s{n}",
                        phase="steps", status="ok", data={"event": kind, "n": n, **data})


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def store(db: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(str(db))
    yield opened
    opened.close()


def raw(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(db), isolation_level=None)


# -- location ---------------------------------------------------------------------------

def test_state_path_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_STATE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    assert default_state_path() == str(tmp_path / "home/.local/state/runbook/state.db")
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")
    assert default_state_path() == str(tmp_path / "home/.local/state/runbook/state.db")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_path() == str(tmp_path / "xdg/runbook/state.db")
    monkeypatch.setenv("RUNBOOK_STATE", str(tmp_path / "env.db"))
    assert state_path() == str(tmp_path / "env.db")
    assert state_path(str(tmp_path / "given.db")) == str(tmp_path / "given.db")


def test_open_store_creates_folders_and_a_private_file(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_STATE", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "deep" / "state"))
    opened = open_store()
    try:
        opened.begin_run(record())
    finally:
        opened.close()
    path = tmp_path / "deep/state/runbook/state.db"
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_open_store_reports_a_folder_it_cannot_create(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError) as caught:
        open_store(str(tmp_path / "file" / "sub" / "state.db"))
    assert "cannot create the folder" in caught.value.message


# -- schema -----------------------------------------------------------------------------

def test_wal_mode_version_and_pragmas(store: SqliteStore, db: Path) -> None:
    conn = raw(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert store._writer.execute("PRAGMA synchronous").fetchone()[0] == 1       # NORMAL
    assert store._writer.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "events", "locks", "run_hosts"} <= tables


# The schema as version 1 shipped it: frozen here, so that a change to the v1 migration
# (which must never happen once released) shows up as a failing test.
V1_SCHEMA = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, runbook TEXT NOT NULL, path TEXT NOT NULL,
    content_hash TEXT NOT NULL, user TEXT NOT NULL, machine TEXT NOT NULL,
    pid INTEGER NOT NULL, started_at REAL NOT NULL, ended_at REAL, status TEXT NOT NULL,
    exit_code INTEGER, dry_run INTEGER NOT NULL, hosts TEXT NOT NULL, params TEXT NOT NULL,
    options TEXT NOT NULL, resumed_from TEXT, parent_kind TEXT NOT NULL);
CREATE INDEX runs_by_start ON runs (started_at);
CREATE INDEX runs_by_runbook ON runs (runbook, started_at);
CREATE INDEX runs_by_status ON runs (status, started_at);
CREATE TABLE events (run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL, ts REAL NOT NULL, kind TEXT NOT NULL, host TEXT, step TEXT,
    phase TEXT, status TEXT, data TEXT NOT NULL, PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
CREATE INDEX events_by_host ON events (run_id, host, seq);
CREATE TABLE locks (name TEXT PRIMARY KEY, run_id TEXT NOT NULL, user TEXT NOT NULL,
    machine TEXT NOT NULL, pid INTEGER NOT NULL, since REAL NOT NULL, expires REAL NOT NULL);
CREATE INDEX locks_by_run ON locks (run_id);
"""


def test_migrates_a_version_1_journal(db: Path) -> None:
    conn = raw(db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(V1_SCHEMA)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    for run_id, hosts in (("r-old-1", '["web1","web2"]'), ("r-old-2", '["db1"]')):
        conn.execute("INSERT INTO runs VALUES (?, 'deploy', '/x.yml', 'h', 'bob', 'm', 1, ?, "
                     "NULL, 'failed', 1, 0, ?, '{}', '{}', NULL, 'run')",
                     (run_id, 100.0 if run_id.endswith("1") else 200.0, hosts))
    conn.execute("INSERT INTO events VALUES ('r-old-1', 1, 1.0, 'step_end', 'web1', 's', "
                 "'steps', 'ok', '{\"event\": \"step_end\"}')")
    conn.execute("INSERT INTO locks VALUES ('deploy@web1', 'r-old-1', 'bob', 'm', 1, 1.0, 2.0)")
    conn.close()

    with SqliteStore(str(db)) as migrated:
        assert raw(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert [r.run_id for r in migrated.list_runs(host="web2")] == ["r-old-1"]
        assert [r.run_id for r in migrated.list_runs(host="db1")] == ["r-old-2"]
        assert migrated.get_run("r-old-1").hosts == ("web1", "web2")  # type: ignore[union-attr]
        assert [e.data for e in migrated.events("r-old-1")] == [{"event": "step_end"}]
        assert [lock.name for lock in migrated.locks()] == ["deploy@web1"]
        migrated.append([event("r-old-1", 2)])
        assert [e.seq for e in migrated.events("r-old-1")] == [1, 2]
    SqliteStore(str(db)).close()        # opening a current journal again changes nothing


def test_refuses_a_newer_schema(db: Path) -> None:
    SqliteStore(str(db)).close()
    raw(db).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError) as caught:
        SqliteStore(str(db))
    assert f"schema version {SCHEMA_VERSION + 1}" in caught.value.message
    assert str(db) in caught.value.message
    assert "upgrade runbook" in (caught.value.hint or "")


def test_refuses_another_applications_database(db: Path) -> None:
    raw(db).execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(StoreError) as caught:
        SqliteStore(str(db))
    assert "not a runbook journal" in caught.value.message


def test_garbage_file_is_a_store_error_with_a_hint(db: Path) -> None:
    db.write_bytes(b"this is not sqlite at all\n" * 200)
    with pytest.raises(StoreError) as caught:
        SqliteStore(str(db))
    assert str(db) in caught.value.message and "not a database" in caught.value.message
    assert "move it away" in (caught.value.hint or "")
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


def test_damaged_pages_are_a_store_error(db: Path) -> None:
    with SqliteStore(str(db)) as filled:
        for number in range(30):
            filled.begin_run(record(f"run-{number:03}", hosts=tuple(f"h{i}" for i in range(50))))
            filled.append([event(f"run-{number:03}", i, blob="x" * 500) for i in range(20)])
    size = db.stat().st_size
    with open(db, "r+b") as f:          # keep the header page, scramble the rest
        f.seek(4096)
        f.write(random.Random(7).randbytes(size - 4096))
    with pytest.raises(StoreError) as caught:
        with SqliteStore(str(db)) as damaged:
            damaged.list_runs(limit=0)
            for number in range(30):
                damaged.events(f"run-{number:03}")
    assert str(db) in caught.value.message
    assert "move it away" in (caught.value.hint or "")


OPENER = textwrap.dedent("""
    import sys, time
    from engine.store.base import RunRecord
    from engine.store.sqlite import SqliteStore

    print("ready", flush=True)
    sys.stdin.readline()
    with SqliteStore(sys.argv[1]) as store:
        store.begin_run(RunRecord(sys.argv[2], "deploy", "/x.yml", "h", "u", "m", 1,
                                  time.time(), ("h",), {}, {}))
    print("ok", flush=True)
""")


def test_processes_creating_the_journal_at_once(tmp_path: Path) -> None:
    script = tmp_path / "opener.py"
    script.write_text(OPENER)
    db = tmp_path / "fresh.db"
    children = [subprocess.Popen([sys.executable, str(script), str(db), f"run-{n}"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for n in range(4)]
    for child in children:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        out, err = child.communicate(timeout=60)
        assert (child.returncode, out) == (0, "ok\n"), err
    with SqliteStore(str(db)) as check:
        assert sorted(r.run_id for r in check.list_runs()) == [f"run-{n}" for n in range(4)]


# -- runs and events ----------------------------------------------------------------------

def test_run_round_trip_and_finish(store: SqliteStore) -> None:
    run = record(dry_run=True, resumed_from="r0", parent_kind="resume")
    store.begin_run(run)
    assert store.get_run(run.run_id) == run
    store.finish_run(run.run_id, "rolled_back", 1, run.started_at + 12.5)
    finished = store.get_run(run.run_id)
    assert finished is not None
    assert (finished.status, finished.exit_code, finished.ended_at) == \
        ("rolled_back", 1, run.started_at + 12.5)
    with pytest.raises(StoreError, match="already recorded"):
        store.begin_run(run)
    with pytest.raises(StoreError, match="no run nope to finish"):
        store.finish_run("nope", "ok", 0, 1.0)


def test_get_run_by_unique_prefix(store: SqliteStore) -> None:
    for run_id in ("20240501-120000-aaaaaa", "20240501-120000-abcdef", "20240502-090000-ffffff"):
        store.begin_run(record(run_id))
    assert store.get_run("20240502").run_id == "20240502-090000-ffffff"  # type: ignore[union-attr]
    assert store.get_run("20240501-120000-ab").run_id == \
        "20240501-120000-abcdef"  # type: ignore[union-attr]
    assert store.get_run("2025") is None
    assert store.get_run("") is None
    with pytest.raises(UserError) as caught:
        store.get_run("20240501-120000-a")
    assert "ambiguous" in caught.value.message
    assert "20240501-120000-aaaaaa" in (caught.value.hint or "")
    assert "20240501-120000-abcdef" in (caught.value.hint or "")


def test_list_runs_newest_first_with_filters(store: SqliteStore) -> None:
    store.begin_run(record("r1", started_at=100.0, hosts=("web1",)))
    store.begin_run(record("r2", started_at=300.0, hosts=("web2", "db1"), runbook="backup"))
    store.begin_run(record("r3", started_at=200.0, hosts=("web1", "db1")))
    store.finish_run("r3", "failed", 1, 250.0)
    assert [r.run_id for r in store.list_runs()] == ["r2", "r3", "r1"]
    assert [r.run_id for r in store.list_runs(limit=2)] == ["r2", "r3"]
    assert [r.run_id for r in store.list_runs(limit=0)] == ["r2", "r3", "r1"]
    assert [r.run_id for r in store.list_runs(runbook="deploy")] == ["r3", "r1"]
    assert [r.run_id for r in store.list_runs(status="failed")] == ["r3"]
    assert [r.run_id for r in store.list_runs(host="db1")] == ["r2", "r3"]
    assert [r.run_id for r in store.list_runs(host="db1", runbook="deploy")] == ["r3"]
    assert store.list_runs(host="nowhere") == []


def test_events_in_order_with_filters(store: SqliteStore) -> None:
    store.begin_run(record("r1"))
    store.begin_run(record("r2"))
    store.append([event("r1", 1, kind="step_start"), event("r1", 1, kind="step_end",
                                                           host="web2", items=("a", "b"))])
    store.append([event("r2", 1)])
    store.append([event("r1", 2, kind="run_end", host=None)])
    events = store.events("r1")
    assert [(e.seq, e.kind, e.host) for e in events] == \
        [(1, "step_start", "web1"), (2, "step_end", "web2"), (3, "run_end", None)]
    assert events[1].data == {"event": "step_end", "n": 1, "items": ["a", "b"]}
    assert [e.seq for e in store.events("r2")] == [1]
    assert [e.seq for e in store.events("r1", host="web2")] == [2]
    assert [e.seq for e in store.events("r1", kinds=["run_end", "step_start"])] == [1, 3]
    assert store.events("r1", kinds=[]) == []
    assert store.events("unknown") == []


def test_append_to_an_unknown_run_fails_only_that_caller(store: SqliteStore) -> None:
    store.begin_run(record("r1"))
    with pytest.raises(StoreError, match="events of run nope: the run is not recorded"):
        store.append([event("nope")])
    good = [("r1", 1.0, "log", "h", "s", "steps", "ok", "{}")]
    bad = [("nope", 1.0, "log", "h", "s", "steps", "ok", "{}")]
    results = store._commit_groups([good, bad, good])
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], StoreError)
    assert [e.seq for e in store.events("r1")] == [1, 2]


def test_append_after_close_is_a_store_error(db: Path) -> None:
    closed = SqliteStore(str(db))
    closed.begin_run(record("r1"))
    closed.close()
    with pytest.raises(StoreError):
        closed.append([event("r1")])
    with pytest.raises(StoreError):
        closed.list_runs()


# -- group commit -----------------------------------------------------------------------------

def test_group_commit_ten_threads_each_append_durable_on_return(store: SqliteStore,
                                                                db: Path) -> None:
    runs = ["run-a", "run-b"]
    for run_id in runs:
        store.begin_run(record(run_id))
    threads, appends = 10, 200
    failures: list[str] = []
    start = threading.Barrier(threads)

    def worker(number: int) -> None:
        check = sqlite3.connect(str(db), isolation_level=None)   # another connection
        run_id = runs[number % 2]
        start.wait()
        for n in range(appends):
            store.append([event(run_id, n, host=f"t{number}")])
            found = check.execute("SELECT count(*) FROM events WHERE run_id = ? AND host = ? "
                                  "AND step = ?", (run_id, f"t{number}", f"s{n}")).fetchone()[0]
            if found != 1:
                failures.append(f"thread {number} append {n}: not visible after return")
        check.close()

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert failures == []
    total = 0
    for run_id in runs:
        events = store.events(run_id)
        total += len(events)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        for number in range(threads):       # each thread's events in the order it appended
            mine = [e.data["n"] for e in events if e.host == f"t{number}"]
            assert mine == (list(range(appends)) if number % 2 == runs.index(run_id) else [])
    assert total == threads * appends


def test_callers_waiting_during_a_commit_share_the_next_one() -> None:
    committed: list[int] = []
    inside, release = threading.Event(), threading.Event()

    def slow_commit(groups: list[list[Any]]) -> list[BaseException | None]:
        committed.append(len(groups))
        if len(committed) == 1:
            inside.set()
            release.wait(10)
        return [None] * len(groups)

    group = GroupCommit(slow_commit)
    first = threading.Thread(target=group.submit, args=([("r", 0)],))
    first.start()
    assert inside.wait(10)
    others = [threading.Thread(target=group.submit, args=([("r", n)],)) for n in range(1, 10)]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 10
    while len(group._queue) < 9 and time.monotonic() < deadline:
        time.sleep(0.001)
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert committed == [1, 9]          # ten callers, two commits


class _Alarm(Exception):
    pass


def test_a_waiter_interrupted_by_a_signal_leaves_no_one_stuck() -> None:
    committed: list[list[Any]] = []
    inside, release = threading.Event(), threading.Event()

    def slow_commit(groups: list[list[Any]]) -> list[BaseException | None]:
        committed.append([row for rows in groups for row in rows])
        if len(committed) == 1:
            inside.set()
            release.wait(10)
        return [None] * len(groups)

    group = GroupCommit(slow_commit)
    leader = threading.Thread(target=group.submit, args=([("leader",)],))
    leader.start()
    assert inside.wait(10)

    def interrupt(signum: int, frame: Any) -> None:
        raise _Alarm()

    def follower() -> None:
        while not group._queue:           # queue behind the main thread
            time.sleep(0.001)
        group.submit([("follower",)])

    behind = threading.Thread(target=follower)
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        behind.start()
        threading.Timer(0.3, release.set).start()
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(_Alarm):
            group.submit([("interrupted",)])      # the main thread waits, then is hit
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    leader.join(10)
    behind.join(10)
    assert not behind.is_alive()
    assert committed == [[("leader",)], [("follower",)]]
    group.submit([("after",)])                    # and the queue still works
    assert committed[-1] == [("after",)]


def test_an_abandoned_leader_hands_the_lead_on() -> None:
    group = GroupCommit(lambda groups: [None] * len(groups))
    tickets = [_Ticket([("a",)]), _Ticket([("b",)])]
    for ticket in tickets:
        ticket.wakeup = threading.Lock()
        ticket.wakeup.acquire()
    tickets[0].leader = True
    group._queue, group._leading = list(tickets), True
    group._abandon(tickets[0])
    assert group._queue == [tickets[1]] and tickets[1].leader
    assert not tickets[1].wakeup.locked()        # woken to lead
    group._abandon(tickets[1])
    assert group._queue == [] and not group._leading


def test_a_lone_caller_pays_one_commit(store: SqliteStore) -> None:
    store.begin_run(record("r1"))
    for n in range(50):                 # warm up
        store.append([event("r1", n)])
    before = store._group.groups
    latencies = []
    for n in range(500):
        started = time.perf_counter()
        store.append([event("r1", n)])
        latencies.append(time.perf_counter() - started)
    assert store._group.groups - before == 500
    latencies.sort()
    assert latencies[len(latencies) // 2] < 0.001, latencies[len(latencies) // 2]


# -- durability against kill -9 -----------------------------------------------------------------

APPENDER = textwrap.dedent("""
    import sys, threading, time
    from engine.store.base import JournalEvent, RunRecord
    from engine.store.sqlite import SqliteStore

    path, run_id, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = SqliteStore(path)
    store.begin_run(RunRecord(run_id, "deploy", "/x.yml", "h", "u", "m", 1, time.time(),
                              ("h",), {}, {}))
    out = threading.Lock()
    print("ready", flush=True)

    def work(number):
        n = 0
        while True:
            n += 1
            store.append([JournalEvent(run_id, "log", time.time(), host=f"t{number}",
                                       step=str(n), data={"n": n, "pad": "x" * 200})])
            with out:
                sys.stdout.write(f"ok {number} {n}\\n")
                sys.stdout.flush()

    for number in range(threads):
        threading.Thread(target=work, args=(number,), daemon=True).start()
    threading.Event().wait()
""")


def test_acknowledged_events_survive_kill_9(tmp_path: Path) -> None:
    script = tmp_path / "appender.py"
    script.write_text(APPENDER)
    db = tmp_path / "state.db"
    rng = random.Random(20240501)
    kill_points = 24
    for point in range(kill_points):
        run_id = f"run-{point:02}"
        threads = 1 if point % 3 == 0 else 4
        child = subprocess.Popen([sys.executable, str(script), str(db), run_id, str(threads)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n", child.stderr.read()  # type: ignore[union-attr]
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(child.stdout))  # type: ignore
        reader.start()
        time.sleep(rng.uniform(0.002, 0.25))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        reader.join(10)
        acknowledged: dict[str, int] = {}
        for line in lines:
            if line.endswith("\n"):
                _, number, n = line.split()
                acknowledged[f"t{number}"] = max(acknowledged.get(f"t{number}", 0), int(n))
        check = sqlite3.connect(str(db))
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = check.execute("SELECT seq, host, step FROM events WHERE run_id = ? ORDER BY seq",
                             (run_id,)).fetchall()
        check.close()
        assert [seq for seq, _, _ in rows] == list(range(1, len(rows) + 1))
        stored: dict[str, list[int]] = {}
        for _, host, step in rows:
            stored.setdefault(host, []).append(int(step))
        for host, last in acknowledged.items():
            kept = stored.get(host, [])
            # every acknowledged append is there, in order; at most the one in flight more
            assert kept == list(range(1, len(kept) + 1)), (point, host)
            assert last <= len(kept) <= last + 1, (point, host, last, len(kept))
    with SqliteStore(str(db)) as after:
        assert len(after.list_runs(limit=0)) == kill_points


# -- locks -------------------------------------------------------------------------------

ALICE = LockHolder("run-alice", "alice", "ops1", 111)
BOB = LockHolder("run-bob", "bob", "ops2", 222)


def test_acquire_and_held_by_another_run(store: SqliteStore) -> None:
    store.acquire(["deploy@web1", "deploy@web2"], ALICE, 30)
    with pytest.raises(LockHeld) as caught:
        store.acquire(["deploy@web2"], BOB, 30)
    error = caught.value
    assert error.exit_code == 4
    for part in ("'deploy@web2'", "run-alice", "alice@ops1", "pid 111", "since ",
                 "lease expires"):
        assert part in error.message, part
    assert "runbook unlock deploy@web2" in (error.hint or "")
    held = {lock.name: lock.holder for lock in store.locks()}
    assert held == {"deploy@web1": ALICE, "deploy@web2": ALICE}


def test_lock_held_message_uses_local_time() -> None:
    lock = LockRecord("db@x", ALICE, since=1714557600.0, expires=1714557630.0)
    message = lock_held(lock, now=1714557610.0).message
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1714557600.0))
    assert f"since {since}" in message and "(in 20s)" in message


def test_acquire_is_all_or_none(store: SqliteStore) -> None:
    store.acquire(["b"], ALICE, 30)
    with pytest.raises(LockHeld, match="'b'"):
        store.acquire(["a", "b", "c"], BOB, 30)
    assert [(lock.name, lock.holder.run_id) for lock in store.locks()] == [("b", "run-alice")]


def test_expired_lease_is_taken_over(store: SqliteStore) -> None:
    store.acquire(["deploy@web1"], ALICE, -1)       # already expired
    store.acquire(["deploy@web1"], BOB, 30)
    [lock] = store.locks()
    assert lock.holder == BOB
    assert lock.expires > time.time() + 20


def test_same_run_renews_and_keeps_since(store: SqliteStore) -> None:
    store.acquire(["x", "y"], ALICE, 1)
    since = {lock.name: lock.since for lock in store.locks()}
    time.sleep(0.01)
    store.acquire(["x"], ALICE, 50)
    store.renew("run-alice", 100)
    store.renew("run-nobody", 100)
    now = time.time()
    for lock in store.locks():
        assert lock.since == since[lock.name]
        assert now + 90 < lock.expires <= now + 100


def test_release_unlock_and_unlock_expired(store: SqliteStore) -> None:
    store.acquire(["a1", "a2"], ALICE, 30)
    store.acquire(["b1"], BOB, -1)
    store.acquire(["c1"], LockHolder("run-carol", "carol", "ops3", 333), 30)
    store.release("run-alice")
    assert [lock.name for lock in store.locks()] == ["b1", "c1"]
    assert [lock.name for lock in store.unlock_expired()] == ["b1"]
    released = store.unlock("c1")
    assert released is not None and released.holder.user == "carol"
    assert store.unlock("c1") is None
    assert store.locks() == []


LOCKER = textwrap.dedent("""
    import sys
    from engine.errors import LockHeld
    from engine.store.base import LockHolder
    from engine.store.sqlite import SqliteStore

    store = SqliteStore(sys.argv[1])
    print("ready", flush=True)
    name = sys.stdin.readline().strip()
    try:
        store.acquire([name, "shared-" + name], LockHolder(sys.argv[2], "u", "m", 1), 60)
        print("won", flush=True)
    except LockHeld:
        print("held", flush=True)
""")


def test_two_processes_racing_for_a_lock_exactly_one_wins(tmp_path: Path) -> None:
    script = tmp_path / "locker.py"
    script.write_text(LOCKER)
    db = tmp_path / "state.db"
    SqliteStore(str(db)).close()
    for round_number in range(8):
        children = [subprocess.Popen([sys.executable, str(script), str(db), f"run-{who}"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                    for who in ("a", "b")]
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
        for child in children:          # both go at (almost) the same moment
            assert child.stdin is not None
            child.stdin.write(f"lock-{round_number}\n")
            child.stdin.flush()
        outcomes = sorted(child.communicate(timeout=30)[0].strip() for child in children)
        assert outcomes == ["held", "won"], outcomes
    with SqliteStore(str(db)) as check:
        holders: dict[str, str] = {lock.name: lock.holder.run_id for lock in check.locks()}
    for round_number in range(8):      # both locks of a round went to the same winner
        assert holders[f"lock-{round_number}"] == holders[f"shared-lock-{round_number}"]
