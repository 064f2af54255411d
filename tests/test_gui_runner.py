"""The launcher's child-process layer, with small stand-in children (no PsychoPy, no display):
JSON lines become progress, other output goes to the log, exit codes and signals become a
status, abort is SIGTERM and only a child that ignores it is killed (with a warning), and the
event loop keeps running throughout."""

from __future__ import annotations

import sys
import textwrap
import time

import pytest

pytest.importorskip("pytestqt")

from gui.progress import LiveProgress, describe, format_duration, parse_line, status_for_exit  # noqa: E402
from gui.session_runner import SessionRunner  # noqa: E402
from gapmeter import GapMeter  # noqa: E402


def child(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


EMIT = """
import json, os, signal, sys, time
def emit(event, **kw):
    print(json.dumps({"event": event, "time": time.time(), "elapsed": 0.1, "participant": "P001", "session": 1, **kw}),
          flush=True)
"""


def test_progress_folds_events():
    p = LiveProgress(started_at=0.0)
    p.apply({"event": "session_start", "elapsed": 0.0, "participant": "P001", "session": 2, "condition": "c",
             "study": "demo", "phases": ["welcome", "practice", "test"], "expected_s": 600}, 1.0)
    assert p.participant == "P001" and p.session == 2 and p.phase_text() == "-"
    p.apply({"event": "phase_start", "elapsed": 1.0, "phase": "practice", "role": "practice", "task": "anagram",
             "trials": 4}, 2.0)
    assert p.phase_text() == "practice (practice, anagram)  ·  phase 2 of 3" and p.trial_text() == "- of 4"
    p.apply({"event": "trial_start", "elapsed": 1.5, "phase": "practice", "trial": 1, "of": 4}, 2.5)
    assert p.trial_text() == "1 of 4" and p.first_frame_at == 2.5
    p.apply({"event": "trial", "elapsed": 3.0, "phase": "practice", "trial": 1, "of": 4, "outcome": "solved",
             "rt": 1.25}, 4.0)
    assert p.last_event == "trial 1 of 4: solved in 1.2 s"
    assert p.fraction() == pytest.approx((1 + 0.25) / 3)
    assert p.elapsed(6.0) == pytest.approx(5.0)        # the child's 3.0 s + 2 s since that event
    p.apply({"event": "session_end", "elapsed": 3.5, "status": "aborted", "reason": "experimenter abort"}, 5.0)
    assert p.end_status == "aborted" and "aborted" in p.last_event


def test_lines_exit_codes_and_formatting():
    assert parse_line('{"event": "page", "kind": "text"}') == {"event": "page", "kind": "text"}
    assert parse_line("pyglet warning: something") is None and parse_line("{broken") is None
    assert parse_line('{"no_event": 1}') is None
    assert describe({"event": "trial", "trial": 2, "of": 5, "outcome": "timeout", "rt": None}) == "trial 2 of 5: timeout"
    assert format_duration(3725) == "1:02:05" and format_duration(65) == "01:05"
    assert status_for_exit(0, False, "complete") == "complete"
    assert status_for_exit(3, False, "aborted") == "aborted"
    assert status_for_exit(4, False, None) == "withdrawn"
    assert status_for_exit(2, False, None) == "refused"
    assert status_for_exit(1, False, "crashed") == "crashed"
    assert status_for_exit(0, True, None) == "crashed"          # ended by a signal
    assert status_for_exit(77, False, None) == "crashed"


def test_runner_follows_lines_and_reports_exit(qtbot):
    runner = SessionRunner()
    events, output = [], []
    runner.lineEvent.connect(events.append)
    runner.output.connect(output.append)
    argv = child(EMIT + """
emit("session_start", condition="c", study="demo", data="/x", phases=["a", "b"], expected_s=10)
sys.stdout.write('{"event": "phase_start", "phase": "a", "role": "test", "task": "anagram", '); sys.stdout.flush()
time.sleep(0.2)
sys.stdout.write('"trials": 3, "elapsed": 0.2}\\n'); sys.stdout.flush()
print("a line that is not JSON", flush=True)
emit("trial_start", phase="a", trial=1, of=3)
print("something went wrong", file=sys.stderr, flush=True)
emit("session_end", status="aborted", reason="test")
sys.exit(3)
""")
    with qtbot.waitSignal(runner.finished, timeout=10000) as done:
        runner.start(argv, "session", {"label": "P001"})
        assert runner.is_running() and runner.state == "starting"
    result = done.args[0]
    assert [e["event"] for e in events] == ["session_start", "phase_start", "trial_start", "session_end"]
    assert result["status"] == "aborted" and result["code"] == 3 and not result["by_signal"]
    assert result["stderr_tail"] == ["something went wrong"] and result["meta"] == {"label": "P001"}
    assert "stdout: a line that is not JSON" in output
    assert result["progress"].trial_text() == "1 of 3" and runner.state == "idle"


def test_child_killed_by_signal_is_crashed_and_loop_keeps_running(qtbot):
    runner = SessionRunner()
    meter = GapMeter()
    argv = child(EMIT + """
emit("session_start", phases=["a"])
print("Traceback: about to die", file=sys.stderr, flush=True)
time.sleep(0.5)
os.kill(os.getpid(), signal.SIGKILL)
""")
    with qtbot.waitSignal(runner.finished, timeout=10000) as done:
        runner.start(argv)
    result = done.args[0]
    assert result["status"] == "crashed" and result["by_signal"] and result["stderr_tail"][-1].startswith("Traceback")
    assert meter.max_gap < 0.5, f"event loop froze for {meter.max_gap:.2f} s"


def test_abort_is_sigterm_and_graceful(qtbot):
    runner = SessionRunner()
    warnings = []
    runner.warning.connect(warnings.append)
    argv = child(EMIT + """
def stop(signum, frame):
    emit("session_end", status="aborted", reason="SIGTERM")
    sys.exit(3)
signal.signal(signal.SIGTERM, stop)
emit("session_start", phases=["a"])
while True:
    time.sleep(0.05)
""")
    with qtbot.waitSignal(runner.lineEvent, timeout=10000):
        runner.start(argv)
    t0 = time.monotonic()
    with qtbot.waitSignal(runner.finished, timeout=10000) as done:
        assert runner.abort() and runner.state == "stopping"
    result = done.args[0]
    assert result["status"] == "aborted" and result["stopped"] and not result["killed"] and not warnings
    assert time.monotonic() - t0 < 2


def test_child_ignoring_sigterm_is_killed_after_timeout_with_warning(qtbot):
    runner = SessionRunner(stop_timeout_s=0.6)
    warnings = []
    runner.warning.connect(warnings.append)
    argv = child(EMIT + """
signal.signal(signal.SIGTERM, signal.SIG_IGN)
emit("session_start", phases=["a"])
while True:
    time.sleep(0.05)
""")
    with qtbot.waitSignal(runner.lineEvent, timeout=10000):
        runner.start(argv)
    t0 = time.monotonic()
    with qtbot.waitSignal(runner.finished, timeout=10000) as done:
        runner.abort()
    result = done.args[0]
    assert 0.5 < time.monotonic() - t0 < 3
    assert result["killed"] and result["status"] == "crashed" and "SIGKILL" in warnings[0]


def test_program_that_cannot_start(qtbot):
    runner = SessionRunner()
    with qtbot.waitSignal(runner.finished, timeout=10000) as done:
        runner.start(["/nonexistent/python", "-m", "experiment.cli"])
    result = done.args[0]
    assert result["status"] == "failed to start" and "could not start" in result["stderr_tail"][0]
    assert not runner.is_running()
