"""The lab across stations: heartbeats of running sessions (running, lost, finished), planned N
and 'study full', yoking to a partner who ran on another station (through the registry), the
automatic copy to the central folder after each session, and the schema 4 -> 5 migration."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import test_registry
from experiment import datafile
from experiment.errors import BadInput, ProtocolError
from experiment.protocol import load_protocol
from experiment.registry import Registry, schema
from test_noise_safety import noise_protocol
from test_registry_stations import _cli, _downgrade, _in_process, _one_line_exit_2

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """This PC's lab.json names the station; heartbeats every 50 ms."""
    cfg = tmp_path / "lab.json"
    cfg.write_text(json.dumps({"station": "cubicle-3"}), encoding="utf-8")
    monkeypatch.setenv("LHLAB_LAB_CONFIG", str(cfg))
    monkeypatch.setenv("LHLAB_HEARTBEAT_S", "0.05")
    monkeypatch.delenv("LHLAB_CENTRAL", raising=False)
    return cfg


def two_group_protocol(folder: Path, planned: str = "1") -> Path:
    """The yoked test study without its yoked group, blocks of 2, `planned_n: <planned>`."""
    text = test_registry.write_yoked_protocol(folder, block_size=2).read_text()
    text = text.replace("  yoked:\n    kind: helpless\n    yoked_to: escape\n"
                        "    phases: [trainunsolvable, check, test]\n", "")
    text = text.replace("  block_size: 2\n", f"  block_size: 2\n  planned_n: {planned}\n")
    path = folder / "twogroups.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run(capsys, proto: Path, data: Path, label: str, condition: str, *extra) -> object:
    return _in_process(capsys, "run", proto, "--participant", label, "--condition", condition, "--simulate",
                       "default", "--data-dir", data, *extra)


# -- heartbeats ------------------------------------------------------------------------------------
def test_heartbeats_show_a_running_session_then_its_end(backend, lab, tmp_path, capsys, monkeypatch):
    """A data-only `lhlab run`, slowed at the start of its test phase: meanwhile the registry
    shows it running there, on the station named in lab.json; afterwards finished."""
    from experiment import session as session_mod
    proto_path = test_registry.write_yoked_protocol(tmp_path)
    data, seen = tmp_path / "data", []
    real_call = session_mod.Progress.__call__

    def slowed(self, event, **fields):
        real_call(self, event, **fields)
        if event == "phase_start" and self.context.get("phase") == "test":
            time.sleep(0.3)                  # ~6 beats
            with Registry.open(datafile.study_dir(data, "yoketest")) as reg:
                deadline = time.monotonic() + 10
                # wait for a beat written during the pause (a loaded disk can delay the writes)
                while [(s.phase, s.elapsed_s > 0.2) for s in reg.live_sessions()] != [("test", True)] \
                        and time.monotonic() < deadline:
                    time.sleep(0.05)
                seen.append(reg.live_sessions())
    monkeypatch.setattr(session_mod.Progress, "__call__", slowed)
    Registry.open(datafile.study_dir(data, "yoketest"), load_protocol(proto_path)).close()   # the launcher made it
    ran = run(capsys, proto_path, data, "A1", "escape")
    assert ran.returncode == 0 and ran.stderr == "", ran.stderr
    [live] = seen[0]
    assert (live.station, live.label, live.condition, live.session, live.phase, live.state) == \
        ("cubicle-3", "A1", "escape", 1, "test", "running")
    assert 0.2 < live.elapsed_s < 30
    with Registry.open(datafile.study_dir(data, "yoketest")) as reg:
        [end] = reg.live_sessions()
    assert (end.label, end.state, end.status) == ("A1", "finished", "complete")
    assert end.last_beat > live.last_beat


_KILLED = textwrap.dedent("""\
    import sys, time
    from experiment.registry import Registry
    from experiment.registry.live import HeartbeatWriter
    w = HeartbeatWriter(lambda: Registry.open(sys.argv[1]), "B7", 2, "escape", "cubicle-9", interval=0.05)
    w.event({"event": "session_start", "elapsed": 0.0})
    w.event({"event": "trial", "elapsed": 0.5, "phase": "trainsolvable", "trial": 2})
    time.sleep(60)
    """)


