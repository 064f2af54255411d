"""Experiment-core figures (run: .venv/bin/python benchmarks/bench_core.py).

1. data-only simulation time per participant for protocols/unsolvable-anagrams.yaml, in one
   process (the session code alone) and as a whole `lhlab run` process (start-up included);
2. the cost of writing one trial row with flush + fsync;
3. in the real PsychoPy window under Xvfb: the delay between a key event injected through
   XTEST by this (other) process and (a) the keyboard's timestamp of it, (b) the task reacting
   (the trial row is on disk and the progress event is out).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def bench_simulation(n: int = 200) -> None:
    from experiment.protocol import load_protocol
    from experiment.preflight import SessionRequest, prepare
    from experiment.session import run_data_only
    proto = load_protocol(REPO / "protocols/unsolvable-anagrams.yaml")
    conds = list(proto.conditions)
    with tempfile.TemporaryDirectory() as d:
        times = []
        for i in range(n):
            t = time.perf_counter()
            req = SessionRequest(proto, f"s{i}", conds[i % 3], Path(d), seed=i, simulate="default")
            run_data_only(prepare(req))
            times.append(time.perf_counter() - t)
    print(f"data-only simulation, in process ({n} participants, growing study folder):")
    print(f"  per participant: median {statistics.median(times) * 1000:.1f} ms, p95 {pct(times, 95) * 1000:.1f} ms "
          f"(target < 50 ms)")
    with tempfile.TemporaryDirectory() as d:
        times = []
        for i in range(10):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "experiment.cli", "run", "protocols/unsolvable-anagrams.yaml",
                            "--participant", f"c{i}", "--condition", conds[i % 3], "--data-dir", d, "--simulate",
                            "default", "--seed", str(i)], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t)
    print(f"  one `lhlab run --simulate` process incl. Python start-up: median {statistics.median(times) * 1000:.0f} ms")


def bench_fsync(n: int = 2000) -> None:
    from experiment.datafile import TrialLog
    with tempfile.TemporaryDirectory(dir=REPO) as d:
        log = TrialLog(Path(d) / "x_beh.tsv", ["participant_id", "trial", "rt", "response"])
        times = []
        for i in range(n):
            t = time.perf_counter()
            log.write({"participant_id": "sub-1", "trial": i, "rt": 1.234567, "response": "house"})
            times.append(time.perf_counter() - t)
        log.close()
    print(f"trial row write + flush + fsync ({n} rows, disk under {REPO}): median {statistics.median(times) * 1e3:.3f} ms, "
          f"p95 {pct(times, 95) * 1e3:.3f} ms, max {max(times) * 1e3:.3f} ms")


def bench_key_to_reaction(trials: int = 20) -> None:
    from x11tools import Keys, Xvfb
    home = tempfile.mkdtemp(prefix="lhlab-bench-home-")
    server = Xvfb()
    env = {**os.environ, "DISPLAY": server.display, "HOME": home, "XDG_CONFIG_HOME": home + "/.config",
           "XDG_CACHE_HOME": home + "/.cache", "PYTHONUNBUFFERED": "1"}
    proto = Path(tempfile.mkdtemp()) / "bench.yaml"
    proto.write_text(f"""schema_version: 1
study: {{id: bench, title: Bench}}
phases:
  test:
    task: anagram
    role: test
    items: {REPO}/stimuli/anagrams/patterned-34251.tsv
    n_trials: {trials}
    order: fixed
    criterion_run: 0
    feedback_duration: 0.3
    iti: 0.2
conditions:
  a: {{kind: control, phases: [test]}}
debriefing: {{pages: "Done."}}
""")
    data = tempfile.mkdtemp()
    proc = subprocess.Popen([sys.executable, "-m", "experiment.cli", "run", str(proto), "--participant", "b1",
                             "--condition", "a", "--data-dir", data, "--windowed", "--seed", "1"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, text=True)
    from experiment.protocol import load_protocol, plan
    schedule = plan(load_protocol(proto), "a", 1)[0][1]
    keys = Keys(server.display)
    lines: list[dict] = []
    cv = threading.Condition()

    def reader():
        for line in proc.stdout:
            with cv:
                lines.append(json.loads(line))
                cv.notify_all()
    threading.Thread(target=reader, daemon=True).start()

    def wait(pred, timeout=30):
        with cv:
            assert cv.wait_for(lambda: any(pred(e) for e in lines), timeout), "timeout waiting for the session"
            return next(e for e in lines if pred(e))
    sent, reacted = [], []
    try:
        wait(lambda e: e["event"] == "trial_start")
        keys.focus_window()
        for n, item in enumerate(schedule, 1):
            wait(lambda e: e["event"] == "trial_start" and e.get("trial") == n)
            time.sleep(0.1)
            keys.type(item["solution"], gap=0.02)
            time.sleep(0.05)
            sent.append(keys.press("return", hold=0.02))
            reacted.append(wait(lambda e: e["event"] == "trial" and e.get("trial") == n)["time"])
        wait(lambda e: e["event"] == "page")
        keys.press("space")
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        keys.close()
        server.stop()
    record = json.loads(next(Path(data).rglob("*_session.json")).read_text())
    t0 = record["devices"]["screen"]["t0_unix"]
    import csv
    with open(next(Path(data).rglob("*_task-test_beh.tsv")), newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    stamp = [(t0 + float(r["onset"]) + float(r["rt"])) - s for r, s in zip(rows, sent)]
    react = [r - s for r, s in zip(reacted, sent)]
    ms = lambda v: f"median {statistics.median(v) * 1e3:.2f} ms, p95 {pct(v, 95) * 1e3:.2f} ms, max {max(v) * 1e3:.2f} ms"  # noqa: E731
    print(f"real window under Xvfb, XTEST key from another process, {len(rows)} Enter presses:")
    print(f"  key event -> keyboard timestamp (tDown):          {ms(stamp)}")
    print(f"  key event -> task reacted (row fsynced, event out): {ms(react)}")
    print("  (the task loop runs at 60 Hz, so reacting includes up to one frame of waiting for the next poll)")


if __name__ == "__main__":
    bench_fsync()
    bench_simulation()
    bench_key_to_reaction()
