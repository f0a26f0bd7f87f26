"""The default journal: one SQLite file shared by every runbook process of a user.

Durability: WAL mode with ``synchronous=NORMAL``.  A committed transaction has been
written to the WAL file, so it survives a crash or kill of the process (the data is
in the kernel's page cache); a power loss or kernel panic may lose the last commits
(the database stays consistent, it just ends a little earlier).
``SqliteStore(path, synchronous="FULL")`` closes that gap with an fsync per commit
(measured: an append takes ~0.2-0.4 ms instead of ~0.03 ms).

Concurrency: several processes share the file (runs, ``runbook history`` while a run
writes); readers never block the writer in WAL mode, writers wait for each other up
to ``busy_timeout``.  Inside one process, ``append()`` is called from many worker
threads: callers queue their events and one of them, the leader, commits everything
queued in one transaction (group commit), so ten hosts finishing a step together
cost about one commit, and a lone caller pays exactly one (group_commit.py).

Three connections: the writer (events, used by one leader at a time), control (runs,
locks, migrations of schema.py; under a lock) and a reader (under a lock).
"""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from ..errors import StoreError, UserError
from . import lock_held
from .base import JournalEvent, LockHolder, LockRecord, RunRecord, Store
from .group_commit import GroupCommit
from .schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, migrate, schema_version

# GroupCommit and the schema's names are re-exported: tests import them from here
__all__ = ["SqliteStore", "SCHEMA_VERSION", "APPLICATION_ID", "MIGRATIONS", "GroupCommit"]

BUSY_TIMEOUT = 15.0                  # seconds a writer waits for another process

_Row = tuple[Any, ...]

_RUN_COLUMNS = ("run_id, runbook, path, content_hash, user, machine, pid, started_at, hosts, "
                "params, options, dry_run, status, exit_code, ended_at, resumed_from, "
                "parent_kind")
_EVENT_COLUMNS = "run_id, seq, ts, kind, host, step, phase, status, data"
_LOCK_COLUMNS = "name, run_id, user, machine, pid, since, expires"


# -- errors ----------------------------------------------------------------------------

def store_error(exc: sqlite3.Error, path: str, doing: str) -> StoreError:
    """A sqlite3 error as a StoreError that names the file and says what to do."""
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        hint = (f"the file is damaged or is not a runbook journal; move it away "
                f"(mv {shlex.quote(path)} {shlex.quote(path + '.broken')}, with its -wal and -shm "
                f"files if any) and the next command starts a new, empty journal")
    elif "locked" in low or "busy" in low:
        hint = "another runbook process kept the journal busy for too long; try again"
    elif "unable to open" in low or "readonly" in low or "read-only" in low:
        hint = ("check that the file and its folder are readable and writable, or choose "
                "another journal with --state PATH or RUNBOOK_STATE")
    elif "full" in low:
        hint = "the file system is full"
    else:
        hint = None
    return StoreError(f"run journal {path}: cannot {doing}: {text}", hint=hint)


# -- the store -----------------------------------------------------------------------------

