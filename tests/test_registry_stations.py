"""The registry on a real PostgreSQL server the tests start themselves (tests/pgserver.py),
and the same behaviour on SQLite: stations assigning at once, a station killed inside a
transaction, the server restarted mid-study, schema migrations, and bad input on the command
line (one line, exit 2, no traceback, no password)."""

from __future__ import annotations

import inspect
import multiprocessing
import os
import queue
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

import test_registry
from experiment import datafile
from experiment.errors import BadInput
from experiment.protocol import load_protocol
from experiment.registry import Registry, schema
from pgserver import PASSWORD, PASSWORD_ROLE
from test_registry import ANAGRAMS, anagrams, write_yoked_protocol, yoked  # noqa: F401  (fixtures)

FORK = multiprocessing.get_context("fork")


class _Ran:
    def __init__(self, code, out, err):
        self.returncode, self.stdout, self.stderr = code, out, err


def _in_process(capsys, *args) -> _Ran:
    """The real command line in this process (fast); an uncaught exception fails the test."""
    from experiment.cli import main
    capsys.readouterr()
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return _Ran(code, out.out, out.err)


def _cli(capsys, *args, rc: int) -> _Ran:
    ran = _in_process(capsys, *args)
    assert ran.returncode == rc, (ran.returncode, ran.stdout, ran.stderr)
    return ran


# pg_server, pg_database, pg_url and backend are in conftest.py (one server for every test module)


# -- the SQLite tests, unchanged, on PostgreSQL ----------------------------------------------------
PARITY = [
    ("test_sixty_participants_fill_balanced_blocks_reproducibly", {}),
    ("test_seed_is_fixed_at_creation", {}),
    ("test_registry_of_another_study_is_refused", {}),
    ("test_changed_design_is_refused", {}),
    ("test_duplicate_external_id_is_refused", {}),
    ("test_manual_condition_needs_a_reason_and_is_logged", {}),
    ("test_manual_yoked_condition_needs_a_free_partner", {}),
    ("test_yoked_slot_waits_until_a_partner_finished_training", {}),
    ("test_partner_who_crashed_after_training_can_be_used", {}),
    ("test_crashed_session_shows_and_rerun_gets_session_2", {"how": "dead-pid"}),
    ("test_command_line_sessions_join_the_registry", {}),
    ("test_notes_for_participants_and_sessions", {}),
    ("test_four_processes_assign_without_duplicates", {}),
    ("test_concurrent_registration_without_sessions", {}),
]


@pytest.mark.parametrize("name,extra", PARITY, ids=[n for n, _ in PARITY])
def test_same_rules_on_postgresql(name, extra, pg_url, request):
    test = getattr(test_registry, name)
    kwargs = {arg: extra[arg] if arg in extra else request.getfixturevalue(arg)
              for arg in inspect.signature(test).parameters}
    test(**kwargs)
    assert not list(request.getfixturevalue("tmp_path").rglob("registry.sqlite")), "PostgreSQL was not used"


def test_a_station_not_told_about_the_server_refuses(pg_url, tmp_path, anagrams, monkeypatch):
    study = tmp_path / "data" / anagrams.study_id
    with Registry.open(study, anagrams, seed=1) as reg:
        reg.add_participant(anagrams)
    monkeypatch.delenv("LHLAB_REGISTRY")
    with pytest.raises(BadInput, match=r"registry is on the server postgresql://postgres@/lhlab_tests.*--registry") as e:
        Registry.open(study, anagrams)
    assert "\n" not in str(e.value) and not (study / "registry.sqlite").exists()


def test_exists_says_whether_a_study_has_a_registry_without_making_one(backend, tmp_path, anagrams):
    study = tmp_path / "data" / anagrams.study_id
    assert not Registry.exists(study) and not study.exists()
    Registry.open(study, anagrams, seed=1).close()
    assert Registry.exists(study)
    assert Registry.exists(tmp_path / "elsewhere" / anagrams.study_id) == (backend != "sqlite")  # same study, server


def test_never_twice_is_enforced_by_the_schema(backend, tmp_path, anagrams):
    with Registry.open(tmp_path / "data" / anagrams.study_id, anagrams, seed=1) as reg:
        a, b = reg.add_participant(anagrams), reg.add_participant(anagrams)
        cheats = [("UPDATE assignment_log SET block = 0, slot = 0 WHERE label = ?", (b.label,)),
                  ("UPDATE participants SET label = ? WHERE label = ?", (a.label, b.label)),
                  ("UPDATE participants SET yoked_to = ? WHERE label = ?", ("P999", b.label))]
        for sql, params in cheats:
            with pytest.raises(Exception, match="(?i)unique|foreign key|violates"):
                reg._x(sql, params)
        assert [(e.block, e.slot) for e in reg.assignment_log()] == [(0, 0), (0, 1)]


