"""Real audio on PipeWire (issue 14): a private PipeWire null sink at 48 kHz (tests/pipewiretools.py).
lhlab's default route there is psychtoolbox's PortAudio as a JACK client inside the PipeWire graph
(PipeWire's libjack, package pipewire-jack); lab.json audio_route "pulse" keeps the older route through
pipewire-pulse. The session runs with a 256-frame quantum so that other jobs loading this 2-core
machine cannot make the heard-duration checks flaky; the 64-frame figures come from the benchmark
(its own PipeWire). The same noise session as the PulseAudio test plays and is silenced, its timing
audit names the server, the route and every burst; the escape benchmark runs on it end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from audiotools import Recorder
from conftest import REPO, run_lhlab
from live import LiveSession
from test_audio_noise import READING, REFERENCE, check_trials, escape_protocol, rows_of

pytestmark = [pytest.mark.audio, pytest.mark.window]


@pytest.fixture(scope="module")
def pipewire(tmp_path_factory):
    from pipewiretools import PipeWireNullSink
    sink = PipeWireNullSink(quantum=256)
    saved = {k: os.environ.get(k) for k in ("PULSE_SERVER", "PIPEWIRE_RUNTIME_DIR", "LHLAB_CALIBRATIONS",
                                            "LHLAB_PULSE_LATENCY_MSEC", "LHLAB_AUDIO_ROUTE")}
    os.environ.pop("LHLAB_PULSE_LATENCY_MSEC", None)
    os.environ.pop("LHLAB_AUDIO_ROUTE", None)
    os.environ.update(sink.client_env, LHLAB_CALIBRATIONS=str(tmp_path_factory.mktemp("pwcal") / "calibrations.json"))
    yield sink
    sink.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_noise_plays_and_stops_on_pipewire_and_the_audit_says_so(pipewire, x_display, tmp_path):
    rec = Recorder()
    t_cal = time.time()
    out = run_lhlab("calibrate", "--reading", READING, "--headphone", "HD280", "--seconds", 0.5, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    s = LiveSession(escape_protocol(tmp_path), "--participant", "w1", "--condition", "escapable", "--data-dir",
                    tmp_path, "--seed", 4, "--windowed", "--simulate", "default", "--mode", "visual")
    try:
        assert s.finish(timeout=120) == 0, s.proc.stderr.read()[-2000:]
    finally:
        s.kill()
    recording = rec.stop()
    study = tmp_path / "audiotest"
    record = json.loads((study / "sub-w1/ses-1/sub-w1_ses-1_session.json").read_text())
    rows = rows_of(study, "w1", "escape")
    assert len(rows) == 3 and {r["timing_ok"] for r in rows} <= {"0", "1"}
    # The monitor is recorded at 44.1 kHz from a 48 kHz graph: the resampler's low-pass takes ~1 dB off white
    # noise (pacat at -20 dBFS was heard at -20.9 dBFS from 44.1 kHz, -21.2 from 48 kHz). The calibration's
    # reference noise went the same way, so the bursts are checked against it: the level the calibration set.
    ref_on = recording.first_sound_after(t_cal)
    loss = REFERENCE - recording.rms_dbfs(ref_on + 0.1, ref_on + 0.4)
    assert abs(loss) < 1.6, f"the calibration reference was heard {loss:.1f} dB off its level"
    recording.x *= 10 ** (loss / 20)
    check_trials(recording, rows, record["devices"]["screen"]["t0_unix"])   # heard as long as written, at level
    audio = record["timing"]["audio"]
    assert audio["server"] == "pipewire" and audio["pulse_latency_msec"] is None and audio["bursts_n"] == 3
    # the default on PipeWire: JACK into the graph, whose buffer is the quantum
    assert audio["route"] == "jack" and audio["pipewire_quantum"] == 256 and audio["buffer_size"] == 256
    assert record["devices"]["audio"]["server"] == "pipewire"
    for burst, row in zip(audio["bursts"], rows):
        assert burst["onset_scheduled"] == pytest.approx(float(row["onset"]), abs=1e-5)
        assert burst["onset_reported"] is not None and abs(burst["onset_error_ms"]) < 20
        assert burst["xruns"] == int(row["audio_xruns"])
    assert record["timing"]["screen"]["stimulus_windows"]["noise"]["windows"] == 3


def test_the_escape_benchmark_runs_on_pipewire(pipewire):
    out = subprocess.run([sys.executable, "benchmarks/bench_escape_latency.py", "--trials", "3", "--backend",
                          "pipewire", "--soak", "0", "--control", "0", "--json"], cwd=REPO, capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])["pipewire"]
    assert res["audio"]["server"] == "pipewire" and res["audio"]["route"] == "jack"
    assert res["audio"]["pipewire_quantum"] == 64         # the benchmark's own PipeWire
    assert res["poll"]["escaped"] == 3 and res["frame"]["escaped"] == 3
    assert res["poll"]["key_stop_ms"][1] < 5                 # the stop command within ms of the key
    assert isinstance(res["sink_gaps"], int) and isinstance(res["xruns"], int)   # both reported, never hidden


def test_calibrate_latency_measures_stop_to_silence_at_the_sink(pipewire):
    out = run_lhlab("calibrate", "--latency", "--probes", 5, timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith("stop command -> silence at the sink: median ") and "(5 bursts)" in line
    median = float(line.split("median ")[1].split(" ms")[0])
    assert 0 <= median < 60 and "pipewire" in out.stderr and "route jack" in out.stderr


def test_lab_json_audio_route_pulse_keeps_the_pipewire_pulse_route(pipewire, tmp_path):
    lab = tmp_path / "lab.json"
    lab.write_text(json.dumps({"audio_route": "pulse"}))
    out = run_lhlab("calibrate", "--latency", "--probes", 3, timeout=90, env={**os.environ, "LHLAB_LAB_CONFIG": str(lab)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "route pulse" in out.stderr and "(3 bursts)" in out.stdout
    lab.write_text(json.dumps({"audio_route": "alsa-direct"}))
    out = run_lhlab("calibrate", "--latency", "--probes", 3, timeout=90, env={**os.environ, "LHLAB_LAB_CONFIG": str(lab)})
    assert out.returncode != 0 and "audio_route must be one of auto, jack, pulse" in out.stderr
