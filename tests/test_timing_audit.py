"""The timing audit (issue 14): every frame of a session with a window is recorded, dropped
frames are counted overall and per stimulus window, and a trial whose stimulus lost frames says
so in its row (timing_ok = 0). The live test stalls the real frame loop (SIGSTOP) while the
letters of one anagram are on the screen."""

from __future__ import annotations

import csv
import gzip
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO
from experiment.devices.frames import FrameAudit, lost_frames, measured_refresh
from experiment.tasks.base import PhaseContext

P = 1 / 60


def _audit(times: list[float]) -> FrameAudit:
    a = FrameAudit(P, 60.0, 60.0, None)
    for t in times:
        a.flip(t)
    return a


def test_a_stall_inside_a_stimulus_window_is_counted_there_and_nowhere_else():
    times = [i * P for i in range(60)]
    times += [times[-1] + 0.2 + i * P for i in range(60)]          # a 200 ms stall after frame 59
    a = _audit(times)
    assert lost_frames(0.2, P) == 11 and lost_frames(1.4 * P, P) == 0
    assert a.window("letters", 0.5, 1.5) == 11                     # the stall lies inside
    assert a.window("cards", 0.0, 0.9) == 0                        # it ends before the stall
    assert a.window("noise", 1.2, 1.5) == 0                        # it starts after it
    s = a.summary()
    assert s["dropped_frames"] == 11 and s["worst_frame_ms"] == pytest.approx(200, abs=0.01)
    assert s["stimulus_windows"]["letters"] == {"windows": 1, "windows_with_drops": 1, "dropped_frames": 11}
    assert s["stimulus_windows"]["cards"]["windows_with_drops"] == 0
    assert s["refresh"] == "60.00 Hz" and s["refresh_matches_nominal"] is True
    rows = list(csv.DictReader(gzip.decompress(a.tsv_gz()).decode().splitlines(), delimiter="\t"))
    assert len(rows) == 120 and rows[0]["interval"] == "n/a"
    stalled = [r for r in rows if int(r["dropped"])]
    assert len(stalled) == 1 and stalled[0]["window"] == "letters" and float(stalled[0]["interval"]) > 0.19


STREAMING_SESSION = """
import sys, time
from experiment.devices.frames import FrameAudit
a = FrameAudit(1 / 60, None, None, 60.0)
a.stream_to(sys.argv[1])
t = 0.0
for trial in range(1, 100000):
    start = t
    for i in range(30):
        t += 0.2 if (trial == 2 and i == 10) else 1 / 60       # trial 2 stalls for 200 ms
        a.flip(t)
    a.window("letters", start, t)
    a.flush()                            # what the real screen does when a trial's window ends
    print(trial, flush=True)
    time.sleep(0.005)
"""


