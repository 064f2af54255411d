"""The PostgreSQL backend (psycopg 3): one lab server shared by every testing room.

Layout. One database holds the lab's studies; each study folder name (`<study-id>`, or
`_pilot/<study-id>` for pilots) gets its own schema `lhlab/<name>` holding the same tables
as the SQLite file, so every rule in core.py runs on the same SQL. Stations keep writing
their session files locally; the server only holds the registry.

Locking: row locks, not SERIALIZABLE + retry. Every write transaction (READ COMMITTED) begins
with `SELECT ... FROM meta WHERE key = 'schema' FOR UPDATE`, one row per study, so writers
queue on it exactly as they queue on SQLite's write lock, and both backends behave the same.
Why not SERIALIZABLE + retry: every assignment reads the whole study (used slots, the free
partners, the next label) and then writes to it, so two concurrent assignments always
conflict; with 8 stations most attempts would be rolled back and redone, with unbounded
latency and more load, for no gain in parallelism. The row lock costs one wait per queued
writer. READ COMMITTED matters: each statement after the lock takes a fresh snapshot, so it
sees everything committed before the lock was granted (REPEATABLE READ would keep the snapshot
of the lock statement and miss those). Readers never wait. Unique indexes back it all up.

Failures. A station killed inside a transaction drops its connection; the server rolls the
transaction back and frees the lock at once. A session stuck inside a transaction is ended by
`idle_in_transaction_session_timeout`, and a station waiting for the lock longer than
`lock_timeout` gets a one-line message instead of hanging. When the server is down or
restarting, every call retries for RETRY_S and then raises RegistryUnavailable (one line,
never a traceback); the next call reconnects. A registration whose COMMIT was sent but not
acknowledged may or may not have happened: it carries a request token (stored with its
assignment log row), and the same registration retried on this Registry object reuses the
token, so it finds the first one instead of adding a participant twice.

Credentials: the password comes from libpq (~/.pgpass, PGPASSWORD, PGSERVICE); URLs are
shown through location.mask(); messages are built from libpq's error text, masked too.

Schema versions are checked when a study is opened; an older one is upgraded only by
`lhlab registry migrate URL` (other stations may still run the older lhlab), a newer one is
refused.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

from experiment.errors import BadInput, LhlabError
from experiment.registry import schema
from experiment.registry.core import BACKENDS, EXISTS, Registry, now_iso
from experiment.registry.location import Location, mask

if TYPE_CHECKING:
    import psycopg

    from experiment.protocol import Protocol

T = TypeVar("T")
CONNECT_TIMEOUT_S = 3
RETRY_S = 2.0
LOCK_TIMEOUT_MS = 30_000
IDLE_IN_TRANSACTION_MS = 60_000
SCHEMA_PREFIX = "lhlab/"
MARKER = Path("lhlab") / "registry.json"       # in the study folder: this study's registry is on a server


class RegistryUnavailable(BadInput):
    """The registry server cannot be reached now (down, restarting, network). One line."""


def study_key(study_dir: Path) -> str:
    """The name a study folder has on the server: `<study-id>` or `_pilot/<study-id>`."""
    study_dir = Path(study_dir)
    return f"{study_dir.parent.name}/{study_dir.name}" if study_dir.parent.name.startswith("_") else study_dir.name


def reason_of(e: Exception) -> str:
    """libpq's error, shortened to what a person needs, on one line and without secrets."""
    text = " ".join(str(e).split())
    low = text.lower()
    if "password authentication failed" in low or "no password supplied" in low:
        user = text.split('user "', 1)[1].split('"', 1)[0] if 'user "' in text else "?"
        return f"the server refused the password of user {user!r}"
    for marker, short in (("does not exist", None), ("no such file or directory", "no server is listening there"),
                          ("connection refused", "connection refused: no server is listening there"),
                          ("timeout expired", f"no answer within {CONNECT_TIMEOUT_S} s"),
                          ("could not translate host name", "unknown host name"),
                          ("terminating connection", "the server shut down"),
                          ("server closed the connection", "the server closed the connection"),
                          ("the database system is", "the server is starting or shutting down"),
                          ("consuming input failed", "the connection was lost")):
        if marker in low:
            if short is None:
                found = re.search(r'(database|role) "([^"]*)" does not exist', text)
                return f'{found[1]} "{found[2]}" does not exist on the server' if found else mask(text)[:200]
            return short
    return mask(text)[:200]