# -- stations at once ----------------------------------------------------------------------------
def _station(protocol_path: str, data_dir: str, n: int, barrier) -> None:
    from experiment import cohort
    proto = load_protocol(protocol_path)
    barrier.wait()
    outcomes = cohort.simulate(proto, Path(data_dir), n, seed=21)
    assert len(outcomes) == n and {o.status for o in outcomes} == {"complete"}


def test_three_stations_assign_and_run_3x40(backend, tmp_path, yoked):
    """Three stations (processes; on PostgreSQL each with its own local data folder, as
    separate PCs would have) register and run 40 participants each at the same time."""
    folders = [tmp_path / f"station{i}" for i in range(3)] if backend != "sqlite" else [tmp_path / "lab"] * 3
    barrier = FORK.Barrier(3)
    procs = [FORK.Process(target=_station, args=(str(yoked.path), str(f), 40, barrier)) for f in folders]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]

    studies = [datafile.study_dir(f, yoked.study_id) for f in dict.fromkeys(folders)]
    with Registry.open(studies[0]) as reg:
        people, log, sessions = reg.participants(), reg.assignment_log(), reg.sessions()
    labels = [p.label for p in people]
    assert len(labels) == 120 and len(set(labels)) == 120
    on_disk = [d.name for s in studies for d in s.glob("sub-*")]
    assert sorted(on_disk) == sorted(f"sub-{label}" for label in labels)       # each label ran once, somewhere
    assert len(sessions) == 120 and {s.status for s in sessions} == {"complete"}
    slots = [(e.block, e.slot) for e in log]
    assert len(set(slots)) == 120 and {e.rule for e in log} == {"block"}
    by_label = {p.label: p for p in people}
    records = {r["participant"]: r for s in studies for r in datafile.all_sessions(s)}
    assigned_at = {e.label: e.time for e in log}
    partners = [p.yoked_to for p in people if p.condition == "yoked"]
    assert len(partners) >= 30 and None not in partners and len(set(partners)) == len(partners)
    for p in people:
        if p.condition == "yoked":
            partner = by_label[p.yoked_to]
            assert partner.condition == "escape" and records[p.label]["yoked_to"] == partner.label
            trained = max(ph["ended"] for ph in records[partner.label]["phases"] if ph["role"] == "training")
            assert trained < assigned_at[p.label], f"{p.label} yoked before {partner.label} finished training"
    blocks: dict[int, list[str]] = {}
    for e in log:
        blocks.setdefault(e.block, []).append(e.condition)
    full = {b: c for b, c in blocks.items() if len(c) == 6}
    assert len(full) >= 17, blocks
    for b, conds in full.items():
        assert Counter(conds) == {"escape": 2, "yoked": 2, "none": 2}, f"block {b}: {conds}"


# -- a station killed inside a transaction ---------------------------------------------------------
def _dies_inside(study: str, protocol_path: str, inside) -> None:
    from experiment.registry import core
    original = core.Registry._x

    def x(self, sql, params=()):
        cur = original(self, sql, params)
        if sql.startswith("INSERT INTO participants"):
            inside.put(os.getpid())         # the participant row is written, its log row not yet
            time.sleep(600)
        return cur
    core.Registry._x = x
    proto = load_protocol(protocol_path)
    with Registry.open(Path(study), proto) as reg:
        reg.add_participant(proto)


def test_station_killed_mid_transaction_leaves_nothing(backend, tmp_path, anagrams):
    study = tmp_path / "data" / anagrams.study_id
    with Registry.open(study, anagrams, seed=7) as reg:
        before = [reg.add_participant(anagrams) for _ in range(2)]
    inside = FORK.Queue()
    proc = FORK.Process(target=_dies_inside, args=(str(study), str(ANAGRAMS), inside))
    proc.start()
    assert inside.get(timeout=30) == proc.pid
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    t0 = time.monotonic()
    with Registry.open(study, anagrams) as reg:
        assert [p.label for p in reg.participants()] == [p.label for p in before]
        assert len(reg.assignment_log()) == 2
        nxt = reg.add_participant(anagrams)            # the lock was freed with the dead connection
        log = reg.assignment_log()
    assert time.monotonic() - t0 < 10
    assert nxt.label == "P003" and (log[-1].label, log[-1].block, log[-1].slot) == ("P003", 0, 2)