def test_frames_written_as_they_happen_survive_sigkill(tmp_path):
    from experiment.devices.frames import summarise_file
    path = tmp_path / "sub-x_ses-1_frames.tsv"
    proc = subprocess.Popen([str(REPO / ".venv/bin/python"), "-c", STREAMING_SESSION, str(path)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if int(line) == 5:
                proc.kill()                  # mid-trial 6: no end-of-session code runs
                break
    finally:
        proc.kill()
        proc.wait(10)
    s = summarise_file(path)
    assert not s["complete"] and s["frames"] >= 150                    # at least the 5 finished trials
    assert s["dropped_frames"] == 11 and s["windows_with_drops"] == ["letters"]
    assert s["worst_frame_ms"] == pytest.approx(200, abs=0.01)
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == ["t", "interval", "kind", "dropped", "window"]
    assert all(line.endswith("\tletters") for line in lines[1:151])    # each trial's window is labelled


def test_the_plain_frames_file_is_the_final_log_written_early(tmp_path):
    from experiment.devices.frames import summarise_file
    a = FrameAudit(P, None, None, 60.0)
    a.stream_to(tmp_path / "f.tsv")
    with pytest.raises(FileExistsError):
        FrameAudit(P, None, None, 60.0).stream_to(tmp_path / "f.tsv")      # never overwritten
    t = 0.0
    for trial in range(3):
        start = t
        for _ in range(20):
            t += P
            a.flip(t)
        a.window("cards", start + 5 * P, t)      # registered at its end, then flushed
        a.flush()
        for _ in range(10):                      # feedback: no window
            t += P
            a.idle(t)
    a.end_stream()
    (tmp_path / "f.tsv.gz").write_bytes(a.tsv_gz())
    assert (tmp_path / "f.tsv").read_bytes() == gzip.decompress(a.tsv_gz())
    plain, packed = summarise_file(tmp_path / "f.tsv"), summarise_file(tmp_path / "f.tsv.gz")
    assert packed["complete"] and not plain["complete"]
    assert {k: v for k, v in plain.items() if k not in ("file", "complete")} == \
           {k: v for k, v in packed.items() if k not in ("file", "complete")}
    assert packed["frames"] == 60 and packed["idle_ticks"] == 30


STIMULUS_VIEWS = {"anagram": "letters", "card": "cards", "noise": "noise", "shuttle": "noise"}


def test_every_trial_that_shows_a_stimulus_gets_a_timing_verdict(tmp_path):
    """Every condition of every shipped protocol, data-only, on a screen that has frames (none
    lost): each phase that put a stimulus on the screen (letters, cards, a noise or shuttle
    trial) writes timing_ok = 1 on every row and registered its windows; phases that showed only
    text, ratings or forms have no timing_ok column."""
    import threading

    from experiment.devices.virtual import RecordingScreen, data_only_devices
    from experiment.preflight import SessionRequest, prepare
    from experiment.protocol import load_protocol
    from experiment.session import Session
    from experiment.simulation.participant import participant_for
    from audiotools import read_rows

    class FramedScreen(RecordingScreen):
        def __init__(self, clock, participant):
            super().__init__(clock, participant)
            self.phase, self.kinds, self.windows = None, {}, {}

        def begin_phase(self, phase_id, role):
            super().begin_phase(phase_id, role)
            self.phase = phase_id

        def show(self, view):
            self.kinds.setdefault(self.phase, set()).add(view.kind)
            return super().show(view)

        def frames_lost(self, start, end, window):
            self.windows.setdefault(self.phase, []).append(window)
            return 0

    checked = set()
    for path in sorted((REPO / "protocols").glob("*.yaml")):
        proto = load_protocol(path)
        labels = {}
        for n, cond in enumerate(sorted(proto.conditions.values(), key=lambda c: c.yoked_to is not None), 1):
            label = f"c{n}"
            prepared = prepare(SessionRequest(protocol=proto, participant=label, condition=cond.name,
                                              data_dir=tmp_path / path.stem, seed=n, simulate="default",
                                              yoked_to=labels.get(cond.yoked_to)))
            labels[cond.name] = label
            stop = threading.Event()
            participant = participant_for(prepared)
            clock, _, keyboard, speaker = data_only_devices(participant, proto.keys, stop)
            screen = FramedScreen(clock, participant)
            assert Session(prepared, (clock, screen, keyboard, speaker), stop, None).run() == 0
            record = json.loads((prepared.study / f"sub-{label}" / "ses-1" / f"sub-{label}_ses-1_session.json")
                                .read_text())
            for ph in record["phases"]:
                rows = read_rows(prepared.study, label, ph["id"])
                shown = {STIMULUS_VIEWS[k] for k in screen.kinds.get(ph["id"], ()) if k in STIMULUS_VIEWS}
                if shown:
                    assert rows and all(r.get("timing_ok") == "1" for r in rows), (path.name, ph["id"], rows[:1])
                    assert set(screen.windows[ph["id"]]) <= shown and len(screen.windows[ph["id"]]) == len(rows)
                    checked.add(ph["task"])
                else:
                    assert all("timing_ok" not in r for r in rows), (path.name, ph["id"])
    assert {"anagram", "noise_escape", "shuttle", "discrimination"} <= checked


def test_no_vsync_reports_an_unknown_refresh_instead_of_inventing_one():
    assert measured_refresh([0.001] * 10) is None                 # Xvfb: ~1 kHz flips
    assert measured_refresh([1 / 59.95] * 10) == pytest.approx(59.95)
    a = FrameAudit(P, None, None, 60.0)
    a.flip(0.0)
    assert a.summary()["refresh"] == "unknown (no vsync)" and a.summary()["refresh_measured_hz"] is None


def test_timing_ok_is_na_without_frames_and_0_when_frames_were_lost():
    def ctx(frames_lost):
        return PhaseContext("p", "test", {}, None, None, None, None, {}, {}, print, print, REPO, {}, frames_lost)
    assert ctx(None).timing_ok(0, 1, "letters") is None
    assert ctx(lambda s, e, w: None).timing_ok(0, 1, "letters") is None
    assert ctx(lambda s, e, w: 0).timing_ok(0, 1, "letters") == 1
    assert ctx(lambda s, e, w: 3).timing_ok(0, 1, "letters") == 0


PROTOCOL = """\
schema_version: 1
study: {{id: timing, title: "Timing audit", block_size: 2}}
texts: {{withdraw_hint: "F12 stops.", continue_hint: "Press SPACE."}}
phases:
  letters:
    task: anagram
    role: test
    items: {items}
    n_trials: 3
    time_limit: 8
    criterion_run: 0
    feedback_duration: 0.5
    iti: 0.2
conditions:
  a: {{kind: controllable, phases: [letters]}}
  b: {{kind: helpless, phases: [letters]}}
debriefing: {{pages: "Thank you."}}
"""


@pytest.mark.window
def test_a_stalled_frame_loop_flags_its_trial_and_the_session_keeps_every_frame(x_display, tmp_path):
    proto = tmp_path / "timing.yaml"
    proto.write_text(PROTOCOL.format(items=REPO / "stimuli/anagrams/training.tsv"))
    data = tmp_path / "data"
    proc = subprocess.Popen([str(REPO / ".venv/bin/python"), "-m", "experiment.cli", "run", str(proto),
                             "--participant", "t1", "--condition", "a", "--data-dir", str(data), "--simulate",
                             "default", "--mode", "visual", "--speed", "4", "--windowed", "--seed", "3"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            ev = json.loads(line)
            if ev["event"] == "trial_start" and ev.get("trial") == 2:
                proc.send_signal(signal.SIGSTOP)            # the frame loop stalls with the letters shown
                time.sleep(0.3)
                proc.send_signal(signal.SIGCONT)
                break
        assert proc.wait(120) == 0, proc.stderr.read()[-2000:]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
    ses = data / "timing" / "sub-t1" / "ses-1"
    record = json.loads((ses / "sub-t1_ses-1_session.json").read_text())
    screen = record["timing"]["screen"]
    assert screen["audited"] and screen["refresh"] == "unknown (no vsync)"      # Xvfb has no vsync
    assert screen["frames"] > 100 and screen["worst_frame_ms"] >= 290
    assert screen["stimulus_windows"]["letters"]["windows"] == 3
    assert screen["stimulus_windows"]["letters"]["dropped_frames"] >= 16
    with open(ses / "beh" / "sub-t1_ses-1_task-letters_beh.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert rows[1]["timing_ok"] == "0"                  # the stalled trial says so
    assert {r["timing_ok"] for r in rows} <= {"0", "1"}
    frames = list(csv.DictReader(gzip.decompress((ses / "sub-t1_ses-1_frames.tsv.gz").read_bytes())
                                 .decode().splitlines(), delimiter="\t"))
    assert record["timing"]["frames_file"] == "sub-t1/ses-1/sub-t1_ses-1_frames.tsv.gz"
    assert len(frames) == screen["frames"] + screen["idle_ticks"]
    # the stall is in the letters window (a loaded machine may add other long frames elsewhere)
    stalls = [r for r in frames[1:] if r["window"] == "letters" and float(r["interval"]) >= 0.29]
    assert stalls and int(max(stalls, key=lambda r: float(r["interval"]))["dropped"]) >= 16, stalls
    assert not (ses / "sub-t1_ses-1_frames.tsv").exists()           # the plain copy of a session that ended
    assert {"*_frames.tsv.gz", "*_frames.tsv"} <= set((data / "timing" / ".bidsignore").read_text().splitlines())
    validator = REPO / ".venv/bin/bids-validator-deno"
    out = subprocess.run([str(validator) if validator.exists() else "bids-validator-deno", "--format", "json",
                          str(data / "timing")], capture_output=True, text=True, timeout=120)
    errors = [i for i in json.loads(out.stdout)["issues"]["issues"] if i["severity"] == "error"]
    assert out.returncode == 0 and not errors, errors


def _audit_record(dropped_percent: float, flagged: int) -> dict:
    return {"screen": {"audited": True, "refresh_measured_hz": 59.95, "refresh": "59.95 Hz", "frames": 20000,
                       "dropped_frames": round(200 * dropped_percent), "dropped_percent": dropped_percent,
                       "worst_frame_ms": 50.0 + flagged,
                       "stimulus_windows": {"letters": {"windows": 20, "windows_with_drops": flagged,
                                                        "dropped_frames": flagged}}},
            "audio": {"audited": False, "backend": "none"}}


def test_the_report_states_timing_and_max_dropped_frames_excludes(tmp_path):
    from analysis import paper
    from analysis.pipeline import Options, analyze
    from analysis.report import render
    from experiment import datafile
    from experiment.errors import BadInput
    from experiment.protocol import load_protocol
    from experiment.simstudy import write_study
    study = write_study(load_protocol(REPO / "protocols/demo.yaml"), "default", 3, 7, tmp_path)
    with pytest.raises(BadInput, match="no session of this study recorded a timing audit"):
        analyze(study, Options(max_dropped_frames=1.0))
    paths = sorted(study.glob("sub-*/ses-1/*_session.json"))
    for n, path in enumerate(paths):
        rec = json.loads(path.read_text())
        rec["timing"] = _audit_record(5.0 if n == 0 else 0.01, 3 if n == 0 else 0)
        datafile.write_json_atomic(path, rec)
    victim = f"sub-{json.loads(paths[0].read_text())['participant']}"
    kept = analyze(study, Options())
    assert victim in set(kept.included["participant_id"])
    assert kept.tables["timing"].set_index("participant_id").at[victim, "dropped_percent"] == 5.0
    result = analyze(study, Options(max_dropped_frames=1.0))
    ex = result.tables["exclusions"]
    assert list(ex.loc[ex["reason_code"] == "timing", "participant_id"]) == [victim]
    assert victim not in set(result.included["participant_id"])
    prov = dict(zip(result.tables["provenance"]["key"], result.tables["provenance"]["value"]))
    assert prov["option_max_dropped_frames"] == "1% (given)"
    text = paper.methods(result)
    assert "Displays ran at 60.0 Hz; 0.83% of frames were dropped across 6 sessions (worst single frame 53.0 ms); " \
           "3 trials lost frames" in text
    html = render(result, with_plots=False)
    assert 'id="timing"' in html and "59.95 Hz" in html
