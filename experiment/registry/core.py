"""The registry's rules, written once for both backends (see the package docstring).

A backend (sqlite.py, postgres.py) provides a DB-API-like connection `_db`, the placeholder
translation `_sql()`, and `_transaction(body)`: run `body()` in one transaction that holds the
study's write lock from its first statement, so every read inside sees everything other
processes committed and nobody else writes meanwhile.
"""

from __future__ import annotations

import json
import random
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

from experiment import datafile
from experiment.errors import BadInput
from experiment.identifiers import check_free_text
from experiment.registry import live as _live
from experiment.registry import sync as _sync_module
from experiment.registry.live import LiveSession
from experiment.registry.location import Location, resolve
from experiment.registry.vocab import (LABEL_PREFIX, PARTICIPANT_STATUSES, RULES, label_prefix, now_iso,
                                      station_name)

if TYPE_CHECKING:
    from experiment.protocol import Protocol

T = TypeVar("T")
# kind ('sqlite' | 'postgresql') -> connect(location, study_dir, protocol, seed); each backend module
# adds itself when the package is imported, so this module imports neither (no cycle).
BACKENDS: dict[str, Callable[[Location, Path, "Protocol | None", "int | None"], "Registry"]] = {}
EXISTS: dict[str, Callable[[Location, Path], bool]] = {}        # kind -> does this study have a registry?


@dataclass(frozen=True)
class Participant:
    """One registered participant as the registry knows them (after the last sync)."""

    label: str
    condition: str
    yoked_to: str | None          # partner label for a yoked condition
    status: str                   # one of PARTICIPANT_STATUSES: the latest session's, 'registered' or 'erased'
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
    central: str | None = None            # where `lhlab sync` copied it (central.py), if it did
    central_sha256: str | None = None     # the checksum of that copy


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
    override_full: str | None = None     # why this participant was added to a full study (study.planned_n)
    replaces: str | None = None          # the participant who held this block slot and declined consent


