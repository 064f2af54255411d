"""No key lost in the noise tasks (issue 10), in the real window with real audio: bursts of key
events 8-10 ms apart, injected through XTEST, reach the escape response of noise training and
the shuttle test in order (the keyboard's wait_response takes the same pending queue)."""

from __future__ import annotations

import csv
import textwrap
import time

import pytest

from audiotools import pulse  # noqa: F401 - fixture
from live import LiveSession
from test_audio_noise import calibrated  # noqa: F401 - fixture: `lhlab calibrate` against the null sink

pytestmark = [pytest.mark.audio, pytest.mark.window]

PROTOCOL = """\
schema_version: 1
study: {id: noisekeys, title: "Key bursts in the noise tasks", block_size: 1}
phases:
  escape:
    task: noise_escape
    mode: escapable
    n_trials: 2
    noise_level: 80
    timeout: 1.5
    escape_presses: 3
    iti_min: 0.8
    iti_max: 1.2
    iti_mean: 1.0
    light_duration: 0.3
  check:
    task: rating
    questions: [{id: control, text: "Control?", low: 1, high: 10}]
  shuttle:
    task: shuttle
    n_trials: 2
    warning: 1.5
    noise_window: 1.5
    noise_level: 80
    iti_min: 0.8
    iti_max: 1.2
    iti_mean: 1.0
    feedback_duration: 0.3
    criterion_run: 0
conditions:
  only: {kind: controllable, phases: [escape, check, shuttle]}
debriefing: {pages: "Thank you."}
"""


def _rows(study, phase):
    with open(study / f"sub-n01/ses-1/beh/sub-n01_ses-1_task-{phase}_beh.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_key_bursts_reach_the_escape_response_and_the_shuttle(calibrated, x_display, tmp_path):  # noqa: F811
    from x11tools import Keys
    path = tmp_path / "noisekeys.yaml"
    path.write_text(textwrap.dedent(PROTOCOL), encoding="utf-8")
    keys = Keys(x_display)
    s = LiveSession(path, "--participant", "n01", "--condition", "only", "--data-dir", tmp_path, "--seed", 5,
                    "--windowed", "--experimenter", "E1")
    try:
        s.wait_for("phase_start", phase="escape", timeout=60)
        assert keys.focus_window(), "the participant window never appeared"
        for n, burst in ((1, ["space"] * 3), (2, ["space"] * 2)):     # 3 presses escape; 2 do not
            s.wait_for("trial_start", phase="escape", trial=n)
            time.sleep(0.05 + 0.3)                                  # onset is 50 ms after the event
            keys.burst(burst, gap=0.008)
            s.wait_for("trial", phase="escape", trial=n)
        s.wait_for("trial_start", phase="check", trial=1)
        time.sleep(0.1)
        keys.press("return")
        for n, burst in ((1, ["left", "left", "right"]), (2, ["right", "left"])):   # wrong side twice, then shuttle
            s.wait_for("trial_start", phase="shuttle", trial=n)
            time.sleep(0.2)                                          # within the 1.5 s warning
            keys.burst(burst, gap=0.010)
            s.wait_for("trial", phase="shuttle", trial=n)
        s.pass_debriefing(keys)
        assert s.finish() == 0, s.proc.stderr.read()[-2000:]
    finally:
        s.kill()
        keys.close()
    study = tmp_path / "noisekeys"
    escape = _rows(study, "escape")
    assert [(r["outcome"], r["presses"]) for r in escape] == [("escaped", "3"), ("timeout", "2")]
    shuttle = _rows(study, "shuttle")
    assert [(r["side_before"], r["outcome"], r["wrong_presses"]) for r in shuttle] == \
        [("left", "avoid", "2"), ("right", "avoid", "1")]
