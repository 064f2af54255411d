"""A partner's training schedule in the registry, for yoking across stations.

A yoked participant replays their partner's noise schedule (intervals and durations). On one
PC it is read from the partner's session files (tasks/noise_escape.read_partner). When the
partner ran on another station those files are not here, so when a session ends its station
stores every complete training phase that has a noise schedule (iti, noise_duration) in the
registry table `partner_schedules`: JSON with its SHA-256, checked again when read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from experiment import datafile
from experiment.errors import BadInput
from experiment.registry.vocab import now_iso


def _canonical(schedule: dict) -> str:
    return json.dumps(schedule, sort_keys=True, separators=(",", ":"))


def store(reg, study: Path, record: dict, station: str) -> int:
    """Store the noise schedules of `record`'s complete training phases; returns how many."""
    rows = []
    for phase in record.get("phases") or []:
        if phase.get("role") != "training" or phase.get("status") != "complete" or not phase.get("file"):
            continue
        trials_rows, problems = datafile.read_trials(Path(study) / phase["file"])
        try:
            trials = [{"iti": float(r["iti"]), "duration": float(r["noise_duration"])} for r in trials_rows]
        except (KeyError, TypeError, ValueError):
            continue                        # not a noise phase (e.g. anagrams): nothing to replay
        if problems or not trials:
            continue
        schedule = {"trials": trials, "file": phase["file"], "status": record.get("status"),
                    "protocol_sha256": (record.get("protocol") or {}).get("sha256")}
        text = _canonical(schedule)
        rows.append((record["participant"], record["session"], phase["id"], record.get("condition"), text,
                     hashlib.sha256(text.encode()).hexdigest(),
                     int(bool(record.get("pilot") or record.get("simulated"))), station, now_iso()))
    if rows:
        def body() -> None:
            for row in rows:
                reg._x("INSERT INTO partner_schedules (label, session, phase, condition, schedule, sha256, pilot, "
                       "station, stored) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(label, session, phase) "
                       "DO UPDATE SET condition = excluded.condition, schedule = excluded.schedule, "
                       "sha256 = excluded.sha256, pilot = excluded.pilot, station = excluded.station, "
                       "stored = excluded.stored", row)
        reg._transaction(body)
    return len(rows)


def read(reg, partner: str, partner_condition: str, phase_id: str, n_trials: int, pilot_ok: bool = True) -> dict:
    """The partner's schedule as read_partner returns it, from the registry; BadInput if none fits."""
    rows = reg._read(lambda: reg._x(
        "SELECT session, condition, schedule, sha256, pilot, station FROM partner_schedules "
        "WHERE label = ? AND phase = ? ORDER BY session DESC", (partner, phase_id)).fetchall())
    if not rows:
        raise BadInput(f"--yoked-to {partner}: sub-{partner} has no session in this study folder and no {phase_id!r} "
                       f"training in the registry ({reg.where}); run the partner (an escapable participant) first, "
                       "or wait until their station has finished the session")
    reasons = []
    for session, condition, text, sha, pilot, station in rows:
        where = f"ses-{session} (station {station})"
        if hashlib.sha256(text.encode()).hexdigest() != sha:
            reasons.append(f"{where}: its stored schedule fails its checksum")
            continue
        if not pilot_ok and pilot:
            reasons.append(f"{where} is pilot/simulated data; a real participant is yoked to real data only")
            continue
        if condition != partner_condition:
            reasons.append(f"{where} was condition {condition!r}, not {partner_condition!r}")
            continue
        schedule = json.loads(text)
        trials = schedule["trials"]
        if len(trials) != n_trials:
            reasons.append(f"{where}: {len(trials)} trials stored, the replay needs {n_trials}")
            continue
        return {"partner": partner, "partner_session": session, "partner_condition": partner_condition,
                "partner_phase": phase_id, "partner_file": schedule.get("file"),
                "partner_protocol_sha256": schedule.get("protocol_sha256"),
                "partner_status": schedule.get("status"), "partner_station": station,
                "source": "registry", "schedule_sha256": sha,
                "partner_total_noise_s": round(sum(t["duration"] for t in trials), 6), "trials": trials}
    raise BadInput(f"--yoked-to {partner}: no usable {phase_id!r} training in the registry ("
                   + "; ".join(reasons) + ")")
