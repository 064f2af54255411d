"""One source of every refusal: `lhlab run`, `lhlab run --check` and the launcher's preflight
give the same verdict in the same words, noise calibration included, and checking writes nothing."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from experiment import calibration, datafile
from experiment.cli import main
from experiment.devices.output import configured_device, output_identity
from conftest import lab_copy
from gui import commands, preflight

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "protocols" / "demo.yaml"
NOISE = REPO / "protocols" / "hiroto-seligman-noise-shuttle.yaml"
SCREEN_OK = {"screens": 1, "screen": 0, "env": {"DISPLAY": "remote:0"}}


@pytest.fixture(autouse=True)
def no_calibration(tmp_path, monkeypatch):
    monkeypatch.setenv("LHLAB_CALIBRATIONS", str(tmp_path / "calibrations.json"))


def write_session(study: Path, label: str, n: int, **record) -> None:
    path = datafile.session_json_path(study, label, n)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"participant": label, "session": n, **record}))


def calibrate(days_old: float = 0.0) -> None:
    from experiment.protocol import load_protocol
    rec = calibration.new_record(output_identity(configured_device()), "HD280", 84.0,
                                 sound=load_protocol(NOISE).noise_sound())      # the tone of Hiroto & Seligman
    rec["date"] = (datetime.now(timezone.utc) - timedelta(days=days_old)).isoformat(timespec="seconds")
    calibration.add(rec)


def bad_protocol(tmp: Path) -> Path:
    path = tmp / "bad.yaml"
    path.write_text(DEMO.read_text().replace("n_trials: 5", "n_trials: -1")
                    .replace("../stimuli", str(REPO / "stimuli")))
    return path


def mktree(tmp: Path, label: str, status: str, condition: str = "solvable", **extra) -> None:
    write_session(tmp / "data" / "demo", label, 1, status=status, condition=condition, **extra)


# (case id, set-up(tmp) -> None, protocol(tmp), participant, condition, extra run args, check name, words)
REFUSALS = [
    ("invalid protocol", None, bad_protocol, "P001", "solvable", [], "protocol", "phases.test.n_trials"),
    ("label with a space", None, lambda t: DEMO, "P 1", "solvable", [], "request", "letters and digits"),
    ("label with a newline", None, lambda t: DEMO, "P1\n", "solvable", [], "request", "letters and digits"),
    ("unknown condition", None, lambda t: DEMO, "P001", "solvabel", [], "request", "did you mean 'solvable'"),
    ("speed without simulation", None, lambda t: DEMO, "P001", "solvable", ["--speed", "5"], "request",
     "--speed only applies"),
    ("data folder is a file", lambda t: (t / "data").write_text("x"), lambda t: DEMO, "P001", "solvable", [],
     "data folder", "is not a folder"),
    ("completed before", lambda t: mktree(t, "P001", "complete"), lambda t: DEMO, "P001", "solvable", [],
     "participant", "already has a complete session (ses-1)"),
    ("withdrew before", lambda t: mktree(t, "P001", "withdrawn"), lambda t: DEMO, "P001", "solvable", [],
     "participant", "already has a withdrawn session"),
    ("still running", lambda t: mktree(t, "P001", "running", process=datafile.process_identity()),
     lambda t: DEMO, "P001", "solvable", [], "participant", f"still running (pid {os.getpid()})"),
    ("other condition before", lambda t: mktree(t, "P001", "aborted"), lambda t: DEMO, "P001", "unsolvable", [],
     "participant", "was run in condition 'solvable'"),
    ("yoked without partner", lambda t: calibrate(), lambda t: lab_copy(NOISE, t), "P002", "inescapable", [],
     "yoke", "pass --yoked-to LABEL"),
    ("noise without calibration", None, lambda t: lab_copy(NOISE, t), "P001", "escapable", [],
     "audio calibration", "no calibration for this audio output"),
    ("calibration too old", lambda t: calibrate(days_old=400), lambda t: lab_copy(NOISE, t), "P001", "escapable",
     [], "audio calibration", "days old"),
    ("consent without the lab's contact", lambda t: calibrate(), lambda t: NOISE, "P001", "escapable", [],
     "consent text", "phases.consent: the consent text still says [E-MAIL ADDRESS], [LAB NAME], "
     "[RESPONSIBLE RESEARCHER]: write your lab's contact"),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[c[0] for c in REFUSALS])
def test_run_check_and_launcher_refuse_alike(case, tmp_path, capsys):
    _, setup, protocol, label, condition, extra, name, words = case
    if setup is not None:
        setup(tmp_path)
    proto = protocol(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    argv = ["run", str(proto), "--participant", label, "--condition", condition,
            "--data-dir", str(tmp_path / "data"), *extra]

    assert main(argv + ["--check"]) == 2
    checked = capsys.readouterr().out
    assert main(argv) == 2
    refused = capsys.readouterr().err.strip()

    speed = dict(zip(extra[::2], extra[1::2])).get("--speed")
    pf = preflight.preflight(proto, tmp_path / "data", label, condition, **SCREEN_OK)
    if speed:       # the launcher never asks for --speed without a pilot; the session check is shared anyway
        from experiment.preflight import SessionRequest
        from experiment.preflight import preflight as session_preflight
        from experiment.protocol import load_protocol
        pf = session_preflight(SessionRequest(load_protocol(proto), label, condition, tmp_path / "data",
                                              speed=float(speed)))
    first = pf.problems[0]
    assert first.name == name and words in first.message
    # the same verdict, in the same words, everywhere
    assert f"NO  {first.name}: {first.message}" in checked
    assert [c for c in checked.splitlines() if c.startswith("NO ")] == \
        [f"NO  {c.name}: {c.message.splitlines()[0]}" for c in pf.problems if c.name != "display"]
    if name == "protocol":
        assert refused.splitlines()[0] == first.message.splitlines()[0]
    else:
        assert refused == f"lhlab run: {first.message}"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before     # nothing written


def test_a_session_that_can_start_passes_everywhere(tmp_path, capsys):
    calibrate()
    noise = lab_copy(NOISE, tmp_path / "lab")
    argv = ["run", str(noise), "--participant", "P001", "--condition", "escapable",
            "--data-dir", str(tmp_path / "data"), "--check"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "OK  audio calibration: calibration cal-001" in out and "first session (ses-1)" in out
    pf = preflight.preflight(noise, tmp_path / "data", "P001", "escapable", **SCREEN_OK)
    assert pf.ok and pf.session == 1 and [c.name for c in pf.checks] == \
        ["protocol", "request", "display", "data folder", "participant", "audio calibration"]
    assert not (tmp_path / "data").exists()
    # a demo without noise needs no calibration
    assert main(["run", str(DEMO), "--participant", "P1", "--condition", "solvable", "--data-dir",
                 str(tmp_path / "d"), "--check"]) == 0
    assert "OK  audio calibration: not needed (no noise in this session)" in capsys.readouterr().out


def test_a_pilot_is_checked_before_its_label_exists(tmp_path):
    pf = preflight.preflight(NOISE, tmp_path, None, None, simulate="default", **SCREEN_OK)
    assert not pf.ok and [c.name for c in pf.problems] == ["audio calibration"]
    # the consent placeholders do not stop a pilot, but its checklist says what is left to fill in
    note = [c for c in pf.checks if c.name == "consent text"]
    assert note and note[0].ok and "[LAB NAME]" in note[0].message and "fine for a pilot" in note[0].message
    calibrate()
    assert preflight.preflight(NOISE, tmp_path, None, None, simulate="default", **SCREEN_OK).ok


def test_low_disk_space_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("LHLAB_MIN_FREE_MB", "1e12")
    pf = preflight.preflight(DEMO, tmp_path, "P001", "solvable", **SCREEN_OK)
    assert [c.name for c in pf.problems] == ["data folder"]
    assert "MB free (lhlab needs 1000000000000 MB); free some space" in pf.problems[0].message


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


def test_launcher_child_command_lines():
    argv = commands.run_argv(NOISE, "P002", "inescapable", Path("data"), screen=1, experimenter=" E1 ",
                             yoked_to="P001")
    assert argv[:3] == [sys.executable, "-m", "experiment.cli"]
    assert argv[3:] == ["run", str(NOISE), "--participant", "P002", "--condition", "inescapable", "--data-dir",
                        str(Path("data").resolve()), "--screen", "1", "--experimenter", "E1", "--yoked-to", "P001"]
    pilot = commands.run_argv(DEMO, "P001", "solvable", Path("d"), windowed=True, simulate="default", speed=10)
    assert pilot[-7:] == ["--windowed", "--simulate", "default", "--mode", "visual", "--speed", "10"]
