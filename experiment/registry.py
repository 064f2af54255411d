"""The study registry: participants, sessions, condition assignment and yoking, in SQLite.

One file per study, `<study_dir>/registry.sqlite`, in WAL mode. Every change runs in one
`BEGIN IMMEDIATE` transaction, so several processes on the same study folder (two launchers,
a launcher and `lhlab simulate`) are serialised and never hand out the same label, slot or
yoked partner.

Assignment
----------
Permuted blocks: block k holds every condition `block_size / n_conditions` times in an order
drawn from `random.Random(f"lhlab-blocks:{seed}:{k}")`; the seed is fixed when the registry is
created and written into every assignment log row, so the whole sequence can be recomputed.
A new participant takes the first free slot in block order. A slot of a yoked condition
(`yoked_to: <partner condition>` in the protocol) is only taken when a partner is free: a
participant of the partner condition whose training is complete (a session record in which
every phase with role `training` has status `complete`; for a condition without training
phases, a complete session) and who has not been used for another yoke, oldest registration
first. What the partner did after training (withdrawn in the test, crashed) does not matter:
their training schedule exists and can be replayed. Otherwise that slot waits at the front of the queue and the
next slot that is not yoked is used (in the same block, or the next one if the block has none
left). Manual assignments (`condition=...` with a typed reason) and participants found on disk
that `lhlab run` created (rule `command-line`) use no block slot.

The registry never frees a partner: once a yoke is made it stays, whatever happens to either
participant. A participant keeps their condition for every session; a crashed session is
re-run as the next session of the same participant.

The session records on disk stay the truth about sessions; `sync_sessions()` copies them into
the registry (with the effective status, so a killed session shows as `crashed`).

A Registry object holds one SQLite connection: use it from the thread that opened it (a
worker thread opens its own; opening is cheap).
"""

from __future__ import annotations

import json
import random
import re
import secrets
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from experiment import datafile
from experiment.errors import BadInput, LhlabError

if TYPE_CHECKING:
    from experiment.protocol import Protocol

REGISTRY_FILE = "registry.sqlite"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0
PARTICIPANT_STATUSES = ("registered", "running", "complete", "aborted", "withdrawn", "crashed")
RULES = ("block", "manual", "command-line")
LABEL_PREFIX = "P"
_LABEL_RE = re.compile(r"^[A-Za-z0-9]+$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS participants (
    id          INTEGER PRIMARY KEY,
    label       TEXT NOT NULL UNIQUE,
    external_id TEXT,
    condition   TEXT NOT NULL,
    yoked_to    TEXT REFERENCES participants(label),
    status      TEXT NOT NULL DEFAULT 'registered',
    notes       TEXT NOT NULL DEFAULT '',
    created     TEXT NOT NULL
);
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
    id              INTEGER PRIMARY KEY,
    label           TEXT NOT NULL REFERENCES participants(label),
    condition       TEXT NOT NULL,
    rule            TEXT NOT NULL CHECK (rule IN ('block', 'manual', 'command-line')),
    block           INTEGER,
    slot            INTEGER,
    seed            INTEGER,
    yoked_to        TEXT,
    reason          TEXT,
    protocol_sha256 TEXT,
    time            TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS assignment_one_slot ON assignment_log(block, slot) WHERE rule = 'block';
