"""The SQLite backend: one file per study, `<study_dir>/registry.sqlite`, in WAL mode.

Every change runs in one `BEGIN IMMEDIATE` transaction: SQLite's single write lock is taken
by the first statement, so several processes on the same study folder (two launchers, a
launcher and `lhlab simulate`) are serialised and never hand out the same label, slot or
yoked partner. A process killed inside a transaction leaves nothing: the uncommitted pages
in the WAL are ignored by the next reader. WAL does not work over a network share, so this
backend is for one PC; several stations use the PostgreSQL backend.

An older schema is upgraded in place when the file is opened (one local file, one writer at
a time, nothing else to coordinate); a newer one is refused.

A SQLiteRegistry holds one connection: use it from the thread that opened it (a worker
thread opens its own; opening is cheap).
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

from experiment.errors import BadInput, LhlabError
from experiment.registry import keyfile, schema
from experiment.registry.core import BACKENDS, EXISTS, Registry, now_iso

if TYPE_CHECKING:
    from experiment.protocol import Protocol

T = TypeVar("T")
REGISTRY_FILE = "registry.sqlite"
BUSY_TIMEOUT_S = 30.0


def _is_busy(e: sqlite3.OperationalError) -> bool:
    return "locked" in str(e) or "busy" in str(e)


def stored_version(path: Path) -> int | None:
    """The schema version of the registry file at `path` (None: no lhlab registry there yet)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        db.close()
    return int(row[0]) if row else None


def _moved_to(path: Path) -> str:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'moved_to'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        row = None
    return row[0] if row else "(see lhlab registry check)"


def _server_of(marker: Path) -> str:
    try:
        where = json.loads(marker.read_text(encoding="utf-8")).get("registry")
    except (OSError, ValueError, AttributeError, RecursionError):
        where = None
    return where if isinstance(where, str) else "(unreadable: see the study's lab notes)"


