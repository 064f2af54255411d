"""The 1975 aversive tone (issue 10): Hiroto & Seligman played a 90-dB tone, so a noise phase can
play `sound: tone` at `tone_hz`; a tone is calibrated on its own (its level at the ear depends on
the frequency), a protocol plays one sound, and the shipped Hiroto & Seligman protocols use it.
The last test plays it for real into the PulseAudio null sink and checks frequency and level."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from conftest import REPO, run_lhlab
from experiment import calibration
from experiment.errors import BadInput, ProtocolError
from experiment.noise import LabLimits, rms_dbfs, sound_name, tone
from experiment.protocol import load_protocol

PROTOCOL = """\
schema_version: 1
study: {id: tonetest, title: "Tone", block_size: 1}
phases:
  escape:
    task: noise_escape
    mode: escapable
    n_trials: 2
    noise_level: 80
    timeout: 1.0
    iti_min: 0.8
    iti_max: 1.2
    iti_mean: 1.0
    light_duration: 0.3
    sound: tone
    tone_hz: 1000
  check:
    task: rating
    questions: [{id: control, text: "Control?", low: 1, high: 10}]
conditions:
  only: {kind: controllable, phases: [escape, check]}
debriefing: {pages: "Thank you."}
"""


def test_a_tone_has_its_frequency_and_rms_level():
    x = tone(1.0, 48000, -20.0, 1000.0, channels=2, ramp_s=0.01)
    assert x.shape == (48000, 2) and rms_dbfs(x[4800:-4800, 0]) == pytest.approx(-20.0, abs=0.01)
    spectrum = np.abs(np.fft.rfft(x[:, 0]))
    assert np.argmax(spectrum) * 48000 / len(x) == pytest.approx(1000.0, abs=1.0)
    assert sound_name("tone", 1000.0) == "tone 1000 Hz" and sound_name("noise", 1000.0) == "noise"


def test_shipped_hiroto_seligman_protocols_play_the_tone():
    for name in ("noise-anagrams", "noise-shuttle", "problems-shuttle"):
        proto = load_protocol(REPO / "protocols" / f"hiroto-seligman-{name}.yaml")
        assert proto.noise_sound() == "tone 1000 Hz", name
    assert load_protocol(REPO / "protocols" / "hiroto-seligman-problems-anagrams.yaml").noise_sound() is None


def test_one_sound_per_protocol(tmp_path):
    text = PROTOCOL.replace("  check:", "  more:\n    task: shuttle\n    n_trials: 2\n    noise_level: 80\n"
                                       "    criterion_run: 0\n  check:")
    path = tmp_path / "mixed.yaml"
    path.write_text(text.replace("phases: [escape, check]", "phases: [escape, check, more]"))
    with pytest.raises(ProtocolError, match="play different sounds"):
        load_protocol(path)


def test_a_tone_needs_a_tone_calibration(tmp_path):
    store = tmp_path / "cal.json"
    device = {"device": "default", "pulse_sink": "sinkA", "output_volume": "50/50%"}
    calibration.add(calibration.new_record(device, "HD280", 84.5), store)               # noise only
    with pytest.raises(BadInput, match=r"of the tone 1000 Hz.*--sound tone --tone-hz 1000"):
        calibration.current(device, LabLimits(), [90], path=store, sound="tone 1000 Hz")
    rec = calibration.add(calibration.new_record(device, "HD280", 83.0, sound="tone 1000 Hz"), store)
    assert calibration.current(device, LabLimits(), [90], path=store, sound="tone 1000 Hz")["id"] == rec["id"]
    assert calibration.current(device, LabLimits(), [90], path=store)["reading_dba"] == 84.5   # noise's own


@pytest.mark.audio
@pytest.mark.window
def test_the_tone_plays_at_its_frequency_and_calibrated_level(pulse, x_display, tmp_path):  # noqa: F811
    from audiotools import Recorder
    out = run_lhlab("calibrate", "--reading", 84.5, "--headphone", "HD280", "--seconds", 0.5, "--sound", "tone",
                    "--tone-hz", 1000, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    path = tmp_path / "tone.yaml"
    path.write_text(textwrap.dedent(PROTOCOL))
    rec = Recorder()
    out = run_lhlab("run", path, "--participant", "t1", "--condition", "only", "--data-dir", tmp_path, "--seed", 2,
                    "--windowed", "--simulate", "default,escape_prob=0", "--mode", "visual", timeout=120)
    recording = rec.stop()
    assert out.returncode == 0, out.stderr[-2000:]
    spans = recording.sound_spans()
    assert len(spans) >= 2, spans
    on, off = spans[0]
    i, j = recording.index(on + 0.1), recording.index(off - 0.1)
    chunk = recording.x[i:j, 0].astype(float)
    from audiotools import RATE
    peak_hz = np.argmax(np.abs(np.fft.rfft(chunk))) * RATE / len(chunk)
    assert peak_hz == pytest.approx(1000.0, abs=5.0)
    assert recording.rms_dbfs(on + 0.1, off - 0.1) == pytest.approx(-20.0 + 80 - 84.5, abs=1.0)


from audiotools import pulse  # noqa: E402,F401 - fixture
