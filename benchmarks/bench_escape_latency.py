"""Escape latency: key event -> stop command -> silence at the sink, two ways of waiting.

    .venv/bin/python benchmarks/bench_escape_latency.py [--trials 30] [--backend pulseaudio|pipewire|both]
        [--quantum 64] [--route auto|jack|pulse] [--latency-class N] [--pipewire-latency-msec MS]
        [--buffer-frames N] [--suggested-latency-ms MS] [--soak 20] [--control 10] [--json]

Brings its own Xvfb and, per backend, a private null sink: PulseAudio (tests/audiotools.py) and
PipeWire at 48 kHz with a fixed quantum (tests/pipewiretools.py; 64 frames = 1.33 ms by
default). On PulseAudio psychtoolbox goes through ALSA's `default` device and the PulseAudio
protocol; on PipeWire lhlab's audio_route decides (default: PortAudio's JACK host API on
PipeWire's libjack, i.e. a client inside the graph; `--route pulse`: ALSA `default` ->
pipewire-pulse). The results are printed side by side.
A child process opens the real participant window and the real noise output (PsychoPy sound,
psychtoolbox backend) and plays a 3 s noise burst per trial; this process presses SPACE
through XTEST (another process, as a USB keyboard's event would arrive) at a random moment
of the noise, and records the sink's monitor. Trials alternate between

  poll   lhlab's wait: the keyboard queue polled every ~0.5 ms between frames, no flip while
         the noise is on (experiment.devices.window.wait_response_polling);
  frame  the usual frame loop: flip (paced to 60 Hz: Xvfb has no vsync, a lab screen would
         block in flip) and check the keys once per frame (wait_response_per_frame).

Reported per method (median / 95th percentile / max, ms):
  key->stop     ptb key timestamp (tDown) -> the stop command being issued
  inject->stop  XTEST press sent by this process -> stop command
  inject->quiet XTEST press -> the last noise sample at the sink (recording lined up to ~1-2 ms)

Gaps: silent stretches >= 1 ms inside the noise, counted only when a second, independent recording
of the monitor shows them too (one recorder alone loses samples on a busy machine), in the trials
and over --soak seconds of continuous noise; --control seconds of noise played by pacat with a 1 s
buffer afterwards show this machine's floor (gaps no client buffer can prevent).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

BURST = 3.0
LEVEL = 80.0
CALIBRATION = {"id": "bench", "reading_dba": 84.5, "reference_dbfs": -20.0, "headphone": "null sink"}


def child(trials: int, latency_class: int, soak: float = 0.0) -> None:
    """The participant side: window + noise; one JSON line per event on stdout."""
    import threading

    from experiment.devices import window as pd
    from experiment.devices.audio import open_speaker
    from experiment.devices.output import output_identity
    from experiment.tasks.noise_common import ResponseMatcher
    from experiment.devices import View
    from experiment.noise import lab_limits
    d = pd.Display({"withdraw": "f12", "abort": "escape", "continue": "space"}, threading.Event(), True, 0, 1.0)
    spk = open_speaker(output_identity("default"), lab_limits(), CALIBRATION, latency_class, d)
    d.set_view(View("noise", text="escape benchmark: press SPACE"))
    d.flip()
    print(json.dumps({"ready": True, "audio": spk.info()}), flush=True)
    matcher = ResponseMatcher(["space"])
    for n in range(trials):
        mode = "poll" if n % 2 == 0 else "frame"
        wait = pd.wait_response_polling if mode == "poll" else pd.wait_response_per_frame
        burst = spk.prepare(LEVEL, BURST, seed=n)
        onset = spk.start(burst, d.now() + 0.05)
        d.poll()                                   # drop stale keys
        print(json.dumps({"trial": n, "mode": mode, "onset": d.to_unix(onset)}), flush=True)
        matcher.reset()
        resp = wait(d, matcher, onset + BURST, on_complete=lambda press: spk.stop(), since=onset)
        on, off, stop_cmd = spk.finish()
        print(json.dumps({"trial": n, "mode": mode, "done": resp.done is not None,
                          "key": d.to_unix(resp.done.t) if resp.done else None,
                          "stop": d.to_unix(stop_cmd) if stop_cmd is not None else None,
                          "offset": d.to_unix(off)}), flush=True)
        t = d.now()
        while d.now() < t + 0.4:                   # a short gap with the frame loop running
            d.flip()
            d.poll()
    left = soak
    while left > 0:                                # continuous noise: gaps heard at the sink (underruns)
        seconds = min(10.0, left)                  # lhlab's hard limit per burst
        burst = spk.prepare(LEVEL, seconds, seed=1000 + int(left))
        onset = spk.start(burst, d.now() + 0.05)
        while d.now() < onset + seconds + 0.05:
            d.flip()
            d.poll()
        spk.finish()
        print(json.dumps({"soak": [d.to_unix(onset), d.to_unix(onset) + seconds]}), flush=True)
        left -= seconds
    print(json.dumps({"xruns": spk.xruns(), "timing": {k: v for k, v in spk.timing().items() if k != "bursts"}}),
          flush=True)
    spk.close()
    d.close()


def _lines(proc: subprocess.Popen, timeout: float = 30.0, err=None):
    """The child's next stdout line, or RuntimeError after `timeout` s (a stalled audio stream
    must end the benchmark, not hang it)."""
    import queue
    import threading
    q: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [q.put(line) for line in proc.stdout] + [q.put("")], daemon=True).start()

    def next_line() -> str:
        while True:
            try:
                line = q.get(timeout=timeout)
            except queue.Empty:
                raise RuntimeError(f"the benchmark child sent nothing for {timeout:g} s (audio stream stalled?)") from None
            if not line:
                tail = ""
                if err is not None:
                    proc.wait(5)
                    err.seek(0)
                    tail = "".join(err.read().splitlines(keepends=True)[-15:])
                raise RuntimeError(f"the benchmark child ended early (exit {proc.poll()}):\n{tail}")
            if line.startswith("{"):       # psychtoolbox prints its own warnings to stdout (e.g. no real-time)
                return line
            print(f"child: {line.rstrip()}", file=sys.stderr)
    return next_line


def gap_times(recording, a: float, b: float, min_gap_s: float = 0.001) -> list[float]:
    """Start times of silent stretches (>= 1 ms of zero samples) inside one heard burst."""
    import numpy as np
    from audiotools import RATE
    i0 = recording.index(a)
    seg = np.abs(recording.x[i0:recording.index(b), 0]) < 1e-4
    if not seg.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate(([0], seg.astype(np.int8), [0]))))
    starts, runs = edges[::2], edges[1::2] - edges[::2]
    return [recording.time(i0 + int(st)) for st, n in zip(starts, runs) if n >= min_gap_s * RATE]


def sink_gaps(recording, a: float, b: float, min_gap_s: float = 0.001, confirm=None) -> int:
    """Dropouts the sink got inside one heard burst, even when the client stream reports no underrun.
    With `confirm` (a second, independent recording of the same monitor) only the gaps both recordings
    show (within 15 ms) count: a gap in one recording alone is that recorder losing samples."""
    times = gap_times(recording, a, b, min_gap_s)
    if confirm is None or not times:
        return len(times)
    other = gap_times(confirm, a - 0.05, b + 0.05, min_gap_s)
    return sum(1 for t in times if any(abs(t - u) < 0.015 for u in other))


def control_noise(seconds: float) -> tuple[float, float]:
    """Play `seconds` of noise with pacat and a 1 s buffer through the same server: gaps counted in it are the
    floor of this machine and recorder, whatever lhlab's route. Returns its (start, end), Unix time."""
    import numpy as np
    x = (np.random.default_rng(7).standard_normal((int(48000 * seconds), 2)) * 3000).astype("<i2")
    t = time.time()
    subprocess.run(["pacat", "--playback", "--raw", "--format=s16le", "--rate=48000", "--channels=2", "-d", "null",
                    "--latency-msec=1000"], input=x.tobytes(), check=True, timeout=seconds + 30)
    time.sleep(0.3)
    return t, time.time()


