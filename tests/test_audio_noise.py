"""Real audio: PsychoPy sound (psychtoolbox backend) into a private PulseAudio null sink,
recorded from the sink's monitor. Noise is there while it should be, silent right after an
escape typed through XTEST by this process, and a yoked participant hears the partner's
durations; `lhlab calibrate` plays its reference at the stated level."""

from __future__ import annotations

import csv
import json
import textwrap
import time
from pathlib import Path

import pytest

from audiotools import Recorder, pulse  # noqa: F401 - pulse is a fixture
from live import LiveSession
from conftest import ARTIFACTS, run_lhlab

pytestmark = [pytest.mark.audio, pytest.mark.window]

READING, REFERENCE = 84.5, -20.0
LEVEL = 80.0
EXPECTED_DBFS = REFERENCE + LEVEL - READING          # -24.5 dBFS at the sink
TIMEOUT = 1.5


@pytest.fixture(scope="module")
def calibrated(pulse):
    """`lhlab calibrate` (non-interactive) against the null sink, recorded."""
    rec = Recorder()
    t0 = time.time()
    out = run_lhlab("calibrate", "--reading", READING, "--headphone", "HD280", "--seconds", 1.5,
                    "--experimenter", "T1", "--note", "null sink", timeout=60)
    recording = rec.stop()
    assert out.returncode == 0, out.stderr[-2000:]
    return out, recording, t0


def test_calibrate_plays_the_reference_and_stores_the_reading(calibrated):
    from experiment.calibration import calibrations_path, load_all
    out, recording, t0 = calibrated
    spans = [s for s in recording.sound_spans() if s[0] > t0]
    assert len(spans) == 1 and spans[0][1] - spans[0][0] == pytest.approx(1.5, abs=0.03), spans
    a, b = spans[0]
    assert recording.rms_dbfs(a + 0.2, b - 0.2) == pytest.approx(REFERENCE, abs=0.3)
    cal = load_all(calibrations_path())[-1]
    assert cal["device"] == {"device": "default", "pulse_sink": "null"}
    assert cal["headphone"] == "HD280" and cal["reading_dba"] == READING and cal["reference_dbfs"] == REFERENCE
    assert cal["output_volume"] == "100/100%" and cal["date"][:4].isdigit()
    assert "stored cal-" in out.stdout
    listing = run_lhlab("calibrate", "--list", check_rc=0).stdout
    assert cal["id"] in listing and "HD280" in listing


def escape_protocol(folder: Path) -> Path:
    path = folder / "escape.yaml"
    path.write_text(textwrap.dedent(f"""\
        schema_version: 1
        study: {{id: audiotest, title: "Noise escape in a real window", block_size: 2}}
        phases:
          escape:
            task: noise_escape
            mode: escapable
            n_trials: 3
            noise_level: {LEVEL:g}
            timeout: {TIMEOUT:g}
            iti_min: 0.8
            iti_max: 1.2
            iti_mean: 1.0
            light_duration: 0.3
          yoked:
            task: noise_escape
            mode: inescapable
            n_trials: 3
            noise_level: {LEVEL:g}
            iti_min: 0.8
            iti_max: 1.2
            iti_mean: 1.0
          check:
            task: rating
            questions: [{{id: control, text: "How much control did you have?", low: 1, high: 10}}]
        conditions:
          escapable: {{kind: controllable, phases: [escape, check]}}
          yoked: {{kind: helpless, yoked_to: escapable, phases: [yoked, check]}}
        debriefing: {{pages: "Some participants could not stop the noise."}}
        """))
    return path


