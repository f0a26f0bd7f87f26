"""The journal's SQLite schema: its migrations, and the check that a file is ours."""

from __future__ import annotations

import json
import sqlite3
from typing import Callable

from ..errors import StoreError

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "MIGRATIONS", "schema_version", "migrate"]

APPLICATION_ID = 0x52554E42          # "RUNB": marks the file as a runbook journal

# Each migration takes the schema from the previous version to its own; they run in
# order inside one transaction.  Never edit a shipped migration: add a new one.

_V1 = (
    """CREATE TABLE runs (
        run_id       TEXT PRIMARY KEY,
        runbook      TEXT NOT NULL,
        path         TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        user         TEXT NOT NULL,
        machine      TEXT NOT NULL,
        pid          INTEGER NOT NULL,
        started_at   REAL NOT NULL,
        ended_at     REAL,
        status       TEXT NOT NULL,
        exit_code    INTEGER,
        dry_run      INTEGER NOT NULL,
        hosts        TEXT NOT NULL,          -- JSON list
        params       TEXT NOT NULL,          -- JSON object, secrets already redacted
        options      TEXT NOT NULL,          -- JSON object
        resumed_from TEXT,
        parent_kind  TEXT NOT NULL)""",
    "CREATE INDEX runs_by_start ON runs (started_at)",
    "CREATE INDEX runs_by_runbook ON runs (runbook, started_at)",
    "CREATE INDEX runs_by_status ON runs (status, started_at)",
    """CREATE TABLE events (
        run_id  TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        seq     INTEGER NOT NULL,
        ts      REAL NOT NULL,
        kind    TEXT NOT NULL,
        host    TEXT,
        step    TEXT,
        phase   TEXT,
        status  TEXT,
        data    TEXT NOT NULL,               -- the event's JSON form
        PRIMARY KEY (run_id, seq)) WITHOUT ROWID""",
    "CREATE INDEX events_by_host ON events (run_id, host, seq)",
    """CREATE TABLE locks (
        name    TEXT PRIMARY KEY,
        run_id  TEXT NOT NULL,
        user    TEXT NOT NULL,
        machine TEXT NOT NULL,
        pid     INTEGER NOT NULL,
        since   REAL NOT NULL,
        expires REAL NOT NULL)""",
    "CREATE INDEX locks_by_run ON locks (run_id)",
)

_V2 = (
    # history --host: one row per (host, run) instead of scanning the JSON lists
    """CREATE TABLE run_hosts (
        host   TEXT NOT NULL,
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        PRIMARY KEY (host, run_id)) WITHOUT ROWID""",
)


def _v1_initial(conn: sqlite3.Connection) -> None:
    for statement in _V1:
        conn.execute(statement)


def _v2_run_hosts(conn: sqlite3.Connection) -> None:
    for statement in _V2:
        conn.execute(statement)
    rows = conn.execute("SELECT run_id, hosts FROM runs").fetchall()
    conn.executemany("INSERT OR IGNORE INTO run_hosts (host, run_id) VALUES (?, ?)",
                     [(host, run_id) for run_id, hosts in rows for host in json.loads(hosts)])


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1_initial, _v2_run_hosts)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection, path: str) -> int:
    """The file's schema version; StoreError if it is not ours or too new."""
    # one statement, one snapshot: another process may be migrating meanwhile
    version, application, tables = conn.execute(
        "SELECT (SELECT user_version FROM pragma_user_version), "
        "(SELECT application_id FROM pragma_application_id), "
        "(SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%')").fetchone()
    if application != APPLICATION_ID:
        if version or application or tables:
            raise StoreError(f"run journal {path}: this SQLite file is not a "
                             f"runbook journal",
                             hint="point --state (or RUNBOOK_STATE) at another file")
    if version > SCHEMA_VERSION:
        from .. import __version__
        raise StoreError(f"run journal {path} has schema version {version}; "
                         f"runbook {__version__} knows versions up to {SCHEMA_VERSION}",
                         hint="a newer runbook wrote it: upgrade runbook, or use another "
                              "journal with --state PATH")
    return version


def migrate(conn: sqlite3.Connection, version: int) -> None:
    """Take the schema from ``version`` to SCHEMA_VERSION, in the caller's transaction."""
    for number in range(version + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[number - 1](conn)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