# -- the server restarted mid-study -----------------------------------------------------------------
def _steady_station(protocol_path: str, study: str, n: int, barrier, out) -> None:
    from experiment.registry import postgres
    postgres.RETRY_S = 0.5                  # give up quickly so the test sees the message
    proto = load_protocol(protocol_path)
    barrier.wait()
    reg = Registry.open(Path(study), proto)
    got, messages = [], []
    while len(got) < n:
        try:
            got.append(reg.add_participant(proto).label)
            time.sleep(0.01)
        except BadInput as e:
            messages.append(str(e))
            time.sleep(0.2)
    reg.close()
    out.put((got, messages))


def test_server_restart_mid_study_loses_nothing(pg_server, pg_url, tmp_path, anagrams):
    study = tmp_path / "data" / anagrams.study_id
    Registry.open(study, anagrams, seed=3).close()
    barrier, out = FORK.Barrier(3), FORK.Queue()
    procs = [FORK.Process(target=_steady_station, args=(str(ANAGRAMS), str(study), 30, barrier, out))
             for _ in range(3)]
    for p in procs:
        p.start()
    with Registry.open(study) as reg:
        while len(reg.assignment_log()) < 15:
            time.sleep(0.02)
        pg_server.stop("fast")
    try:
        time.sleep(2.0)
    finally:
        pg_server.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    labels = [label for got, _ in results for label in got]
    assert len(labels) == 90 and len(set(labels)) == 90
    for _, messages in results:
        assert messages, "a station never noticed the server was down"
        for m in messages:
            assert "\n" not in m and "registry server" in m and PASSWORD not in m, m
    with Registry.open(study) as reg:
        log = reg.assignment_log()
    assert sorted(e.label for e in log) == sorted(labels)          # nothing lost, nothing twice
    assert sorted((e.block, e.slot) for e in log) == [(b, s) for b in range(15) for s in range(6)]
    for b in range(15):
        assert Counter(e.condition for e in log if e.block == b) == {"solvable": 2, "unsolvable": 2, "notraining": 2}


def test_a_commit_whose_answer_was_lost_is_not_counted_twice(pg_url, tmp_path, anagrams):
    """The connection drops after the server committed but before the station heard so:
    the station retries, finds its own registration by its request token, adds nobody."""
    import psycopg
    study = tmp_path / "data" / anagrams.study_id
    with Registry.open(study, anagrams, seed=3) as reg:
        conn = type(reg._db)
        real_execute = conn.execute
        dropped = []

        def execute(db, sql, *args, **kw):
            cur = real_execute(db, sql, *args, **kw)
            if sql == "COMMIT" and not dropped:
                dropped.append(True)
                db.close()
                raise psycopg.OperationalError("server closed the connection unexpectedly")
            return cur
        conn.execute = execute
        try:
            p = reg.add_participant(anagrams, external_id="SONA-77")
        finally:
            conn.execute = real_execute
        assert dropped and p.label == "P001" and p.external_id == "SONA-77"
        assert [e.label for e in reg.assignment_log()] == ["P001"] and len(reg.participants()) == 1
        assert reg.add_participant(anagrams, external_id="SONA-78").label == "P002"   # a new request: a new person

        # the same, but the server stays away until the station gives up: the experimenter
        # clicks again once it is back, and gets the participant the first click made
        from experiment.registry import RegistryUnavailable, postgres
        real_connect, dropped[:] = postgres._connect, []

        def down(location):
            raise RegistryUnavailable("cannot connect to the registry server: test")
        conn.execute = execute
        try:
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(postgres, "_connect", down)
                mp.setattr(postgres, "RETRY_S", 0.3)
                with pytest.raises(RegistryUnavailable, match="is unreachable"):
                    reg.add_participant(anagrams, external_id="SONA-79")
        finally:
            conn.execute = real_execute
        assert postgres._connect is real_connect
        again = reg.add_participant(anagrams, external_id="SONA-79")
        assert again.label == "P003" and [e.label for e in reg.assignment_log()] == ["P001", "P002", "P003"]