class SqliteStore(Store):
    """The journal in one SQLite file (see the module docstring)."""

    def __init__(self, path: str, *, synchronous: str = "NORMAL",
                 busy_timeout: float = BUSY_TIMEOUT) -> None:
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.path = path
        self._synchronous = synchronous.upper()
        self._busy_timeout = busy_timeout
        self._connections: list[sqlite3.Connection] = []
        self._control_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._create_private()
        try:
            with self._converted("open it"):
                self._control = self._connect()
                self._setup(self._control)
                self._writer = self._connect()
                self._reader = self._connect()
        except BaseException:
            self._close_connections()
            raise
        self._last_seq: dict[str, int] = {}
        self._group = GroupCommit(self._commit_groups)

    # -- opening ---------------------------------------------------------------------
    def _create_private(self) -> None:
        """Create a missing file readable by its owner only (SQLite gives the -wal and
        -shm files the same mode): params and command output are in it."""
        if os.path.exists(self.path):
            return
        try:
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as exc:
            raise StoreError(f"run journal {self.path}: cannot create it: {exc.strerror}",
                             hint="choose another journal with --state PATH or "
                                  "RUNBOOK_STATE") from None

    def _connect(self) -> sqlite3.Connection:
        # timeout= is SQLite's busy_timeout: how long to wait for another writer
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                               check_same_thread=False)
        self._connections.append(conn)
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        mode = self._enable_wal(conn)
        if mode != "wal":
            raise StoreError(f"run journal {self.path}: cannot use write-ahead logging "
                             f"(journal mode stays '{mode}')",
                             hint="keep the journal on a local file system (--state PATH "
                                  "or RUNBOOK_STATE)")
        if schema_version(conn, self.path) == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")      # one process migrates, the others wait
        try:
            migrate(conn, schema_version(conn, self.path))
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def _enable_wal(self, conn: sqlite3.Connection) -> str:
        """Switch a new file to WAL (a no-op later).  Processes creating the file at once
        can get 'database is locked' here without SQLite's busy handler: retry."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    @contextmanager
    def _converted(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise store_error(exc, self.path, doing) from exc

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[sqlite3.Connection]:
        """A write transaction on the control connection (taken at once: IMMEDIATE)."""
        with self._control_lock, self._converted(doing):
            conn = self._control
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[_Row]:
        with self._read_lock, self._converted("read it"):
            return self._reader.execute(sql, tuple(args)).fetchall()

    # -- runs ------------------------------------------------------------------------
    def begin_run(self, run: RunRecord) -> None:
        row = (run.run_id, run.runbook, run.path, run.content_hash, run.user, run.machine,
               run.pid, run.started_at, _dumps(list(run.hosts)), _dumps(dict(run.params)),
               _dumps(dict(run.options)), int(run.dry_run), run.status, run.exit_code,
               run.ended_at, run.resumed_from, run.parent_kind)
        try:
            with self._transaction(f"record run {run.run_id}") as conn:
                conn.execute(f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES "
                             f"({', '.join('?' * 17)})", row)
                conn.executemany("INSERT OR IGNORE INTO run_hosts (host, run_id) "
                                 "VALUES (?, ?)", [(h, run.run_id) for h in run.hosts])
        except StoreError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise StoreError(f"run journal {self.path}: run {run.run_id} is already "
                                 f"recorded") from exc
            raise

    def finish_run(self, run_id: str, status: str, exit_code: int, ended_at: float) -> None:
        with self._transaction(f"finish run {run_id}") as conn:
            cursor = conn.execute("UPDATE runs SET status = ?, exit_code = ?, ended_at = ? "
                                  "WHERE run_id = ?", (status, exit_code, ended_at, run_id))
            if cursor.rowcount == 0:
                raise StoreError(f"run journal {self.path}: no run {run_id} to finish")

    def append(self, events: Sequence[JournalEvent]) -> None:
        if not events:
            return
        # serialised in the caller's thread, so the leader only writes
        self._group.submit([(e.run_id, e.ts, e.kind, e.host, e.step, e.phase, e.status,
                             _dumps(dict(e.data))) for e in events])

    def _commit_groups(self, groups: list[list[_Row]]) -> list[BaseException | None]:
        """Commit all groups in one transaction; if that fails, each one alone, so one
        caller's bad events do not fail the others."""
        try:
            self._commit_rows([row for rows in groups for row in rows])
            return [None] * len(groups)
        except sqlite3.Error as exc:
            if len(groups) == 1:
                return [self._append_error(exc, groups[0])]
        results: list[BaseException | None] = []
        for rows in groups:
            try:
                self._commit_rows(rows)
                results.append(None)
            except sqlite3.Error as exc:
                results.append(self._append_error(exc, rows))
        return results

    def _commit_rows(self, rows: list[_Row]) -> None:
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        # a run's events are written by the one process running it: after the first
        # commit its last seq is known here, no need to ask the database every time
        last = self._last_seq
        try:
            next_seq: dict[str, int] = {}
            stored = []
            for run_id, *rest in rows:
                seq = next_seq.get(run_id)
                if seq is None:
                    seq = last.get(run_id)
                if seq is None:
                    seq = conn.execute("SELECT coalesce(max(seq), 0) FROM events "
                                       "WHERE run_id = ?", (run_id,)).fetchone()[0]
                seq += 1
                next_seq[run_id] = seq
                stored.append((run_id, seq, *rest))
            conn.executemany(f"INSERT INTO events ({_EVENT_COLUMNS}) "
                             f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", stored)
            conn.execute("COMMIT")
        except BaseException:
            last.clear()
            _rollback(conn)
            raise
        last.update(next_seq)

    def _append_error(self, exc: sqlite3.Error, rows: list[_Row]) -> StoreError:
        if isinstance(exc, sqlite3.IntegrityError) and "FOREIGN KEY" in str(exc):
            runs = ", ".join(sorted({str(row[0]) for row in rows}))
            return StoreError(f"run journal {self.path}: cannot write events of run {runs}: "
                              f"the run is not recorded (begin_run first)")
        return store_error(exc, self.path, "write events")

    def get_run(self, run_id: str) -> RunRecord | None:
        if not run_id:
            return None
        rows = self._read(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            rows = self._read(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id >= ? AND "
                              f"run_id < ? ORDER BY run_id LIMIT 11",
                              (run_id, run_id + "\U0010ffff"))
        if len(rows) > 1:
            ids = [row[0] for row in rows[:10]]
            count = "more than 10" if len(rows) > 10 else str(len(rows))
            raise UserError(f"run id '{run_id}' is ambiguous: it starts {count} run ids",
                            hint="give more of the id; it matches " + ", ".join(ids) +
                                 (", …" if len(rows) > 10 else ""))
        return _run(rows[0]) if rows else None

    def list_runs(self, *, runbook: str | None = None, status: str | None = None,
                  host: str | None = None, limit: int = 20) -> list[RunRecord]:
        where: list[str] = []
        args: list[Any] = []
        if runbook is not None:
            where.append("runbook = ?")
            args.append(runbook)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if host is not None:
            where.append("run_id IN (SELECT run_id FROM run_hosts WHERE host = ?)")
            args.append(host)
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, run_id DESC"
        if limit > 0:
            sql += " LIMIT ?"
            args.append(limit)
        return [_run(row) for row in self._read(sql, args)]

    def events(self, run_id: str, *, host: str | None = None,
               kinds: Sequence[str] | None = None) -> list[JournalEvent]:
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE run_id = ?"
        args: list[Any] = [run_id]
        if host is not None:
            sql += " AND host = ?"
            args.append(host)
        if kinds is not None:
            sql += f" AND kind IN ({', '.join('?' * len(kinds))})" if kinds else " AND 0"
            args.extend(kinds)
        return [_event(row, self.path) for row in self._read(sql + " ORDER BY seq", args)]

    # -- locks -----------------------------------------------------------------------
    def acquire(self, names: Sequence[str], holder: LockHolder, lease: float) -> None:
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return
        with self._transaction("take locks") as conn:
            now = time.time()      # after BEGIN IMMEDIATE: no one changes locks meanwhile
            since: dict[str, float] = {}
            for name in wanted:
                row = conn.execute(f"SELECT {_LOCK_COLUMNS} FROM locks WHERE name = ?",
                                   (name,)).fetchone()
                if row is None:
                    continue
                current = _lock(row)
                if current.holder.run_id == holder.run_id:
                    since[name] = current.since          # renewed, held since then
                elif current.expires > now:
                    raise lock_held(current, now)        # rolls back: none taken
            conn.executemany(f"INSERT OR REPLACE INTO locks ({_LOCK_COLUMNS}) "
                             f"VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(name, holder.run_id, holder.user, holder.machine, holder.pid,
                               since.get(name, now), now + lease) for name in wanted])

    def renew(self, run_id: str, lease: float) -> None:
        with self._transaction("renew locks") as conn:
            conn.execute("UPDATE locks SET expires = ? WHERE run_id = ?",
                         (time.time() + lease, run_id))

    def release(self, run_id: str) -> None:
        with self._transaction("release locks") as conn:
            conn.execute("DELETE FROM locks WHERE run_id = ?", (run_id,))

    def locks(self) -> list[LockRecord]:
        return [_lock(row) for row in
                self._read(f"SELECT {_LOCK_COLUMNS} FROM locks ORDER BY name")]

    def unlock(self, name: str) -> LockRecord | None:
        with self._transaction(f"release lock {name}") as conn:
            row = conn.execute(f"SELECT {_LOCK_COLUMNS} FROM locks WHERE name = ?",
                               (name,)).fetchone()
            if row is None:
                return None
            conn.execute("DELETE FROM locks WHERE name = ?", (name,))
            return _lock(row)

    def unlock_expired(self, now: float | None = None) -> list[LockRecord]:
        """Release every lock whose lease has expired, in one transaction (no lock
        renewed or taken over meanwhile is touched); the records released."""
        with self._transaction("release expired locks") as conn:
            now = time.time() if now is None else now
            rows = conn.execute(f"SELECT {_LOCK_COLUMNS} FROM locks WHERE expires <= ? "
                                f"ORDER BY name", (now,)).fetchall()
            conn.execute("DELETE FROM locks WHERE expires <= ?", (now,))
            return [_lock(row) for row in rows]

    # -- closing ---------------------------------------------------------------------
    def close(self) -> None:
        group = getattr(self, "_group", None)
        if group is not None:
            group.close()
        with self._control_lock, self._read_lock:
            self._close_connections()

    def _close_connections(self) -> None:
        for conn in self._connections:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._connections.clear()

    def __enter__(self) -> "SqliteStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- rows <-> records ------------------------------------------------------------------------