def buffer_label(a: dict) -> str:
    """What sets the client's buffer on this route."""
    if a.get("route") == "jack":
        return f"quantum {a.get('pipewire_quantum')} fr @ {a['sample_rate']} Hz" + (
            f" (asked {a['requested_quantum']})" if a.get("requested_quantum") else "")
    parts = [f"{a.get('buffer_size')} fr @ {a['sample_rate']} Hz"]
    if a.get("pulse_latency_msec"):
        parts.append(f"PULSE {a['pulse_latency_msec']:g} ms")
    if a.get("suggested_latency_ms"):
        parts.append(f"sugg {a['suggested_latency_ms']:g} ms")
    return ", ".join(parts)


def percentiles(xs: list[float]) -> tuple[float, float, float]:
    import numpy as np
    a = np.array(xs) * 1000
    return float(np.median(a)), float(np.percentile(a, 95)), float(a.max())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30, help="trials per method")
    ap.add_argument("--latency-class", type=int, default=1, help="psychtoolbox latency class (lhlab default 1)")
    ap.add_argument("--backend", choices=("pulseaudio", "pipewire", "both"), default="both",
                    help="sound server(s) to measure (default both, side by side)")
    ap.add_argument("--quantum", type=int, default=64, help="PipeWire quantum in frames at 48 kHz (default 64)")
    ap.add_argument("--desktop", action="store_true",
                    help="PipeWire with a desktop's settings instead of a pinned quantum: default quantum --quantum "
                         "(use 1024), min-quantum 32, no clock.force-quantum; lhlab asks for its audio_quantum")
    ap.add_argument("--audio-quantum", type=int, default=-1,
                    help="lhlab's audio_quantum (the quantum the JACK route asks PipeWire for; default: lhlab's "
                         "default, 64; 0: ask for nothing)")
    ap.add_argument("--route", choices=("auto", "jack", "pulse"), default="auto",
                    help="lhlab's audio_route for the PipeWire run (default auto: JACK into PipeWire when "
                         "pipewire-jack is installed). PulseAudio always runs the pulse route")
    ap.add_argument("--pipewire-latency-msec", type=float, default=0.0,
                    help="PULSE_LATENCY_MSEC for the PipeWire run on the pulse route (lhlab's lab.json "
                         "pulse_latency_msec; default 0: the server's default). PulseAudio runs at its default: "
                         "2-3 ms requests stall it")
    ap.add_argument("--buffer-frames", type=int, default=0,
                    help="psychtoolbox buffersize for the PipeWire run (audio_buffer_frames; 0: psychtoolbox's choice)")
    ap.add_argument("--suggested-latency-ms", type=float, default=0.0,
                    help="psychtoolbox suggestedLatency for the PipeWire run (audio_suggested_latency_ms; 0: default)")
    ap.add_argument("--soak", type=float, default=20.0,
                    help="seconds of continuous noise after the trials, to count gaps heard at the sink (default 20)")
    ap.add_argument("--control", type=float, default=10.0,
                    help="seconds of noise played by pacat with a 1 s buffer after the session, gaps counted the same "
                         "way: this machine's floor, whatever the route (default 10; 0: none)")
    ap.add_argument("--no-realtime", action="store_true",
                    help="run the participant side without the right to real-time scheduling (as root: setpriv drops "
                         "CAP_SYS_NICE; the sound server keeps its own), as for a user without rtkit or limits.d. "
                         "Here the child then crashed (SIGSEGV) in 3 of 4 runs, on both routes")
    ap.add_argument("--busy", type=int, default=0,
                    help="this many busy-looping processes (nice 0) while measuring: a loaded lab PC")
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON line at the end")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(args.child, args.latency_class, args.soak)
        return 0

    home = Path(tempfile.mkdtemp(prefix="lhlab-bench-home-"))
    for var, sub in (("HOME", ""), ("XDG_CONFIG_HOME", ".config"), ("XDG_CACHE_HOME", ".cache"),
                     ("XDG_RUNTIME_DIR", "run")):
        os.environ[var] = str(home / sub)
        (home / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    from x11tools import Xvfb
    xvfb = Xvfb()
    os.environ.update(DISPLAY=xvfb.display, PYTHONUNBUFFERED="1")
    backends = ("pulseaudio", "pipewire") if args.backend == "both" else (args.backend,)
    summary = []
    try:
        for backend in backends:
            summary.append((backend, measure(backend, args, xvfb)))
    finally:
        xvfb.stop()
    print(f"\nSide by side: key -> silence at the sink (inject->quiet, ms; poll = lhlab's wait), "
          f"{args.trials} trials per method")
    print(f"{'backend':<12}{'route':<7}{'lc':>3}{'buffer':>34}{'median':>9}{'p95':>9}{'max':>9}{'underruns':>11}"
          f"{'gaps':>6}{'soak gaps':>11}{'control':>9}{'load':>6}")
    for backend, (rows, info) in summary:
        q = next(r[5] for r in rows if r[0] == "poll")
        print(f"{backend:<12}{info['audio'].get('route', 'pulse'):<7}{info['audio']['latency_class']:>3}"
              f"{buffer_label(info['audio']):>34}{q[0]:9.2f}{q[1]:9.2f}{q[2]:9.2f}{info.get('xruns', 0):>11}"
              f"{info.get('sink_gaps', 0):>6}{str(info.get('soak_gaps', '-')):>11}{str(info.get('control_gaps', '-')):>9}"
              f"{info['load']:>6.2f}")
    if args.json:
        print(json.dumps({backend: {"audio": info["audio"], "xruns": info.get("xruns"), "sink_gaps": info["sink_gaps"],
                                    "soak_gaps": info.get("soak_gaps"), "soak_s": info.get("soak_s"), "load": info["load"],
                                    "soak_gaps_one_recorder": info.get("soak_gaps_one_recorder"),
                                    "control_gaps": info.get("control_gaps"), "soak_gaps_at_s": info.get("soak_gaps_at_s"),
                                    "control_gaps_one_recorder": info.get("control_gaps_one_recorder"),
                                    **{r[0]: {"escaped": r[1], "trials": r[2], "key_stop_ms": r[3],
                                              "inject_stop_ms": r[4], "inject_quiet_ms": r[5]} for r in rows}}
                          for backend, (rows, info) in summary}))
    return 0


def measure(backend: str, args, xvfb) -> tuple[list, dict]:
    """Run the child against a fresh null sink of `backend`; print and return its table."""
    from audiotools import PulseNullSink, Recorder
    from pipewiretools import PipeWireNullSink
    from x11tools import Keys
    pulse = PipeWireNullSink(args.quantum, force=not args.desktop) if backend == "pipewire" else PulseNullSink()
    os.environ.pop("PIPEWIRE_RUNTIME_DIR", None)
    os.environ.update(getattr(pulse, "client_env", {"PULSE_SERVER": pulse.server}))
    child_env = dict(os.environ)
    for var in ("PULSE_LATENCY_MSEC", "LHLAB_PULSE_LATENCY_MSEC", "LHLAB_AUDIO_ROUTE", "LHLAB_AUDIO_BUFFER_FRAMES",
                "LHLAB_AUDIO_SUGGESTED_LATENCY_MS", "LHLAB_AUDIO_QUANTUM", "PIPEWIRE_LATENCY"):
        child_env.pop(var, None)
    child_env["LHLAB_AUDIO_ROUTE"] = args.route if backend == "pipewire" else "pulse"
    if backend == "pipewire":
        for var, value in (("LHLAB_PULSE_LATENCY_MSEC", args.pipewire_latency_msec),
                           ("LHLAB_AUDIO_BUFFER_FRAMES", args.buffer_frames),
                           ("LHLAB_AUDIO_SUGGESTED_LATENCY_MS", args.suggested_latency_ms)):
            if value > 0:
                child_env[var] = f"{value:g}"
        if args.audio_quantum >= 0:
            child_env["LHLAB_AUDIO_QUANTUM"] = str(args.audio_quantum)
    rng = random.Random(1)
    results = {"poll": [], "frame": []}
    proc = None
    try:
        rec, rec2 = Recorder(), Recorder(keepalive=False)
        wrap = ["setpriv", "--inh-caps=-sys_nice", "--ambient-caps=-sys_nice", "--bounding-set=-sys_nice"] \
            if args.no_realtime else []
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
        child_err = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen([*wrap, sys.executable, __file__, "--child", str(2 * args.trials),
                                 "--latency-class", str(args.latency_class), "--soak", str(args.soak)], cwd=REPO, env=child_env,
                                stdout=subprocess.PIPE, stderr=child_err, text=True)
        lines = _lines(proc, err=child_err)
        keys = Keys(xvfb.display)
        info = json.loads(lines())
        assert info.get("ready"), info
        keys.focus_window()
        time.sleep(0.3)
        for _ in range(2 * args.trials):
            start = json.loads(lines())
            delay = rng.uniform(0.3, 1.2)
            while time.time() < start["onset"] + delay:
                time.sleep(0.0005)
            injected = keys.press("space", hold=0.03)
            end = json.loads(lines())
            results[end["mode"]].append({**end, "onset": start["onset"], "inject": injected})
        soaks = []
        while "soak" in (final := json.loads(lines())):
            soaks.append(final["soak"])
        proc.wait(60)
        control = control_noise(args.control) if args.control > 0 else None
        recording, recording2 = rec.stop(), rec2.stop()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        for b in locals().get("busy", []):
            b.kill()
            b.wait(5)
        pulse.stop()

    rows, skews, gaps = [], [], 0
    for mode, trials in results.items():
        done = [t for t in trials if t["done"]]
        key_stop = [t["stop"] - t["key"] for t in done]
        inj_stop = [t["stop"] - t["inject"] for t in done]
        quiet, skew = [], []
        for t in done:
            heard_on = recording.first_sound_after(t["onset"] - 0.05)
            heard_off = recording.last_sound_before(t["stop"] + 0.2)
            if heard_on is None or heard_off is None:
                continue
            # in the sink's own sample clock: how long the noise went on after the key, counted
            # from the burst's scheduled onset (psychtoolbox starts it sample-exactly at `when`)
            quiet.append((heard_off - heard_on) - (t["inject"] - t["onset"]))
            skew.append(heard_on - t["onset"])
            gaps += sink_gaps(recording, heard_on, heard_off, confirm=recording2)
        skews.extend(skew)
        rows.append((mode, len(done), len(trials), percentiles(key_stop), percentiles(inj_stop), percentiles(quiet)))
    info["xruns"] = final.get("xruns", 0)
    info["sink_gaps"] = gaps
    info["load"] = os.getloadavg()[0]
    if soaks:
        soak_gaps = soak_one = 0
        soak_at: list[float] = []
        for a, b in soaks:
            on = recording.first_sound_after(a - 0.05)     # the next burst starts ~0.1 s after: stop before it
            off = recording.last_sound_before(on + (b - a) + 0.02) if on is not None else None
            soak_gaps += sink_gaps(recording, on, off, confirm=recording2) if on is not None and off is not None else 1
            soak_one += sink_gaps(recording, on, off) if on is not None and off is not None else 1
            if on is not None and off is not None:      # where in the burst (s after its heard onset), both recordings
                other = gap_times(recording2, on - 0.05, off + 0.05)
                soak_at += [round(t - on, 3) for t in gap_times(recording, on, off)
                            if any(abs(t - u) < 0.015 for u in other)]
        info["soak_gaps"], info["soak_s"], info["soak_gaps_one_recorder"] = soak_gaps, sum(b - a for a, b in soaks), soak_one
        info["soak_gaps_at_s"] = soak_at
    if control is not None:
        on, off = recording.first_sound_after(control[0] - 0.05), recording.last_sound_before(control[1])
        info["control_gaps"] = sink_gaps(recording, on, off, confirm=recording2) if on and off else None
        info["control_gaps_one_recorder"] = sink_gaps(recording, on, off) if on and off else None
        info["control_s"] = args.control
    print(f"\n[{backend}] Escape latency, {args.trials} trials per method, 60 Hz frame pacing, latency class "
          f"{info['audio']['latency_class']}, {info['audio']['sample_rate']} Hz, buffer "
          f"{info['audio'].get('buffer_size')} frames, server {info['audio'].get('server')}, device "
          f"{info['audio']['name']!r}, predicted latency {info['audio']['predicted_latency_s'] * 1000:.1f} ms, "
          f"underruns {info['xruns']} (reported by psychtoolbox), gaps heard at the sink {gaps} in the trials, "
          f"{info.get('soak_gaps', '-')} in {info.get('soak_s', 0):.0f} s of continuous noise "
          f"({info.get('soak_gaps_one_recorder', '-')} in one recording), control (pacat, 1 s buffer) "
          f"{info.get('control_gaps', '-')} in {info.get('control_s', 0):.0f} s "
          f"({info.get('control_gaps_one_recorder', '-')} in one recording); route "
          f"{info['audio'].get('route')}, real-time threads {info['audio'].get('realtime_threads')}, "
          f"load {info['load']:.2f}")
    print(f"{'method':<8}{'escaped':>9}   {'key->stop (ms)':>22}   {'inject->stop (ms)':>22}   {'inject->quiet (ms)':>22}")
    print(f"{'':<8}{'':>9}   {'median   p95    max':>22}   {'median   p95    max':>22}   {'median   p95    max':>22}")
    for mode, n, total, ks, ist, q in rows:
        fmt = lambda p: f"{p[0]:6.2f} {p[1]:6.2f} {p[2]:6.2f}"   # noqa: E731
        print(f"{mode:<8}{f'{n}/{total}':>9}   {fmt(ks):>22}   {fmt(ist):>22}   {fmt(q):>22}")
    print("\nkey->stop uses the keyboard's own timestamp of the key (psychtoolbox kbQueue); inject->* start when\n"
          "this process sent the XTEST press; inject->quiet is read from the recorded sink signal (noise heard\n"
          "after the key, counted from the heard onset, i.e. in the sink's own sample clock). The recording's\n"
          f"wall-clock alignment is off by a constant {statistics.median(skews) * 1000:.1f} ms (median heard minus scheduled\n"
          "onset: the null sink renders ahead of real time), so it is not used for inject->quiet.")
    return rows, info


if __name__ == "__main__":
    sys.exit(main())
