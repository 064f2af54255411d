"""What `lhlab registry init|check|migrate` does, on a study folder (SQLite) or a lab server.

On a server every study is a schema `lhlab/<study folder name>` (postgres.py); the lab itself
has a schema `lhlab` whose table `lab` records when `init` prepared the database.
Moving a study from SQLite to a server (`migrate URL --from STUDY_DIR`) copies every row in
one transaction, then renames the file to `registry.sqlite.moved` (with the server's masked
URL in its meta) so no station goes on assigning from the old file by mistake.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from experiment.errors import BadInput
from experiment.registry import schema
from experiment.registry.core import now_iso, station_name
from experiment.registry.location import Location

MOVED_SUFFIX = ".moved"
LAB_SCHEMA = "lhlab"


@dataclass(frozen=True)
class StudyState:
    key: str                 # study folder name (server) or the study folder (SQLite)
    version: int
    study_id: str | None
    participants: int

    @property
    def verdict(self) -> str:
        if self.version > schema.SCHEMA_VERSION:
            return f"schema {self.version} is newer than this lhlab ({schema.SCHEMA_VERSION}): update lhlab"
        if self.version < schema.SCHEMA_VERSION:
            return f"schema {self.version}, needs lhlab registry migrate"
        return f"schema {self.version}, ok"


# -- PostgreSQL ------------------------------------------------------------------------------
def _server(location: Location):
    from experiment.registry.postgres import connect_server
    return connect_server(location)


def _ident(name: str):
    from psycopg import sql
    return sql.Identifier(name)


def server_init(location: Location) -> str:
    """Prepare the lab database (idempotent); return a one-line description of the server."""
    from psycopg import errors, sql
    db = _server(location)
    try:
        with db.transaction():
            try:
                db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(_ident(LAB_SCHEMA)))
            except errors.InsufficientPrivilege:
                raise BadInput(f"{location.shown}: this user may not create schemas; ask the lab admin to "
                               "GRANT CREATE ON DATABASE to it") from None
            db.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {}.lab (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                       .format(_ident(LAB_SCHEMA)))
            db.execute(sql.SQL("INSERT INTO {}.lab VALUES ('created', %s) ON CONFLICT DO NOTHING")
                       .format(_ident(LAB_SCHEMA)), (now_iso(),))
        version = db.execute("SHOW server_version").fetchone()[0]
        return f"PostgreSQL {version}, {len(server_studies(location, db))} studies"
    finally:
        db.close()


def server_studies(location: Location, db=None) -> list[StudyState]:
    """Every study on the server with its schema version and size."""
    from psycopg import sql
    from experiment.registry.postgres import SCHEMA_PREFIX
    own = db is None
    db = db or _server(location)
    try:
        names = [r[0] for r in db.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s) "
                                          "ORDER BY nspname", (SCHEMA_PREFIX,))]
        out = []
        for name in names:
            meta = dict(db.execute(sql.SQL("SELECT key, value FROM {}.meta").format(_ident(name))).fetchall())
            n = db.execute(sql.SQL("SELECT COUNT(*) FROM {}.participants").format(_ident(name))).fetchone()[0]
            out.append(StudyState(name[len(SCHEMA_PREFIX):], int(meta.get("schema", 0)), meta.get("study_id"), n))
        return out
    finally:
        if own:
            db.close()


def server_migrate(location: Location) -> list[str]:
    """Upgrade every study on the server to this lhlab's schema; one line per study."""
    from psycopg import sql
    from experiment.registry.postgres import SCHEMA_PREFIX
    db = _server(location)
    lines = []
    try:
        for state in server_studies(location, db):
            if state.version > schema.SCHEMA_VERSION:
                raise BadInput(f"{location.shown}: study {state.key} has schema {state.version}, written by a newer "
                               f"lhlab (this one knows {schema.SCHEMA_VERSION}); update lhlab, never downgrade")
            if state.version == schema.SCHEMA_VERSION:
                lines.append(f"{state.key}: schema {state.version}, already current")
                continue
            with db.transaction():
                db.execute(sql.SQL("SET LOCAL search_path TO {}").format(_ident(SCHEMA_PREFIX + state.key)))
                found = int(db.execute("SELECT value FROM meta WHERE key = 'schema' FOR UPDATE").fetchone()[0])
                schema.upgrade(lambda s: db.execute(s), "postgresql", found)
                db.execute("UPDATE meta SET value = %s WHERE key = 'schema'", (str(schema.SCHEMA_VERSION),))
                db.execute("INSERT INTO audit (time, action, detail, station) VALUES (%s, 'migrate', %s, %s)",
                           (now_iso(), f"schema {found} -> {schema.SCHEMA_VERSION}", station_name()))
            lines.append(f"{state.key}: schema {found} -> {schema.SCHEMA_VERSION}")
        return lines
    finally:
        db.close()


