"""The registry's tables, versioned, for both backends.

`MIGRATIONS[v]` turns a schema of version v-1 into version v (0 = nothing yet), written once
per dialect. A new registry runs every step in order, an old one the steps it lacks, so a
fresh registry and an upgraded one are the same by construction. The version is the `schema`
row of `meta`. A registry with a version above SCHEMA_VERSION was written by a newer lhlab
and is never touched.

Version history
  1  meta, participants, sessions, assignment_log (lhlab 0.1, SQLite only)
  2  assignment_log.request (a per-request token: a retried registration after a lost
     connection finds the first one instead of adding a second participant),
     assignment_log.station (which PC assigned), audit (migrations, imports, erasures)
  3  SQLite: external ids move out of the study folder into the identity key file
     (keyfile.py; a data move the SQLite backend does on opening); PostgreSQL: no change
     (external ids are on the server, in no study folder)
  4  sessions.central, central_sha256, synced: where `lhlab sync` copied the session, its
     checksum and when (central.py)
  5  heartbeats (one row per session: the station running it, phase, trial, elapsed, last
     beat, status; live.py), partner_schedules (a finished training's noise schedule, JSON
     with its SHA-256, so a yoked participant on another station can replay it; partner.py),
     assignment_log.override_full (the reason a participant was added to a full study),
     sessions.pilot (pilot and simulated sessions do not count toward the planned n)
  6  assignment_log.replaces: a block slot whose participant declined consent is given again
     (the new row names whom it replaces; each decliner is replaced once), so declines do not
     unbalance the conditions; the one-row-per-slot index now holds for first assignments
"""

from __future__ import annotations

SCHEMA_VERSION = 6

_V1_COMMON = """
CREATE UNIQUE INDEX IF NOT EXISTS participants_one_yoke ON participants(yoked_to) WHERE yoked_to IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS participants_external ON participants(external_id) WHERE external_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS sessions (
    label             TEXT NOT NULL REFERENCES participants(label),
    number            INTEGER NOT NULL,
    started           TEXT,
    ended             TEXT,
    status            TEXT NOT NULL,
    data_path         TEXT NOT NULL,
    experimenter      TEXT,
    training_complete INTEGER NOT NULL DEFAULT 0,
    notes             TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (label, number)
);
CREATE TABLE IF NOT EXISTS assignment_log (
    id              {id},
    label           TEXT NOT NULL REFERENCES participants(label),
    condition       TEXT NOT NULL,
    rule            TEXT NOT NULL CHECK (rule IN ('block', 'manual', 'command-line')),
    block           INTEGER,
    slot            INTEGER,
    seed            BIGINT,
    yoked_to        TEXT,
    reason          TEXT,
    protocol_sha256 TEXT,
    time            TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS assignment_one_slot ON assignment_log(block, slot) WHERE rule = 'block'
"""

_V1 = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS participants (
    id          {id},
    label       TEXT NOT NULL UNIQUE,
    external_id TEXT,
    condition   TEXT NOT NULL,
    yoked_to    TEXT REFERENCES participants(label),
    status      TEXT NOT NULL DEFAULT 'registered',
    notes       TEXT NOT NULL DEFAULT '',
    created     TEXT NOT NULL
);
""" + _V1_COMMON

_V2 = """
ALTER TABLE assignment_log ADD COLUMN request TEXT;
ALTER TABLE assignment_log ADD COLUMN station TEXT;
CREATE UNIQUE INDEX assignment_request ON assignment_log(request) WHERE request IS NOT NULL;
CREATE TABLE audit (
    id      {id},
    time    TEXT NOT NULL,
    action  TEXT NOT NULL,
    label   TEXT,
    detail  TEXT NOT NULL DEFAULT '',
    station TEXT
)
"""

_V4 = """
ALTER TABLE sessions ADD COLUMN central TEXT;
ALTER TABLE sessions ADD COLUMN central_sha256 TEXT;
ALTER TABLE sessions ADD COLUMN synced TEXT
"""

_V5 = """
CREATE TABLE heartbeats (
    label     TEXT NOT NULL,
    session   INTEGER NOT NULL,
    station   TEXT NOT NULL,
    condition TEXT,
    phase     TEXT,
    trial     INTEGER,
    elapsed   DOUBLE PRECISION,
    started   TEXT NOT NULL,
    last_beat TEXT NOT NULL,
    status    TEXT NOT NULL,
    PRIMARY KEY (label, session)
);
CREATE TABLE partner_schedules (
    label     TEXT NOT NULL,
    session   INTEGER NOT NULL,
    phase     TEXT NOT NULL,
    condition TEXT NOT NULL,
    schedule  TEXT NOT NULL,
    sha256    TEXT NOT NULL,
    pilot     INTEGER NOT NULL,
    station   TEXT,
    stored    TEXT NOT NULL,
    PRIMARY KEY (label, session, phase)
);
ALTER TABLE assignment_log ADD COLUMN override_full TEXT;
ALTER TABLE sessions ADD COLUMN pilot INTEGER NOT NULL DEFAULT 0
"""

_V6 = """
ALTER TABLE assignment_log ADD COLUMN replaces TEXT;
DROP INDEX assignment_one_slot;
CREATE UNIQUE INDEX assignment_one_slot ON assignment_log(block, slot) WHERE rule = 'block' AND replaces IS NULL;
CREATE UNIQUE INDEX assignment_one_replacement ON assignment_log(replaces) WHERE replaces IS NOT NULL
"""

_ID = {"sqlite": "INTEGER PRIMARY KEY", "postgresql": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"}


def statements(version: int, dialect: str) -> list[str]:
    """The statements that turn schema `version - 1` into `version` in `dialect`."""
    text = {1: _V1, 2: _V2, 3: "", 4: _V4, 5: _V5, 6: _V6}[version].replace("{id}", _ID[dialect])
    return [s.strip() for s in text.split(";") if s.strip()]


def upgrade(execute, dialect: str, found: int, target: int = SCHEMA_VERSION) -> None:
    """Inside the caller's transaction: run every step from `found` to `target` with `execute(sql)`."""
    for version in range(found + 1, target + 1):
        for sql in statements(version, dialect):
            execute(sql)
