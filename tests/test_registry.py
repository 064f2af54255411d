"""The registry: labels, permuted-block assignment, yoking, manual overrides, crash recovery,
and several processes assigning on one study folder at once."""

from __future__ import annotations

import json
import multiprocessing
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from experiment import datafile
from experiment.errors import BadInput
from experiment.protocol import load_protocol
from experiment.registry import Registry, block_order

REPO = Path(__file__).resolve().parent.parent
ANAGRAMS = REPO / "protocols" / "unsolvable-anagrams.yaml"
STIMULI = REPO / "stimuli" / "anagrams"


def write_yoked_protocol(folder: Path, study_id: str = "yoketest", block_size: int = 6) -> Path:
    """A short three-group study whose helpless group is yoked to the escapable one."""
    path = Path(folder) / f"{study_id}.yaml"
    path.write_text(textwrap.dedent(f"""\
        schema_version: 1
        study:
          id: {study_id}
          title: "Yoked test study"
          block_size: {block_size}
        phases:
          trainsolvable:
            task: anagram
            items: {STIMULI / 'training.tsv'}
            n_trials: 3
            time_limit: 20
            criterion_run: 0
            feedback_duration: 0.5
          trainunsolvable:
            task: anagram
            items: {STIMULI / 'training.tsv'}
            n_trials: 3
            unsolvable_proportion: 1
            time_limit: 20
            criterion_run: 0
            feedback_duration: 0.5
          check:
            task: rating
            questions:
              - id: control
                text: "How much control did you have?"
                low: 1
                high: 10
                low_label: "none"
                high_label: "complete"
          test:
            task: anagram
            role: test
            items: {STIMULI / 'patterned-34251.tsv'}
            n_trials: 3
            time_limit: 25
            criterion_run: 0
            feedback_duration: 0.5
        conditions:
          escape:
            kind: controllable
            phases: [trainsolvable, check, test]
          yoked:
            kind: helpless
            yoked_to: escape
            phases: [trainunsolvable, check, test]
          none:
            kind: control
            phases: [check, test]
        debriefing:
          pages: "Some anagrams could not be solved; that was on purpose."
        """), encoding="utf-8")
    return path


def run_session(proto, data_dir: Path, label: str, condition: str, yoked_to: str | None = None,
                profile: str = "default", seed: int = 1) -> dict:
    """One real data-only session, as `lhlab run --simulate` would run it; returns its record."""
    from experiment.preflight import SessionRequest, prepare
    from experiment.session import run_data_only
    req = SessionRequest(protocol=proto, participant=label, condition=condition, data_dir=data_dir, seed=seed,
                         simulate=profile, yoked_to=yoked_to)
    prepared = prepare(req)
    run_data_only(prepared)
    return datafile.read_session(datafile.session_json_path(prepared.study, label, prepared.session))


@pytest.fixture(scope="module")
def anagrams():
    return load_protocol(ANAGRAMS)


@pytest.fixture
def yoked(tmp_path):
    return load_protocol(write_yoked_protocol(tmp_path))


def study_of(tmp_path: Path, proto) -> Path:
    return datafile.study_dir(tmp_path / "data", proto.study_id)


# -- labels and balance ------------------------------------------------------------------