class SQLiteRegistry(Registry):
    backend = "sqlite"

    def __init__(self, study_dir: Path, db: sqlite3.Connection):
        self.path = study_dir / REGISTRY_FILE
        self._keys_attached = False
        super().__init__(study_dir, db, str(self.path))

    @classmethod
    def connect(cls, study_dir: Path, protocol: Protocol | None, seed: int | None,
                migrate: bool = True) -> SQLiteRegistry:
        path = study_dir / REGISTRY_FILE
        moved = path.with_name(REGISTRY_FILE + ".moved")
        if not path.exists() and moved.is_file():
            where = _moved_to(moved)
            raise BadInput(f"{study_dir}: this study's registry was moved to the server {where}; use it with "
                           f"--registry {where} or LHLAB_REGISTRY (password from ~/.pgpass)")
        marker = study_dir / "lhlab" / "registry.json"
        if not path.exists() and marker.is_file():
            where = _server_of(marker)
            raise BadInput(f"{study_dir}: this study's registry is on the server {where}; use it with --registry "
                           f"{where} or LHLAB_REGISTRY (if the study really moved back to this PC alone, delete "
                           f"{marker})")
        try:
            db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as e:
            raise BadInput(f"cannot open {path}: {e}") from None
        reg = cls(study_dir, db)
        try:
            db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA secure_delete = ON")      # erased ids and notes are overwritten, not just unlinked
            # Switching a new file to WAL, and the first look at a WAL file, can report
            # "locked" without waiting for the busy timeout while another process does the
            # same: retry until the timeout.
            deadline = time.monotonic() + BUSY_TIMEOUT_S
            while True:
                try:
                    reg._setup(protocol, seed, migrate)
                    break
                except sqlite3.OperationalError as e:
                    if not _is_busy(e) or time.monotonic() > deadline:
                        raise
                    time.sleep(random.uniform(0.005, 0.05))
        except sqlite3.OperationalError as e:
            db.close()
            if _is_busy(e):
                raise LhlabError(f"{path} stayed locked for {BUSY_TIMEOUT_S:.0f} s by another lhlab process; "
                                 "try again, or close the other launcher") from None
            raise BadInput(f"{path} is not a usable lhlab registry ({e}); move it away or restore a backup") \
                from None
        except sqlite3.DatabaseError as e:
            db.close()
            raise BadInput(f"{path} is not a usable lhlab registry ({e}); move it away or restore a backup") \
                from None
        except BaseException:
            db.close()
            raise
        try:
            reg._attach_keys(create=False)
            reg._move_ids_out()
        except BaseException:
            db.close()
            raise
        return reg

    def _setup(self, protocol: Protocol | None, seed: int | None, migrate: bool) -> None:
        mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise BadInput(f"{self.path}: SQLite cannot use WAL mode here (got {mode!r}); "
                           "put the data folder on a local disk")
        self._begin(raw=True)
        try:
            has_meta = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
                                        ).fetchone()
            found = int(self._meta("schema") or 0) if has_meta else 0
            if found > schema.SCHEMA_VERSION:
                raise BadInput(f"{self.path} has registry schema {found}, written by a newer lhlab; this lhlab "
                               f"reads up to {schema.SCHEMA_VERSION}: update lhlab on this PC")
            if found < schema.SCHEMA_VERSION and (migrate or found == 0):
                schema.upgrade(self._db.execute, "sqlite", found)
                self._set_meta("schema", str(schema.SCHEMA_VERSION))
                if found == 0:
                    self._set_meta("created", now_iso())
                    self._set_meta("next_label", "1")
                else:
                    self._audit("migrate", None, f"schema {found} -> {schema.SCHEMA_VERSION}")
            if protocol is not None:
                self._bind(protocol, seed)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- the identity key, outside the study folder (keyfile.py) -----------------------------
    _ids_in_registry = False

    def _external_id_sql(self) -> str:
        return "(SELECT k.external_id FROM keys.identities k WHERE k.label = p.label)" if self._keys_attached \
            else "NULL"

    def _external_owner(self, external_id: str) -> str | None:
        if not self._keys_attached:
            return None
        row = self._x("SELECT k.label FROM keys.identities k JOIN participants p ON p.label = k.label "
                      "WHERE k.external_id = ?", (external_id,)).fetchone()
        return row[0] if row else None

    def _store_external(self, label: str, external_id: str) -> None:
        if not self._keys_attached:
            raise BadInput(f"the identity key of {self.study_dir} is not on this PC ({self.key_path}); an external id "
                           "cannot be checked for duplicates without it: copy it from the PC that registered them")
        # INSERT OR REPLACE: a row left by a registration whose registry commit failed is not a person
        self._x("INSERT OR REPLACE INTO keys.identities (label, external_id, created) VALUES (?, ?, ?)",
                (label, external_id, now_iso()))

    @property
    def key_path(self) -> Path:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'key_file'").fetchone()
        return keyfile.keys_dir() / (row[0] if row else "(none yet)")

    def _attach_keys(self, create: bool) -> None:
        """ATTACH the key file as `keys` (outside any transaction); create it if asked."""
        if self._keys_attached:
            return
        if self._db.execute("SELECT value FROM meta WHERE key = 'key_file'").fetchone() is None:
            if not create:
                return
            self._transaction(lambda: self._set_meta("key_file", keyfile.new_name(self.study_dir)))
        path = self.key_path
        if not path.is_file():
            if not create:
                return
            keyfile.create(path)
        self._db.execute("ATTACH DATABASE ? AS keys", (str(path),))
        self._db.execute(keyfile.SCHEMA)
        self._keys_attached = True

    def _move_ids_out(self) -> None:
        """External ids still in the registry file (schema < 3) move to the key file and are
        wiped from the registry (secure_delete, WAL checkpointed and truncated)."""
        if not self._db.execute("SELECT 1 FROM participants WHERE external_id IS NOT NULL LIMIT 1").fetchone():
            return
        self._attach_keys(create=True)

        def body() -> None:
            self._x("INSERT OR REPLACE INTO keys.identities (label, external_id, created) SELECT label, external_id, "
                    "created FROM participants WHERE external_id IS NOT NULL")
            n = self._x("UPDATE participants SET external_id = NULL WHERE external_id IS NOT NULL").rowcount
            self._audit("identity-key", None, f"{n} external ids moved to the key file outside the study folder")
        self._transaction(body)
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _forget_external(self, label: str) -> None:
        if self._keys_attached:
            self._x("DELETE FROM keys.identities WHERE label = ?", (label,))

    def add_participant(self, protocol, external_id=None, condition=None, reason=None, override_reason=None):
        if external_id is not None and external_id.strip():
            self._attach_keys(create=True)        # ATTACH cannot run inside the transaction
        return super().add_participant(protocol, external_id, condition, reason, override_reason)

    def _begin(self, raw: bool = False) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if raw or not _is_busy(e):
                raise
            raise LhlabError(f"{self.path} stayed locked for {BUSY_TIMEOUT_S:.0f} s by another lhlab process "
                             f"({e}); try again, or close the other launcher") from None

    def _transaction(self, body: Callable[[], T], request: str | None = None) -> T:
        """One IMMEDIATE transaction: the write lock is taken at the start, so reads inside
        it see everything other processes committed and nobody else writes meanwhile."""
        self._begin()
        try:
            result = body()
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return result


BACKENDS["sqlite"] = lambda location, study_dir, protocol, seed: SQLiteRegistry.connect(study_dir, protocol, seed)
EXISTS["sqlite"] = lambda location, study_dir: (study_dir / REGISTRY_FILE).exists()
