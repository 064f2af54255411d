"""`lhlab power` on the command line: outputs, reproducibility, bad input, Ctrl+C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

from analysis import power, power_run
from experiment.errors import EXIT_ABORTED
from experiment.protocol import load_protocol

REPO = Path(__file__).resolve().parent.parent
PROTOCOL = REPO / "protocols" / "unsolvable-anagrams.yaml"
LHLAB = [sys.executable, "-m", "experiment.cli"]


def lhlab(*args, timeout=300):
    return subprocess.run([*LHLAB, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_power_run_writes_every_output_and_is_reproducible(tmp_path):
    args = [PROTOCOL, "--per-group", "3", "--studies", "10", "--profile", "classic", "--seed", "5"]
    one = lhlab("power", *args, "--workers", "1", "--out", tmp_path / "a", "--json")
    assert one.returncode == 0, one.stderr
    data = json.loads(one.stdout)
    assert data["primary"] == "test_mean_latency" and data["profiles"] == ["classic", "no-effect"]
    prim = [r for r in data["power"] if r["plan"] == "primary"]
    assert {(r["profile"], r["n_per_group"]) for r in prim} == {("classic", 3), ("no-effect", 3)}
    assert all(r["ci_low"] <= r["power"] <= r["ci_high"] for r in prim)
    for name in ("power.csv", "smallest_n.csv", "studies.csv", "power_curve.svg", "power_curve.png", "power.html",
                 "power.json"):
        assert (tmp_path / "a" / name).stat().st_size > 100, name
    assert "<svg" in (tmp_path / "a" / "power_curve.svg").read_text()
    assert one.stderr == ""              # no progress bar when stderr is not a terminal
    two = lhlab("power", *args, "--workers", "2", "--out", tmp_path / "b")
    assert two.returncode == 0, two.stderr
    assert "false-positive rate under no-effect" in two.stdout
    for name in ("power.csv", "studies.csv", "smallest_n.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def _refused(tmp_path, *args, match: str):
    out = tmp_path / "out"
    t0 = time.monotonic()
    proc = lhlab("power", *args, "--out", out, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], proc.stderr
    assert not out.exists()
    return time.monotonic() - t0


def test_bad_input_is_one_line_and_writes_nothing(tmp_path):
    _refused(tmp_path, PROTOCOL, "--per-group", "0", match="at least 2 participants")
    _refused(tmp_path, PROTOCOL, "--per-group", "ten", match="A:B:STEP")
    _refused(tmp_path, PROTOCOL, "--studies", "5", match="--studies must be at least 10")
    _refused(tmp_path, PROTOCOL, "--profile", "clasic", match="--profile: unknown profile 'clasic'")
    _refused(tmp_path, PROTOCOL, "--profile", "classic,speed=2", match="profile parameter")
    _refused(tmp_path, PROTOCOL, "--studies", "2000", match="pass --yes")
    _refused(tmp_path, PROTOCOL, "--target", "80", match="--target")
    seconds = _refused(tmp_path, PROTOCOL, "--dask", "tcp://127.0.0.1:9", match="cannot reach the Dask scheduler")
    assert seconds < 30
    bare = tmp_path / "p" / "noplan.yaml"
    bare.parent.mkdir()
    (tmp_path / "stimuli").symlink_to(REPO / "stimuli")
    text = PROTOCOL.read_text(encoding="utf-8")
    bare.write_text(text[:text.index("\nanalysis:")] + "\n", encoding="utf-8")
    _refused(tmp_path, bare, match="declares no primary outcome")


def test_stopping_keeps_the_finished_cells():
    proto = load_protocol(PROTOCOL)
    tasks = [power.StudyTask(str(proto.path.resolve()), proto.sha256, "no-effect", n, i, 1)
             for n in (3, 4, 5) for i in range(6)]
    stop = threading.Event()
    seen = []

    def progress(k):
        seen.append(k)
        if sum(seen) >= 6:           # the first cell (6 studies, in chunks of 4 and 2) is done
            stop.set()
    run = power_run.run_tasks(tasks, workers=1, progress=progress, stop=stop)
    assert run.stopped and run.finished_cells == [("no-effect", 3)]


def test_ctrl_c_writes_the_finished_cells(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([*LHLAB, "power", str(PROTOCOL), "--per-group", "3:30:3", "--studies", "10",
                             "--workers", "2", "--out", str(out)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(5)                    # a few cells finish (fewer on a loaded machine: then none is written)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_ABORTED, stderr
    assert "stopped" in stderr
    table = pd.read_csv(out / "power.csv")
    assert (table["studies"] == 10).all()
    assert json.loads((out / "power.json").read_text())["stopped"] is True
    assert os.path.exists(out / "power.html")
