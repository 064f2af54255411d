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

On disk. While the session runs, every frame event is appended to a plain
`*_frames.tsv` (`FrameAudit.stream_to`): written at the end of each trial's stimulus window, at
each phase start (then also fsynced) and at least every STREAM_EVERY_S seconds, so a session
killed with SIGKILL (or a power cut, up to the last phase start) keeps its frames up to then.
At the end the session writes the whole log once more as `*_frames.tsv.gz` and removes the
plain file; so `*_frames.tsv` beside a session means it did not end normally. In that file a
window can be missing from the `window` column for frames written before the window's trial
ended (a page on screen for more than STREAM_EVERY_S within one window); the `dropped` column
is always complete. `summarise_file` reads either file, as `lhlab status` does.
"""

from __future__ import annotations

import bisect
import gzip
import io
import math
import os
from pathlib import Path

VSYNC_MIN_HZ, VSYNC_MAX_HZ = 20.0, 400.0   # a measured rate outside this is no vsync (Xvfb: ~1 kHz)
LATE = 1.5                                  # an interval > LATE periods lost frames
FRAME_COLUMNS = ("t", "interval", "kind", "dropped", "window")
STREAM_EVERY_S = 5.0                        # the plain frames file lags the screen by at most this


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
        self.label: list[str] = []            # the stimulus window an event's interval overlaps, or ""
        self.windows: list[tuple[str, float, float, int]] = []   # (kind, start, end, lost)
        self._fd: int | None = None           # the plain *_frames.tsv being appended to (stream_to)
        self._written = 0                     # events already in it
        self._streamed_at = 0.0
        self.stream_path: Path | None = None
        self.stream_error: str | None = None  # why streaming stopped early (e.g. a full disk)

    def flip(self, t: float) -> None:
        self._add(t, "flip")

    def idle(self, t: float) -> None:
        self._add(t, "idle")

    def _add(self, t: float, kind: str) -> None:
        label = ""
        if self.windows and self.t and self.t[-1] <= self.windows[-1][2] and t > self.windows[-1][2]:
            label = self.windows[-1][0]       # straddles the end of a window registered before it
        self.t.append(t)
        self.kind.append(kind)
        self.label.append(label)
        if self._fd is not None and t - self._streamed_at >= STREAM_EVERY_S:
            self.flush()

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
        i = bisect.bisect_left(self.t, start)
        j = bisect.bisect_right(self.t, end)          # the event whose interval straddles the end
        for k in range(i, min(j + 1, len(self.t))):
            self.label[k] = kind
        return lost

    # -- the plain file, appended as the session goes ------------------------------------------
    def stream_to(self, path: Path) -> None:
        """Append every frame event to `path` from now on (a new file: never one that exists)."""
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self.stream_path = Path(path)
        self._write(("\t".join(FRAME_COLUMNS) + "\n").encode("utf-8"))
        self.flush(sync=True)

    def flush(self, sync: bool = False) -> None:
        """Write the events not yet in the plain file (and fsync it with `sync`). A write error
        stops the streaming and is kept in `stream_error`; the session goes on."""
        if self._fd is None:
            return
        if self._written < len(self.t):
            self._streamed_at = self.t[-1]
            self._write("".join(self._line(k) for k in range(self._written, len(self.t))).encode("utf-8"))
            self._written = len(self.t)
        if sync and self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError as e:
                self._stop_stream(e)

    def end_stream(self) -> None:
        """Write the rest, fsync and close the plain file (it stays until the .tsv.gz is written)."""
        self.flush(sync=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _write(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as e:
            self._stop_stream(e)

    def _stop_stream(self, error: OSError) -> None:
        self.stream_error = f"{self.stream_path}: {error.strerror or error}"
        try:
            os.close(self._fd)
        except OSError:
            pass
        self._fd = None

    def _line(self, k: int) -> str:
        t = self.t[k]
        if k == 0:
            return f"{t:.6f}\tn/a\t{self.kind[k]}\t0\t{self.label[k] or 'n/a'}\n"
        iv = t - self.t[k - 1]
        return f"{t:.6f}\t{iv:.6f}\t{self.kind[k]}\t{lost_frames(iv, self.period)}\t{self.label[k] or 'n/a'}\n"

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
        out = io.StringIO()
        out.write("\t".join(FRAME_COLUMNS) + "\n")
        for k in range(len(self.t)):
            out.write(self._line(k))
        return gzip.compress(out.getvalue().encode("utf-8"), compresslevel=6, mtime=0)


def _r(v: float | None, digits: int) -> float | None:
    return None if v is None else round(v, digits)


def summarise_file(path: Path, max_bytes: int = 512 * 2**20) -> dict:
    """What a frames file on disk says (`*_frames.tsv.gz`, or the plain `*_frames.tsv` a session
    that did not end normally leaves): {file, complete, frames, idle_ticks, dropped_frames,
    dropped_percent, worst_frame_ms, windows_with_drops, span_s}. `complete` is False for the
    plain file; a last line cut off by the kill is ignored. Raises OSError / ValueError."""
    path = Path(path)
    if path.stat().st_size > max_bytes:
        raise ValueError(f"{path.name} is larger than {max_bytes >> 20} MB")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    lines = raw.decode("utf-8", errors="replace").split("\n")
    if not lines or lines[0].split("\t") != list(FRAME_COLUMNS):
        raise ValueError(f"{path.name} is not a frames file (header {lines[0][:60]!r})")
    flips = idle = dropped = intervals = 0
    worst, first, last = None, None, None
    drops_in = set()
    for line in lines[1:]:
        cells = line.split("\t")
        if len(cells) != len(FRAME_COLUMNS):
            continue                     # the empty tail, or a line cut off by the kill
        try:
            t, lost = float(cells[0]), int(cells[3])
            iv = None if cells[1] == "n/a" else float(cells[1])
        except ValueError:
            continue
        first = t if first is None else first
        last = t
        flips += cells[2] == "flip"
        idle += cells[2] == "idle"
        if iv is not None:
            intervals += 1
            worst = iv if worst is None else max(worst, iv)
        dropped += lost
        if lost and cells[4] != "n/a":
            drops_in.add(cells[4])
    return {"file": path.name, "complete": path.suffix == ".gz", "frames": flips, "idle_ticks": idle,
            "dropped_frames": dropped,
            "dropped_percent": _r(100.0 * dropped / (intervals + dropped), 4) if intervals else None,
            "worst_frame_ms": _r(worst * 1000, 4) if worst is not None else None,
            "windows_with_drops": sorted(drops_in), "span_s": _r(last - first, 3) if first is not None else None}
