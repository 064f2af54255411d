"""The lab monitor's view of a study: live sessions (heartbeats), progress toward the planned N,
and the yoke queue. Read by `Registry.live_sessions`, `progress_by_condition`, `yoke_queue`.

Heartbeats. A running `lhlab run` (station.py) upserts one row per session into `heartbeats`
every HEARTBEAT_S seconds from a background thread fed by the session's progress events:
station (lab.json "station", else the host name), participant, condition, phase, trial,
elapsed, the time of the beat and the status ('running', then the session's final status).
A beat is one autocommit statement that takes no study lock, so it never waits behind an
assignment. A session whose process was killed stops beating: once its last beat is older
than `stale_after_s` it shows as 'lost'. The writer never lets the registry touch the
session: a failure is logged once (one line), the next beat retries with a new connection.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from experiment.registry.vocab import now_iso

HEARTBEAT_S = 3.0


@dataclass(frozen=True)
class LiveSession:
    """One station's session as its heartbeats tell it."""

    station: str
    label: str
    condition: str | None
    session: int
    phase: str | None
    trial: int | None
    elapsed_s: float | None
    last_beat: str                # ISO time of the last heartbeat (UTC)
    state: str                    # 'running' | 'lost' (no beat for stale_after_s) | 'finished'
    status: str = "running"       # the session's own status: 'running' or how it ended


def beat(reg, row: dict) -> None:
    """Upsert one heartbeat (autocommit; no study lock)."""
    reg._read(lambda: reg._x(
        "INSERT INTO heartbeats (label, session, station, condition, phase, trial, elapsed, started, last_beat, "
        "status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(label, session) DO UPDATE SET "
        "station = excluded.station, condition = excluded.condition, phase = excluded.phase, "
        "trial = excluded.trial, elapsed = excluded.elapsed, last_beat = excluded.last_beat, "
        "status = excluded.status",
        (row["label"], row["session"], row["station"], row.get("condition"), row.get("phase"), row.get("trial"),
         row.get("elapsed"), row["started"], row["last_beat"], row["status"])))


def _age_s(iso: str, now: datetime) -> float:
    try:
        return (now - datetime.fromisoformat(iso)).total_seconds()
    except (TypeError, ValueError):
        return float("inf")


def live_sessions(reg, stale_after_s: float = 15.0) -> list[LiveSession]:
    """Per station its latest session, plus any other of its sessions still beating; by station."""
    rows = reg._read(lambda: reg._x(
        "SELECT station, label, condition, session, phase, trial, elapsed, last_beat, status, started "
        "FROM heartbeats ORDER BY station, started, label, session").fetchall())
    now = datetime.now(timezone.utc)
    latest: dict[str, tuple] = {}
    for r in rows:
        latest[r[0]] = r                  # ordered by started: the last one wins
    out = []
    for r in rows:
        status = r[8]
        if status != "running":
            state = "finished"
        else:
            state = "lost" if _age_s(r[7], now) > stale_after_s else "running"
        if r is not latest[r[0]] and state != "running":
            continue                      # an older session of that station: history, not live
        out.append(LiveSession(r[0], r[1], r[2], int(r[3]), r[4], None if r[5] is None else int(r[5]),
                               None if r[6] is None else float(r[6]), r[7], state, status))
    return out


def progress_by_condition(reg) -> dict[str, tuple[int, int | None]]:
    """{condition: (participants with a complete session, planned n or None)}; erased participants
    and pilot or simulated sessions do not count."""
    def body():
        design = reg._meta("design")
        planned = json.loads(reg._meta("planned_n") or "null") or {}
        done = dict(reg._x(
            "SELECT p.condition, COUNT(*) FROM participants p WHERE p.status != 'erased' AND EXISTS "
            "(SELECT 1 FROM sessions s WHERE s.label = p.label AND s.status = 'complete' AND s.pilot = 0) "
            "GROUP BY p.condition").fetchall())
        return (json.loads(design)["conditions"] if design else sorted(done)), planned, done
    conditions, planned, done = reg._read(body)
    return {c: (int(done.get(c, 0)), planned.get(c)) for c in conditions}


def is_full(progress: dict[str, tuple[int, int | None]]) -> bool:
    """Every condition has a planned n and has reached it."""
    return bool(progress) and all(n is not None and done >= n for done, n in progress.values())


def full_message(study: str, progress: dict[str, tuple[int, int | None]], how: str) -> str:
    counts = ", ".join(f"{c} {done}/{n}" for c, (done, n) in progress.items())
    return (f"study {study} is full: every condition has reached its planned n ({counts}); "
            f"to add a participant anyway {how} (kept in the assignment log)")


def yoke_queue(reg) -> list[tuple[str, str]]:
    """(label, condition) of partners whose finished training is free to be replayed (oldest
    first), then of yoked participants still without a partner."""
    def body():
        design = reg._meta("design")
        if not design:
            return []
        yoked = json.loads(design)["yoked"]
        out = []
        for partner_condition in dict.fromkeys(yoked.values()):
            out += [(r[0], partner_condition) for r in reg._x(
                "SELECT p.label FROM participants p WHERE p.condition = ? AND p.status != 'erased' "
                "AND EXISTS (SELECT 1 FROM sessions s WHERE s.label = p.label AND s.training_complete = 1) "
                "AND NOT EXISTS (SELECT 1 FROM participants q WHERE q.yoked_to = p.label) "
                "ORDER BY p.created, p.id", (partner_condition,)).fetchall()]
        for condition in yoked:
            out += [(r[0], condition) for r in reg._x(
                "SELECT label FROM participants WHERE condition = ? AND yoked_to IS NULL AND status != 'erased' "
                "ORDER BY created, id", (condition,)).fetchall()]
        return out
    return reg._read(body)