def test_a_killed_session_goes_lost_and_a_later_one_replaces_it(backend, lab, tmp_path):
    study = tmp_path / "data" / "yoketest"
    Registry.open(study).close()
    child = subprocess.Popen([sys.executable, "-c", _KILLED, str(study)], cwd=REPO, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 20
        with Registry.open(study) as reg:
            while not reg.live_sessions() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)
            [alive] = reg.live_sessions(stale_after_s=1.0)
            assert (alive.station, alive.label, alive.session, alive.phase, alive.trial, alive.state) == \
                ("cubicle-9", "B7", 2, "trainsolvable", 2, "running")
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            time.sleep(0.4)
            [lost] = reg.live_sessions(stale_after_s=0.3)
            assert (lost.label, lost.state, lost.status) == ("B7", "lost", "running")
            assert reg.live_sessions()[0].state == "running"        # within the default 15 s it still looks alive
    finally:
        child.kill()
        child.wait(10)
    # the station's next session replaces the lost one in the view
    from experiment.registry.live import HeartbeatWriter
    w = HeartbeatWriter(lambda: Registry.open(study), "B8", 1, "none", "cubicle-9", interval=0.05)
    w.event({"event": "session_start", "elapsed": 0.0})
    assert w.finish("complete") is None
    with Registry.open(study) as reg:
        assert [(s.label, s.state) for s in reg.live_sessions(stale_after_s=0.3)] == [("B8", "finished")]


def test_heartbeats_survive_a_server_restart_with_one_line_each_way(pg_server, pg_url, tmp_path):
    from experiment.registry.live import HeartbeatWriter
    study = tmp_path / "data" / "yoketest"
    Registry.open(study).close()
    said = []
    w = HeartbeatWriter(lambda: Registry.open(study), "C1", 1, "escape", "cubicle-5", interval=0.05, log=said.append)
    w.event({"event": "session_start", "elapsed": 0.0})

    def beats() -> list:
        with Registry.open(study) as reg:
            return reg.live_sessions()
    deadline = time.monotonic() + 10
    while not beats() and time.monotonic() < deadline:
        time.sleep(0.05)
    pg_server.stop()
    try:          # longer than the registry's own 2 s of retrying a lost connection
        w.event({"event": "trial", "elapsed": 3.0, "phase": "trainsolvable", "trial": 4})
        deadline = time.monotonic() + 10
        while not said and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        pg_server.start()
    while [s.trial for s in beats()] != [4] and time.monotonic() < deadline + 20:
        time.sleep(0.05)
    assert w.finish("complete") is not None            # the outage is kept for the session's record
    [end] = beats()
    assert (end.label, end.phase, end.trial, end.state, end.status) == ("C1", "trainsolvable", 4, "finished",
                                                                       "complete")
    assert len(said) == 2 and "no heartbeat to the registry" in said[0] and "resumed" in said[1], said


def test_a_session_never_creates_a_registry(lab, tmp_path, capsys, monkeypatch):
    """One PC without the launcher: `lhlab run` leaves no registry file behind (it would only
    compete with the session's data for the disk)."""
    monkeypatch.setenv("LHLAB_REGISTRY", "sqlite")
    ran = run(capsys, test_registry.write_yoked_protocol(tmp_path), tmp_path / "data", "A1", "escape")
    assert ran.returncode == 0 and ran.stderr == ""
    assert not list((tmp_path / "data").rglob("registry.sqlite*"))