def _connect(location: Location) -> psycopg.Connection:
    try:
        import psycopg
    except ImportError:
        raise BadInput("the PostgreSQL registry needs psycopg: pip install 'psycopg[binary]'") from None
    try:
        db = psycopg.connect(location.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                             application_name="lhlab")
    except psycopg.ProgrammingError as e:          # a conninfo libpq cannot parse
        raise BadInput(f"{location.source}: {location.shown!r} is not a valid PostgreSQL URL "
                       f"({reason_of(e)})") from None
    except psycopg.Error as e:
        why = reason_of(e)
        fix = ("fix the password in ~/.pgpass (or PGPASSWORD)" if "password" in why else
               "create it (createdb) or fix the URL" if "does not exist" in why else
               "check that the server runs and the host/port in the URL, or use --registry sqlite on a single PC")
        unavailable = RegistryUnavailable(f"cannot connect to the registry server {location.shown}: {why}; {fix}")
        unavailable.reason = why
        raise unavailable from None
    db.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")
    db.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}")
    return db


def connect_server(location: Location) -> psycopg.Connection:
    """A plain connection to the lab database (for `lhlab registry ...`)."""
    return _connect(location)


def _lost(e: Exception, db) -> bool:
    import psycopg
    return isinstance(e, (psycopg.OperationalError, psycopg.InterfaceError)) and \
        (db is None or db.closed or db.broken or type(e).__name__ in ("AdminShutdown", "CrashShutdown",
                                                                      "CannotConnectNow"))