def rows_of(study: Path, label: str, phase: str) -> list[dict]:
    path = study / f"sub-{label}/ses-1/beh/sub-{label}_ses-1_task-{phase}_beh.tsv"
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def check_trials(recording, rows, t0_unix):
    """Noise at the calibrated level for as long as the trial says, silence between the bursts.

    Times are compared within each burst, in the sink's own sample clock: the recording's
    wall-clock alignment carries a shift of some ms (the null sink renders ahead of real time,
    and a busy test machine may make the monitor drop a block), so each burst is found near
    its scheduled onset and its heard length compared with the recorded one.
    Returns each burst's heard (start, end) moved onto the scheduled onset (Unix time)."""
    spans = []
    for i, r in enumerate(rows):
        on, off = t0_unix + float(r["onset"]), t0_unix + float(r["offset"])
        heard_on = recording.first_sound_after(on - 0.08)
        assert heard_on is not None and abs(heard_on - on) < 0.06, (i, heard_on and heard_on - on)
        heard_off = recording.last_sound_before(heard_on + (off - on) + 0.05)
        assert heard_off - heard_on == pytest.approx(off - on, abs=0.012), (i, heard_off - heard_on, off - on)
        assert recording.rms_dbfs(heard_on + 0.05, heard_off - 0.05) == pytest.approx(EXPECTED_DBFS, abs=1.0)
        if i + 1 < len(rows):
            gap = float(rows[i + 1]["onset"]) - float(r["offset"])
            nxt = recording.first_sound_after(heard_off + 0.015)
            assert nxt - heard_off == pytest.approx(gap, abs=0.02), "sound between the bursts"
        spans.append((on, on + (heard_off - heard_on)))
    return spans


def test_escape_stops_real_noise_and_a_yoked_participant_hears_the_same_durations(calibrated, x_display, tmp_path):
    from x11tools import Keys, save_png
    path = escape_protocol(tmp_path)
    keys = Keys(x_display)
    rec = Recorder()
    s = LiveSession(path, "--participant", "e1", "--condition", "escapable", "--data-dir", tmp_path, "--seed", 3,
                    "--windowed", "--experimenter", "E1")
    pressed = {}
    try:
        s.wait_for("phase_start", phase="escape", timeout=60)
        assert keys.focus_window(), "the participant window never appeared"
        for n, delay in ((1, 0.45), (2, None), (3, 0.30)):
            ev = s.wait_for("trial_start", phase="escape", trial=n)
            if delay is not None:
                time.sleep(0.05 + delay)                   # onset is scheduled 50 ms after the event
                pressed[n] = keys.press("space")
            s.wait_for("trial", phase="escape", trial=n)
            if n == 1:
                time.sleep(0.05)
                save_png(keys.screenshot(), ARTIFACTS / "noise-success-light.png")
        s.wait_for("trial_start", phase="check", trial=1)
        time.sleep(0.1)
        keys.press("return")
        s.pass_debriefing(keys)
        assert s.finish() == 0, s.proc.stderr.read()[-2000:]
    finally:
        s.kill()
    recording = rec.stop()
    study = tmp_path / "audiotest"
    record = json.loads((study / "sub-e1/ses-1/sub-e1_ses-1_session.json").read_text())
    t0 = record["devices"]["screen"]["t0_unix"]
    rows = rows_of(study, "e1", "escape")
    assert [r["outcome"] for r in rows] == ["escaped", "timeout", "escaped"]
    assert [r["light"] for r in rows] == ["success", "failure", "success"]
    # Gaps are recorded per trial for the lab to see. On 2 shared cores one underrun can happen
    # when the stream starts under load; more than one means the noise really stuttered.
    assert sum(int(r["audio_xruns"]) for r in rows) <= 1, "the noise had gaps (output underruns)"
    spans = check_trials(recording, rows, t0)
    for n in (1, 3):
        r = rows[n - 1]
        key_down = t0 + float(r["onset"]) + float(r["escape_latency"])
        assert key_down - pressed[n] == pytest.approx(0.0, abs=0.005)         # the key's own timestamp
        assert t0 + float(r["stop_command"]) - key_down < 0.005                # stop issued within 5 ms
        silent_after = spans[n - 1][1] - pressed[n]           # heard length measured from the onset
        assert 0 < silent_after < 0.025, f"trial {n}: sound went on {silent_after * 1000:.1f} ms after the key"
    assert float(rows[1]["noise_duration"]) == pytest.approx(TIMEOUT, abs=0.002)
    assert spans[1][1] - spans[1][0] == pytest.approx(TIMEOUT, abs=0.012)           # the time-out burst
    assert record["calibration"]["headphone"] == "HD280" and record["devices"]["audio"]["backend"] == "psychopy-ptb"
    dose = record["noise_dose"]
    played = sum(float(r["noise_duration"]) for r in rows)
    assert dose["total_seconds"] == pytest.approx(played, abs=0.01)
    assert dose["dose_percent"] == pytest.approx(100 * played / (28800 / 2 ** ((LEVEL - 85) / 3)), rel=0.01)

    # the yoked participant (simulated, in the same real window and audio): the partner's durations
    rec = Recorder()
    out = run_lhlab("run", path, "--participant", "y1", "--condition", "yoked", "--data-dir", tmp_path, "--seed", 4,
                    "--windowed", "--simulate", "default,reading_median=0.3", "--mode", "visual", "--yoked-to", "e1",
                    timeout=120)
    recording = rec.stop()
    assert out.returncode == 0, out.stderr[-2000:]
    record = json.loads((study / "sub-y1/ses-1/sub-y1_ses-1_session.json").read_text())
    yrows = rows_of(study, "y1", "yoked")
    yspans = check_trials(recording, yrows, record["devices"]["screen"]["t0_unix"])
    for (a, b), (ya, yb), r, yr in zip(spans, yspans, rows, yrows):
        assert float(yr["noise_duration"]) == pytest.approx(float(r["noise_duration"]), abs=1e-4)
        assert float(yr["iti"]) == float(r["iti"])
        assert (yb - ya) == pytest.approx(b - a, abs=0.01)                    # as heard at the sink
    assert record["yoke"]["partner"] == "e1"


