"""Preflight checks (no Qt, no display): each failure says what is wrong and what to do."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import pytest

from experiment import datafile
from experiment.errors import BadInput
from experiment.protocol import load_protocol
from gui import commands, preflight

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "protocols" / "demo.yaml"
NOISE = REPO / "protocols" / "hiroto-seligman-noise-shuttle.yaml"


def write_session(study: Path, label: str, n: int, **record) -> None:
    path = datafile.session_json_path(study, label, n)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"participant": label, "session": n, **record}))


def test_invalid_protocol_names_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEMO.read_text().replace("n_trials: 5", "n_trials: -1").replace("../stimuli", str(REPO / "stimuli")))
    check, proto = preflight.check_protocol(bad)
    assert not check.ok and proto is None
    assert f"{bad}:" in check.message and "phases.test.n_trials" in check.message and "press F5" in check.message
    result = preflight.preflight(bad, tmp_path, "P001", "solvable", screens=1, env={"DISPLAY": ""})
    assert [c.name for c in result.problems] == ["protocol", "display"]


def test_data_folder_must_be_a_writable_folder_with_room(tmp_path, monkeypatch):
    study = tmp_path / "data" / "demo"
    ok = preflight.check_data_folder(tmp_path / "data", study)
    assert ok.ok and "GB free" in ok.message and not (tmp_path / "data").exists()   # checking writes nothing
    (tmp_path / "afile").write_text("x")
    check = preflight.check_data_folder(tmp_path / "afile", tmp_path / "afile" / "demo")
    assert not check.ok and "is not a folder" in check.message
    monkeypatch.setenv("LHLAB_MIN_FREE_MB", "1e12")
    check = preflight.check_data_folder(tmp_path, tmp_path / "demo")
    assert not check.ok and "MB free, lhlab needs 1000000000000 MB; free some space" in check.message


def test_display_checks():
    if not sys.platform.startswith("linux"):
        pytest.skip("X11 checks")
    assert "DISPLAY is not set" in preflight.check_display(None, 0, env={}).message
    assert "XWayland" in preflight.check_display(None, 0, env={"WAYLAND_DISPLAY": "wayland-0"}).message
    gone = preflight.check_display(None, 0, env={"DISPLAY": ":987"})
    assert not gone.ok and "X display :987 is not running" in gone.message
    assert preflight.check_display(2, 1, env={"DISPLAY": "remote:0"}).ok
    wrong = preflight.check_display(2, 3, env={"DISPLAY": "remote:0"})
    assert not wrong.ok and "participant screen 3 does not exist (this PC has 2)" in wrong.message


def test_participant_history_on_disk(tmp_path):
    study = tmp_path / "demo"
    check, n = preflight.check_participant(study, "P001", "solvable")
    assert check.ok and n == 1 and "first session" in check.message
    write_session(study, "P001", 1, status="aborted", condition="solvable")
    check, n = preflight.check_participant(study, "P001", "solvable")
    assert check.ok and n == 2 and "ses-1 ended aborted; this will be session 2" in check.message
    check, n = preflight.check_participant(study, "P001", "unsolvable")
    assert not check.ok and "ran condition 'solvable'" in check.message
    write_session(study, "P002", 1, status="running", condition="solvable", process=datafile.process_identity())
    check, _ = preflight.check_participant(study, "P002", "solvable")
    assert not check.ok and f"still running (pid {os.getpid()})" in check.message
    write_session(study, "P003", 1, status="complete", condition="solvable", ended="2026-01-01T10:00")
    check, _ = preflight.check_participant(study, "P003", "solvable")
    assert not check.ok and "P003 already completed session 1" in check.message and "Ctrl+N" in check.message
    write_session(study, "P004", 1, status="withdrawn", condition="solvable")
    assert "withdrew in session 1" in preflight.check_participant(study, "P004", "solvable")[0].message


def test_yoked_participant_needs_a_partner_and_a_runner_that_replays_it():
    proto = load_protocol(NOISE)
    assert preflight.check_yoke(proto, "escapable", None, True) is None
    assert "has no partner" in preflight.check_yoke(proto, "inescapable", None, True).message
    assert "no --yoked-to option" in preflight.check_yoke(proto, "inescapable", "P001", False).message
    assert preflight.check_yoke(proto, "inescapable", "P001", True).ok
    assert commands.run_supports("--yoked-to") and commands.has_subcommand("analyze")
    argv = commands.run_argv(NOISE, "P002", "inescapable", Path("data"), screen=1, experimenter=" E1 ",
                             yoked_to="P001")
    assert argv[:3] == [sys.executable, "-m", "experiment.cli"]
    assert argv[3:] == ["run", str(NOISE), "--participant", "P002", "--condition", "inescapable", "--data-dir",
                        str(Path("data").resolve()), "--screen", "1", "--experimenter", "E1", "--yoked-to", "P001"]
    pilot = commands.run_argv(DEMO, "P001", "solvable", Path("d"), windowed=True, simulate="default", speed=10)
    assert pilot[-7:] == ["--windowed", "--simulate", "default", "--mode", "visual", "--speed", "10"]


def test_audio_calibration_only_for_noise_and_defensively(tmp_path, monkeypatch):
    notes: list[str] = []
    assert preflight.check_audio(load_protocol(DEMO), notes).message == "not needed (no noise phase)"
    noise = load_protocol(NOISE)
    assert preflight.has_noise(noise)

    # the real calibration store: none on this PC -> refused with the command to run
    monkeypatch.setenv("LHLAB_CALIBRATIONS", str(tmp_path / "calibrations.json"))
    check = preflight.check_audio(noise, notes)
    assert not check.ok and "lhlab calibrate --headphone" in check.message
    (tmp_path / "calibrations.json").write_text(json.dumps({"schema": 1, "calibrations": [{"id": "cal-001"}]}))
    check = preflight.check_audio(noise, notes)
    assert check.ok and "cal-001" in check.message and "checks the one for this audio output" in notes[-1]

    # a protocol-level check, when the calibration module offers one
    fake = types.ModuleType("experiment.calibration")

    def check_protocol(protocol):
        raise BadInput("calibration cal-001 is 400 days old; calibrate again")
    fake.check_protocol = check_protocol
    monkeypatch.setitem(sys.modules, "experiment.calibration", fake)
    check = preflight.check_audio(noise, notes)
    assert not check.ok and check.message == "calibration cal-001 is 400 days old; calibrate again"

    # no calibration module at all: not required, and said so
    monkeypatch.setitem(sys.modules, "experiment.calibration", None)
    notes.clear()
    check = preflight.check_audio(noise, notes)
    assert check.ok and "not checked" in check.message and "cannot be imported" in notes[0]