class PostgresRegistry(Registry):
    backend = "postgresql"

    def __init__(self, location: Location, study_dir: Path, db):
        self.location = location
        self.key = study_key(study_dir)
        self.schema_name = SCHEMA_PREFIX + self.key
        self._pending: dict[tuple, str] = {}
        super().__init__(study_dir, db, f"{location.shown} (study {self.key})")

    @classmethod
    def connect(cls, location: Location, study_dir: Path, protocol: Protocol | None,
                seed: int | None, importing: bool = False) -> PostgresRegistry:
        reg = cls(location, study_dir, None)
        if len(reg.schema_name.encode()) > 63:
            raise BadInput(f"study folder name {reg.key!r} is too long for the server (at most "
                           f"{63 - len(SCHEMA_PREFIX)} bytes); use a shorter study id")
        reg._db = _connect(location)
        try:
            reg._use_schema()
            reg._transaction(lambda: reg._setup(protocol, seed, importing), lock=False)
            write_marker(study_dir, location)
        except BaseException:
            reg.close()
            raise
        return reg

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

    def _use_schema(self) -> None:
        from psycopg import sql
        self._db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema_name)))

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _setup(self, protocol: Protocol | None, seed: int | None, importing: bool = False) -> None:
        """Create this study's schema if it is new (never over a SQLite study); check its version."""
        from psycopg import errors, sql
        self._db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.schema_name,))
        exists = self._db.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema_name,)).fetchone()
        if not exists:
            local = self.study_dir / "registry.sqlite"
            n = _sqlite_participants(local)
            if n and not importing:
                raise BadInput(f"{self.study_dir} keeps its registry in {local.name} ({n} participants), not on "
                               f"{self.location.shown}; copy it to the server first: lhlab registry migrate "
                               f"{self.location.shown} --from {self.study_dir} (or keep it on this PC: "
                               "--registry sqlite)")
            try:
                self._db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema_name)))
            except errors.InsufficientPrivilege:
                raise BadInput(f"{self.location.shown}: this user may not create a study on the server; ask the "
                               "lab admin to GRANT CREATE ON DATABASE to it") from None
            schema.upgrade(lambda s: self._db.execute(s), "postgresql", 0)
            self._set_meta("schema", str(schema.SCHEMA_VERSION))
            self._set_meta("created", now_iso())
            self._set_meta("next_label", "1")
        else:
            # the study's row lock too, so binding a protocol here cannot race an assignment
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema' FOR UPDATE").fetchone()
            found = int(row[0]) if row else 0
            if found > schema.SCHEMA_VERSION:
                raise BadInput(f"{self.where} has registry schema {found}, written by a newer lhlab; this lhlab "
                               f"reads up to {schema.SCHEMA_VERSION}: update lhlab on this station")
            if found < schema.SCHEMA_VERSION:
                raise BadInput(f"{self.where} has registry schema {found}; this lhlab needs "
                               f"{schema.SCHEMA_VERSION}: run lhlab registry migrate {self.location.shown} "
                               "(once, from any station)")
        if protocol is not None:
            self._bind(protocol, seed)

    # -- transactions and reconnecting -----------------------------------------------------
    def _request_token(self, key: tuple) -> str:
        import secrets
        return self._pending.setdefault(key, secrets.token_hex(16))

    def _reconnect(self) -> None:
        if self._db is not None and not self._db.closed and not self._db.broken:
            return
        if self._db is not None:
            self._db.close()
        self._db = None
        self._db = _connect(self.location)
        self._use_schema()

    def _retrying(self, attempt: Callable[[], T]) -> T:
        deadline = time.monotonic() + RETRY_S
        while True:
            try:
                self._reconnect()
                return attempt()
            except RegistryUnavailable as e:
                last = getattr(e, "reason", str(e))
            except Exception as e:
                if not _lost(e, self._db):
                    raise self._translate(e) from None
                last = reason_of(e)
            if time.monotonic() >= deadline:
                raise RegistryUnavailable(f"the registry server {self.location.shown} is unreachable ({last}); "
                                          "sessions go on and write locally; try again when it is back (a retried "
                                          "registration is not counted twice)") from None
            time.sleep(0.25)

    def _translate(self, e: Exception) -> Exception:
        import psycopg
        from psycopg import errors
        if isinstance(e, errors.LockNotAvailable):
            return RegistryUnavailable(f"{self.where}: another station held the study's lock for "
                                       f"{LOCK_TIMEOUT_MS // 1000} s; try again")
        if isinstance(e, psycopg.IntegrityError):     # a unique index caught what the rules should have
            return LhlabError(f"{self.where}: the server refused a duplicate ({reason_of(e)}); nothing was "
                              "changed; please report this as a bug")
        if isinstance(e, psycopg.Error):
            return BadInput(f"{self.where}: the server refused: {reason_of(e)}")
        return e

    def _transaction(self, body: Callable[[], T], request: str | None = None, lock: bool = True) -> T:
        def attempt() -> T:
            db = self._db
            db.execute("BEGIN")
            try:
                if lock:
                    db.execute("SELECT value FROM meta WHERE key = 'schema' FOR UPDATE")
                result = body()
            except BaseException:
                if not db.closed and not db.broken:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result
        try:
            return self._retrying(attempt)
        except RegistryUnavailable:
            raise                         # keep the pending token: the same request retried reuses it
        finally:
            if request is not None and not self._unsure(request):
                self._pending = {k: v for k, v in self._pending.items() if v != request}

    def _unsure(self, request: str) -> bool:
        """Whether a registration with this token may be in flight (kept for a retry)."""
        return self._db is None or self._db.closed or self._db.broken

    def _read(self, body: Callable[[], T]) -> T:
        return self._retrying(body)


def write_marker(study_dir: Path, location: Location) -> None:
    """Note in the study folder (lhlab/registry.json, never shared: .bidsignore) that its registry
    is on a server, so a station that was not told opens nothing local by mistake (sqlite.py)."""
    marker = Path(study_dir) / MARKER
    text = json.dumps({"registry": location.shown}) + "\n"
    try:
        if not marker.is_file() or marker.read_text(encoding="utf-8") != text:
            marker.parent.mkdir(exist_ok=True)
            tmp = marker.with_name(f".{marker.name}.{os.getpid()}.tmp")   # one per process: stations start together
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(marker)
    except OSError as e:
        raise BadInput(f"cannot write {marker} ({e.strerror}); check the study folder's permissions") from None


def _sqlite_participants(path: Path) -> int:
    """How many participants a SQLite registry file holds (0 if none or no such file)."""
    if not path.is_file():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return db.execute("SELECT COUNT(*) FROM participants").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def _exists(location: Location, study_dir: Path) -> bool:
    db = _connect(location)
    try:
        return db.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                          (SCHEMA_PREFIX + study_key(study_dir),)).fetchone() is not None
    finally:
        db.close()


BACKENDS["postgresql"] = PostgresRegistry.connect
EXISTS["postgresql"] = _exists
