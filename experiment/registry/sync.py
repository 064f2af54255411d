"""`Registry.sync_sessions`: copy the session records of this PC's study folder into the registry.

Runs inside the caller's transaction (with the study's write lock). A finished session's
record never changes again, so only the others are read: a registration stays fast however
many participants the study has. An erased participant keeps the status `erased` even if a
station that still holds their data syncs it.
"""

from __future__ import annotations

from pathlib import Path

from experiment import datafile
from experiment.identifiers import LABEL_RE
from experiment.registry.vocab import PARTICIPANT_STATUSES, now_iso, station_name


def sync(reg) -> list[str]:
    """`reg` is the Registry (core.py) whose transaction this runs in."""
    problems: list[str] = []
    latest: dict[str, tuple[int, str]] = {}
    # A finished session's record never changes again: read only the others, so a
    # registration stays fast however many participants the study has.
    finished = {}
    for label, number, status in reg._x(
            "SELECT label, number, status FROM sessions WHERE status IN ('complete', 'withdrawn', 'declined', 'aborted')"
    ).fetchall():
        finished[(label, number)] = status
    for rec in datafile.all_sessions(reg.study_dir, skip=set(finished)):
        label, number = rec.get("participant"), rec.get("session")
        if not isinstance(label, str) or not LABEL_RE.match(label) or not isinstance(number, int):
            problems.append(f"{rec.get('problem') or 'session record without participant/session'}; skipped")
            continue
        if rec.get("problem"):
            problems.append(rec["problem"])
        known = reg._x("SELECT condition FROM participants WHERE label = ?", (label,)).fetchone()
        if known is None:
            if not rec.get("condition"):
                problems.append(f"sub-{label} ses-{number}: no readable condition; not registered")
                continue
            _add_from_disk(reg, label, rec, problems)
        elif rec.get("condition") and rec["condition"] != known[0]:
            problems.append(f"sub-{label} ses-{number} ran condition {rec['condition']!r} but the registry "
                            f"assigned {known[0]!r}; check this participant's data")
        status = rec["effective_status"]
        phases = rec.get("phases") or []
        training = [p for p in phases if p.get("role") == "training"]
        done = all(p.get("status") == "complete" for p in training) if training else status == "complete"
        reg._x("INSERT INTO sessions (label, number, started, ended, status, data_path, experimenter, "
               "training_complete, pilot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(label, number) DO UPDATE SET "
               "started = excluded.started, ended = excluded.ended, status = excluded.status, "
               "data_path = excluded.data_path, experimenter = excluded.experimenter, "
               "training_complete = excluded.training_complete, pilot = excluded.pilot",
               (label, number, rec.get("started"), rec.get("ended"), status,
                str(datafile.session_dir(Path("."), label, number)), rec.get("experimenter"), int(done),
                int(bool(rec.get("pilot") or rec.get("simulated")))))
        latest[label] = max(latest.get(label, (0, "")), (number, status))
    # A participant's status is their latest session's, whichever station ran it.
    for label in latest:
        row = reg._x("SELECT status FROM sessions WHERE label = ? ORDER BY number DESC LIMIT 1",
                     (label,)).fetchone()
        status = row[0]
        reg._x("UPDATE participants SET status = ? WHERE label = ? AND status != 'erased'",
               (status if status in PARTICIPANT_STATUSES else "crashed", label))
    return problems


def _add_from_disk(reg, label: str, rec: dict, problems: list[str]) -> None:
    partner = rec.get("yoked_to") or None
    if partner is not None:
        exists = reg._x("SELECT 1 FROM participants WHERE label = ?", (partner,)).fetchone()
        clash = reg._x("SELECT label FROM participants WHERE yoked_to = ?", (partner,)).fetchone()
        if not exists or clash:
            why = f"already the partner of {clash[0]}" if clash else "not registered"
            problems.append(f"sub-{label}: its session names partner {partner}, who is {why}; "
                            "registered without a partner (a broken yoke)")
            partner = None
    created = rec.get("started") or now_iso()
    reg._x("INSERT INTO participants (label, condition, yoked_to, status, created) "
           "VALUES (?, ?, ?, 'registered', ?)", (label, rec["condition"], partner, created))
    override = rec.get("override_full")        # `lhlab run --override-full REASON` on a full study
    reg._x("INSERT INTO assignment_log (label, condition, rule, yoked_to, reason, protocol_sha256, time, "
           "station, override_full) VALUES (?, ?, 'command-line', ?, ?, ?, ?, ?, ?)",
           (label, rec["condition"], partner, "session found on disk (lhlab run --condition)",
            (rec.get("protocol") or {}).get("sha256"), now_iso(), station_name(),
            override if isinstance(override, str) else None))