class HeartbeatWriter:
    """Writes a session's heartbeat from a daemon thread; `event` is a Progress listener.

    `open_registry()` returns a Registry (opened in the writer's thread, as SQLite needs), or
    None when the study has no registry (then nothing is written: a session never creates one);
    `log(line)` reports the first failure (and a recovery) in one line. Nothing it does can
    raise into the session.
    """

    def __init__(self, open_registry: Callable, label: str, session: int, condition: str, station: str,
                 interval: float = HEARTBEAT_S, log: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, after_training: Callable | None = None):
        self._open, self.interval, self._log, self._clock = open_registry, interval, log, clock
        # after_training(registry): once, in this thread, when the session has left its training
        # phases (the first event of a later phase); retried at each beat until it succeeds
        self._after_training = after_training
        self._training = "before"          # 'before' -> 'in' (a training phase ended) -> 'due' -> 'done'
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._state = {"label": label, "session": session, "station": station, "condition": condition,
                       "phase": None, "trial": None, "started": now_iso(), "status": "running"}
        self._t0: float | None = None
        self._ended = threading.Event()
        self._reg = None
        self.problem: str | None = None       # the first failure, for the session's log
        self.beats = 0
        self._thread = threading.Thread(target=self._loop, name="lhlab-heartbeat", daemon=True)

    # -- fed by the session (any thread) ------------------------------------------------------
    def event(self, msg: dict) -> None:
        if msg.get("event") == "session_start" and not self._thread.is_alive() and not self._ended.is_set():
            self._thread.start()          # a session refused before it started never beats
        with self._lock:
            if isinstance(msg.get("elapsed"), (int, float)):
                self._t0 = self._clock() - msg["elapsed"]
            kind = msg.get("event")
            if msg.get("phase") is not None and msg["phase"] != self._state["phase"]:
                self._state.update(phase=msg["phase"], trial=None)
            if kind in ("trial_start", "trial") and isinstance(msg.get("trial"), int):
                self._state["trial"] = msg["trial"]
            elif kind == "session_end" and msg.get("status"):
                self._state["status"] = msg["status"]
            if kind == "phase_end" and msg.get("role") == "training" and self._training == "before":
                self._training = "in"
            elif self._training == "in" and msg.get("role") not in (None, "training"):
                self._training = "due"
                self._wake.set()

    def start(self) -> HeartbeatWriter:
        """Beat from now on (without waiting for the session_start event)."""
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def finish(self, status: str | None = None, timeout: float = 5.0) -> str | None:
        """Write the final status (the session_end event's, else `status`) and stop; returns the
        problem if the registry could not be written (within `timeout` s)."""
        with self._lock:
            if self._state["status"] == "running":
                self._state["status"] = status or "crashed"
        started = self._thread.is_alive()
        self._ended.set()
        self._wake.set()
        if started:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self.problem = self.problem or f"the final heartbeat was not written within {timeout:.0f} s"
        return self.problem

    # -- the thread ---------------------------------------------------------------------------
    def _snapshot(self) -> dict:
        with self._lock:
            row = dict(self._state)
            if self._t0 is not None:
                row["elapsed"] = round(self._clock() - self._t0, 3)
        row["last_beat"] = now_iso()
        return row

    def _write(self) -> bool:
        try:
            if self._reg is None:
                self._reg = self._open()
                if self._reg is None:
                    self._ended.set()         # no registry for this study: no monitor to feed
                    self.disabled = True
                    return True
            beat(self._reg, self._snapshot())
            self.beats += 1
            if self._failing and self._log and not self._said_back:
                self._log("the registry is reachable again; heartbeats resumed")
                self._said_back = True
            self._failing = False
            return True
        except Exception as e:  # noqa: BLE001 - never into the session: log once, retry next beat
            if self.problem is None:
                self.problem = " ".join(str(e).split()) or type(e).__name__
                if self._log:
                    self._log(f"no heartbeat to the registry ({self.problem}); the session goes on, retrying")
            self._failing = True
            self._close()
            return False

    def _close(self) -> None:
        if self._reg is not None:
            try:
                self._reg.close()
            except Exception:  # noqa: BLE001
                pass
            self._reg = None

    def _training_done(self) -> None:
        if self._training != "due" or self._after_training is None or self._reg is None:
            return
        try:
            self._after_training(self._reg)
            self._training = "done"
        except Exception as e:  # noqa: BLE001 - retried at the next beat; after the session it is done anyway
            if self.problem is None:
                self.problem = " ".join(str(e).split()) or type(e).__name__
                if self._log:
                    self._log(f"the finished training was not stored in the registry ({self.problem}); retrying")
            self._close()

    def _loop(self) -> None:
        while not self._ended.is_set():
            self._write()
            self._training_done()
            self._wake.wait(self.interval)
            self._wake.clear()
        if not self.disabled:
            self._write()        # the final status (a failure stays in self.problem)
        self._close()

    _failing = False
    _said_back = False
    disabled = False