def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def _run(row: _Row) -> RunRecord:
    (run_id, runbook, path, content_hash, user, machine, pid, started_at, hosts, params,
     options, dry_run, status, exit_code, ended_at, resumed_from, parent_kind) = row
    return RunRecord(run_id=run_id, runbook=runbook, path=path, content_hash=content_hash,
                     user=user, machine=machine, pid=pid, started_at=started_at,
                     hosts=tuple(json.loads(hosts)), params=json.loads(params),
                     options=json.loads(options), dry_run=bool(dry_run), status=status,
                     exit_code=exit_code, ended_at=ended_at, resumed_from=resumed_from,
                     parent_kind=parent_kind)


def _event(row: _Row, path: str) -> JournalEvent:
    run_id, seq, ts, kind, host, step, phase, status, data = row
    try:
        decoded = json.loads(data)
    except ValueError:
        raise StoreError(f"run journal {path}: event {seq} of run {run_id} is not valid JSON",
                         hint="the file was changed by something other than runbook") \
            from None
    return JournalEvent(run_id=run_id, kind=kind, ts=ts, host=host, step=step, phase=phase,
                        status=status, data=decoded, seq=seq)


def _lock(row: _Row) -> LockRecord:
    name, run_id, user, machine, pid, since, expires = row
    return LockRecord(name=name, holder=LockHolder(run_id, user, machine, pid), since=since,
                      expires=expires)
