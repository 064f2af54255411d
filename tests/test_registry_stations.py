"""The registry on a real PostgreSQL server the tests start themselves (tests/pgserver.py),
and the same behaviour on SQLite: stations assigning at once, a station killed inside a
transaction, the server restarted mid-study, schema migrations, and bad input on the command
line (one line, exit 2, no traceback, no password)."""

from __future__ import annotations

import inspect
import itertools
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
from pgserver import PASSWORD, PASSWORD_ROLE, PgServer, pg_bin
from test_registry import ANAGRAMS, anagrams, write_yoked_protocol, yoked  # noqa: F401  (fixtures)

FORK = multiprocessing.get_context("fork")
_names = itertools.count()


@pytest.fixture(scope="session")
def pg_server():
    if pg_bin() is None:
        pytest.skip("PostgreSQL is not installed: apt-get install postgresql (scripts/setup.sh does it)")
    server = PgServer()
    yield server
    server.destroy()


@pytest.fixture
def pg_url(pg_server, monkeypatch):
    """A fresh database on the test server; the registry of every Registry.open in this test."""
    url = pg_server.create_database(f"t{os.getpid()}_{next(_names)}")
    monkeypatch.setenv("LHLAB_REGISTRY", url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, monkeypatch):
    if request.param == "sqlite":
        monkeypatch.setenv("LHLAB_REGISTRY", "sqlite")
        return "sqlite"
    return request.getfixturevalue("pg_url")


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
    with pytest.raises(BadInput, match=r"registry is on the server postgresql://postgres@/t.*--registry") as e:
        Registry.open(study, anagrams)
    assert "\n" not in str(e.value) and not (study / "registry.sqlite").exists()


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


# -- schema versions and migrations ----------------------------------------------------------------
def _make_v1_sqlite(study: Path) -> None:
    study.mkdir(parents=True)
    db = sqlite3.connect(study / "registry.sqlite")
    for sql in schema.statements(1, "sqlite"):
        db.execute(sql)
    db.executemany("INSERT INTO meta VALUES (?, ?)", [("schema", "1"), ("next_label", "1")])
    db.commit()
    db.close()


def test_old_sqlite_study_opens_upgraded(tmp_path, anagrams, lhlab):
    study = tmp_path / "data" / anagrams.study_id
    _make_v1_sqlite(study)
    out = lhlab("registry", "check", study, check_rc=2)
    assert "schema 1, needs lhlab registry migrate" in out.stdout
    with Registry.open(study, anagrams, seed=2) as reg:      # a newer lhlab opens an older study
        p = reg.add_participant(anagrams)
    assert p.label == "P001"
    out = lhlab("registry", "check", study, check_rc=0)
    assert f"schema {schema.SCHEMA_VERSION}, ok" in out.stdout


def test_server_migrate_upgrades_every_study(pg_url, tmp_path, anagrams, lhlab):
    from psycopg import connect
    with Registry.open(tmp_path / "data" / anagrams.study_id, anagrams, seed=2) as reg:
        reg.add_participant(anagrams)
    with connect(pg_url, autocommit=True) as db:                 # make it look like an older lhlab's study
        db.execute('SET search_path TO "lhlab/unsolvable-anagrams"')
        db.execute("DROP TABLE audit")
        db.execute("ALTER TABLE assignment_log DROP COLUMN request")
        db.execute("ALTER TABLE assignment_log DROP COLUMN station")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    with pytest.raises(BadInput, match="run lhlab registry migrate"):
        Registry.open(tmp_path / "data" / anagrams.study_id, anagrams)
    lhlab("registry", "check", pg_url, check_rc=2)
    out = lhlab("registry", "migrate", pg_url, check_rc=0)
    assert f"unsolvable-anagrams: schema 1 -> {schema.SCHEMA_VERSION}" in out.stdout
    with Registry.open(tmp_path / "data" / anagrams.study_id, anagrams) as reg:
        assert reg.add_participant(anagrams).label == "P002"
    assert "1 participants" not in lhlab("registry", "check", pg_url, check_rc=0).stdout


def test_sqlite_study_moves_to_the_server(pg_url, tmp_path, yoked, lhlab, monkeypatch):
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
    lhlab("registry", "migrate", pg_url, "--from", study, check_rc=0)
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
    _one_line_exit_2(lhlab("simulate", ANAGRAMS, "--participants", "1", "--data-dir", tmp_path / "d", env=env),
                     "no server is listening", ":***@")
    _one_line_exit_2(lhlab("simulate", ANAGRAMS, "--participants", "1", "--data-dir", tmp_path / "d",
                           "--registry", cases[3][0]), *cases[3][1])
    assert not list((tmp_path / "d").rglob("sub-*"))


def test_right_password_works_and_is_never_printed(pg_server, tmp_path, lhlab):
    pg_server.psql("postgres", f"CREATE DATABASE pw OWNER {PASSWORD_ROLE}")
    url = pg_server.url("pw", PASSWORD_ROLE, PASSWORD)
    out = lhlab("registry", "init", url, check_rc=0)
    out2 = lhlab("simulate", ANAGRAMS, "--participants", "2", "--data-dir", tmp_path / "d", "--seed", "1",
                 "--registry", url, check_rc=0)
    out3 = lhlab("registry", "check", url, check_rc=0)
    assert "unsolvable-anagrams\t2 participants" in out3.stdout
    assert all(PASSWORD not in o.stdout + o.stderr for o in (out, out2, out3))


def test_newer_schema_is_refused(backend, tmp_path, anagrams, lhlab):
    study = tmp_path / "data" / anagrams.study_id
    with Registry.open(study, anagrams, seed=1) as reg:
        reg.add_participant(anagrams)
        reg._x("UPDATE meta SET value = ? WHERE key = 'schema'", (str(schema.SCHEMA_VERSION + 1),))
    with pytest.raises(BadInput, match="newer lhlab"):
        Registry.open(study, anagrams)
    proc = lhlab("simulate", ANAGRAMS, "--participants", "1", "--data-dir", tmp_path / "data",
                 "--registry", backend)
    _one_line_exit_2(proc, "newer lhlab", "update lhlab")
    _one_line_exit_2(lhlab("registry", "migrate", backend if backend != "sqlite" else study), "newer")
