"""A participant who declines consent gives their block slot back (schema 6): the next person gets
the same condition, the log says whom they replace, each decliner is replaced once, and a yoked
decliner frees their partner for the next yoked participant. On SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from experiment.protocol import load_protocol
from experiment.registry import Registry
from test_registry import run_session, study_of, write_yoked_protocol

CONSENT = """\
  consent:
    task: consent
    pages: ["This study is about solving word puzzles."]
    contact: "Memory Lab, Dr. A. Example, memory.lab@example.org"
"""


def consent_protocol(folder: Path):
    """The registry tests' yoked three-group study with a consent phase first in every condition."""
    path = write_yoked_protocol(folder)
    text = path.read_text(encoding="utf-8").replace("phases:\n  trainsolvable:", "phases:\n" + CONSENT
                                                    + "  trainsolvable:", 1)
    for first in ("trainsolvable", "trainunsolvable", "check"):
        text = text.replace(f"phases: [{first},", f"phases: [consent, {first},", 1)
    path.write_text(text, encoding="utf-8")
    return load_protocol(path)


def test_a_declined_slot_goes_to_the_next_participant(backend, tmp_path):
    proto, data = consent_protocol(tmp_path), tmp_path / "data"
    with Registry.open(study_of(tmp_path, proto), proto, seed=5) as reg:
        first = [reg.add_participant(proto) for _ in range(3)]
        who = next(p for p in first if p.condition != "yoked")
        record = run_session(proto, data, who.label, who.condition, profile="default,decline_consent=1")
        assert record["effective_status"] == "declined"
        nxt = reg.add_participant(proto)           # syncs the decline first
        again = reg.add_participant(proto)
        log = reg.assignment_log()
    assert nxt.condition == who.condition
    mine = [e for e in log if e.label == who.label][0]
    theirs = [e for e in log if e.label == nxt.label][0]
    assert (theirs.block, theirs.slot, theirs.replaces) == (mine.block, mine.slot, who.label)
    assert theirs.rule == "block" and theirs.reason == f"replaces {who.label}, who declined consent"
    # the decliner is replaced once: the participant after that gets a fresh slot
    after = [e for e in log if e.label == again.label][0]
    assert after.replaces is None and (after.block, after.slot) not in {(e.block, e.slot) for e in log[:-1]}


def test_a_yoked_decliner_frees_their_partner(backend, tmp_path):
    proto, data = consent_protocol(tmp_path), tmp_path / "data"
    with Registry.open(study_of(tmp_path, proto), proto, seed=4) as reg:
        people = [reg.add_participant(proto) for _ in range(4)]
        master = next(p for p in people if p.condition == "escape")
        run_session(proto, data, master.label, "escape")
        yoked = None
        for _ in range(12):
            p = reg.add_participant(proto)
            if p.condition == "yoked":
                yoked = p
                break
        assert yoked is not None and yoked.yoked_to == master.label
        record = run_session(proto, data, yoked.label, "yoked", yoked_to=master.label,
                             profile="default,decline_consent=1")
        assert record["effective_status"] == "declined"
        reg.sync_sessions()
        replacement = reg.add_participant(proto)
        assert (replacement.condition, replacement.yoked_to) == ("yoked", master.label)
        assert reg.participant(yoked.label).yoked_to is None       # released, and the log still says so
        assert [e.yoked_to for e in reg.assignment_log() if e.label == yoked.label] == [master.label]
        assert [e.replaces for e in reg.assignment_log() if e.label == replacement.label] == [yoked.label]


def test_the_launcher_says_whom_a_new_participant_replaces(qtbot, tmp_path, monkeypatch):
    from gui.models import StudyModel
    monkeypatch.setenv("LHLAB_REGISTRY", "sqlite")
    proto, data = consent_protocol(tmp_path), tmp_path / "data"
    model = StudyModel()
    model.set_study(proto, data)
    first = model.add_participant()                 # never yoked: nobody has trained yet
    assert model.replaced_by(first.label) is None
    run_session(proto, data, first.label, first.condition, profile="default,decline_consent=1")
    model.refresh()
    second = model.add_participant()
    assert second.condition == first.condition and model.replaced_by(second.label) == first.label
    model.close()
