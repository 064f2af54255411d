"""The timing audit of a window: every frame of the session, how many were dropped, and where.

No PsychoPy here (experiment.devices.window feeds it; tests feed it by hand). Times are
seconds of real time since the window opened, never session time (a `--speed` factor does not
change how long a frame takes).

What counts as a frame. Every flip of the window, and, while the screen is deliberately still
(noise on: the keyboard is polled every ~0.5 ms without flipping, experiment.devices.window
`wait_response_polling`), every idle tick of that loop, one per frame period. A gap between
two such events longer than 1.5 reference periods lost round(gap / period) - 1 frames: the
screen could not have changed, and an escape key could not have been seen, for that long.

The reference period is the refresh period measured at start when the display has vsync. Xvfb
and many VMs flip in ~1 ms (no vsync): the refresh is then "unknown (no vsync)" and frames are
paced to, and measured against, FRAME_HZ_WITHOUT_VSYNC; we never invent a refresh rate.

A stimulus window (letters shown, noise on, cards shown) is [start, end] of one trial; a frame
belongs to it when its interval overlaps it, so a stall that straddles the onset counts.
"""

from __future__ import annotations

import bisect
import gzip
import io
import math

VSYNC_MIN_HZ, VSYNC_MAX_HZ = 20.0, 400.0   # a measured rate outside this is no vsync (Xvfb: ~1 kHz)
LATE = 1.5                                  # an interval > LATE periods lost frames
FRAME_COLUMNS = ("t", "interval", "kind", "dropped", "window")


def measured_refresh(intervals: list[float]) -> float | None:
    """Refresh rate (Hz) from unpaced flip intervals (median), or None when there is no vsync."""
    good = sorted(i for i in intervals if i > 0)
    if len(good) < 3:
        return None
    hz = 1.0 / good[len(good) // 2]
    return hz if VSYNC_MIN_HZ <= hz <= VSYNC_MAX_HZ else None


def lost_frames(interval: float, period: float) -> int:
    """Frames dropped in one interval between two frames (0 if it was on time)."""
    if interval <= LATE * period:
        return 0
    return max(1, round(interval / period) - 1)


class FrameAudit:
    """Every frame event of one window, and the stimulus windows the tasks declared."""

    def __init__(self, period: float, measured_hz: float | None, nominal_hz: float | None,
                 pacing_hz: float | None):
        self.period = period                  # reference frame period (s)
        self.measured_hz, self.nominal_hz, self.pacing_hz = measured_hz, nominal_hz, pacing_hz
        self.t: list[float] = []              # event times (s since the window opened)
        self.kind: list[str] = []             # "flip" or "idle"
        self.windows: list[tuple[str, float, float, int]] = []   # (kind, start, end, lost)

    def flip(self, t: float) -> None:
        self.t.append(t)
        self.kind.append("flip")

    def idle(self, t: float) -> None:
        self.t.append(t)
        self.kind.append("idle")

    def lost_between(self, start: float, end: float) -> int:
        """Frames lost by the intervals that overlap [start, end]."""
        i = max(1, bisect.bisect_right(self.t, start))     # first event after start (its interval reaches back)
        lost = 0
        for k in range(i, len(self.t)):
            if self.t[k - 1] >= end:
                break
            lost += lost_frames(self.t[k] - self.t[k - 1], self.period)
        return lost

    def window(self, kind: str, start: float, end: float) -> int:
        """Register one trial's stimulus window; returns the frames it lost."""
        lost = self.lost_between(start, end)
        self.windows.append((kind, start, end, lost))
        return lost

    # -- reports ---------------------------------------------------------------------------
    def summary(self) -> dict:
        intervals = [b - a for a, b in zip(self.t, self.t[1:])]
        dropped = [lost_frames(i, self.period) for i in intervals]
        total = sum(dropped)
        flips = self.kind.count("flip")
        worst = max(intervals) if intervals else None
        by_kind: dict[str, dict] = {}
        for kind, _, _, lost in self.windows:
            w = by_kind.setdefault(kind, {"windows": 0, "windows_with_drops": 0, "dropped_frames": 0})
            w["windows"] += 1
            w["windows_with_drops"] += lost > 0
            w["dropped_frames"] += lost
        srt = sorted(intervals)
        return {
            "audited": True,
            "refresh_measured_hz": _r(self.measured_hz, 3),
            "refresh_nominal_hz": _r(self.nominal_hz, 3),
            "refresh": (f"{self.measured_hz:.2f} Hz" if self.measured_hz else "unknown (no vsync)"),
            "refresh_matches_nominal": (None if not (self.measured_hz and self.nominal_hz)
                                        else abs(self.measured_hz - self.nominal_hz) <= 0.02 * self.nominal_hz),
            "reference_period_ms": _r(self.period * 1000, 4),
            "paced_to_hz": self.pacing_hz,
            "frames": flips,
            "idle_ticks": len(self.t) - flips,
            "dropped_frames": total,
            "dropped_percent": _r(100.0 * total / (len(intervals) + total), 4) if intervals else None,
            "late_intervals": sum(d > 0 for d in dropped),
            "interval_median_ms": _r(srt[len(srt) // 2] * 1000, 4) if srt else None,
            "interval_p99_ms": _r(srt[min(len(srt) - 1, math.ceil(0.99 * len(srt)) - 1)] * 1000, 4) if srt else None,
            "worst_frame_ms": _r(worst * 1000, 4) if worst is not None else None,
            "worst_frame_at_s": _r(self.t[intervals.index(worst) + 1], 4) if worst is not None else None,
            "stimulus_windows": by_kind,
        }

    def tsv_gz(self) -> bytes:
        """The raw frame log: one line per frame event (FRAME_COLUMNS), gzip-compressed."""
        label = [""] * len(self.t)
        for kind, start, end, _ in self.windows:
            i = max(0, bisect.bisect_left(self.t, start))
            j = bisect.bisect_right(self.t, end)
            for k in range(i, min(j + 1, len(self.t))):
                label[k] = kind
        out = io.StringIO()
        out.write("\t".join(FRAME_COLUMNS) + "\n")
        prev = None
        for k, t in enumerate(self.t):
            iv = "n/a" if prev is None else f"{t - prev:.6f}"
            lost = 0 if prev is None else lost_frames(t - prev, self.period)
            out.write(f"{t:.6f}\t{iv}\t{self.kind[k]}\t{lost}\t{label[k] or 'n/a'}\n")
            prev = t
        return gzip.compress(out.getvalue().encode("utf-8"), compresslevel=6, mtime=0)


def _r(v: float | None, digits: int) -> float | None:
    return None if v is None else round(v, digits)