# -- schema versions and migrations ----------------------------------------------------------------
def _downgrade(execute, version: int) -> None:
    """Make a current registry look like one of schema `version` (what an older lhlab wrote)."""
    if version < 6:
        execute("DROP INDEX assignment_one_replacement")
        execute("DROP INDEX assignment_one_slot")
        execute("ALTER TABLE assignment_log DROP COLUMN replaces")
        execute("CREATE UNIQUE INDEX assignment_one_slot ON assignment_log(block, slot) WHERE rule = 'block'")
    if version < 5:
        execute("DROP TABLE heartbeats")
        execute("DROP TABLE partner_schedules")
        execute("ALTER TABLE assignment_log DROP COLUMN override_full")
        execute("ALTER TABLE sessions DROP COLUMN pilot")
    if version < 4:
        for column in ("central", "central_sha256", "synced"):
            execute(f"ALTER TABLE sessions DROP COLUMN {column}")
    if version < 2:
        execute("DROP TABLE audit")
        execute("DROP INDEX assignment_request")
        for column in ("request", "station"):
            execute(f"ALTER TABLE assignment_log DROP COLUMN {column}")
    execute(f"UPDATE meta SET value = '{version}' WHERE key = 'schema'")


def _make_v1_sqlite(study: Path) -> None:
    study.mkdir(parents=True)
    db = sqlite3.connect(study / "registry.sqlite")
    for sql in schema.statements(1, "sqlite"):
        db.execute(sql)
    db.executemany("INSERT INTO meta VALUES (?, ?)", [("schema", "1"), ("next_label", "1")])
    db.commit()
    db.close()


def test_old_sqlite_study_opens_upgraded(tmp_path, anagrams, capsys, monkeypatch):
    monkeypatch.setenv("LHLAB_REGISTRY", "sqlite")
    study = tmp_path / "data" / anagrams.study_id
    _make_v1_sqlite(study)
    out = _cli(capsys, "registry", "check", study, rc=2)
    assert "schema 1, needs lhlab registry migrate" in out.stdout
    with Registry.open(study, anagrams, seed=2) as reg:      # a newer lhlab opens an older study
        p = reg.add_participant(anagrams)
    assert p.label == "P001"
    out = _cli(capsys, "registry", "check", study, rc=0)
    assert f"schema {schema.SCHEMA_VERSION}, ok" in out.stdout


def test_server_migrate_upgrades_every_study(pg_url, tmp_path, anagrams, capsys):
    from psycopg import connect
    with Registry.open(tmp_path / "data" / anagrams.study_id, anagrams, seed=2) as reg:
        reg.add_participant(anagrams)
    with connect(pg_url, autocommit=True) as db:                 # make it look like an older lhlab's study
        db.execute('SET search_path TO "lhlab/unsolvable-anagrams"')
        _downgrade(db.execute, 1)
    with pytest.raises(BadInput, match="run lhlab registry migrate"):
        Registry.open(tmp_path / "data" / anagrams.study_id, anagrams)
    _cli(capsys, "registry", "check", pg_url, rc=2)
    out = _cli(capsys, "registry", "migrate", pg_url, rc=0)
    assert f"unsolvable-anagrams: schema 1 -> {schema.SCHEMA_VERSION}" in out.stdout
    with Registry.open(tmp_path / "data" / anagrams.study_id, anagrams) as reg:
        assert reg.add_participant(anagrams).label == "P002"
    assert "1 participants" not in _cli(capsys, "registry", "check", pg_url, rc=0).stdout


def test_sqlite_study_moves_to_the_server(pg_url, tmp_path, yoked, lhlab, capsys, monkeypatch):
    data = tmp_path / "data"
    study = data / yoked.study_id
    monkeypatch.setenv("LHLAB_REGISTRY", "sqlite")
    with Registry.open(study, yoked, seed=4) as reg:
        people = test_registry.conditions_until(reg, yoked, "escape")
        test_registry.run_session(yoked, data, people[-1].label, "escape")
        reg.sync_sessions()
        before = reg.assignment_log()
    out = lhlab("simulate", yoked.path, "--participants", "1", "--data-dir", data, "--registry", pg_url,
                check_rc=2)
    assert out.stderr.count("\n") == 1 and "lhlab registry migrate" in out.stderr and "Traceback" not in out.stderr
    _cli(capsys, "registry", "migrate", pg_url, "--from", study, rc=0)
    monkeypatch.setenv("LHLAB_REGISTRY", pg_url)
    with Registry.open(study, yoked) as reg:
        assert [(e.label, e.block, e.slot) for e in reg.assignment_log()] == \
            [(e.label, e.block, e.slot) for e in before]
        nxt = test_registry.conditions_until(reg, yoked, "yoked")
    assert nxt[0].label == f"P{len(before) + 1:03d}" and nxt[-1].yoked_to == people[-1].label
    monkeypatch.setenv("LHLAB_REGISTRY", "sqlite")
    with pytest.raises(BadInput, match="moved to the server postgresql://"):
        Registry.open(study, yoked)