def test_a_registry_that_cannot_be_reached_never_touches_the_session(lab, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LHLAB_REGISTRY", f"postgresql://nobody@/nodb?host={tmp_path}/no-server&port=1")
    share = tmp_path / "share"
    share.mkdir()
    monkeypatch.setenv("LHLAB_CENTRAL", str(share))       # the share is up while the server is down
    proto_path = test_registry.write_yoked_protocol(tmp_path)
    ran = run(capsys, proto_path, tmp_path / "data", "A1", "escape")
    assert ran.returncode == 0, ran.stderr
    lines = ran.stderr.splitlines()
    assert any("no heartbeat to the registry" in ln and "the session goes on" in ln for ln in lines), lines
    assert "Traceback" not in ran.stderr and len(lines) <= 4
    rec = datafile.read_session(datafile.session_json_path(tmp_path / "data" / "yoketest", "A1", 1))
    assert rec["status"] == "complete"
    assert any(w.startswith("registry heartbeats:") for w in rec["warnings"])
    # the session is in the central folder all the same; the registry learns it at the next sync
    from experiment.registry.central import manifest
    assert manifest(share / "yoketest" / "sub-A1" / "ses-1")[0] == \
        manifest(tmp_path / "data" / "yoketest" / "sub-A1" / "ses-1")[0]
    assert any("sub-A1 ses-1 copied to the central folder, but the registry was not told" in ln for ln in lines)
    assert not any("not copied" in ln for ln in lines), lines


# -- planned N and 'study full' ------------------------------------------------------------------------
def test_planned_n_is_validated_in_one_line_each(tmp_path):
    path = two_group_protocol(tmp_path, "{escape: 0, nope: 3}")
    with pytest.raises(ProtocolError) as e:
        load_protocol(path)
    text = "\n".join(e.value.problems)
    assert "study.planned_n.escape: must be a whole number from 1 to 100000 (got 0)" in text
    assert "study.planned_n.nope: is not a condition; use one of: escape, none" in text
    assert load_protocol(two_group_protocol(tmp_path, "{escape: 5}")).planned_n == {"escape": 5}
    assert load_protocol(two_group_protocol(tmp_path, "3")).planned_n == {"escape": 3, "none": 3}


def _as_a_person(study: Path, label: str) -> None:
    """Make a data-only session's record look like a person's (not pilot, not simulated)."""
    path = datafile.session_json_path(study, label, 1)
    rec = json.loads(path.read_text(encoding="utf-8"))
    rec.update(pilot=False, simulated=None)
    datafile.write_json_atomic(path, rec)


def test_a_full_study_refuses_new_participants_unless_overridden(backend, lab, tmp_path, capsys):
    path = two_group_protocol(tmp_path, "1")
    proto, data = load_protocol(path), tmp_path / "data"
    study = datafile.study_dir(data, proto.study_id)
    with Registry.open(study, proto, seed=3) as reg:
        first, second = reg.add_participant(proto), reg.add_participant(proto)     # one block: one of each
        test_registry.run_session(proto, data, first.label, first.condition)
        _as_a_person(study, first.label)
        test_registry.run_session(proto, data, "S1", second.condition)   # simulated: never counts
        reg.sync_sessions()
        assert reg.progress_by_condition() == {first.condition: (1, 1), second.condition: (0, 1)}
        assert not reg.is_full()
        test_registry.run_session(proto, data, second.label, second.condition)
        _as_a_person(study, second.label)
        reg.sync_sessions()
        assert reg.progress_by_condition() == {"escape": (1, 1), "none": (1, 1)} and reg.is_full()
        with pytest.raises(BadInput, match=r"yoketest is full: .*escape 1/1, none 1/1.*--override-full REASON"):
            reg.add_participant(proto)
        extra = reg.add_participant(proto, override_reason="replaces P001 (noise in the corridor)")
    # the command line: the same verdict from --check and run, one line, exit 2, nothing written
    check = _in_process(capsys, "run", path, "--participant", "X9", "--condition", "none", "--data-dir", data,
                        "--check")
    assert check.returncode == 2 and "NO  study: study yoketest is full" in check.stdout
    _one_line_exit_2(run(capsys, path, data, "X9", "none"), "is full", "--override-full REASON")
    assert not (study / "sub-X9").exists()
    ok = run(capsys, path, data, "X9", "none", "--override-full", "pilot of the new room")
    assert ok.returncode == 0, ok.stderr
    with Registry.open(study) as reg:
        log = {a.label: a for a in reg.assignment_log()}
        registered = reg.participant(extra.label)
    assert log[extra.label].override_full == "replaces P001 (noise in the corridor)"
    assert (log["X9"].rule, log["X9"].override_full) == ("command-line", "pilot of the new room")
    assert all(a.override_full is None for a in log.values() if a.label not in (extra.label, "X9"))
    # a participant registered before the study filled up still runs
    assert run(capsys, path, data, registered.label, registered.condition).returncode == 0


# -- yoking across stations ------------------------------------------------------------------------
def test_a_yoked_participant_replays_a_partner_run_on_another_station(pg_url, lab, tmp_path, capsys, monkeypatch):
    """Stations A and B have their own study folders and share the server: B's yoked participant
    replays the noise A's partner heard, read from the registry (checksummed)."""
    path = noise_protocol(tmp_path)
    proto = load_protocol(path)
    a_data, b_data = tmp_path / "A", tmp_path / "B"
    b_study = datafile.study_dir(b_data, proto.study_id)
    with Registry.open(datafile.study_dir(a_data, proto.study_id), proto, seed=5) as reg:
        partner = test_registry.conditions_until(reg, proto, "escapable")[-1]
    # A's partner is in the yoke queue as soon as training is over, while A's test phase still runs
    from experiment import session as session_mod
    real_call, queue_meanwhile = session_mod.Progress.__call__, []

    def slowed(self, event, **fields):
        real_call(self, event, **fields)
        if event == "phase_start" and self.context.get("phase") == "shuttle":
            deadline = time.monotonic() + 10
            with Registry.open(b_study, proto) as reg:
                while not reg.yoke_queue() and time.monotonic() < deadline:
                    time.sleep(0.05)
                queue_meanwhile.append(reg.yoke_queue())
    monkeypatch.setattr(session_mod.Progress, "__call__", slowed)
    assert run(capsys, path, a_data, partner.label, "escapable").returncode == 0
    monkeypatch.setattr(session_mod.Progress, "__call__", real_call)
    assert queue_meanwhile == [[(partner.label, "escapable")]]
    with Registry.open(b_study, proto) as reg:
        yoked = test_registry.conditions_until(reg, proto, "yoked")[-1]
    assert yoked.yoked_to == partner.label
    check = _in_process(capsys, "run", path, "--participant", yoked.label, "--condition", "yoked", "--yoked-to",
                        partner.label, "--simulate", "default", "--data-dir", b_data, "--check")
    assert check.returncode == 0 and "schedule from the registry, run on cubicle-3" in check.stdout, check.stdout
    ran = run(capsys, path, b_data, yoked.label, "yoked", "--yoked-to", partner.label)
    assert ran.returncode == 0, ran.stderr
    assert not (b_study / f"sub-{partner.label}").exists()
    a_rows, _ = datafile.read_trials(next((a_data / proto.study_id).glob("sub-*/ses-1/beh/*task-escape_beh.tsv")))
    b_rows, _ = datafile.read_trials(next(b_study.glob("sub-*/ses-1/beh/*task-yoked_beh.tsv")))
    assert [r["noise_duration"] for r in b_rows] == [r["noise_duration"] for r in a_rows]
    assert [r["iti"] for r in b_rows] == [r["iti"] for r in a_rows]
    rec = datafile.read_session(datafile.session_json_path(b_study, yoked.label, 1))
    assert rec["yoke"]["phases"]["yoked"]["source"] == "registry"
    # a stored schedule that no longer matches its checksum is refused, in one line
    from psycopg import connect
    with connect(pg_url, autocommit=True) as db:
        db.execute(f'SET search_path TO "lhlab/{proto.study_id}"')
        db.execute("UPDATE partner_schedules SET schedule = replace(schedule, '\"iti\":', '\"iti\": ')")
    check = _in_process(capsys, "run", path, "--participant", "Z1", "--condition", "yoked", "--yoked-to",
                        partner.label, "--simulate", "default", "--data-dir", b_data, "--check")
    assert check.returncode == 2 and "fails its checksum" in check.stdout
    # the partner withdraws consent: their stored schedule and heartbeats go with their data
    with Registry.open(b_study) as reg:
        reg.erase(partner.label, "consent withdrawn")
        assert partner.label not in [s.label for s in reg.live_sessions()]
    check = _in_process(capsys, "run", path, "--participant", "Z1", "--condition", "yoked", "--yoked-to",
                        partner.label, "--simulate", "default", "--data-dir", b_data, "--check")
    assert check.returncode == 2 and "no 'escape' training in the registry" in check.stdout, check.stdout


# -- automatic copy to the central folder --------------------------------------------------------------
def test_each_session_is_copied_to_the_central_folder_or_said_not_to_be(lab, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LHLAB_REGISTRY", "sqlite")
    path = test_registry.write_yoked_protocol(tmp_path)
    data, share = tmp_path / "data", tmp_path / "share"
    study = data / "yoketest"
    share.mkdir()
    monkeypatch.setenv("LHLAB_CENTRAL", str(share))
    assert run(capsys, path, data, "A1", "escape").returncode == 0
    from experiment.registry.central import manifest
    copy = share / "yoketest" / "sub-A1" / "ses-1"
    assert manifest(copy)[0] == manifest(study / "sub-A1" / "ses-1")[0]
    with Registry.open(study) as reg:
        assert reg.sessions("A1")[0].central == str(copy)
    # the share is down: the session is complete all the same, one line says it was not copied
    monkeypatch.setenv("LHLAB_CENTRAL", str(tmp_path / "unmounted"))
    ran = run(capsys, path, data, "A2", "none")
    assert ran.returncode == 0
    assert ran.stderr.count("\n") == 1 and "sub-A2 ses-1 not copied to the central folder" in ran.stderr
    assert "not mounted" in ran.stderr
    rec = datafile.read_session(datafile.session_json_path(study, "A2", 1))
    assert rec["status"] == "complete" and any("not copied to the central folder" in w for w in rec["warnings"])
    status = _cli(capsys, "status", study, rc=0).stdout.splitlines()
    assert status[0].endswith("\tsynced")
    assert [ln.split("\t")[-1] for ln in status[1:]] == ["yes", "no"]
    # back up: lhlab sync copies what was left behind
    monkeypatch.setenv("LHLAB_CENTRAL", str(share))
    assert _cli(capsys, "sync", study, rc=0).stdout.startswith("1 sessions copied, 1 already there")
    assert [ln.split("\t")[-1] for ln in _cli(capsys, "status", study, rc=0).stdout.splitlines()[1:]] == \
        ["yes", "yes"]


# -- schema 4 -> 5 ---------------------------------------------------------------------------------------
def test_a_schema_4_study_is_migrated_and_keeps_its_participants(backend, lab, tmp_path, capsys):
    proto = load_protocol(two_group_protocol(tmp_path, "1"))
    study = tmp_path / "data" / proto.study_id
    with Registry.open(study, proto, seed=2) as reg:
        first = reg.add_participant(proto)
    if backend == "sqlite":
        import sqlite3
        db = sqlite3.connect(study / "registry.sqlite", isolation_level=None)
        _downgrade(db.execute, 4)
        db.close()
    else:
        from psycopg import connect
        with connect(backend, autocommit=True) as db:
            db.execute(f'SET search_path TO "lhlab/{proto.study_id}"')
            _downgrade(db.execute, 4)
        with pytest.raises(BadInput, match="has registry schema 4; .* run lhlab registry migrate"):
            Registry.open(study, proto)
        assert f"yoketest: schema 4 -> {schema.SCHEMA_VERSION}" in _cli(capsys, "registry", "migrate", backend, rc=0).stdout
    with Registry.open(study, proto) as reg:               # SQLite: upgraded in place on opening
        assert reg.participant(first.label).condition == first.condition
        assert reg.live_sessions() == [] and reg.progress_by_condition()[first.condition] == (0, 1)
        assert reg.add_participant(proto).label == "P002"
        assert reg.assignment_log()[0].override_full is None


def test_a_bad_station_name_in_lab_json_falls_back_to_the_host_name(lab, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LHLAB_REGISTRY", "sqlite")
    lab.write_text(json.dumps({"station": "room\n2"}), encoding="utf-8")
    path = test_registry.write_yoked_protocol(tmp_path)
    Registry.open(tmp_path / "data" / "yoketest", load_protocol(path)).close()
    ran = run(capsys, path, tmp_path / "data", "A1", "escape")
    assert ran.returncode == 0
    import socket
    assert ran.stderr.count("\n") == 1 and f"the lab monitor shows this station as {socket.gethostname()!r}" \
        in ran.stderr
    assert "station" in ran.stderr and "control characters" in ran.stderr and str(lab) in ran.stderr
    with Registry.open(tmp_path / "data" / "yoketest") as reg:
        assert [(s.station, s.state) for s in reg.live_sessions()] == [(socket.gethostname(), "finished")]
        assert reg.sessions("A1")[0].status == "complete"
