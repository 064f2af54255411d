"""Noise safety without a sound card: lab limits refused at validation naming the field,
sessions without calibration refused before anything is written, the NIOSH dose checked
against a hand calculation, yoked schedules replayed trial for trial (data-only)."""

from __future__ import annotations

import csv
import json
import random
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import REPO, lab_copy, run_lhlab

NOISE_SHUTTLE = REPO / "protocols" / "hiroto-seligman-noise-shuttle.yaml"


def noise_protocol(folder: Path, *, level=90, timeout=5, n_trials=4, window=5, extra="", name="noisetest") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        schema_version: 1
        study:
          id: {name}
          title: "Noise safety test"
          block_size: 3
        phases:
          escape:
            task: noise_escape
            mode: escapable
            n_trials: {n_trials}
            noise_level: {level}
            timeout: {timeout}
            iti_min: 1
            iti_max: 3
            iti_mean: 2
        {textwrap.indent(extra, '  ')}
          yoked:
            task: noise_escape
            mode: inescapable
            n_trials: {n_trials}
            noise_level: {level}
            iti_min: 1
            iti_max: 3
            iti_mean: 2
          check:
            task: rating
            questions:
              - {{id: control, text: "Control?", low: 1, high: 10}}
          shuttle:
            task: shuttle
            role: test
            n_trials: 3
            noise_level: {level}
            noise_window: {window}
            iti_min: 1
            iti_max: 3
            iti_mean: 2
        conditions:
          escapable: {{kind: controllable, phases: [escape, check, shuttle]}}
          yoked: {{kind: helpless, yoked_to: escapable, phases: [yoked, check, shuttle]}}
          none: {{kind: control, phases: [check, shuttle]}}
        debriefing:
          pages: "The noise could not be stopped by some participants."
        """), encoding="utf-8")
    return path


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


# -- limits at validation time ----------------------------------------------------------------------

def test_level_over_the_lab_maximum_is_refused_naming_the_field(tmp_path):
    path = noise_protocol(tmp_path, level=95)
    out = run_lhlab("validate", path, check_rc=2)
    assert f"{path}:{line_of(path, 'noise_level: 95')}: phases.escape.noise_level: 95 dB(A) exceeds the lab " \
           "maximum of 90 dB(A)" in out.stderr
    assert "phases.shuttle.noise_level" in out.stderr and "phases.yoked.noise_level" in out.stderr


def test_burst_over_the_lab_maximum_is_refused_naming_the_field(tmp_path):
    path = noise_protocol(tmp_path, timeout=12, window=30)
    out = run_lhlab("validate", path, check_rc=2)
    assert f"{path}:{line_of(path, 'timeout: 12')}: phases.escape.timeout: a 12 s noise burst exceeds the lab " \
           "maximum of 10 s" in out.stderr
    assert "phases.shuttle.noise_window: a 30 s noise burst exceeds" in out.stderr


def test_the_110_db_30_s_variant_cannot_be_configured(tmp_path):
    out = run_lhlab("validate", noise_protocol(tmp_path, level=110, timeout=30), check_rc=2)
    assert "noise_level: 110 dB(A) exceeds" in out.stderr and "timeout: a 30 s noise burst exceeds" in out.stderr


def test_a_lab_may_lower_the_limits_but_never_raise_them(tmp_path):
    lab = tmp_path / "lab.json"
    lab.write_text(json.dumps({"limits": {"max_level_dba": 85}}))
    env = {**__import__("os").environ, "LHLAB_LAB_CONFIG": str(lab)}
    out = run_lhlab("validate", noise_protocol(tmp_path), check_rc=2, env=env)
    assert "90 dB(A) exceeds the lab maximum of 85 dB(A)" in out.stderr and str(lab) in out.stderr
    lab.write_text(json.dumps({"limits": {"max_level_dba": 100}}))
    out = run_lhlab("validate", noise_protocol(tmp_path), check_rc=2, env=env)
    assert "100 is above the built-in ceiling 90; a lab may lower the limits, never raise them" in out.stderr


def test_worst_case_session_dose_over_the_limit_is_refused(tmp_path):
    # 400 bursts of 10 s at 90 dB(A) = 4000 s; allowed 9071 s -> 44 % of a daily dose > 25 %
    path = noise_protocol(tmp_path, timeout=10, n_trials=400)
    out = run_lhlab("validate", path, check_rc=2)
    assert "conditions.escapable.phases: worst-case noise dose" in out.stderr and "exceeds the lab limit of 25%" in out.stderr


def test_yoked_phase_must_match_its_partner(tmp_path):
    path = noise_protocol(tmp_path)
    text = path.read_text().replace("  yoked:\n    task: noise_escape\n    mode: inescapable\n    n_trials: 4",
                                    "  yoked:\n    task: noise_escape\n    mode: inescapable\n    n_trials: 5")
    path.write_text(text)
    out = run_lhlab("validate", path, check_rc=2)
    assert "phases.yoked.n_trials: must equal the replayed phase 'escape' (4 trials) (got 5)" in out.stderr


def test_escape_keys_may_not_use_the_withdraw_key(tmp_path):
    path = noise_protocol(tmp_path)
    path.write_text(path.read_text().replace("    iti_mean: 2\n\n  yoked:", "    iti_mean: 2\n    escape_keys: space f12\n\n  yoked:", 1))
    out = run_lhlab("validate", path, check_rc=2)
    assert "phases.escape.escape_keys: key 'f12' is reserved for withdraw/abort" in out.stderr


# -- calibration ---------------------------------------------------------------------------------------

def test_noise_session_without_calibration_is_refused_before_anything_is_written(tmp_path):
    data = tmp_path / "data"
    env = {**__import__("os").environ, "LHLAB_CALIBRATIONS": str(tmp_path / "none.json"), "PULSE_SERVER": "unix:/nonexistent"}
    noise_shuttle = lab_copy(NOISE_SHUTTLE, tmp_path / "lab")      # real participants: the consent names the lab
    out = run_lhlab("run", noise_shuttle, "--participant", "p1", "--condition", "escapable", "--data-dir", data,
                    check_rc=2, env=env)
    assert "no calibration for this audio output" in out.stderr and "lhlab calibrate --headphone MODEL" in out.stderr
    assert not data.exists(), "nothing may be written when a session is refused"
    # the control group plays noise in the shuttle test too: refused as well
    out = run_lhlab("run", noise_shuttle, "--participant", "p2", "--condition", "nonoise", "--data-dir", data,
                    check_rc=2, env=env)
    assert "no calibration for this audio output" in out.stderr
    assert not data.exists()


def test_calibration_checks(tmp_path):
    from experiment import calibration
    from experiment.errors import BadInput
    from experiment.noise import LabLimits
    store = tmp_path / "cal.json"
    device = {"device": "default", "pulse_sink": "sinkA", "output_volume": "50/50%"}
    with pytest.raises(BadInput, match="no calibration"):
        calibration.current(device, LabLimits(), path=store)
    rec = calibration.add(calibration.new_record(device, "HD280", 84.5), store)
    assert calibration.current(device, LabLimits(), [90], path=store)["id"] == rec["id"]
    # another sink (other headphones plugged in) has no calibration
    with pytest.raises(BadInput, match="no calibration"):
        calibration.current({**device, "pulse_sink": "sinkB"}, LabLimits(), path=store)
    with pytest.raises(BadInput, match="output volume changed since calibration"):
        calibration.current({**device, "output_volume": "70/70%"}, LabLimits(), path=store)
    # too quiet at this volume: 90 dB(A) would need -20 + (90 - 70) = 0 dBFS
    calibration.add(calibration.new_record(device, "HD280", 70.0), store)
    with pytest.raises(BadInput, match="above the -12 dBFS headroom"):
        calibration.current(device, LabLimits(), [90], path=store)
    old = calibration.new_record(device, "HD280", 84.5)
    old["date"] = (datetime.now(timezone.utc) - timedelta(days=40)).isoformat(timespec="seconds")
    calibration.add(old, store)
    with pytest.raises(BadInput, match="40 days old"):
        calibration.current(device, LabLimits(), path=store)


# -- dose ------------------------------------------------------------------------------------------------

def test_niosh_dose_matches_the_hand_calculation():
    from experiment.noise import allowed_seconds, dose
    # NIOSH REL: T(L) = 8 h / 2^((L - 85) / 3).  T(90) = 28800 / 2^(5/3) = 28800 / 3.1748 = 9071.4 s
    assert allowed_seconds(85) == 28800
    assert allowed_seconds(88) == pytest.approx(14400)
    assert allowed_seconds(90) == pytest.approx(9071.43, abs=0.01)
    assert allowed_seconds(100) == pytest.approx(900)          # 15 min
    # Hiroto & Seligman: 45 x 5 s at 90 dB(A) = 225 s -> 225 / 9071.4 = 2.48 % of a daily dose
    assert dose([(90, 225)]) == pytest.approx(0.024803, abs=1e-6)
    # 110 dB(A) for 30 s: T(110) = 28800 / 2^(25/3) = 28800 / 322.5 = 89.3 s -> 30 / 89.3 = 33.6 % in one burst
    assert dose([(110, 30)]) == pytest.approx(0.3360, abs=1e-4)


def test_session_dose_in_the_record_matches_a_hand_calculation(tmp_path):
    from audiotools import run_session
    rec, study = run_session(NOISE_SHUTTLE, tmp_path, "e1", "escapable", seed=5)
    rows = []
    for ph in ("noiseescapable", "shuttle"):
        with open(study / f"sub-e1/ses-1/beh/sub-e1_ses-1_task-{ph}_beh.tsv", newline="") as f:
            rows += list(csv.DictReader(f, delimiter="\t"))
    seconds = sum(float(r["noise_duration"]) for r in rows)
    # every burst at 90 dB(A): dose = seconds / 9071.43 s
    hand = 100 * seconds / 9071.43
    assert rec["noise_dose"]["dose_percent"] == pytest.approx(hand, rel=1e-4)
    assert rec["noise_dose"]["total_seconds"] == pytest.approx(seconds, abs=1e-3)
    assert float(rows[-1]["dose_percent"]) == pytest.approx(hand, rel=1e-3)
    assert rec["calibration"]["simulated"] is True and rec["safety_limits"]["max_level_dba"] == 90


# -- yoking -----------------------------------------------------------------------------------------------

def test_yoked_durations_and_intervals_equal_the_partner_trial_for_trial(tmp_path):
    from audiotools import read_rows, run_session
    run_session(NOISE_SHUTTLE, tmp_path, "e1", "escapable", seed=11)
    rec, study = run_session(NOISE_SHUTTLE, tmp_path, "y1", "inescapable", seed=12, yoked_to="e1")
    partner = read_rows(study, "e1", "noiseescapable")
    yoked = read_rows(study, "y1", "noiseyoked")
    assert len(partner) == len(yoked) == 45
    assert {r["outcome"] for r in partner} == {"escaped", "timeout"}    # the partner's durations vary
    for p, y in zip(partner, yoked):
        assert float(y["noise_duration"]) == pytest.approx(float(p["noise_duration"]), abs=1e-6)
        assert float(y["iti"]) == float(p["iti"])
        assert y["outcome"] == "yoked" and y["yoked_to"] == "e1" and y["escape_latency"] == "n/a"
    assert rec["yoke"]["phases"]["noiseyoked"]["partner_total_noise_s"] == pytest.approx(
        sum(float(p["noise_duration"]) for p in partner), abs=1e-5)
    assert rec["yoked_to"] == "e1"


def test_yoked_run_refuses_a_missing_or_incomplete_partner(tmp_path):
    from audiotools import run_session
    data = tmp_path / "d"
    out = run_lhlab("run", NOISE_SHUTTLE, "--participant", "y1", "--condition", "inescapable", "--data-dir", data,
                    "--simulate", "default", check_rc=2)
    assert "pass --yoked-to LABEL" in out.stderr
    out = run_lhlab("run", NOISE_SHUTTLE, "--participant", "y1", "--condition", "inescapable", "--data-dir", data,
                    "--simulate", "default", "--yoked-to", "nobody", check_rc=2)
    assert "sub-nobody has no session" in out.stderr
    # a partner who withdrew during training
    run_session(NOISE_SHUTTLE, data, "w1", "escapable", seed=3, profile="default,withdraw_rate=1")
    out = run_lhlab("run", NOISE_SHUTTLE, "--participant", "y1", "--condition", "inescapable", "--data-dir", data,
                    "--simulate", "default", "--yoked-to", "w1", check_rc=2)
    assert "no complete 'noiseescapable' training to replay" in out.stderr and "interrupted" in out.stderr
    # a partner from the control group
    run_session(NOISE_SHUTTLE, data, "c1", "nonoise", seed=3)
    out = run_lhlab("run", NOISE_SHUTTLE, "--participant", "y1", "--condition", "inescapable", "--data-dir", data,
                    "--simulate", "default", "--yoked-to", "c1", check_rc=2)
    assert "was condition 'nonoise', not 'escapable'" in out.stderr
    assert not (data / "hiroto-seligman-noise-shuttle" / "sub-y1").exists()


# -- pieces ------------------------------------------------------------------------------------------------

def test_intervals_have_the_protocols_range_and_mean():
    from experiment.noise import intervals
    for seed in range(20):
        xs = intervals(45, 10, 25, 14, random.Random(seed))
        assert min(xs) >= 10 and max(xs) <= 25
        assert sum(xs) / len(xs) == pytest.approx(14, abs=0.001)
        assert len(set(xs)) > 30
    assert intervals(45, 10, 25, 14, random.Random(1)) == intervals(45, 10, 25, 14, random.Random(1))


def test_escape_response_one_key_n_presses_or_a_sequence():
    from experiment.tasks.noise_common import ResponseMatcher
    from experiment.devices import KeyPress

    def feed(m, keys):
        return [m.feed(KeyPress(k, 0)) for k in keys]
    assert feed(ResponseMatcher(["space"]), ["a", "space"]) == [False, True]
    assert feed(ResponseMatcher(["space"], 3), ["space", "x", "space", "space"]) == [False, False, False, True]
    seq = ResponseMatcher(["left", "right", "left"])
    assert feed(seq, ["left", "left", "right", "up", "left"]) == [False, False, False, False, True]
    assert feed(seq, ["right", "left", "right", "right", "left", "right", "left"])[-1] is True


def test_white_noise_is_seeded_at_the_requested_level():
    import numpy as np
    from experiment.noise import rms_dbfs, white_noise
    a, b = white_noise(1.0, 48000, -14.5, seed=7), white_noise(1.0, 48000, -14.5, seed=7)
    assert a.shape == (48000, 2) and np.array_equal(a, b) and np.array_equal(a[:, 0], a[:, 1])
    assert rms_dbfs(a[1000:-1000, 0]) == pytest.approx(-14.5, abs=0.1)
    assert not np.array_equal(a, white_noise(1.0, 48000, -14.5, seed=8))


def test_withdrawing_during_noise_stops_it_and_still_debriefs(tmp_path):
    from audiotools import run_session
    rec, study = run_session(NOISE_SHUTTLE, tmp_path, "w1", "escapable", seed=3, profile="default,withdraw_rate=1")
    assert rec["status"] == "withdrawn" and rec["debriefing_shown"]
    # the one burst that was playing stopped at the withdraw key (0.2-2 s after its onset)
    assert rec["noise_dose"]["bursts"] == 1 and 0.2 <= rec["noise_dose"]["total_seconds"] <= 2.0