_COPY = {  # table: columns copied from SQLite to the server, in the order rows were made
    "participants": ("label", "external_id", "condition", "status", "notes", "created"),
    "sessions": ("label", "number", "started", "ended", "status", "data_path", "experimenter", "training_complete",
                 "notes", "pilot"),
    "assignment_log": ("label", "condition", "rule", "block", "slot", "seed", "yoked_to", "reason",
                       "protocol_sha256", "time", "request", "station", "override_full", "replaces"),
    "audit": ("time", "action", "label", "detail", "station"),
    "partner_schedules": ("label", "session", "phase", "condition", "schedule", "sha256", "pilot", "station",
                          "stored"),
}
_ORDER = {"participants": "id", "sessions": "label, number", "assignment_log": "id", "audit": "id",
          "partner_schedules": "label, session, phase"}


def import_sqlite(location: Location, study_dir: Path) -> str:
    """Copy `study_dir`'s SQLite registry to the server (refused if the server already has that study)."""
    from experiment.registry.postgres import PostgresRegistry, study_key
    from experiment.registry.sqlite import REGISTRY_FILE, SQLiteRegistry
    study_dir = Path(study_dir)
    if not (study_dir / REGISTRY_FILE).is_file():
        raise BadInput(f"{study_dir} has no {REGISTRY_FILE} to copy; check the study folder")
    key = study_key(study_dir)
    if any(s.key == key and s.participants for s in server_studies(location)):
        raise BadInput(f"{location.shown} already holds participants of study {key}; refusing to merge two "
                       "registries (their labels and slots would clash)")
    src = SQLiteRegistry.connect(study_dir, None, None)          # brings an old file to the current schema
    try:
        src._attach_keys(create=False)                             # external ids live in the key file
        select = {t: ", ".join(cols) for t, cols in _COPY.items()}
        select["participants"] = select["participants"].replace(
            "external_id", f"{src._external_id_sql()} AS external_id").replace("label,", "p.label,", 1)
        rows = {t: src._db.execute(f"SELECT {select[t]} FROM {t}{' p' if t == 'participants' else ''} "
                                   f"ORDER BY {_ORDER[t]}").fetchall()
                for t in _COPY}
        yokes = src._db.execute("SELECT label, yoked_to FROM participants WHERE yoked_to IS NOT NULL").fetchall()
        meta = src._db.execute("SELECT key, value FROM meta WHERE key != 'schema'").fetchall()
    finally:
        src.close()
    dst = PostgresRegistry.connect(location, study_dir, None, None, importing=True)
    try:
        def body() -> None:
            for k, v in meta:
                dst._set_meta(k, v)
            for table, cols in _COPY.items():
                sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
                for row in rows[table]:
                    dst._x(sql, tuple(row))
            for label, partner in yokes:
                dst._x("UPDATE participants SET yoked_to = ? WHERE label = ?", (partner, label))
            dst._audit("import", None, f"copied from {study_dir / REGISTRY_FILE} ({len(rows['participants'])} "
                                       "participants)")
        dst._transaction(body)
    finally:
        dst.close()
    moved = study_dir / (REGISTRY_FILE + MOVED_SUFFIX)
    db = sqlite3.connect(study_dir / REGISTRY_FILE)
    try:
        db.execute("INSERT INTO meta (key, value) VALUES ('moved_to', ?) ON CONFLICT(key) DO UPDATE SET "
                   "value = excluded.value", (location.shown,))
        db.commit()
        db.execute("PRAGMA journal_mode = DELETE")       # fold the WAL into the file before renaming it
    finally:
        db.close()
    (study_dir / REGISTRY_FILE).rename(moved)
    return f"copied {len(rows['participants'])} participants, {len(rows['sessions'])} sessions and " \
           f"{len(rows['assignment_log'])} assignments of {key} to {location.shown}; the old file is now {moved.name}"


# -- SQLite (a study folder) --------------------------------------------------------------------
def sqlite_state(study_dir: Path) -> StudyState:
    from experiment.registry.sqlite import REGISTRY_FILE, stored_version
    path = Path(study_dir) / REGISTRY_FILE
    if not path.is_file():
        raise BadInput(f"{study_dir} has no {REGISTRY_FILE}; run lhlab registry init {study_dir} or add a participant")
    try:
        version = stored_version(path)
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            n = db.execute("SELECT COUNT(*) FROM participants").fetchone()[0]
            row = db.execute("SELECT value FROM meta WHERE key = 'study_id'").fetchone()
        finally:
            db.close()
    except sqlite3.Error as e:
        raise BadInput(f"{path} is not a usable lhlab registry ({e}); move it away or restore a backup") from None
    return StudyState(str(study_dir), version or 0, row[0] if row else None, n)