"""


def _is_busy(e: sqlite3.OperationalError) -> bool:
    return "locked" in str(e) or "busy" in str(e)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Participant:
    """One registered participant as the registry knows them (after the last sync)."""

    label: str
    condition: str
    yoked_to: str | None          # partner label for a yoked condition
    status: str                   # one of PARTICIPANT_STATUSES: the latest session's, or 'registered'
    external_id: str | None
    notes: str
    created: str
    sessions: int                 # sessions known to the registry
    training_complete: bool       # some session finished every training phase


@dataclass(frozen=True)
class SessionEntry:
    """One session of a participant, copied from its session record by `sync_sessions`."""

    label: str
    number: int
    started: str | None
    ended: str | None
    status: str                   # effective status: a killed `running` session is `crashed`
    data_path: str                # session folder, relative to the study folder
    experimenter: str | None
    training_complete: bool
    notes: str


@dataclass(frozen=True)
class Assignment:
    """One row of the assignment log: who got what, by which rule."""

    label: str
    condition: str
    rule: str                     # 'block' | 'manual' | 'command-line'
    block: int | None             # block index (rule 'block' only)
    slot: int | None              # position within the block, 0-based
    seed: int | None              # the study's block seed
    yoked_to: str | None
    reason: str | None            # typed reason (manual) or where it came from (command-line)
    protocol_sha256: str | None
    time: str


def block_order(seed: int, block: int, conditions: list[str], block_size: int) -> list[str]:
    """The conditions of block `block`, in their seeded order (each block_size/len(conditions) times)."""
    slots = [c for c in conditions for _ in range(block_size // len(conditions))]
    random.Random(f"lhlab-blocks:{seed}:{block}").shuffle(slots)
    return slots


class Registry:
    """The registry of one study folder. Open with `Registry.open(study_dir)`; close when done."""

    def __init__(self, study_dir: Path, db: sqlite3.Connection):
        self.study_dir = study_dir
        self.path = study_dir / REGISTRY_FILE
        self._db = db

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, study_dir: str | Path, protocol: Protocol | None = None, seed: int | None = None) -> Registry:
        """Open (creating the folder and file if needed) the registry of `study_dir`.

        With `protocol`, a new registry is bound to its study id, conditions and block size,
        with the block seed `seed` (random if None); an existing one is checked against them
        and refused with BadInput if it belongs to another study or its design changed.
        `seed` is ignored for an existing registry (its stored seed is `Registry.seed`).
        """
        study_dir = Path(study_dir)
        try:
            study_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BadInput(f"cannot create the study folder {study_dir} ({e.strerror}); "
                           "choose another data folder") from None
        try:
            db = sqlite3.connect(study_dir / REGISTRY_FILE, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as e:
            raise BadInput(f"cannot open {study_dir / REGISTRY_FILE}: {e}") from None
        reg = cls(study_dir, db)
        try:
            db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            db.execute("PRAGMA foreign_keys = ON")
            # Switching a new file to WAL, and the first look at a WAL file, can report
            # "locked" without waiting for the busy timeout while another process does the
            # same: retry until the timeout.
            deadline = time.monotonic() + BUSY_TIMEOUT_S
            while True:
                try:
                    reg._setup(protocol, seed)
                    break
                except sqlite3.OperationalError as e:
                    if not _is_busy(e) or time.monotonic() > deadline:
                        raise
                    time.sleep(random.uniform(0.005, 0.05))
        except sqlite3.OperationalError as e:
            db.close()
            if _is_busy(e):
                raise LhlabError(f"{reg.path} stayed locked for {BUSY_TIMEOUT_S:.0f} s by another lhlab process; "
                                 "try again, or close the other launcher") from None
            raise BadInput(f"{reg.path} is not a usable lhlab registry ({e}); move it away or restore a backup") \
                from None
        except sqlite3.DatabaseError as e:
            db.close()
            raise BadInput(f"{reg.path} is not a usable lhlab registry ({e}); move it away or restore a backup") \
                from None
        except BaseException:
            db.close()
            raise
        return reg

    def _setup(self, protocol: Protocol | None, seed: int | None) -> None:
        mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise BadInput(f"{self.path}: SQLite cannot use WAL mode here (got {mode!r}); "
                           "put the data folder on a local disk")
        with self._write(raw=True):
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            found = self._meta("schema")
            if found is None:
                self._set_meta("schema", str(SCHEMA_VERSION))
                self._set_meta("created", now_iso())
                self._set_meta("next_label", "1")
            elif int(found) != SCHEMA_VERSION:
                raise BadInput(f"{self.path} has registry schema {found}; this lhlab reads {SCHEMA_VERSION}")
            if protocol is not None:
                self._bind(protocol, seed)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- facts about the study -------------------------------------------------------------
    @property
    def study_id(self) -> str | None:
        return self._meta("study_id")

    @property
    def seed(self) -> int | None:
        """The block seed fixed at creation (None until a protocol was bound)."""
        value = self._meta("seed")
        return None if value is None else int(value)

    @property
    def design(self) -> dict | None:
        """{'conditions': [...], 'yoked': {condition: partner condition}, 'block_size': n}."""
        value = self._meta("design")
        return None if value is None else json.loads(value)

    # -- participants ----------------------------------------------------------------------
    def add_participant(self, protocol: Protocol, external_id: str | None = None,
                        condition: str | None = None, reason: str | None = None) -> Participant:
        """Register a new participant with a generated label and an assigned condition.

        Without `condition` the permuted-block rule assigns one (see the module docstring).
        With `condition` the assignment is manual and `reason` must say why; it is logged.
        A yoked condition always gets the oldest free partner, or BadInput if none is free
        (manual) - the block rule then simply uses another slot.
        """
        if condition is None and reason is not None:
            raise BadInput("a reason is only recorded with a manual condition; pass the condition too")
        if condition is not None:
            if condition not in protocol.conditions:
                raise BadInput(f"condition {condition!r} is not in {protocol.path}; "
                               f"choose one of: {', '.join(protocol.conditions)}")
            if not (reason or "").strip():
                raise BadInput(f"a manual condition ({condition}) needs a reason, e.g. 'replaces P004 "
                               "whose data were lost'; it is kept in the assignment log")
        if external_id is not None:
            external_id = external_id.strip() or None
        with self._write():
            self._bind(protocol, None)
            self._sync()
            if external_id is not None:
                row = self._db.execute("SELECT label FROM participants WHERE external_id = ?",
                                       (external_id,)).fetchone()
                if row:
                    raise BadInput(f"external id {external_id!r} is already registered as {row[0]}; "
                                   "a person takes part once (look them up in the participants table)")
            label = self._new_label()
            design, seed = self.design, self.seed
            if condition is not None:
                partner = None
                if design["yoked"].get(condition):
                    partner = self._free_partner(condition)
                    if partner is None:
                        raise BadInput(f"no free partner for yoked condition {condition!r}: a "
                                       f"{design['yoked'][condition]!r} participant must finish training first")
                block = slot = None
                rule, logged_reason = "manual", reason.strip()
            else:
                block, slot, condition, partner = self._next_slot()
                rule, logged_reason = "block", None
            now = now_iso()
            self._db.execute("INSERT INTO participants (label, external_id, condition, yoked_to, status, created) "
                             "VALUES (?, ?, ?, ?, 'registered', ?)", (label, external_id, condition, partner, now))
            self._db.execute("INSERT INTO assignment_log (label, condition, rule, block, slot, seed, yoked_to, "
                             "reason, protocol_sha256, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (label, condition, rule, block, slot, seed, partner, logged_reason,
                              protocol.sha256, now))
        return self.participant(label)

    def participants(self) -> list[Participant]:
        """Every participant, oldest first (as of the last sync; call sync_sessions to refresh)."""
        return [self._participant(r) for r in self._db.execute(_PARTICIPANT_QUERY + " ORDER BY p.created, p.id")]

    def participant(self, label: str) -> Participant:
        """One participant; BadInput if the label is not registered."""
        row = self._db.execute(_PARTICIPANT_QUERY + " WHERE p.label = ?", (label,)).fetchone()
        if row is None:
            raise BadInput(f"participant {label!r} is not in {self.path}; check the label "
                           "(participants are added with 'New participant' or lhlab simulate)")
        return self._participant(row)

    def sessions(self, label: str | None = None) -> list[SessionEntry]:
        """Sessions known to the registry (of one participant, or all), in label/number order."""
        q = "SELECT label, number, started, ended, status, data_path, experimenter, training_complete, notes " \
            "FROM sessions"
        rows = self._db.execute(q + " WHERE label = ? ORDER BY number", (label,)) if label else \
            self._db.execute(q + " ORDER BY label, number")
        return [SessionEntry(*r[:7], bool(r[7]), r[8]) for r in rows]

    def assignment_log(self) -> list[Assignment]:
        """The whole assignment log, in the order assignments were made."""
        rows = self._db.execute("SELECT label, condition, rule, block, slot, seed, yoked_to, reason, "
                                "protocol_sha256, time FROM assignment_log ORDER BY id")
        return [Assignment(*r) for r in rows]

    def free_partner(self, condition: str) -> str | None:
        """The label a new participant of yoked `condition` would be yoked to now, or None."""
        design = self.design
        if not design or not design["yoked"].get(condition):
            return None
        return self._free_partner(condition)

    def set_note(self, label: str, session: int | None, text: str) -> None:
        """Replace the note of a participant (`session` None) or of one of their sessions."""
        with self._write():
            if session is None:
                cur = self._db.execute("UPDATE participants SET notes = ? WHERE label = ?", (text, label))
                if cur.rowcount == 0:
                    raise BadInput(f"participant {label!r} is not in {self.path}; check the label")
                return
            sql = "UPDATE sessions SET notes = ? WHERE label = ? AND number = ?"
            if self._db.execute(sql, (text, label, session)).rowcount == 0:
                self._sync()
                if self._db.execute(sql, (text, label, session)).rowcount == 0:
                    raise BadInput(f"sub-{label} has no session {session} in {self.study_dir}; "
                                   "notes belong to a session that has started")

    def sync_sessions(self) -> list[str]:
        """Copy every session record on disk into the registry; rebuild participants.tsv.

        Session status is the effective one (a `running` record whose process is gone is
        `crashed`); a participant's status is their latest session's. A session of a label
        the registry does not know (e.g. `lhlab run` on the command line) registers that
        participant with rule 'command-line'. Returns problems worth showing (unreadable
        records, a condition on disk that differs from the registry's), one line each.
        """
        with self._write():
            problems = self._sync()
            if (self.study_dir / "dataset_description.json").is_file():
                datafile.update_participants_tsv(self.study_dir)
        return problems

    # -- internals -------------------------------------------------------------------------
    @contextmanager
    def _write(self, raw: bool = False) -> Iterator[None]:
        """One IMMEDIATE transaction: the write lock is taken at the start, so reads inside
        it see everything other processes committed and nobody else writes meanwhile."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if raw or not _is_busy(e):
                raise
            raise LhlabError(f"{self.path} stayed locked for {BUSY_TIMEOUT_S:.0f} s by another lhlab process "
                             f"({e}); try again, or close the other launcher") from None
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _meta(self, key: str) -> str | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:
            return None
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def _bind(self, protocol: Protocol, seed: int | None) -> None:
        """Inside a transaction: bind a fresh registry to `protocol`, or check it matches."""
        design = {"conditions": list(protocol.conditions),
                  "yoked": {c.name: c.yoked_to for c in protocol.conditions.values() if c.yoked_to},
                  "block_size": protocol.block_size}
        stored = self._meta("study_id")
        if stored is None:
            if len(design["yoked"]) == len(design["conditions"]):
                raise BadInput(f"{protocol.path}: every condition is yoked; at least one condition must be "
                               "assigned without a partner")
            self._set_meta("study_id", protocol.study_id)
            self._set_meta("protocol_sha256", protocol.sha256)
            self._set_meta("protocol_file", str(protocol.path.resolve()))
            self._set_meta("design", json.dumps(design))
            self._set_meta("seed", str(seed if seed is not None else secrets.randbelow(2**31)))
            return
        if stored != protocol.study_id:
            raise BadInput(f"{self.path} belongs to study {stored!r}, not {protocol.study_id!r} ({protocol.path}); "
                           f"use the data folder's {protocol.study_id} study folder or another --data-dir")
        if json.loads(self._meta("design")) != design:
            raise BadInput(f"{protocol.path}: its conditions/yoking/block size differ from those study "
                           f"{stored!r} was started with ({self._meta('design')}); balanced assignment cannot "
                           "continue: restore the protocol or start a new study id")

    def _new_label(self) -> str:
        n = int(self._meta("next_label") or 1)
        while True:
            label = f"{LABEL_PREFIX}{n:03d}"
            taken = self._db.execute("SELECT 1 FROM participants WHERE label = ?", (label,)).fetchone()
            if not taken and not (self.study_dir / f"sub-{label}").exists():
                break
            n += 1
        self._set_meta("next_label", str(n + 1))
        return label

    def _next_slot(self) -> tuple[int, int, str, str | None]:
        """(block, slot, condition, partner) of the next slot that can be given now."""
        design, seed = self.design, self.seed
        conditions, yoked, size = design["conditions"], design["yoked"], design["block_size"]
        used: dict[int, set[int]] = {}
        for block, slot in self._db.execute("SELECT block, slot FROM assignment_log WHERE rule = 'block'"):
            used.setdefault(block, set()).add(slot)
        block = 0
        while True:
            taken = used.get(block, set())
            if len(taken) < size:
                for slot, condition in enumerate(block_order(seed, block, conditions, size)):
                    if slot in taken:
                        continue
                    if condition in yoked:
                        partner = self._free_partner(condition)
                        if partner is None:
                            continue          # this slot waits for a partner; keep looking
                        return block, slot, condition, partner
                    return block, slot, condition, None
            block += 1

    def _free_partner(self, condition: str) -> str | None:
        partner_condition = self.design["yoked"][condition]
        row = self._db.execute(
            "SELECT p.label FROM participants p WHERE p.condition = ? "
            "AND EXISTS (SELECT 1 FROM sessions s WHERE s.label = p.label AND s.training_complete = 1) "
            "AND NOT EXISTS (SELECT 1 FROM participants q WHERE q.yoked_to = p.label) "
            "ORDER BY p.created, p.id LIMIT 1", (partner_condition,)).fetchone()
        return row[0] if row else None

    def _sync(self) -> list[str]:
        """Inside a transaction: upsert every session record on disk; return problems."""
        problems: list[str] = []
        latest: dict[str, tuple[int, str]] = {}
        # A finished session's record never changes again: read only the others, so a
        # registration stays fast however many participants the study has.
        finished = {}
        for label, number, status in self._db.execute(
                "SELECT label, number, status FROM sessions WHERE status IN ('complete', 'withdrawn', 'aborted')"):
            finished[(label, number)] = status
            if number >= latest.get(label, (0, ""))[0]:
                latest[label] = (number, status)
        for rec in datafile.all_sessions(self.study_dir, skip=set(finished)):
            label, number = rec.get("participant"), rec.get("session")
            if not isinstance(label, str) or not _LABEL_RE.match(label) or not isinstance(number, int):
                problems.append(f"{rec.get('problem') or 'session record without participant/session'}; skipped")
                continue
            if rec.get("problem"):
                problems.append(rec["problem"])
            known = self._db.execute("SELECT condition FROM participants WHERE label = ?", (label,)).fetchone()
            if known is None:
                if not rec.get("condition"):
                    problems.append(f"sub-{label} ses-{number}: no readable condition; not registered")
                    continue
                self._add_from_disk(label, rec, problems)
            elif rec.get("condition") and rec["condition"] != known[0]:
                problems.append(f"sub-{label} ses-{number} ran condition {rec['condition']!r} but the registry "
                                f"assigned {known[0]!r}; check this participant's data")
            status = rec["effective_status"]
            phases = rec.get("phases") or []
            training = [p for p in phases if p.get("role") == "training"]
            done = all(p.get("status") == "complete" for p in training) if training else status == "complete"
            self._db.execute(
                "INSERT INTO sessions (label, number, started, ended, status, data_path, experimenter, "
                "training_complete) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(label, number) DO UPDATE SET "
                "started = excluded.started, ended = excluded.ended, status = excluded.status, "
                "data_path = excluded.data_path, experimenter = excluded.experimenter, "
                "training_complete = excluded.training_complete",
                (label, number, rec.get("started"), rec.get("ended"), status,
                 str(datafile.session_dir(Path("."), label, number)), rec.get("experimenter"), int(done)))
            if number >= latest.get(label, (0, ""))[0]:
                latest[label] = (number, status)
        for label, (_, status) in latest.items():
            self._db.execute("UPDATE participants SET status = ? WHERE label = ?",
                             (status if status in PARTICIPANT_STATUSES else "crashed", label))
        return problems

    def _add_from_disk(self, label: str, rec: dict, problems: list[str]) -> None:
        partner = rec.get("yoked_to") or None
        if partner is not None:
            exists = self._db.execute("SELECT 1 FROM participants WHERE label = ?", (partner,)).fetchone()
            clash = self._db.execute("SELECT label FROM participants WHERE yoked_to = ?", (partner,)).fetchone()
            if not exists or clash:
                why = f"already the partner of {clash[0]}" if clash else "not registered"
                problems.append(f"sub-{label}: its session names partner {partner}, who is {why}; "
                                "registered without a partner (a broken yoke)")
                partner = None
        created = rec.get("started") or now_iso()
        self._db.execute("INSERT INTO participants (label, condition, yoked_to, status, created) "
                         "VALUES (?, ?, ?, 'registered', ?)", (label, rec["condition"], partner, created))
        self._db.execute("INSERT INTO assignment_log (label, condition, rule, yoked_to, reason, protocol_sha256, "
                         "time) VALUES (?, ?, 'command-line', ?, ?, ?, ?)",
                         (label, rec["condition"], partner, "session found on disk (lhlab run --condition)",
                          (rec.get("protocol") or {}).get("sha256"), now_iso()))

    @staticmethod
    def _participant(row) -> Participant:
        return Participant(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], bool(row[8]))


_PARTICIPANT_QUERY = (
    "SELECT p.label, p.condition, p.yoked_to, p.status, p.external_id, p.notes, p.created, "
    "(SELECT COUNT(*) FROM sessions s WHERE s.label = p.label), "
    "EXISTS (SELECT 1 FROM sessions s WHERE s.label = p.label AND s.training_complete = 1) "
    "FROM participants p")
