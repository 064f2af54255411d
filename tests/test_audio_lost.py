"""The sound server disappears during a noise session (issue 14): the session ends `crashed`
with reason "audio device lost", the trials finished before it are on disk. (Before this check
the session went on in silence and ended `complete`.)"""

from __future__ import annotations

import json
import time

import pytest

from audiotools import PulseNullSink
from conftest import run_lhlab
from live import LiveSession
from test_audio_noise import READING, escape_protocol, rows_of

pytestmark = [pytest.mark.audio, pytest.mark.window]


def test_a_server_that_disappears_mid_session_crashes_it_with_audio_device_lost(x_display, tmp_path,
                                                                                 monkeypatch):
    server = PulseNullSink()            # a private server: the shared one stays up for the other tests
    try:
        monkeypatch.setenv("PULSE_SERVER", server.server)
        monkeypatch.setenv("LHLAB_CALIBRATIONS", str(tmp_path / "calibrations.json"))
        run_lhlab("calibrate", "--reading", READING, "--headphone", "HD280", "--seconds", 0.5, check_rc=0)
        s = LiveSession(escape_protocol(tmp_path), "--participant", "g1", "--condition", "escapable",
                        "--data-dir", tmp_path, "--seed", 4, "--windowed", "--simulate", "default", "--mode", "visual")
        try:
            s.wait_for("trial_start", phase="escape", trial=2, timeout=60)
            time.sleep(0.3)
            server.stop()                   # the sound server goes away with noise on
            rc = s.finish(timeout=60)
        finally:
            s.kill()
    finally:
        server.stop()
    study = tmp_path / "audiotest"
    record = json.loads((study / "sub-g1/ses-1/sub-g1_ses-1_session.json").read_text())
    assert rc == 1 and record["status"] == "crashed", record["exit"]
    assert "audio device lost" in record["exit"]["reason"]
    rows = rows_of(study, "g1", "escape")
    assert 1 <= len(rows) < 3 and record["phases"][0]["trials"] == len(rows)   # finished trials kept, no more