def block_order(seed: int, block: int, conditions: list[str], block_size: int) -> list[str]:
    """The conditions of block `block`, in their seeded order (each block_size/len(conditions) times)."""
    slots = [c for c in conditions for _ in range(block_size // len(conditions))]
    random.Random(f"lhlab-blocks:{seed}:{block}").shuffle(slots)
    return slots


class Registry:
    """The registry of one study folder. Open with `Registry.open(study_dir)`; close when done.

    `Registry.open` picks the backend (location.resolve); both backends are this class with
    a different connection, so every rule below holds on both.
    """

    backend = "?"

    def __init__(self, study_dir: Path, db, where: str):
        self.study_dir = study_dir
        self.where = where            # how messages name this registry (never with a password)
        self._db = db

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, study_dir: str | Path, protocol: Protocol | None = None, seed: int | None = None,
             url: str | None = None) -> Registry:
        """Open (creating the folder and the registry if needed) the registry of `study_dir`.

        `url` picks the backend ('sqlite', 'postgresql://...'); None means LHLAB_REGISTRY,
        lab.json, else SQLite in the study folder. With `protocol`, a new registry is bound to
        its study id, conditions and block size, with the block seed `seed` (random if None);
        an existing one is checked against them and refused with BadInput if it belongs to
        another study or its design changed. `seed` is ignored for an existing registry (its
        stored seed is `Registry.seed`).
        """
        location = resolve(url)
        study_dir = Path(study_dir)
        try:
            study_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BadInput(f"cannot create the study folder {study_dir} ({e.strerror}); "
                           "choose another data folder") from None
        return BACKENDS[location.kind](location, study_dir, protocol, seed)

    @classmethod
    def exists(cls, study_dir: str | Path, url: str | None = None) -> bool:
        """Whether `study_dir` has a registry yet (in the folder, or on the server), without
        creating one: what a viewer asks before it offers to open a study."""
        location = resolve(url)
        return EXISTS[location.kind](location, Path(study_dir))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what a backend provides -----------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql

    def _transaction(self, body: Callable[[], T], request: str | None = None) -> T:
        raise NotImplementedError

    def _read(self, body: Callable[[], T]) -> T:
        return body()

    def _x(self, sql: str, params: tuple = ()):
        return self._db.execute(self._sql(sql), params)

    # Where external ids (the identity key) live: in the participants table (a server registry,
    # outside every study folder), or elsewhere (SQLite: a key file outside the study folder).
    _ids_in_registry = True

    def _external_id_sql(self) -> str:
        return "p.external_id"

    def _external_owner(self, external_id: str) -> str | None:
        row = self._x("SELECT label FROM participants WHERE external_id = ?", (external_id,)).fetchone()
        return row[0] if row else None

    def _store_external(self, label: str, external_id: str) -> None:
        raise NotImplementedError

    def _participant_sql(self) -> str:
        return _PARTICIPANT_QUERY.replace("{external_id}", self._external_id_sql())

    # -- facts about the study -------------------------------------------------------------
    @property
    def study_id(self) -> str | None:
        return self._read(lambda: self._meta("study_id"))

    @property
    def seed(self) -> int | None:
        """The block seed fixed at creation (None until a protocol was bound)."""
        value = self._read(lambda: self._meta("seed"))
        return None if value is None else int(value)

    @property
    def design(self) -> dict | None:
        """{'conditions': [...], 'yoked': {condition: partner condition}, 'block_size': n}."""
        value = self._read(lambda: self._meta("design"))
        return None if value is None else json.loads(value)

    # -- participants ----------------------------------------------------------------------
    def add_participant(self, protocol: Protocol, external_id: str | None = None,
                        condition: str | None = None, reason: str | None = None,
                        override_reason: str | None = None) -> Participant:
        """Register a new participant with a generated label and an assigned condition.

        Without `condition` the permuted-block rule assigns one (see the package docstring).
        With `condition` the assignment is manual and `reason` must say why; it is logged.
        A yoked condition always gets the oldest free partner, or BadInput if none is free
        (manual) - the block rule then simply uses another slot.
        When every condition has reached its planned n (study.planned_n) the study is full and
        the registration is refused unless `override_reason` says why; it is logged.
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
        if override_reason is not None and not override_reason.strip():
            raise BadInput("--override-full needs a reason, e.g. 'replaces P004 whose data were lost'; it is kept "
                           "in the assignment log")
        for value, what in ((external_id, "external id"), (reason, "reason"),
                            (override_reason, "override reason")):
            problem = check_free_text(value, what) if value is not None else None
            if problem:          # it goes into the registry, the log and the launcher's table
                raise BadInput(problem)
        if external_id is not None:
            external_id = external_id.strip() or None
        request = self._request_token((protocol.sha256, external_id, condition, reason, override_reason))

        def body() -> str:
            done = self._x("SELECT label FROM assignment_log WHERE request = ?", (request,)).fetchone()
            if done:                       # this very request committed before the connection dropped
                return done[0]
            return self._add(protocol, external_id, condition, reason, request, override_reason)
        label = self._transaction(body, request)
        return self.participant(label)

    def _request_token(self, key: tuple) -> str:
        """A token for one registration request; the same request retried (after a lost
        connection) gets the same token until it succeeds (see PostgresRegistry)."""
        return secrets.token_hex(16)

    def _add(self, protocol: Protocol, external_id: str | None, condition: str | None, reason: str | None,
             request: str, override_reason: str | None = None) -> str:
        self._bind(protocol, None)
        self._sync()
        progress = _live.progress_by_condition(self)
        if not _live.is_full(progress):
            override_reason = None          # nothing was overridden: nothing to log
        elif override_reason is None:
            raise BadInput(_live.full_message(protocol.study_id, progress, "pass --override-full REASON"))
        if external_id is not None:
            owner = self._external_owner(external_id)
            if owner:
                raise BadInput(f"external id {external_id!r} is already registered as {owner}; "
                               "a person takes part once (look them up in the participants table)")
        label = self._new_label()
        design, seed = self._design(), int(self._meta("seed"))
        self._release_declined_yokes()
        if condition is not None:
            partner = None
            if design["yoked"].get(condition):
                partner = self._free_partner(condition)
                if partner is None:
                    raise BadInput(f"no free partner for yoked condition {condition!r}: a "
                                   f"{design['yoked'][condition]!r} participant must finish training first")
            block = slot = replaces = None
            rule, logged_reason = "manual", reason.strip()
        else:
            block, slot, condition, partner, replaces = self._next_slot()
            rule, logged_reason = "block", (f"replaces {replaces}, who declined consent" if replaces else None)
        now = now_iso()
        self._x("INSERT INTO participants (label, external_id, condition, yoked_to, status, created) "
                "VALUES (?, ?, ?, ?, 'registered', ?)",
                (label, external_id if self._ids_in_registry else None, condition, partner, now))
        if external_id is not None and not self._ids_in_registry:
            self._store_external(label, external_id)
        self._x("INSERT INTO assignment_log (label, condition, rule, block, slot, seed, yoked_to, reason, "
                "protocol_sha256, time, request, station, override_full, replaces) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (label, condition, rule, block, slot, seed, partner, logged_reason, protocol.sha256, now,
                 request, station_name(), override_reason.strip() if override_reason else None, replaces))
        return label

    def participants(self) -> list[Participant]:
        """Every participant, oldest first (as of the last sync; call sync_sessions to refresh)."""
        return self._read(lambda: [self._participant(r) for r in
                                   self._x(self._participant_sql() + " ORDER BY p.created, p.id").fetchall()])

    def participant(self, label: str) -> Participant:
        """One participant; BadInput if the label is not registered."""
        row = self._read(lambda: self._x(self._participant_sql() + " WHERE p.label = ?", (label,)).fetchone())
        if row is None:
            raise BadInput(f"participant {label!r} is not in {self.where}; check the label "
                           "(participants are added with 'New participant' or lhlab simulate)")
        return self._participant(row)

    def sessions(self, label: str | None = None) -> list[SessionEntry]:
        """Sessions known to the registry (of one participant, or all), in label/number order."""
        q = "SELECT label, number, started, ended, status, data_path, experimenter, training_complete, notes, " \
            "central, central_sha256 FROM sessions"
        rows = self._read(lambda: (self._x(q + " WHERE label = ? ORDER BY number", (label,)) if label else
                                   self._x(q + " ORDER BY label, number")).fetchall())
        return [SessionEntry(*r[:7], bool(r[7]), *r[8:]) for r in rows]

    def assignment_log(self) -> list[Assignment]:
        """The whole assignment log, in the order assignments were made."""
        rows = self._read(lambda: self._x("SELECT label, condition, rule, block, slot, seed, yoked_to, reason, "
                                          "protocol_sha256, time, override_full, replaces FROM assignment_log ORDER BY id"
                                          ).fetchall())
        return [Assignment(*r) for r in rows]

    # -- the lab monitor (live.py) ------------------------------------------------------------
    def live_sessions(self, stale_after_s: float = 15.0) -> list[LiveSession]:
        """Every station's current session from its heartbeats: 'running', 'lost' (no beat for
        `stale_after_s` s and never finished) or 'finished'; a station's older sessions drop out."""
        return _live.live_sessions(self, stale_after_s)

    def progress_by_condition(self) -> dict[str, tuple[int, int | None]]:
        """{condition: (participants with a complete real session, planned n or None)} (as of the
        last sync; pilot and simulated sessions do not count)."""
        return _live.progress_by_condition(self)

    def is_full(self) -> bool:
        """Every condition has reached its planned n (study.planned_n)."""
        return _live.is_full(self.progress_by_condition())

    def yoke_queue(self) -> list[tuple[str, str]]:
        """(label, condition): partners whose finished training waits to be replayed, oldest first,
        then yoked participants still without a partner."""
        return _live.yoke_queue(self)

    def free_partner(self, condition: str) -> str | None:
        """The label a new participant of yoked `condition` would be yoked to now, or None."""
        design = self.design
        if not design or not design["yoked"].get(condition):
            return None
        return self._read(lambda: self._free_partner(condition))

    def set_note(self, label: str, session: int | None, text: str) -> None:
        """Replace the note of a participant (`session` None) or of one of their sessions."""
        def body() -> None:
            if session is None:
                cur = self._x("UPDATE participants SET notes = ? WHERE label = ?", (text, label))
                if cur.rowcount == 0:
                    raise BadInput(f"participant {label!r} is not in {self.where}; check the label")
                return
            sql = "UPDATE sessions SET notes = ? WHERE label = ? AND number = ?"
            if self._x(sql, (text, label, session)).rowcount == 0:
                self._sync()
                if self._x(sql, (text, label, session)).rowcount == 0:
                    raise BadInput(f"sub-{label} has no session {session} in {self.study_dir}; "
                                   "notes belong to a session that has started")
        self._transaction(body)

    def erase(self, label: str, reason: str) -> None:
        """Mark `label` erased (consent withdrawn): external id, key entry, notes, stored training
        schedules and heartbeats go; the label, its sessions and its assignment log rows stay, so
        the log and balance stay auditable; an audit row says when, where and why. The data
        files are dataset.erase's."""
        def body() -> None:
            sql = "UPDATE participants SET status = 'erased', notes = '', external_id = NULL WHERE label = ?"
            if self._x(sql, (label,)).rowcount == 0:
                raise BadInput(f"participant {label!r} is not in {self.where}; check the label")
            self._x("UPDATE sessions SET notes = '' WHERE label = ?", (label,))
            self._x("DELETE FROM partner_schedules WHERE label = ?", (label,))    # their trial data
            self._x("DELETE FROM heartbeats WHERE label = ?", (label,))
            self._forget_external(label)
            self._audit("erase", label, reason)
        self._transaction(body)

    def record_central(self, label: str, session: int, where: str, sha256: str, when: str) -> None:
        """Note that `lhlab sync` put this session at `where` (central.py), with its checksum."""
        self._transaction(lambda: self._x(
            "UPDATE sessions SET central = ?, central_sha256 = ?, synced = ? WHERE label = ? AND number = ? "
            "AND (central_sha256 IS NULL OR central_sha256 != ? OR central != ?)",
            (where, sha256, when, label, session, sha256, where)))

    def _forget_external(self, label: str) -> None:
        """Remove `label`'s identity key entry where it is not in the participants table."""

    def sync_sessions(self) -> list[str]:
        """Copy every session record on disk into the registry; rebuild participants.tsv.

        Session status is the effective one (a `running` record whose process is gone is
        `crashed`); a participant's status is their latest session's. A session of a label
        the registry does not know (e.g. `lhlab run` on the command line) registers that
        participant with rule 'command-line'. Returns problems worth showing (unreadable
        records, a condition on disk that differs from the registry's), one line each.
        With a server registry only this PC's study folder is read: each station syncs its own.
        """
        def body() -> list[str]:
            problems = self._sync()
            if (self.study_dir / "dataset_description.json").is_file():
                datafile.update_participants_tsv(self.study_dir)
            return problems
        return self._transaction(body)

    # -- internals (inside a transaction unless said otherwise) -----------------------------
    def _meta(self, key: str) -> str | None:
        row = self._x("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self._x("INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def _design(self) -> dict:
        return json.loads(self._meta("design"))

    def _audit(self, action: str, label: str | None, detail: str) -> None:
        self._x("INSERT INTO audit (time, action, label, detail, station) VALUES (?, ?, ?, ?, ?)",
                (now_iso(), action, label, detail, station_name()))

    def _bind(self, protocol: Protocol, seed: int | None) -> None:
        """Bind a fresh registry to `protocol`, or check it matches."""
        design = {"conditions": list(protocol.conditions),
                  "yoked": {c.name: c.yoked_to for c in protocol.conditions.values() if c.yoked_to},
                  "block_size": protocol.block_size}
        stored = self._meta("study_id")
        planned = json.dumps(protocol.planned_n, sort_keys=True)
        if self._meta("planned_n") != planned:         # may change during a study (not part of the design)
            self._set_meta("planned_n", planned)
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
            raise BadInput(f"{self.where} belongs to study {stored!r}, not {protocol.study_id!r} ({protocol.path}); "
                           f"use the data folder's {protocol.study_id} study folder or another --data-dir")
        if json.loads(self._meta("design")) != design:
            raise BadInput(f"{protocol.path}: its conditions/yoking/block size differ from those study "
                           f"{stored!r} was started with ({self._meta('design')}); balanced assignment cannot "
                           "continue: restore the protocol or start a new study id")

    def _new_label(self) -> str:
        n, prefix = int(self._meta("next_label") or 1), label_prefix(self.study_dir)
        while True:
            label = f"{prefix}{n:03d}"
            taken = self._x("SELECT 1 FROM participants WHERE label = ?", (label,)).fetchone()
            if not taken and not (self.study_dir / f"sub-{label}").exists():
                break
            n += 1
        self._set_meta("next_label", str(n + 1))
        return label

    def _next_slot(self) -> tuple[int, int, str, str | None, str | None]:
        """(block, slot, condition, partner, replaces) of the next slot that can be given now.

        A slot whose participant declined consent is free again (the earliest first): that
        person never saw a manipulation, and a session that declined can never run again
        (preflight), so giving the slot to the next person keeps the blocks balanced among
        the people who took part. `replaces` names the decliner."""
        design, seed = self._design(), int(self._meta("seed"))
        conditions, yoked, size = design["conditions"], design["yoked"], design["block_size"]
        holder: dict[tuple[int, int], tuple[str, str]] = {}     # the latest (label, status) of each slot
        for block, slot, label, status in self._x(
                "SELECT a.block, a.slot, a.label, p.status FROM assignment_log a JOIN participants p "
                "ON p.label = a.label WHERE a.rule = 'block' ORDER BY a.id").fetchall():
            holder[(block, slot)] = (label, status)
        used: dict[int, set[int]] = {}
        for (block, slot), (_, status) in holder.items():
            if status != "declined":
                used.setdefault(block, set()).add(slot)
        block = 0
        while True:
            taken = used.get(block, set())
            if len(taken) < size:
                for slot, condition in enumerate(block_order(seed, block, conditions, size)):
                    if slot in taken:
                        continue
                    replaces = holder[(block, slot)][0] if (block, slot) in holder else None
                    if condition in yoked:
                        partner = self._free_partner(condition)
                        if partner is None:
                            continue          # this slot waits for a partner; keep looking
                        return block, slot, condition, partner, replaces
                    return block, slot, condition, None, replaces
            block += 1

    def _release_declined_yokes(self) -> None:
        """A yoked participant who declined consent never replays their partner's noise: the
        partner is free for the next yoked participant (one yoke per partner). Audited."""
        for label, partner in self._x("SELECT label, yoked_to FROM participants WHERE status = 'declined' "
                                      "AND yoked_to IS NOT NULL").fetchall():
            self._x("UPDATE participants SET yoked_to = NULL WHERE label = ?", (label,))
            self._audit("yoke released", label, f"{label} declined consent; {partner} is free for another "
                                                "yoked participant")

    def _free_partner(self, condition: str) -> str | None:
        partner_condition = self._design()["yoked"][condition]
        row = self._x(
            "SELECT p.label FROM participants p WHERE p.condition = ? "
            "AND EXISTS (SELECT 1 FROM sessions s WHERE s.label = p.label AND s.training_complete = 1) "
            "AND NOT EXISTS (SELECT 1 FROM participants q WHERE q.yoked_to = p.label) AND p.status != 'erased' "
            "ORDER BY p.created, p.id LIMIT 1", (partner_condition,)).fetchone()
        return row[0] if row else None

    def _sync(self) -> list[str]:
        """Upsert every session record on disk; return problems (sync.py)."""
        return _sync_module.sync(self)

    @staticmethod
    def _participant(row) -> Participant:
        return Participant(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], bool(row[8]))


_PARTICIPANT_QUERY = (
    "SELECT p.label, p.condition, p.yoked_to, p.status, {external_id}, p.notes, p.created, "
    "(SELECT COUNT(*) FROM sessions s WHERE s.label = p.label), "
    "EXISTS (SELECT 1 FROM sessions s WHERE s.label = p.label AND s.training_complete = 1) "
    "FROM participants p")
