"""Real audio for the tests: a private PulseAudio daemon with a null sink, and a recorder of
what reached the sink (its monitor), timestamped so a recording can be lined up with the
session's clock (psychtoolbox GetSecs = Unix time on Linux).

The daemon follows ../shared/RECIPES.md: its own runtime dir and socket, anonymous auth,
`module-always-sink`; PULSE_SERVER is set for this process and every child, and the daemon
is stopped at the end of the test session. Nothing of the machine's own sound set-up is used.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

RATE = 44100
CHANNELS = 2
FRAME_BYTES = 2 * CHANNELS


class PulseNullSink:
    """`pulseaudio` with a null sink named `null`, private to this test run."""

    def __init__(self):
        if not shutil.which("pulseaudio") or not shutil.which("parec"):
            raise RuntimeError("pulseaudio and pulseaudio-utils (parec, pactl) are needed for the audio tests")
        self.dir = Path(tempfile.mkdtemp(prefix="lhlab-pulse-"))
        (self.dir / "run").mkdir(mode=0o700)
        self.socket = self.dir / "native"
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(self.dir / "run"),
                    "PULSE_RUNTIME_PATH": str(self.dir / "run")}
        cmd = ["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1", "--disallow-exit", "-n",
               "--use-pid-file=yes", "--log-target=file:" + str(self.dir / "pulse.log"),
               "--load=module-null-sink sink_name=null rate=44100 channels=2",
               f"--load=module-native-protocol-unix auth-anonymous=1 socket={self.socket}",
               "--load=module-always-sink"]
        subprocess.run(cmd, env=self.env, check=True, timeout=20, capture_output=True)
        self.server = f"unix:{self.socket}"
        deadline = time.time() + 10
        while subprocess.run(["pactl", "info"], env={**self.env, "PULSE_SERVER": self.server},
                             capture_output=True).returncode != 0:
            if time.time() > deadline:
                raise RuntimeError(f"pulseaudio did not come up; log: {self.dir / 'pulse.log'}")
            time.sleep(0.05)
        subprocess.run(["pactl", "set-default-sink", "null"], env={**self.env, "PULSE_SERVER": self.server},
                       check=True, capture_output=True)

    def stop(self) -> None:
        pidfile = self.dir / "run" / "pid"
        try:
            pid = int(pidfile.read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.02)
        except (OSError, ValueError):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pulse():
    """A private PulseAudio null sink; PULSE_SERVER points every child process at it."""
    server = PulseNullSink()
    saved = {k: os.environ.get(k) for k in ("PULSE_SERVER", "PULSE_RUNTIME_PATH")}
    os.environ["PULSE_SERVER"] = server.server
    os.environ["PULSE_RUNTIME_PATH"] = str(server.dir / "run")
    yield server
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


class Recorder:
    """parec on the sink monitor; each chunk's arrival time is noted so a sample index maps to
    Unix time: t(sample n) = t0 + n / RATE, with t0 the earliest (arrival - samples so far / RATE),
    i.e. assuming the fastest-delivered chunk came with no delay (good to ~1-2 ms)."""

    def __init__(self, sink: str = "null", keepalive: bool = True):
        # An idle null sink gives its monitor no data; a stream of zeros keeps it running, so
        # the recording is continuous and its sample clock lines up with wall time.
        self.keepalive = subprocess.Popen(["pacat", "--playback", "--raw", "--format=s16le", f"--rate={RATE}",
                                           f"--channels={CHANNELS}", "-d", sink, "--latency-msec=20", "/dev/zero"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if keepalive else None
        self.proc = subprocess.Popen(["parec", "-d", f"{sink}.monitor", "--raw", "--format=s16le",
                                      f"--rate={RATE}", f"--channels={CHANNELS}", "--latency-msec=10"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
        self.chunks: list[bytes] = []
        self.arrivals: list[tuple[float, int]] = []   # (unix time, frames received so far)
        self.frames = 0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        deadline = time.time() + 10
        while self.frames < RATE // 10:          # recording runs (the sink is busy)
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("parec delivered no data: is something keeping the null sink running?")
            time.sleep(0.01)

    def _read(self) -> None:
        fd = self.proc.stdout.fileno()
        rest = b""
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            t = time.time()
            data = rest + data
            usable = len(data) - len(data) % FRAME_BYTES
            rest = data[usable:]
            self.chunks.append(data[:usable])
            self.frames += usable // FRAME_BYTES
            self.arrivals.append((t, self.frames))

    def stop(self) -> "Recording":
        time.sleep(0.1)
        self.proc.terminate()
        self.proc.wait(5)
        self._thread.join(5)
        if self.keepalive is not None:
            self.keepalive.terminate()
            self.keepalive.wait(5)
        raw = np.frombuffer(b"".join(self.chunks), dtype="<i2").reshape(-1, CHANNELS)
        t0 = min(t - n / RATE for t, n in self.arrivals)
        return Recording(raw.astype(np.float32) / 32768.0, t0)


class Recording:
    def __init__(self, samples: np.ndarray, t0: float):
        self.x, self.t0 = samples, t0

    def index(self, t_unix: float) -> int:
        return int(round((t_unix - self.t0) * RATE))

    def time(self, index: int) -> float:
        return self.t0 + index / RATE

    def rms_dbfs(self, t_from: float, t_to: float, channel: int = 0) -> float:
        a, b = max(0, self.index(t_from)), min(len(self.x), self.index(t_to))
        seg = self.x[a:b, channel].astype(np.float64)
        return 20 * np.log10(max(1e-9, float(np.sqrt(np.mean(seg * seg))) if len(seg) else 1e-9))

    def envelope(self, window_s: float = 0.002) -> np.ndarray:
        """Per-window peak amplitude (windows of `window_s`)."""
        w = max(1, int(window_s * RATE))
        n = len(self.x) // w
        return np.abs(self.x[: n * w, 0]).reshape(n, w).max(axis=1)

    def sound_spans(self, threshold: float = 0.003, min_gap_s: float = 0.05) -> list[tuple[float, float]]:
        """(start, end) Unix times of stretches above `threshold`, gaps shorter than min_gap_s merged."""
        loud = np.abs(self.x[:, 0]) > threshold
        idx = np.flatnonzero(loud)
        if len(idx) == 0:
            return []
        spans, start, prev = [], idx[0], idx[0]
        gap = int(min_gap_s * RATE)
        for i in idx[1:]:
            if i - prev > gap:
                spans.append((start, prev))
                start = i
            prev = i
        spans.append((start, prev))
        return [(self.time(a), self.time(b + 1)) for a, b in spans]

    def last_sound_before(self, t_unix: float, threshold: float = 0.003) -> float | None:
        """Unix time of the last sample above threshold before t_unix (None if none)."""
        b = min(len(self.x), self.index(t_unix))
        idx = np.flatnonzero(np.abs(self.x[:b, 0]) > threshold)
        return self.time(idx[-1] + 1) if len(idx) else None

    def first_sound_after(self, t_unix: float, threshold: float = 0.003) -> float | None:
        a = max(0, self.index(t_unix))
        idx = np.flatnonzero(np.abs(self.x[a:, 0]) > threshold)
        return self.time(a + idx[0]) if len(idx) else None


# -- data-only sessions in this process (for the noise, shuttle and protocol tests) -----------------

def run_session(protocol, data_dir: Path, label: str, condition: str, seed: int = 1, profile: str = "default",
                yoked_to: str | None = None):
    """One data-only simulated session through the real task code; returns (record, study dir)."""
    from experiment import datafile
    from experiment.protocol import load_protocol
    from experiment.preflight import SessionRequest, prepare
    from experiment.session import run_data_only
    proto = load_protocol(protocol) if not hasattr(protocol, "phases") else protocol
    req = SessionRequest(protocol=proto, participant=label, condition=condition, data_dir=Path(data_dir), seed=seed,
                         simulate=profile, yoked_to=yoked_to)
    prepared = prepare(req)
    run_data_only(prepared)
    return datafile.read_session(datafile.session_json_path(prepared.study, label, prepared.session)), prepared.study


def read_rows(study: Path, label: str, phase: str, session: int = 1) -> list[dict]:
    import csv
    path = study / f"sub-{label}" / f"ses-{session}" / "beh" / f"sub-{label}_ses-{session}_task-{phase}_beh.tsv"
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def row_problems(protocol, phase: str, rows: list[dict]) -> list[str]:
    """Every problem Task.check_row finds in `rows` of `phase` (with its protocol parameters)."""
    from experiment.protocol import load_protocol
    from experiment.tasks import TASKS
    proto = load_protocol(protocol) if not hasattr(protocol, "phases") else protocol
    ph = proto.phases[phase]
    return [f"trial {r.get('trial')}: {p}" for r in rows for p in TASKS[ph.task].check_row(r, ph.params)]
