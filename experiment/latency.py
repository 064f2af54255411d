"""`lhlab calibrate --latency`: how long the noise goes on at the output after lhlab stops it.

The configured output plays N short noise bursts (psychtoolbox, as in a session); each is
stopped at a random moment, and the default sink's monitor is recorded meanwhile (parec). The
measure is read in the sink's own sample clock, so no wall-clock alignment is needed: a burst
that started at its scheduled onset and was stopped `c` seconds later was heard for `h`
seconds; h - c is how long the sound went on after the stop command (the output's stop
latency; add the ~0.5 ms key -> stop command of lhlab's escape loop for key -> silence).
A recorded burst with a silent stretch inside (>= 1 ms of zeros) is counted as a gap: a dropout
the client stream did not report. Nothing is stored; the figures are printed.
"""

from __future__ import annotations

import random
import sys
import threading
import time

import numpy as np

from experiment.errors import BadInput, DeviceError

RATE = 48000
LEVEL_DBFS = -30.0          # quiet: enough to find at the monitor, not loud in headphones


def measure(speaker, n: int, seed: int = 1) -> dict:
    """Play and stop `n` bursts on `speaker` (RealSpeaker) while recording the monitor."""
    from experiment import os_specific
    rng = random.Random(seed)
    rec = os_specific.record_monitor(RATE)
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: [chunks.append(b) for b in iter(lambda: rec.stdout.read(4096), b"")],
                              daemon=True)
    reader.start()
    commanded = []
    try:
        time.sleep(0.3)
        for i in range(n):
            when = speaker.play_probe(LEVEL_DBFS, 1.0, seed=i)
            stop_at = when + rng.uniform(0.15, 0.35)
            while time.time() < stop_at:
                time.sleep(0.0005)
            commanded.append(speaker.stop_probe() - when)
            time.sleep(0.25)
        time.sleep(0.2)
    finally:
        rec.terminate()
        rec.wait(5)
        reader.join(5)
        speaker.silence()
    x = np.frombuffer(b"".join(chunks)[: len(b"".join(chunks)) // 2 * 2], dtype="<i2").astype(np.float32) / 32768
    spans = _spans(x)
    if len(spans) != n:
        raise DeviceError(f"recorded {len(spans)} bursts at the sink's monitor, played {n}: is the configured output "
                          "the default sink (pactl get-default-sink), and its volume up?")
    heard = np.array([(b - a) / RATE for a, b in spans])
    after = (heard - np.array(commanded)) * 1000
    gaps = sum(_gaps(x[a:b]) for a, b in spans)
    return {"n": n, "stop_to_silence_ms": after.tolist(), "median_ms": float(np.median(after)),
            "p95_ms": float(np.percentile(after, 95)), "max_ms": float(after.max()), "gaps": int(gaps)}


def _spans(x: np.ndarray, threshold: float = 0.003, merge_s: float = 0.1) -> list[tuple[int, int]]:
    idx = np.flatnonzero(np.abs(x) > threshold)
    if len(idx) == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > merge_s * RATE)
    starts = np.concatenate(([idx[0]], idx[breaks + 1]))
    ends = np.concatenate((idx[breaks], [idx[-1]])) + 1
    return list(zip(starts.tolist(), ends.tolist()))


def _gaps(seg: np.ndarray, min_s: float = 0.001) -> int:
    quiet = np.abs(seg) < 1e-4
    edges = np.flatnonzero(np.diff(np.concatenate(([0], quiet.astype(np.int8), [0]))))
    return int(((edges[1::2] - edges[::2]) >= min_s * RATE).sum())


def run(args) -> int:
    from experiment.devices import audio, output
    from experiment.noise import lab_limits
    if not 3 <= args.probes <= 200:
        raise BadInput(f"--probes must be from 3 to 200 (got {args.probes})")
    device_name = args.device or output.configured_device()
    speaker = audio.open_speaker(output.output_identity(device_name), limits=lab_limits(), calibration=None,
                                 latency_class=output.configured_latency_class())
    try:
        info = speaker.info()
        route = (f"JACK into PipeWire, quantum {info['pipewire_quantum']} frames" if info["route"] == "jack" else
                 f"PulseAudio protocol, pulse_latency_msec {info['pulse_latency_msec'] or 'server default'}")
        print(f"measuring {device_name} ({info['server']}, route {info['route']}: {route}, latency class "
              f"{info['latency_class']}, buffer {info['buffer_size']} frames at {info['sample_rate']} Hz, real-time "
              f"threads {info['realtime_threads']}"
              + ("" if info.get("audio_thread_realtime") is None else
                 f", PipeWire's client thread real-time: {'yes' if info['audio_thread_realtime'] else 'no'}")
              + f"): {args.probes} bursts at {LEVEL_DBFS:g} dBFS", file=sys.stderr)
        if info["route_note"]:
            print(f"note: {info['route_note']}", file=sys.stderr)
        if not info["realtime_threads"]:
            print("warning: no thread of the audio output runs real-time (install rtkit, or add the user to a group "
                  "with rtprio in /etc/security/limits.d); small quanta then drop out under load", file=sys.stderr)
        res = measure(speaker, args.probes)
    finally:
        speaker.close()
    print(f"stop command -> silence at the sink: median {res['median_ms']:.1f} ms, p95 {res['p95_ms']:.1f} ms, "
          f"max {res['max_ms']:.1f} ms ({res['n']} bursts); gaps heard inside the bursts: {res['gaps']}")
    if res["gaps"]:
        print("warning: silent gaps inside the recorded bursts: dropouts no underrun counter saw (or samples the "
              "monitor recording lost); measure again, and if they stay use a larger pulse_latency_msec or PipeWire "
              "quantum", file=sys.stderr)
    return 0