def test_a_shipped_protocol_runs_in_the_real_window_with_real_audio(calibrated, x_display, tmp_path):
    """Hiroto & Seligman experiment 4 (problems -> shuttle), visual simulation at 40x speed:
    cards and the shuttle drawn in the real window, the shuttle noise played for real."""
    from x11tools import Keys, save_png
    import numpy as np
    path = Path(__file__).resolve().parent.parent / "protocols" / "hiroto-seligman-problems-shuttle.yaml"
    out = run_lhlab("calibrate", "--reading", READING, "--headphone", "HD280", "--seconds", 0.5, "--sound", "tone",
                    "--tone-hz", 1000, timeout=60)                 # the shipped protocols play the 1975 tone
    assert out.returncode == 0, out.stderr[-2000:]
    keys = Keys(x_display)
    rec = Recorder()
    s = LiveSession(path, "--participant", "v1", "--condition", "soluble", "--data-dir", tmp_path, "--seed", 8,
                    "--windowed", "--simulate", "default", "--mode", "visual", "--speed", 40)
    try:
        s.wait_for("trial_start", phase="problemssoluble", trial=1, timeout=60)
        card = keys.screenshot()
        s.wait_for("trial_start", phase="shuttle", trial=1, timeout=60)
        shuttle = keys.screenshot()
        assert s.finish(timeout=120) == 0, s.proc.stderr.read()[-2000:]
    finally:
        s.kill()
    recording = rec.stop()
    save_png(card, ARTIFACTS / "discrimination-card.png")
    save_png(shuttle, ARTIFACTS / "shuttle-warning.png")
    red = (card[:, :, 0] > 180) & (card[:, :, 1] < 60) & (card[:, :, 2] < 60)
    blue = (card[:, :, 2] > 180) & (card[:, :, 0] < 60)
    assert red.sum() + blue.sum() > 2000, "no coloured patterns on the card"
    px = shuttle.astype(int)
    marker = (abs(px[:, :, 0] - 153) < 20) & (abs(px[:, :, 1] - 204) < 20) & (px[:, :, 2] > 235)   # light blue
    assert marker.sum() > 500, "no shuttle marker drawn"
    study = tmp_path / "hiroto-seligman-problems-shuttle"
    record = json.loads((study / "sub-v1/ses-1/sub-v1_ses-1_session.json").read_text())
    assert record["status"] == "complete" and record["calibration"]["headphone"] == "HD280"
    rows = rows_of(study, "v1", "shuttle")
    assert len(rows) == 18 and len(rows_of(study, "v1", "problemssoluble")) == 40      # Hiroto (1974): 18
    noisy = [r for r in rows if r["outcome"] != "avoid"]
    t0 = record["devices"]["screen"]["t0_unix"]
    spans = [sp for sp in recording.sound_spans(min_gap_s=0.02) if sp[0] > t0]
    assert len(spans) == len(noisy) > 0, (len(spans), [r["outcome"] for r in rows])
    heard = np.array([b - a for a, b in spans])
    played = np.array([float(r["noise_duration"]) / 40 for r in noisy])       # session time runs 40x
    assert np.abs(heard - played).max() < 0.012, list(zip(heard, played))