# -- bad input on the command line ---------------------------------------------------------------
def _one_line_exit_2(proc, *words):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    for w in words:
        assert w in proc.stderr, proc.stderr
    assert PASSWORD not in proc.stderr + proc.stdout


def test_bad_registry_urls_are_one_line_exit_2(pg_server, tmp_path, lhlab, capsys, monkeypatch):
    monkeypatch.setenv("LHLAB_REGISTRY", "sqlite")
    cases = [("mysql://lab@host/db", ["not a registry URL"]),
             ("postgresql://lab@host:port/db", ["not a valid PostgreSQL URL"]),
             ("postgresql://lab@host", ["names no database"]),
             (pg_server.url("postgres", PASSWORD_ROLE, "wrong-" + PASSWORD), ["refused the password", "~/.pgpass",
                                                                              ":***@"]),
             (pg_server.url("nosuchdb"), ['database "nosuchdb" does not exist', "createdb"]),
             (pg_server.url("postgres").replace(f"port={pg_server.port}", "port=1"), ["no server is listening"]),
             (f"postgresql://{PASSWORD_ROLE}:{PASSWORD}@127.0.0.1:1/lab", ["no server is listening", ":***@"])]
    for url, words in cases:
        _one_line_exit_2(_in_process(capsys, "registry", "check", url), *words)
    # as a station meets them: a real child process, the URL from --registry or the environment
    _one_line_exit_2(lhlab("simulate", ANAGRAMS, "--participants", "1", "--data-dir", tmp_path / "d",
                           "--registry", cases[1][0]), *cases[1][1])
    env = {**os.environ, "LHLAB_REGISTRY": "postgresql://nobody:" + PASSWORD + "@/x?host=/nonexistent"}
    (tmp_path / "d" / "s").mkdir(parents=True)
    (tmp_path / "d" / "s" / "dataset_description.json").write_text("{}", encoding="utf-8")
    _one_line_exit_2(lhlab("export", tmp_path / "d" / "s", tmp_path / "out", env=env),
                     "no server is listening", ":***@")
    _one_line_exit_2(lhlab("simulate", ANAGRAMS, "--participants", "1", "--data-dir", tmp_path / "d",
                           "--registry", cases[3][0]), *cases[3][1])
    assert not list((tmp_path / "d").rglob("sub-*")) and not (tmp_path / "out").exists()


def test_simulate_stays_off_the_lab_server_unless_told(pg_url, tmp_path, lhlab):
    """A station configured for the server (here LHLAB_REGISTRY) simulates into its own SQLite
    registry, so simulated participants never take a real study's slots or partners."""
    lhlab("simulate", ANAGRAMS, "--participants", "2", "--data-dir", tmp_path / "sim", "--seed", "1", check_rc=0)
    assert (tmp_path / "sim" / "unsolvable-anagrams" / "registry.sqlite").is_file()
    assert not Registry.exists(tmp_path / "sim" / "unsolvable-anagrams")       # nothing on the server
    lhlab("simulate", ANAGRAMS, "--participants", "2", "--data-dir", tmp_path / "sim2", "--seed", "1",
          "--registry", pg_url, check_rc=0)
    assert Registry.exists(tmp_path / "sim2" / "unsolvable-anagrams")


def test_right_password_works_and_is_never_printed(pg_server, tmp_path, lhlab, capsys):
    pg_server.psql("postgres", f"CREATE DATABASE pw OWNER {PASSWORD_ROLE}")
    url = pg_server.url("pw", PASSWORD_ROLE, PASSWORD)
    out = _cli(capsys, "registry", "init", url, rc=0)
    out2 = lhlab("simulate", ANAGRAMS, "--participants", "2", "--data-dir", tmp_path / "d", "--seed", "1",
                 "--registry", url, check_rc=0)
    out3 = _cli(capsys, "registry", "check", url, rc=0)
    assert "unsolvable-anagrams\t2 participants" in out3.stdout
    assert all(PASSWORD not in o.stdout + o.stderr for o in (out, out2, out3))