def test_labels_are_generated_unique_and_bids_safe(tmp_path, anagrams):
    with Registry.open(study_of(tmp_path, anagrams), anagrams, seed=3) as reg:
        people = [reg.add_participant(anagrams) for _ in range(12)]
    labels = [p.label for p in people]
    assert labels == [f"P{i:03d}" for i in range(1, 13)]
    assert all(p.status == "registered" and p.condition in anagrams.conditions for p in people)
    assert (study_of(tmp_path, anagrams) / "registry.sqlite").is_file()
    db = sqlite3.connect(study_of(tmp_path, anagrams) / "registry.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sixty_participants_fill_balanced_blocks_reproducibly(tmp_path, anagrams):
    def assign(folder: Path, seed: int) -> list:
        with Registry.open(folder, anagrams, seed=seed) as reg:
            for _ in range(60):
                reg.add_participant(anagrams)
            return reg.assignment_log()

    log = assign(tmp_path / "a", seed=11)
    assert [e.rule for e in log] == ["block"] * 60 and {e.seed for e in log} == {11}
    blocks: dict[int, list[str]] = {}
    for e in log:
        blocks.setdefault(e.block, []).append(e.condition)
    assert sorted(blocks) == list(range(10))
    for b, conds in blocks.items():
        assert Counter(conds) == {"solvable": 2, "unsolvable": 2, "notraining": 2}, f"block {b}: {conds}"
    orders = {tuple(conds) for conds in blocks.values()}
    assert len(orders) >= 5, f"block orders barely vary: {orders}"
    # auditable: the log is exactly the seeded sequence
    assert [e.condition for e in log] == [c for b in range(10) for c in
                                          block_order(11, b, list(anagrams.conditions), 6)]

    again = assign(tmp_path / "b", seed=11)
    assert [(e.label, e.condition, e.block, e.slot) for e in again] == \
        [(e.label, e.condition, e.block, e.slot) for e in log]
    other = assign(tmp_path / "c", seed=12)
    assert [e.condition for e in other] != [e.condition for e in log]


def test_seed_is_fixed_at_creation(tmp_path, anagrams):
    study = study_of(tmp_path, anagrams)
    with Registry.open(study, anagrams, seed=5) as reg:
        first = reg.add_participant(anagrams)
    with Registry.open(study, anagrams, seed=99) as reg:
        assert reg.seed == 5
        second = reg.add_participant(anagrams)
    assert [first.condition, second.condition] == block_order(5, 0, list(anagrams.conditions), 6)[:2]


def test_registry_of_another_study_is_refused(tmp_path, anagrams, yoked):
    study = tmp_path / "folder"
    with Registry.open(study, anagrams, seed=1) as reg:
        reg.add_participant(anagrams)
    with pytest.raises(BadInput, match="belongs to study 'unsolvable-anagrams', not 'yoketest'") as e:
        Registry.open(study, yoked)
    assert "\n" not in str(e.value)
    with Registry.open(study) as reg, pytest.raises(BadInput, match="belongs to study"):
        reg.add_participant(yoked)
    with Registry.open(study) as reg:
        assert len(reg.participants()) == 1


def test_changed_design_is_refused(tmp_path):
    for name in ("six", "three"):
        (tmp_path / name).mkdir()
    proto6 = load_protocol(write_yoked_protocol(tmp_path / "six", block_size=6))
    proto3 = load_protocol(write_yoked_protocol(tmp_path / "three", block_size=3))
    study = tmp_path / "data" / "yoketest"
    Registry.open(study, proto6, seed=1).close()
    with pytest.raises(BadInput, match="block size differ"):
        Registry.open(study, proto3)


def test_duplicate_external_id_is_refused(tmp_path, anagrams):
    with Registry.open(study_of(tmp_path, anagrams), anagrams, seed=1) as reg:
        p = reg.add_participant(anagrams, external_id="SONA-4711")
        assert reg.participant(p.label).external_id == "SONA-4711"
        with pytest.raises(BadInput, match=f"already registered as {p.label}"):
            reg.add_participant(anagrams, external_id="SONA-4711")
        assert len(reg.participants()) == 1


@pytest.mark.parametrize("external_id, reason, words", [
    ("SONA\n4711", None, "external id must not contain control characters"),
    ("x" * 201, None, "external id must be at most 200 characters"),
    ("SONA-\udcff", None, "not valid UTF-8"),
    (None, "lost\x1b[2Jdata", "reason must not contain control characters"),
])
def test_free_text_in_the_registry_is_checked(tmp_path, anagrams, external_id, reason, words):
    """What goes into the registry, its log and the launcher's table is printable and bounded:
    refused with one line before anything is stored."""
    with Registry.open(study_of(tmp_path, anagrams), anagrams, seed=1) as reg:
        condition = next(iter(anagrams.conditions)) if reason else None
        with pytest.raises(BadInput, match=re.escape(words)):
            reg.add_participant(anagrams, external_id=external_id, condition=condition, reason=reason)
        assert reg.participants() == [] and reg.assignment_log() == []


# -- manual override -------------------------------------------------------------------------

def test_manual_condition_needs_a_reason_and_is_logged(tmp_path, anagrams):
    with Registry.open(study_of(tmp_path, anagrams), anagrams, seed=2) as reg:
        first = reg.add_participant(anagrams)
        for reason in (None, "", "   "):
            with pytest.raises(BadInput, match="needs a reason"):
                reg.add_participant(anagrams, condition="notraining", reason=reason)
        with pytest.raises(BadInput, match="not in"):
            reg.add_participant(anagrams, condition="nosuch", reason="typo")
        assert len(reg.participants()) == 1 and len(reg.assignment_log()) == 1
        manual = reg.add_participant(anagrams, condition="notraining", reason="replaces P001 (fire alarm)")
        third = reg.add_participant(anagrams)
        log = reg.assignment_log()
    assert manual.condition == "notraining"
    entry = log[1]
    assert (entry.label, entry.rule, entry.reason, entry.block, entry.slot) == \
        (manual.label, "manual", "replaces P001 (fire alarm)", None, None)
    # the manual one used no slot: the block sequence continues where it was
    assert [first.condition, third.condition] == block_order(2, 0, list(anagrams.conditions), 6)[:2]
    assert (log[2].block, log[2].slot) == (0, 1)


def test_manual_yoked_condition_needs_a_free_partner(tmp_path, yoked):
    data = tmp_path / "data"
    with Registry.open(study_of(tmp_path, yoked), yoked, seed=1) as reg:
        with pytest.raises(BadInput, match="no free partner"):
            reg.add_participant(yoked, condition="yoked", reason="pilot check")
        partner = reg.add_participant(yoked, condition="escape", reason="needs a partner first")
        run_session(yoked, data, partner.label, "escape")
        p = reg.add_participant(yoked, condition="yoked", reason="pilot check")
    assert p.yoked_to == partner.label


# -- yoking --------------------------------------------------------------------------------------

def conditions_until(reg, proto, wanted: str, limit: int = 30) -> list:
    out = []
    for _ in range(limit):
        out.append(reg.add_participant(proto))
        if out[-1].condition == wanted:
            break
    return out


def test_yoked_slot_waits_until_a_partner_finished_training(tmp_path, yoked):
    data = tmp_path / "data"
    with Registry.open(study_of(tmp_path, yoked), yoked, seed=4) as reg:
        early = [reg.add_participant(yoked) for _ in range(8)]
        # nobody has trained: no yoked participant, the other conditions go on
        assert {p.condition for p in early} == {"escape", "none"}
        assert reg.free_partner("yoked") is None
        escapers = [p for p in early if p.condition == "escape"]
        assert len(escapers) >= 3
        # a partner who withdrew during training does not count
        run_session(yoked, data, escapers[0].label, "escape", profile="default,withdraw_rate=1")
        assert reg.add_participant(yoked).condition != "yoked"
        # the younger one finishes first, then the older one: the oldest free is matched first
        run_session(yoked, data, escapers[2].label, "escape")
        run_session(yoked, data, escapers[1].label, "escape")
        log_before = reg.assignment_log()
        a = reg.add_participant(yoked)
        b = reg.add_participant(yoked)
        log = reg.assignment_log()
    assert (a.condition, a.yoked_to) == ("yoked", escapers[1].label)
    assert (b.condition, b.yoked_to) == ("yoked", escapers[2].label)
    # the waiting slots were at the front of the queue: the earliest ones still open
    taken = {(e.block, e.slot) for e in log_before}
    waiting = sorted((blk, s) for blk in range(4) for s, c in enumerate(block_order(4, blk, ["escape", "yoked", "none"], 6))
                     if c == "yoked" and (blk, s) not in taken)
    assert [(e.block, e.slot) for e in log[-2:]] == waiting[:2]
    assert log[-2].yoked_to == escapers[1].label


def test_partner_used_once_and_withdrawal_frees_nothing(tmp_path, yoked):
    data = tmp_path / "data"
    with Registry.open(study_of(tmp_path, yoked), yoked, seed=8) as reg:
        people = conditions_until(reg, yoked, "escape")
        partner = people[-1]
        run_session(yoked, data, partner.label, "escape")
        first = conditions_until(reg, yoked, "yoked")[-1]
        assert first.yoked_to == partner.label
        # the yoked participant withdraws: the partner stays used
        record = run_session(yoked, data, first.label, "yoked", yoked_to=partner.label,
                             profile="default,withdraw_rate=1")
        assert record["effective_status"] == "withdrawn" and record["yoked_to"] == partner.label
        reg.sync_sessions()
        assert reg.participant(first.label).status == "withdrawn"
        assert reg.free_partner("yoked") is None
        later = [reg.add_participant(yoked) for _ in range(12)]
        assert "yoked" not in {p.condition for p in later}
        # even a direct write cannot yoke a second participant to the same partner
        with pytest.raises(sqlite3.IntegrityError):
            reg._db.execute("UPDATE participants SET yoked_to = ? WHERE label = ?", (partner.label, later[0].label))
        assert reg.participant(first.label).yoked_to == partner.label


def test_partner_who_crashed_after_training_can_be_used(tmp_path, yoked):
    data = tmp_path / "data"
    with Registry.open(study_of(tmp_path, yoked), yoked, seed=8) as reg:
        partner = conditions_until(reg, yoked, "escape")[-1]
        record = run_session(yoked, data, partner.label, "escape")
        path = datafile.session_json_path(study_of(tmp_path, yoked), partner.label, 1)
        record["phases"][-1]["status"] = "interrupted"
        record.update(status="crashed")
        del record["effective_status"]
        datafile.write_json_atomic(path, record)
        nxt = conditions_until(reg, yoked, "yoked")[-1]
        assert nxt.yoked_to == partner.label
        assert reg.participant(partner.label).status == "crashed"


# -- sessions on disk ---------------------------------------------------------------------------

def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


HANG_IN_TEST = textwrap.dedent("""\
    import sys, time
    from experiment.devices import virtual as simulated
    original = simulated.SimulatedKeyboard.read_text
    def read_text(self, until, view, extra_keys=(), since=None):
        if self.participant.role == "test":
            time.sleep(600)
        return original(self, until, view, extra_keys)
    simulated.SimulatedKeyboard.read_text = read_text
    from experiment.cli import main
    sys.exit(main(sys.argv[1:]))
    """)


@pytest.mark.parametrize("how", ["killed", "dead-pid"])
def test_crashed_session_shows_and_rerun_gets_session_2(tmp_path, yoked, how):
    data = tmp_path / "data"
    study = study_of(tmp_path, yoked)
    with Registry.open(study, yoked, seed=3) as reg:
        p = reg.add_participant(yoked)
        if how == "killed":
            proc = subprocess.Popen([sys.executable, "-c", HANG_IN_TEST, "run", str(yoked.path), "--participant",
                                     p.label, "--condition", p.condition, "--data-dir", str(data),
                                     "--simulate", "default", "--seed", "2"],
                                    cwd=REPO, stdout=subprocess.PIPE, text=True)
            for line in proc.stdout:
                event = json.loads(line)
                if event["event"] == "phase_start" and event.get("role") == "test":
                    break
            reg.sync_sessions()
            assert reg.participant(p.label).status == "running"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
        else:
            record = run_session(yoked, data, p.label, p.condition)
            del record["effective_status"]
            record.update(status="running", ended=None, exit=None)
            record["process"]["pid"] = dead_pid()
            datafile.write_json_atomic(datafile.session_json_path(study, p.label, 1), record)
        problems = reg.sync_sessions()
        assert problems == []
        assert reg.participant(p.label).status == "crashed"
        assert [(s.number, s.status) for s in reg.sessions(p.label)] == [(1, "crashed")]
        tsv = (study / "participants.tsv").read_text()
        assert f"sub-{p.label}\t{p.condition}\tn/a\tcrashed\t1" in tsv

        again = reg.participant(p.label)
        record = run_session(yoked, data, again.label, again.condition, seed=3)
        assert (record["session"], record["condition"], record["effective_status"]) == (2, p.condition, "complete")
        reg.sync_sessions()
        assert reg.participant(p.label).status == "complete"
        assert reg.participant(p.label).condition == p.condition
        assert [(s.number, s.status) for s in reg.sessions(p.label)] == [(1, "crashed"), (2, "complete")]
        assert len(reg.participants()) == 1


def test_command_line_sessions_join_the_registry(tmp_path, anagrams, lhlab):
    data = tmp_path / "data"
    study = study_of(tmp_path, anagrams)
    lhlab("run", ANAGRAMS, "--participant", "P001", "--condition", "unsolvable", "--data-dir", data,
          "--simulate", "default", "--seed", "1", "--experimenter", "ab", check_rc=0)
    with Registry.open(study, anagrams, seed=1) as reg:
        new = reg.add_participant(anagrams)
        assert new.label == "P002"          # P001 is taken on disk
        cli = reg.participant("P001")
        assert (cli.condition, cli.status, cli.sessions) == ("unsolvable", "complete", 1)
        log = reg.assignment_log()
        assert (log[0].label, log[0].rule, log[0].block) == ("P001", "command-line", None)
        assert (log[1].label, log[1].rule, log[1].block, log[1].slot) == ("P002", "block", 0, 0)
        assert reg.sessions("P001")[0].experimenter == "ab"
        assert reg.sessions("P001")[0].data_path == "sub-P001/ses-1"


def test_notes_for_participants_and_sessions(tmp_path, yoked):
    data = tmp_path / "data"
    with Registry.open(study_of(tmp_path, yoked), yoked, seed=1) as reg:
        p = reg.add_participant(yoked)
        with pytest.raises(BadInput, match="no session 1"):
            reg.set_note(p.label, 1, "too early")
        run_session(yoked, data, p.label, p.condition)
        reg.set_note(p.label, 1, "fire alarm at 10:14, continued")
        reg.set_note(p.label, None, "left-handed")
        reg.sync_sessions()                       # a sync keeps the notes
    with Registry.open(study_of(tmp_path, yoked)) as reg:
        assert reg.sessions(p.label)[0].notes == "fire alarm at 10:14, continued"
        assert reg.participant(p.label).notes == "left-handed"
        with pytest.raises(BadInput, match="is not in"):
            reg.set_note("P999", None, "x")


# -- several processes at once --------------------------------------------------------------------

def _cohort_worker(protocol_path: str, data_dir: str, n: int, barrier) -> None:
    from experiment import cohort
    proto = load_protocol(protocol_path)
    barrier.wait()
    outcomes = cohort.simulate(proto, Path(data_dir), n, seed=21)
    assert len(outcomes) == n


def test_four_processes_assign_without_duplicates(tmp_path, yoked):
    data = tmp_path / "data"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_cohort_worker, args=(str(yoked.path), str(data), 15, barrier)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]

    study = study_of(tmp_path, yoked)
    with Registry.open(study) as reg:
        reg.sync_sessions()
        people = reg.participants()
        log = reg.assignment_log()
        sessions = reg.sessions()
    labels = [p.label for p in people]
    assert len(labels) == 60 and len(set(labels)) == 60
    assert sorted(d.name for d in study.glob("sub-*")) == sorted(f"sub-{label}" for label in labels)
    assert [s.number for s in sessions] == [1] * 60
    assert {s.status for s in sessions} == {"complete"}

    by_label = {p.label: p for p in people}
    partners = [p.yoked_to for p in people if p.condition == "yoked"]
    assert partners, "no yoked participant in 60"
    assert None not in partners and len(partners) == len(set(partners))
    records = {r["participant"]: r for r in datafile.all_sessions(study)}
    assigned_at = {e.label: e.time for e in log}
    for p in people:
        if p.condition != "yoked":
            assert p.yoked_to is None
            continue
        partner = by_label[p.yoked_to]
        assert partner.condition == "escape"
        assert records[p.label]["yoked_to"] == partner.label
        trained = [ph["ended"] for ph in records[partner.label]["phases"] if ph["role"] == "training"]
        assert max(trained) < assigned_at[p.label], f"{p.label} yoked before {partner.label} finished training"

    slots = [(e.block, e.slot) for e in log]
    assert len(set(slots)) == 60
    blocks: dict[int, list[str]] = {}
    for e in log:
        blocks.setdefault(e.block, []).append(e.condition)
    full = {b: c for b, c in blocks.items() if len(c) == 6}
    assert len(full) >= 8
    for b, conds in full.items():
        assert Counter(conds) == {"escape": 2, "yoked": 2, "none": 2}, f"block {b}: {conds}"


def _label_worker(study: str, protocol_path: str, n: int, barrier, out) -> None:
    proto = load_protocol(protocol_path)
    barrier.wait()
    with Registry.open(Path(study), proto) as reg:
        out.put([reg.add_participant(proto).label for _ in range(n)])


def test_concurrent_registration_without_sessions(tmp_path, anagrams):
    study = study_of(tmp_path, anagrams)
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_label_worker, args=(str(study), str(ANAGRAMS), 15, barrier, out)) for _ in range(4)]
    for p in procs:
        p.start()
    got = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
    labels = [label for chunk in got for label in chunk]
    assert sorted(labels) == [f"P{i:03d}" for i in range(1, 61)]
    with Registry.open(study) as reg:
        log = reg.assignment_log()
    assert len({(e.block, e.slot) for e in log}) == 60
    for b in range(10):
        assert Counter(e.condition for e in log if e.block == b) == {"solvable": 2, "unsolvable": 2,
                                                                    "notraining": 2}
