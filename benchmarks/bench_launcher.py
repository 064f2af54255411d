"""Launcher figures (run: .venv/bin/python benchmarks/bench_launcher.py [--runs N]).

Everything runs on a private Xvfb display with Qt's real xcb platform (not offscreen).

1. start-up: `lhlab launch` as a fresh process, from process start until the launcher's
   window is mapped on the X server (seen from this process through python-xlib), and the
   in-process cost of building + showing the window;
2. "Start session" -> first frame on the participant screen, for real (not simulated)
   sessions opened full screen: from the moment the action is triggered (preflight, confirm
   and the child's start included) until (a) the child's first `page` event reaches the
   launcher and (b) the child's own timestamp of that event (written right after the flip);
   measured twice: cold (a fresh `lhlab run` child imports PsychoPy and opens the window) and
   prewarmed (the launcher's waiting `python -m experiment.runner` gets the session; each Start
   waits until the runner said it is ready, as it is when an experimenter presses Start);
3. the launcher's event loop meanwhile: the longest gap between two runs of a 5 ms QTimer,
   from "Start session" until the aborted session has ended (abort = SIGTERM, graceful);
4. abort -> child ended.

A prototype measured 1.7 s median from launch to the first flipped frame; the targets are a
prewarmed Start -> first frame under 0.5 s median (issue 14) and no visible freeze (gap well
under 100 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def summary(name: str, values: list[float], unit: str = "s") -> dict:
    out = {"median": statistics.median(values), "p95": pct(values, 95), "min": min(values), "max": max(values),
           "n": len(values)}
    print(f"  {name:<52} median {out['median']:.3f} {unit}  p95 {out['p95']:.3f}  (min {out['min']:.3f}, "
          f"max {out['max']:.3f}, n={out['n']})")
    return out


def private_env(tmp: Path, display: str) -> dict:
    env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb", PYTHONUNBUFFERED="1",
               LHLAB_LAUNCHER_SETTINGS=str(tmp / "launcher.ini"))
    for var, sub in (("HOME", "home"), ("XDG_CONFIG_HOME", "home/.config"), ("XDG_CACHE_HOME", "home/.cache"),
                     ("MPLCONFIGDIR", "home/mpl"), ("XDG_RUNTIME_DIR", "home/run")):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(tmp / sub)
    os.chmod(tmp / "home/run", 0o700)
    return env


def launcher_window_mapped(d) -> bool:
    from Xlib import X
    net_wm_name = d.intern_atom("_NET_WM_NAME")
    for w in d.screen().root.query_tree().children:
        try:
            if w.get_attributes().map_state != X.IsViewable:
                continue
            prop = w.get_full_property(net_wm_name, 0)
            name = prop.value.decode("utf-8", "replace") if prop and isinstance(prop.value, bytes) else ""
            if name.startswith("lhlab launcher"):
                return True
        except Exception:  # noqa: BLE001 - windows come and go
            continue
    return False


def bench_startup(display: str, env: dict, data: Path, runs: int) -> dict:
    from Xlib import display as xdisplay
    d = xdisplay.Display(display)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "experiment.cli", "launch", "--data-dir", str(data),
                                 "--protocols", str(REPO / "protocols")], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while not launcher_window_mapped(d):
            if proc.poll() is not None or time.perf_counter() - t0 > 30:
                raise RuntimeError(f"the launcher did not show: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.005)
        times.append(time.perf_counter() - t0)
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        while launcher_window_mapped(d):
            time.sleep(0.01)
    d.close()
    return summary("`lhlab launch` process start -> window mapped", times)


class AutoDialogs:
    def __init__(self):
        self.shown = []

    def _show(self, parent, title, text, detail=""):
        self.shown.append((title, text))
    error = warning = info = _show

    def confirm(self, *args, **kw):
        return True

    def new_participant(self, *args, **kw):
        from gui.dialogs import NewParticipantRequest
        return NewParticipantRequest(None, None, None)

    def open_path(self, path):
        return True

    def choose_folder(self, *args):
        return None


def bench_sessions(env: dict, data: Path, runs: int, windowed: bool, prewarm: bool) -> dict:
    os.environ.update(env)
    from PyQt6.QtCore import QEventLoop, QSettings, QTimer
    from PyQt6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["bench"])
    from gui.launcher import LauncherWindow
    t0 = time.perf_counter()
    dialogs = AutoDialogs()
    w = LauncherWindow(QSettings(env["LHLAB_LAUNCHER_SETTINGS"], QSettings.Format.IniFormat), dialogs,
                       data_dir=data, protocols_dir=REPO / "protocols")
    w.show()
    app.processEvents()
    build_s = time.perf_counter() - t0
    if prewarm:
        w.runner.enable_prewarm(lambda: (w.options.screen, w.options.windowed))
    print(f"  {'LauncherWindow built + shown (in process, imports done)':<52} {build_s:.3f} s")

    gap = {"last": time.perf_counter(), "max": 0.0}

    def tick():
        now = time.perf_counter()
        gap["max"], gap["last"] = max(gap["max"], now - gap["last"]), now
    meter = QTimer()
    meter.setInterval(5)
    meter.timeout.connect(tick)
    meter.start()

    def wait_until(cond, seconds: float) -> bool:
        loop = QEventLoop()
        poll = QTimer()
        poll.timeout.connect(lambda: loop.quit() if cond() else None)
        poll.start(2)
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()
        poll.stop()
        return cond()

    first_frame, first_frame_child, preflight_s, gaps, stops, to_start = [], [], [], [], [], []
    started_at = {}
    w.runner.stateChanged.connect(lambda s: started_at.setdefault("t", time.perf_counter()) if s == "starting" else None)
    w.windowed_check.setChecked(windowed)
    w.options.experimenter_edit.setText("bench")       # a real session records who ran it
    for i in range(runs):
        w.act_new.trigger()
        label = w.selected_label()
        started_at.clear()
        wait_until(lambda: False, 0.2)                 # let things settle
        if prewarm and not wait_until(lambda: w.runner.spare_ready, 60):
            raise RuntimeError("the prewarmed runner did not get ready within 60 s")
        gap["last"], gap["max"] = time.perf_counter(), 0.0
        t_unix, t0 = time.time(), time.perf_counter()
        w.act_start.trigger()                          # preflight, confirm, QProcess start / request sent
        if not w.runner.is_running():
            raise RuntimeError(f"session {label} did not start: {dialogs.shown[-1:]}")
        if w.runner.prewarmed_start != prewarm:
            raise RuntimeError(f"expected a {'prewarmed' if prewarm else 'cold'} start")
        page = {}
        w.runner.lineEvent.connect(lambda ev: page.setdefault(ev["event"], ev))
        if not wait_until(lambda: "page" in page, 30):
            raise RuntimeError(f"no first page from {label}: {w.event_label.text()}")
        t_seen = time.perf_counter()
        first_frame.append(t_seen - t0)
        first_frame_child.append(page["page"]["time"] - t_unix)
        to_start.append(page["session_start"]["time"] - t_unix)
        preflight_s.append(started_at["t"] - t0)
        wait_until(lambda: False, 0.3)                 # the participant reads the welcome page
        t_abort = time.perf_counter()
        w.act_abort.trigger()
        wait_until(lambda: not w.runner.is_running(), 20)
        stops.append(time.perf_counter() - t_abort)
        gaps.append(gap["max"])
        status = (w.last_result or {}).get("status")
        if status != "aborted":
            raise RuntimeError(f"{label}: expected aborted, got {status}: {(w.last_result or {}).get('stderr_tail')}")
        w.runner.lineEvent.disconnect()
        w.runner.lineEvent.connect(w.flow.on_event)
    mode = ("windowed" if windowed else "full screen") + (", prewarmed" if prewarm else ", cold")
    out = {"build_s": build_s,
           "start_to_first_frame_seen_s": summary(f"Start session -> first page seen by launcher ({mode})", first_frame),
           "start_to_first_flip_child_s": summary("Start session -> first page flipped (child's clock)",
                                                  first_frame_child),
           "preflight_s": summary("  of which preflight + confirm + QProcess.start", preflight_s),
           "start_to_session_start_s": summary("  child's session_start (imports, window open, record)", to_start),
           "abort_to_exit_s": summary("Abort (SIGTERM) -> child ended, status aborted", stops),
           "max_event_loop_gap_ms": summary("max event-loop gap per session (start..ended)",
                                            [g * 1000 for g in gaps], "ms")}
    w.runner.close_spare()
    w.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="sessions per mode (cold, prewarmed)")
    ap.add_argument("--windowed", action="store_true", help="participant window as a window, not full screen")
    ap.add_argument("--json", type=Path, default=REPO / "test-artifacts" / "bench-launcher.json")
    args = ap.parse_args()
    from x11tools import Xvfb
    tmp = Path(tempfile.mkdtemp(prefix="lhlab-bench-launcher-"))
    server = Xvfb()
    try:
        env = private_env(tmp, server.display)
        data = tmp / "data"
        print(f"lhlab launcher benchmark on Xvfb {server.display} (xcb), {os.cpu_count()} CPUs, runs={args.runs}")
        results = {"startup": bench_startup(server.display, env, data, max(3, args.runs // 2 + 1))}
        print("cold: every Start runs a fresh `lhlab run`")
        results["cold"] = bench_sessions(env, data, args.runs, args.windowed, prewarm=False)
        print("prewarmed: every Start goes to the launcher's waiting runner (experiment.runner)")
        results["prewarmed"] = bench_sessions(env, data, args.runs, args.windowed, prewarm=True)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    cold, warm = (results[k]["start_to_first_frame_seen_s"] for k in ("cold", "prewarmed"))
    print(f"Start session -> first page seen: cold median {cold['median']:.3f} s / p95 {cold['p95']:.3f} s; "
          f"prewarmed median {warm['median']:.3f} s / p95 {warm['p95']:.3f} s "
          f"(target < 0.5 s median: {'met' if warm['median'] < 0.5 else 'MISSED'}); longest event-loop gap "
          f"{max(results[k]['max_event_loop_gap_ms']['max'] for k in ('cold', 'prewarmed')):.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