def test_newer_schema_is_refused(backend, tmp_path, anagrams, lhlab, capsys):
    study = tmp_path / "data" / anagrams.study_id
    with Registry.open(study, anagrams, seed=1) as reg:
        reg.add_participant(anagrams)
        reg._x("UPDATE meta SET value = ? WHERE key = 'schema'", (str(schema.SCHEMA_VERSION + 1),))
    with pytest.raises(BadInput, match="newer lhlab"):
        Registry.open(study, anagrams)
    proc = lhlab("simulate", ANAGRAMS, "--participants", "1", "--data-dir", tmp_path / "data",
                 "--registry", backend)
    _one_line_exit_2(proc, "newer lhlab", "update lhlab")
    _one_line_exit_2(_in_process(capsys, "registry", "migrate", backend if backend != "sqlite" else study), "newer")


# -- identities out of the dataset, export, erase --------------------------------------------------
def _files_containing(folder: Path, *secrets: str) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() for s in secrets if s.encode() in p.read_bytes()]


def test_identity_key_lives_outside_the_study_folder(tmp_path, anagrams, monkeypatch):
    monkeypatch.setenv("LHLAB_REGISTRY", "sqlite")
    monkeypatch.setenv("LHLAB_KEYS", str(tmp_path / "private" / "keys"))
    study = tmp_path / "data" / anagrams.study_id
    with Registry.open(study, anagrams, seed=1) as reg:
        p = reg.add_participant(anagrams, external_id="SONA-4711")
        assert reg.participant(p.label).external_id == "SONA-4711"
        with pytest.raises(BadInput, match=f"already registered as {p.label}"):
            reg.add_participant(anagrams, external_id="SONA-4711")
        key = reg.key_path
    assert key.is_file() and not key.is_relative_to(study)
    assert (key.stat().st_mode & 0o777, key.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    assert _files_containing(study, "SONA-4711") == []
    # an older study kept its ids in the registry file: opening it moves them out and wipes them
    old = tmp_path / "old" / anagrams.study_id
    with Registry.open(old, anagrams, seed=1) as reg:
        q = reg.add_participant(anagrams)
        reg._x("UPDATE participants SET external_id = 'SONA-0815' WHERE label = ?", (q.label,))
        _downgrade(reg._db.execute, 2)
    assert _files_containing(old, "SONA-0815")
    with Registry.open(old, anagrams) as reg:
        assert reg.participant(q.label).external_id == "SONA-0815"
    assert _files_containing(old, "SONA-0815") == []


def _study_with_secrets(tmp_path: Path, yoked) -> tuple[Path, list]:
    data = tmp_path / "data"
    with Registry.open(data / yoked.study_id, yoked, seed=5) as reg:
        people = [reg.add_participant(yoked, external_id=f"SONA-{1000 + i}") for i in range(3)]
        for p in people:
            test_registry.run_session(yoked, data, p.label, p.condition)
        reg.set_note(people[0].label, None, "wore hearing aids, told us after the session")
        reg.set_note(people[1].label, 1, "fire alarm at 10:14, continued")
        reg.sync_sessions()
    return data / yoked.study_id, people


def test_export_leaves_identities_notes_and_registry_behind(backend, tmp_path, yoked, capsys, monkeypatch):
    monkeypatch.setenv("LHLAB_KEYS", str(tmp_path / "keys"))
    study, people = _study_with_secrets(tmp_path, yoked)
    out = tmp_path / "share" / "yoketest"
    (tmp_path / "private.txt").write_text("SONA-1000", encoding="utf-8")
    (study / "outside.txt").symlink_to(tmp_path / "private.txt")
    ran = _in_process(capsys, "export", study, out)
    assert ran.returncode == 0, ran.stderr
    names = {p.relative_to(out).as_posix() for p in out.rglob("*")}
    assert {"dataset_description.json", "participants.tsv", f"sub-{people[0].label}"} <= names
    assert not [n for n in names if "registry" in n or n.split("/")[0] == "lhlab"], names
    assert _files_containing(out, "SONA-1000", "SONA-1001", "SONA-1002", "hearing aids", "fire alarm") == []
    assert len(list(out.glob("sub-*/ses-1/beh/*_beh.tsv"))) >= 3
    assert not (out / "outside.txt").exists()
    # an external id typed into a data file is caught, and nothing is exported
    (study / "README").write_text("Pilot notes: SONA-1001 came late\n", encoding="utf-8")
    ran = _in_process(capsys, "export", study, tmp_path / "share2")
    _one_line_exit_2(ran, "README contains the external id of", people[1].label)
    assert not (tmp_path / "share2").exists() and not (tmp_path / "share2.partial").exists()


def test_erase_removes_a_participant_everywhere_but_the_log(backend, tmp_path, yoked, capsys, monkeypatch):
    monkeypatch.setenv("LHLAB_KEYS", str(tmp_path / "keys"))
    study, people = _study_with_secrets(tmp_path, yoked)
    gone = people[0].label
    derived = study / "derivatives" / "lhlab-analysis"
    derived.mkdir(parents=True)
    (derived / "measures.csv").write_text("participant,condition,x\n" + "".join(
        f"{p.label},{p.condition},1\n" for p in people), encoding="utf-8")
    (derived / f"sub-{gone}_plot.svg").write_text("<svg/>", encoding="utf-8")
    _one_line_exit_2(_in_process(capsys, "erase", study, gone, "--reason", "  "), "--reason is required")
    ran = _in_process(capsys, "erase", study, gone, "--reason", "consent withdrawn by e-mail")
    assert ran.returncode == 0, ran.stderr
    assert not (study / f"sub-{gone}").exists() and not (derived / f"sub-{gone}_plot.svg").exists()
    assert gone not in (derived / "measures.csv").read_text() and gone not in (study / "participants.tsv").read_text()
    assert _files_containing(study, "SONA-1000", "hearing aids") == []
    if backend == "sqlite":
        assert _files_containing(tmp_path / "keys", "SONA-1000") == []
    with Registry.open(study, yoked) as reg:
        erased = reg.participant(gone)
        assert (erased.status, erased.external_id, erased.notes) == ("erased", None, "")
        assert [e.label for e in reg.assignment_log()][0] == gone           # the slot stays used, logged
        audit = reg._x("SELECT action, label, detail FROM audit WHERE action = 'erase'").fetchall()
        assert [tuple(a) for a in audit] == [("erase", gone, "consent withdrawn by e-mail")]
        reg.sync_sessions()
        assert reg.participant(gone).status == "erased"
        assert reg.add_participant(yoked).label == f"P{len(people) + 1:03d}"     # a label is never reused
    _one_line_exit_2(_in_process(capsys, "erase", study, "P999", "--reason", "x"), "P999")
    _one_line_exit_2(_in_process(capsys, "erase", study, "../..", "--reason", "x"), "not a participant label")
    # a participant whose session is running now is not erased under its feet
    live = people[1].label
    path = datafile.session_json_path(study, live, 1)
    record = datafile.read_session(path)
    del record["effective_status"]
    record.update(status="running", process=datafile.process_identity())
    datafile.write_json_atomic(path, record)
    _one_line_exit_2(_in_process(capsys, "erase", study, live, "--reason", "x"), "is running now")
    assert (study / f"sub-{live}").is_dir()


def test_registry_is_chosen_by_flag_env_lab_json_then_sqlite(tmp_path, monkeypatch):
    from experiment.registry import location
    monkeypatch.delenv("LHLAB_REGISTRY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert location.resolve().kind == "sqlite"
    lab = tmp_path / "lhlab" / "lab.json"
    lab.parent.mkdir()
    lab.write_text('{"registry": "postgresql://lab:pw1@server/lhlab"}', encoding="utf-8")
    got = location.resolve()
    assert (got.kind, got.shown, got.source) == ("postgresql", "postgresql://lab:***@server/lhlab", str(lab))
    monkeypatch.setenv("LHLAB_REGISTRY", "sqlite")
    assert location.resolve().kind == "sqlite"
    assert location.resolve("postgres://other/db").source == "--registry"
    lab.write_text('{"registry": 5}', encoding="utf-8")
    monkeypatch.delenv("LHLAB_REGISTRY")
    with pytest.raises(BadInput, match="must be a URL string"):
        location.resolve()
    for damaged in ("[" * 100_000 + "]" * 100_000, "[1, 2]", "{not json"):
        lab.write_text(damaged, encoding="utf-8")
        with pytest.raises(BadInput, match="lab.json: (cannot read|must be a JSON object)"):
            location.resolve()
    # LHLAB_LAB_CONFIG names another settings file: the registry reads the same file as the noise limits
    other = tmp_path / "elsewhere.json"
    other.write_text('{"registry": "postgresql://lab@server2/lhlab", "limits": {"max_level_dba": 80}}')
    monkeypatch.setenv("LHLAB_LAB_CONFIG", str(other))
    from experiment.noise import lab_limits
    assert location.resolve().source == str(other) and lab_limits().max_level_dba == 80
    assert location.mask("x postgresql://u:p@h/db?sslmode=require&password=p2 y") == \
        "x postgresql://u:***@h/db?sslmode=require&password=*** y"
    assert location.mask("postgres://u:p@ss:w@rd@h:5/db?host=/tmp") == "postgres://u:***@h:5/db?host=/tmp"


# -- central data folder ----------------------------------------------------------------------------
def test_sync_copies_finished_sessions_checksummed_resumably(backend, tmp_path, yoked, capsys, monkeypatch):
    """Two stations (one on SQLite: two runs into one folder) copy to one central folder."""
    stations = [tmp_path / "s1", tmp_path / "s2"] if backend != "sqlite" else [tmp_path / "s1"]
    central = tmp_path / "central"
    central.mkdir()
    for i, data in enumerate(stations * (2 if backend == "sqlite" else 1)):
        from experiment import cohort
        cohort.simulate(yoked, data, 2, seed=30 + i)
    studies = [s / yoked.study_id for s in stations]
    ran = _cli(capsys, "sync", studies[0], "--to", central, rc=0)
    copied = len(list(studies[0].glob("sub-*/ses-*")))
    assert ran.stdout.startswith(f"{copied} sessions copied, 0 already there")
    if backend != "sqlite":
        _cli(capsys, "sync", studies[1], "--to", central, rc=0)
    target = central / yoked.study_id
    labels = sorted(d.name for s in studies for d in s.glob("sub-*"))
    assert sorted(d.name for d in target.glob("sub-*")) == labels == [f"sub-P{i:03d}" for i in range(1, 5)]
    assert (target / "dataset_description.json").is_file()
    assert all(f"{label}\t" in (target / "participants.tsv").read_text() for label in labels)
    with Registry.open(studies[0]) as reg:
        rows = [s for s in reg.sessions() if s.label in {d.name[4:] for d in studies[0].glob("sub-*")}]
    from experiment.registry import central as central_mod
    for s in rows:
        assert s.central == str(target / f"sub-{s.label}" / f"ses-{s.number}")
        assert s.central_sha256 == central_mod.manifest(Path(s.central))[0]
    # again: nothing to do; a central copy that was changed is reported and left alone
    assert _cli(capsys, "sync", studies[0], "--to", central, rc=0).stdout.startswith(f"0 sessions copied, {copied}")
    mine = sorted(studies[0].glob("sub-*"))[0].name
    tampered = next(target.glob(f"{mine}/ses-1/beh/*_beh.tsv"))
    tampered.write_text("changed\n", encoding="utf-8")
    ran = _in_process(capsys, "sync", studies[0], "--to", central)
    assert ran.returncode == 2 and "differs from this PC's" in ran.stderr and tampered.read_text() == "changed\n"


def test_sync_to_a_failing_share_leaves_no_partial_copy_and_resumes(tmp_path, yoked, capsys, monkeypatch):
    import errno
    import shutil as shutil_mod
    monkeypatch.setenv("LHLAB_REGISTRY", "sqlite")
    from experiment import cohort
    cohort.simulate(yoked, tmp_path / "data", 3, seed=1)
    study, central = tmp_path / "data" / yoked.study_id, tmp_path / "share"
    _one_line_exit_2(_in_process(capsys, "sync", study, "--to", central), "does not exist or is not mounted")
    central.mkdir()
    real_copy2, calls = shutil_mod.copy2, []

    def full_disk(src, dst, *a, **kw):
        calls.append(dst)
        if len(calls) == 6:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_copy2(src, dst, *a, **kw)
    monkeypatch.setattr(shutil_mod, "copy2", full_disk)
    _one_line_exit_2(_in_process(capsys, "sync", study, "--to", central), "No space left on device",
                     "run lhlab sync again")
    assert not list(central.rglob("*.partial"))
    monkeypatch.setattr(shutil_mod, "copy2", real_copy2)
    monkeypatch.setenv("LHLAB_CENTRAL", str(central))
    assert "sessions copied" in _cli(capsys, "sync", study, rc=0).stdout
    assert sorted(d.name for d in (central / yoked.study_id).glob("sub-*")) == ["sub-P001", "sub-P002", "sub-P003"]
    for ses in (central / yoked.study_id).glob("sub-*/ses-*"):
        from experiment.registry.central import manifest
        assert manifest(ses)[0] == manifest(study / ses.relative_to(central / yoked.study_id))[0]
