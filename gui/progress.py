"""What the launcher knows about the running session, folded from `lhlab run`'s JSON lines.

No Qt here: the session runner feeds events in, the window reads the fields out.
Exit codes and statuses follow experiment.errors (0 complete, 2 refused, 3 aborted,
4 withdrawn, 5 declined, 1 or a signal: crashed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from experiment.errors import EXIT_ERROR, STATUS_FOR_EXIT


def parse_line(line: str) -> dict | None:
    """One progress event, or None for any other output (PsychoPy warnings and the like)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        ev = json.loads(line)
    except ValueError:
        return None
    return ev if isinstance(ev, dict) and isinstance(ev.get("event"), str) else None


def describe(ev: dict) -> str:
    """A short human line for one event (the 'last event' label and the log)."""
    kind = ev.get("event")
    if kind == "session_start":
        return f"session started: {ev.get('study')} condition {ev.get('condition')}"
    if kind == "phase_start":
        return f"phase {ev.get('phase')} started ({ev.get('task')}, {ev.get('trials')} trials)"
    if kind == "page":
        return f"{ev.get('kind', 'text')} page shown" + (f" ({ev.get('phase')})" if ev.get("phase") else "")
    if kind == "trial_start":
        return f"trial {ev.get('trial')} of {ev.get('of')} started"
    if kind == "trial":
        rt = ev.get("rt")
        took = f" in {rt:.1f} s" if isinstance(rt, (int, float)) else ""
        return f"trial {ev.get('trial')} of {ev.get('of')}: {ev.get('outcome')}{took}"
    if kind == "phase_end":
        return f"phase {ev.get('phase')} done ({ev.get('trials_done')} trials)"
    if kind == "debriefing":
        return "debriefing"
    if kind == "session_end":
        return f"session ended: {ev.get('status')} ({ev.get('reason')})"
    extra = {k: v for k, v in ev.items() if k not in ("event", "time", "elapsed", "participant", "session",
                                                        "phase", "role")}
    return f"{kind} {json.dumps(extra)}" if extra else str(kind)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


@dataclass
class LiveProgress:
    """The session as seen through its events. `now` arguments are time.monotonic() values."""

    started_at: float                       # when the launcher started the child
    participant: str | None = None
    session: int | None = None
    condition: str | None = None
    study: str | None = None
    data: str | None = None
    phases: list = field(default_factory=list)
    expected_s: float | None = None
    phase: str | None = None
    role: str | None = None
    task: str | None = None
    trial: int | None = None
    of: int | None = None
    trials_done: int = 0
    last_event: str = "starting: opening the participant window"
    last_event_at: float | None = None
    child_elapsed: float | None = None      # the child's own clock at the last event
    end_status: str | None = None           # from session_end
    end_reason: str | None = None
    first_frame_at: float | None = None     # first page or trial on screen (launcher's clock)
    events: int = 0

    def apply(self, ev: dict, now: float) -> None:
        kind = ev.get("event")
        self.events += 1
        for key in ("participant", "session"):
            if ev.get(key) is not None:
                setattr(self, key, ev[key])
        if isinstance(ev.get("elapsed"), (int, float)):
            self.child_elapsed = float(ev["elapsed"])
        if kind == "session_start":
            self.condition, self.study, self.data = ev.get("condition"), ev.get("study"), ev.get("data")
            self.phases = list(ev.get("phases") or [])
            self.expected_s = ev.get("expected_s")
        elif kind == "phase_start":
            self.phase, self.role, self.task = ev.get("phase"), ev.get("role"), ev.get("task")
            self.trial, self.of, self.trials_done = None, ev.get("trials"), 0
        elif kind == "trial_start":
            self.trial, self.of = ev.get("trial"), ev.get("of")
        elif kind == "trial":
            self.trial, self.of = ev.get("trial"), ev.get("of")
            self.trials_done = ev.get("trial") or self.trials_done
        elif kind == "debriefing":
            self.phase, self.role, self.task, self.trial, self.of = "debriefing", "debriefing", None, None, None
        elif kind == "session_end":
            self.end_status, self.end_reason = ev.get("status"), ev.get("reason")
        if kind in ("page", "trial_start") and self.first_frame_at is None:
            self.first_frame_at = now
        self.last_event = describe(ev)
        self.last_event_at = now

    # -- read-outs --------------------------------------------------------------------------
    def elapsed(self, now: float) -> float:
        """Seconds since the session started (the child's clock, advanced by ours between events)."""
        if self.child_elapsed is None or self.last_event_at is None:
            return now - self.started_at
        return self.child_elapsed + (now - self.last_event_at)

    def phase_position(self) -> tuple[int, int] | None:
        """(1-based index of the current phase, number of phases), if known."""
        if self.phase in self.phases:
            return self.phases.index(self.phase) + 1, len(self.phases)
        return None

    def fraction(self) -> float:
        """Rough share of the session done, by phases and trials (0..1)."""
        pos = self.phase_position()
        if self.end_status == "complete":
            return 1.0
        if pos is None:
            return 0.0 if self.phase != "debriefing" else 0.95
        index, n = pos
        within = (self.trials_done / self.of) if self.of else 0.0
        return min(1.0, (index - 1 + within) / n)

    def phase_text(self) -> str:
        if self.phase is None:
            return "-"
        pos = self.phase_position()
        where = f"  ·  phase {pos[0]} of {pos[1]}" if pos else ""
        kind = f" ({self.role}, {self.task})" if self.task else ""
        return f"{self.phase}{kind}{where}"

    def trial_text(self) -> str:
        if self.of is None:
            return "-"
        if self.trial is None:
            return f"- of {self.of}"
        return f"{self.trial} of {self.of}"


def status_for_exit(code: int | None, crashed_by_signal: bool, end_status: str | None) -> str:
    """The session's final status as the launcher reports it."""
    if crashed_by_signal or code is None:
        return "crashed"
    status = STATUS_FOR_EXIT.get(code, "crashed")
    if end_status in ("complete", "aborted", "withdrawn", "declined", "crashed") and status != "refused":
        return end_status if code != EXIT_ERROR else "crashed"
    return status
