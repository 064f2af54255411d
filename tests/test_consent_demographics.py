"""Consent and demographics (issue 13): the consent phase comes first and a decline ends the session
`declined` before any other data; the demographic answers, "prefer not to say" included, become
participants.tsv columns described in participants.json. Mostly scripted key sources (the pending
queue of experiment.devices.keyqueue, as in the real window) and data-only simulated sessions."""

from __future__ import annotations

import csv
import json
import random
import textwrap
import threading
from pathlib import Path

import pytest

from conftest import REPO, events, run_lhlab
from experiment import datafile
from experiment.devices.keyqueue import QueuedKeyboard
from experiment.devices.virtual import NoSpeaker
from experiment.errors import EXIT_BAD_INPUT, EXIT_DECLINED, Declined
from experiment.preflight import SessionRequest, prepare
from experiment.protocol import load_protocol
from experiment.session import Session
from experiment.tasks import TASKS
from experiment.tasks.base import PhaseContext
from test_key_queue import BurstSource, burst, typed

ANAGRAMS = REPO / "protocols" / "unsolvable-anagrams.yaml"
TEXTS = {"withdraw_hint": "F12 stops.", "continue_hint": "Press SPACE."}
KEYS = {"withdraw": "f12", "abort": "escape", "continue": "space"}


def run_task(task_name: str, params: dict, events_: list):
    """The real task on the scripted pending-queue keyboard: (rows, views, session state); also
    kept in LAST when the task raises (a declined consent)."""
    task = TASKS[task_name]
    p = {prm.name: prm.default for prm in task.params}
    p.update(params)
    src, rows, state = BurstSource(events_), [], {}
    LAST[:] = [rows, src, state]
    ctx = PhaseContext("p", task.default_role, p, src, src, QueuedKeyboard(src), None, TEXTS, KEYS, rows.append,
                       lambda *a, **k: None, REPO, state)
    task.run(ctx, task.plan(p, random.Random(1), REPO))
    return rows, [v for _, v in src.views], state


LAST: list = []


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


# -- consent on the scripted keyboard ----------------------------------------------------------

CONSENT = {"pages": ["What the study is.", "Your rights."], "contact": "Ask: lab@example.org", "min_time": 1.0}


def test_consent_pages_then_agree_with_the_decision_row_and_state():
    # a press before min_time is not an answer (nor is N on a page that is only turned)
    rows, views, state = run_task("consent", CONSENT, burst(0.5, ["space", "n"]) + burst(1.5, ["space"])
                                  + burst(2.0, ["y"]) + burst(3.0, ["y"]))
    assert [r["response"] for r in rows] == ["continue", "agree"] and [r["trial"] for r in rows] == [1, 2]
    assert rows[1]["rt"] == pytest.approx(3.0 - rows[1]["onset"], abs=0.02)      # the Y at 2.0 came too early
    assert state["consent"]["decision"] == "agree" and state["consent"]["time"].endswith("+00:00")
    last = views[-1]
    assert last.kind == "consent" and last.text.endswith("Ask: lab@example.org\n\nDo you agree to take part in this study?")
    assert "Press Y to agree" in last.footer and "Press N" in last.footer and "F12" in last.footer
    assert "SPACE" in views[0].footer


def test_decline_key_ends_the_phase_declined_after_writing_the_decision():
    with pytest.raises(Declined):
        run_task("consent", {**CONSENT, "min_time": 0}, burst(0.5, ["space"]) + burst(1.0, ["n"]))
    rows, _, state = LAST
    assert [r["response"] for r in rows] == ["continue", "decline"] and state["consent"]["decision"] == "decline"


def test_withdraw_key_on_the_consent_screen_declines():
    with pytest.raises(Declined) as e:
        run_task("consent", {**CONSENT, "min_time": 0}, burst(0.5, ["f12"]))
    assert "withdraw key on the consent screen" in str(e.value)
    rows, _, state = LAST
    assert [r["response"] for r in rows] == ["withdraw"] and state["consent"]["decision"] == "withdraw"


# -- demographics on the scripted keyboard -----------------------------------------------------

FIELDS = [{"id": "sleep", "type": "number", "text": "Hours of sleep?", "description": "Hours slept.", "low": 0,
           "high": 24, "units": "h"},
          {"id": "language", "type": "text", "text": "First language?", "description": "First language.",
           "max_length": 10}]


def test_bad_age_is_refused_on_the_screen_and_asked_again():
    ev = typed(0.5, "abc\n") + typed(1.0, "150\n") + typed(1.5, "23.5\n") + typed(2.0, " 23 \n")
    rows, views, state = run_task("demographics", {"standard": "age"}, ev)
    assert len(rows) == 1 and rows[0]["field"] == "age" and rows[0]["response"] == 23
    assert rows[0]["attempts"] == 4 and datafile.split_answers(rows[0]["refused_answers"]) == ["abc", "150", "23.5"]
    messages = [v.message for v in views]
    assert messages[0] == "" and messages[1:] == ["Please type a whole number from 16 to 99."] * 3
    assert all(v.entry and v.data["field"] == "age" for v in views)
    assert state["demographics"]["answers"] == {"age": 23}
    assert state["demographics"]["columns"]["age"]["Units"] == "years"


def test_prefer_not_to_say_on_every_kind_of_question_is_na():
    ev = (burst(0.5, ["f1"]) + burst(1.5, ["2", "f1"], gap=0.1) + burst(2.0, ["return"])   # F1 in a box: at once
          + burst(2.5, ["3", "return"], gap=0.1) + burst(3.0, ["f1"]) + typed(3.5, "n/a|x\n"))
    rows, views, state = run_task("demographics", {"fields": FIELDS}, ev)
    answers = {r["field"]: (r["response"], r["prefer_not"]) for r in rows}
    assert answers == {"age": (None, 1), "sex": (None, 1), "handedness": ("ambidextrous", 0), "sleep": (None, 1),
                       "language": ("n%2Fa%7Cx", 0)}          # typed text escaped: a typed n/a is not missing
    assert state["demographics"]["answers"] == {k: v for k, (v, _) in answers.items()}
    sex = [v for v in views if v.data["field"] == "sex"]
    assert sex[0].options[-1] == ("F1", "Prefer not to say") and [v.selected for v in sex] == [None, 1, 3]
    assert rows[1]["attempts"] == 1


def test_enter_without_a_choice_asks_for_one_and_numpad_digits_choose():
    ev = burst(0.5, ["return"]) + burst(1.0, ["num_2", "return"], gap=0.1)
    rows, views, _ = run_task("demographics", {"standard": "handedness"}, ev)
    assert rows[0]["response"] == "left" and rows[0]["attempts"] == 2
    assert views[1].message == "First press the number of your answer."


def test_out_of_range_number_and_too_long_text_are_asked_again():
    ev = typed(0.5, "25\n") + typed(1.0, "7,5\n") + typed(1.5, "abcdefghijk\n") + typed(2.0, "Deutsch\n")
    rows, _, state = run_task("demographics", {"standard": "", "fields": FIELDS}, ev)
    assert [(r["field"], r["response"], r["attempts"]) for r in rows] == [("sleep", 7.5, 2), ("language", "Deutsch", 2)]
    assert state["demographics"]["columns"]["sleep"] == {
        "Description": "Hours slept." + " n/a: not answered (prefer not to say) or not asked.", "Units": "h"}


# -- whole sessions ----------------------------------------------------------------------------

class ScriptedDevices(BurstSource):
    """BurstSource as the session's clock, screen and keyboard source (what Session asks of a screen)."""

    def info(self):
        return {"backend": "scripted"}

    def frames_lost(self, start, end, window):
        return None

    def timing(self):
        return {"audited": False}

    def frame_log(self):
        return None

    def frame_record(self, path):
        return None


PROTOCOL = """\
schema_version: 1
study: {id: consenttest, title: "Consent test"}
phases:
  consent:
    task: consent
    pages: ["About the study.", "Your rights."]
    contact: "Ask the lab."
  about:
    task: demographics
    fields:
      - {id: sleep, type: number, text: "Hours of sleep?", description: "Hours slept.", low: 0, high: 24, units: h}
      - {id: study, type: choice, text: "Your subject?", description: "Subject studied.",
         levels: {psych: Psychology, other: Other}}
  welcome: {task: instructions, pages: "Hello."}
conditions:
  a: {kind: control, phases: [consent, about, welcome]}
debriefing: {pages: "Thanks."}
"""


def scripted_session(tmp_path: Path, label: str, script: list) -> tuple[int, Path, dict]:
    proto_path = tmp_path / "consent.yaml"
    proto_path.write_text(PROTOCOL, encoding="utf-8")
    prepared = prepare(SessionRequest(protocol=load_protocol(proto_path), participant=label, condition="a",
                                      data_dir=tmp_path / "data", seed=1))
    src = ScriptedDevices(script)
    code = Session(prepared, (src, src, QueuedKeyboard(src), NoSpeaker()), threading.Event(), None).run()
    record = datafile.read_session(datafile.session_json_path(prepared.study, label, 1))
    return code, prepared.study, record


def test_scripted_session_answers_land_in_participants_tsv_and_json(tmp_path):
    script = (burst(1, ["space"]) + burst(2, ["y"]) + typed(3, "130\n") + typed(4, "17\n")     # age 130 refused
              + burst(5, ["1", "return"], gap=0.1) + burst(6, ["f1"]) + burst(6.5, ["return"])     # sex, handedness n/a
              + burst(7, ["f1"]) + burst(8, ["2", "return"], gap=0.1)                               # sleep n/a, other
              + burst(9, ["space"]) + burst(10, ["space"]))                                         # welcome, debriefing
    code, study, record = scripted_session(tmp_path, "s1", script)
    assert code == 0 and record["status"] == "complete"
    assert record["consent"]["decision"] == "agree" and record["consent"]["phase"] == "consent"
    assert record["demographics"]["answers"] == {"age": 17, "sex": "female", "handedness": None, "sleep": None,
                                                 "study": "other"}
    parts = _rows(study / "participants.tsv")
    assert parts == [{"participant_id": "sub-s1", "condition": "a", "yoked_to": "n/a", "status": "complete",
                      "sessions": "1", "age": "17", "sex": "female", "handedness": "n/a", "sleep": "n/a",
                      "study": "other"}]
    described = json.loads((study / "participants.json").read_text())
    assert described["age"]["Units"] == "years" and described["sleep"]["Units"] == "h"
    assert described["sex"]["Levels"] == {"female": "Female", "male": "Male", "other": "Other"}
    assert described["study"]["Levels"] == {"psych": "Psychology", "other": "Other"}
    assert all("n/a" in described[c]["Description"] for c in ("age", "sex", "handedness", "sleep", "study"))
    about = _rows(datafile.beh_path(study, "s1", 1, "about"))
    assert [(r["field"], r["response"], r["prefer_not"], r["attempts"]) for r in about][:2] == \
        [("age", "17", "0", "2"), ("sex", "female", "0", "1")]
    assert about[0]["refused_answers"] == "130"
    sidecar = json.loads(datafile.beh_path(study, "s1", 1, "about").with_suffix(".json").read_text())
    assert set(about[0]) <= set(sidecar)


def test_scripted_decline_writes_nothing_but_the_consent_record(tmp_path):
    code, study, record = scripted_session(tmp_path, "s2", burst(1, ["space"]) + burst(2, ["n"]) + burst(3, ["space"]))
    assert code == EXIT_DECLINED == 5 and record["status"] == "declined"
    assert record["exit"] == {"status": "declined", "reason": "participant declined consent", "code": 5}
    assert record["consent"]["decision"] == "decline" and "demographics" not in record
    assert record["debriefing_shown"] is None
    assert [(p["id"], p["status"]) for p in record["phases"]] == [("consent", "complete"), ("about", "pending"),
                                                                  ("welcome", "pending")]
    files = sorted(p.name for p in (study / "sub-s2").rglob("*") if p.is_file())
    assert files == ["sub-s2_ses-1_session.json", "sub-s2_ses-1_task-consent_beh.json",
                     "sub-s2_ses-1_task-consent_beh.tsv"]


# -- the command line, data-only simulated participants ------------------------------------------

@pytest.fixture(scope="module")
def cli_study(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("cli")
    out = run_lhlab("run", ANAGRAMS, "--participant", "d1", "--condition", "solvable", "--data-dir", data,
                    "--simulate", "default,decline_consent=1", "--seed", "1", check_rc=EXIT_DECLINED)
    (data / "declined-events.json").write_text(json.dumps(events(out.stdout)))
    run_lhlab("run", ANAGRAMS, "--participant", "a1", "--condition", "unsolvable", "--data-dir", data,
              "--simulate", "default,prefer_not_rate=0.5", "--seed", "2", check_rc=0)
    return data


def test_declined_run_exits_5_with_only_the_consent_file(cli_study):
    study = cli_study / "unsolvable-anagrams"
    evs = json.loads((cli_study / "declined-events.json").read_text())
    assert evs[-1]["event"] == "session_end" and evs[-1]["status"] == "declined"
    assert not any(e["event"] in ("debriefing", "trial") for e in evs)
    record = datafile.read_session(datafile.session_json_path(study, "d1", 1))
    assert record["effective_status"] == "declined" and record["consent"]["decision"] == "decline"
    beh = sorted(p.name for p in (study / "sub-d1" / "ses-1" / "beh").iterdir())
    assert beh == ["sub-d1_ses-1_task-consent_beh.json", "sub-d1_ses-1_task-consent_beh.tsv"]
    rows = _rows(study / "sub-d1" / "ses-1" / "beh" / "sub-d1_ses-1_task-consent_beh.tsv")
    assert [r["response"] for r in rows] == ["continue"] * (len(rows) - 1) + ["decline"]
    parts = {r["participant_id"]: r for r in _rows(study / "participants.tsv")}
    assert parts["sub-d1"]["status"] == "declined"
    assert {parts["sub-d1"][c] for c in ("age", "sex", "handedness", "english")} == {"n/a"}
    status = run_lhlab("status", study, check_rc=0).stdout
    assert "sub-d1\tses-1\tsolvable\tdeclined" in status and "participant declined consent" in status
    again = run_lhlab("run", ANAGRAMS, "--participant", "d1", "--condition", "solvable", "--data-dir", cli_study,
                      "--simulate", "default", check_rc=EXIT_BAD_INPUT)
    assert "already has a declined session" in again.stderr and len(again.stderr.strip().splitlines()) == 1


def test_agreeing_participant_goes_on_and_answers_become_columns(cli_study):
    study = cli_study / "unsolvable-anagrams"
    record = datafile.read_session(datafile.session_json_path(study, "a1", 1))
    assert record["status"] == "complete" and record["consent"]["decision"] == "agree"
    assert [p["id"] for p in record["phases"]][:3] == ["consent", "demographics", "welcome"]
    answers = record["demographics"]["answers"]
    assert set(answers) == {"age", "sex", "handedness", "english"}
    row = {r["participant_id"]: r for r in _rows(study / "participants.tsv")}["sub-a1"]
    assert {k: row[k] for k in answers} == {k: ("n/a" if v is None else str(v)) for k, v in answers.items()}
    described = json.loads((study / "participants.json").read_text())
    assert described["english"]["Levels"] == {"first": "Yes, English is my first language",
                                              "other": "No, English is not my first language"}
    # participants.tsv is a summary `lhlab status` rebuilds: the answers come back from the records
    (study / "participants.tsv").unlink()
    run_lhlab("status", study, check_rc=0)
    assert {r["participant_id"]: r for r in _rows(study / "participants.tsv")}["sub-a1"] == row


def test_analysis_never_uses_a_declined_session(cli_study):
    from analysis.exclusions import exclusions
    from analysis.loading import load_study
    study = load_study(cli_study / "unsolvable-anagrams")
    part = study.participants.set_index("participant_id")
    assert part.at["sub-d1", "session_status"] == "declined" and "age" in part.columns
    excl = exclusions(study.participants, study.participants[["participant_id"]].assign(x=1.0), test_columns=["x"])
    d1 = excl[excl["participant_id"] == "sub-d1"]
    assert list(d1["reason_code"]) == ["declined"]


def test_simulate_with_decliners_through_the_registry(tmp_path):
    out = run_lhlab("simulate", ANAGRAMS, "--participants", 3, "--data-dir", tmp_path, "--seed", 4,
                    "--profile", "default,decline_consent=1", check_rc=0).stdout
    assert [line.split()[2] for line in out.splitlines()[:3]] == ["declined"] * 3 and "declined 3" in out
    from experiment.registry import Registry
    with Registry.open(tmp_path / "unsolvable-anagrams") as reg:
        assert {p.status for p in reg.participants()} == {"declined"}


# -- the validator ----------------------------------------------------------------------------

def _protocol(tmp_path: Path, consent: str = "", order: str = "consent, welcome") -> Path:
    text = textwrap.dedent("""\
        schema_version: 1
        study: {id: vt, title: "Validator test"}
        phases:
          consent:
            task: consent
            pages: "Consent."
        """) + textwrap.indent(textwrap.dedent(consent), "    ") + textwrap.dedent(f"""\
          welcome: {{task: instructions, pages: "Hello."}}
        conditions:
          a: {{kind: control, phases: [{order}]}}
        debriefing: {{pages: "Thanks."}}
        """)
    path = tmp_path / "vt.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("consent,order,message", [
    ("", "welcome, consent", "vt.yaml:9: conditions.a.phases.1: the consent phase 'consent' must be the first phase"),
    ("agree_key: f12\n", "consent, welcome", "vt.yaml:7: phases.consent.agree_key: key 'f12' is reserved for "
                                             "withdraw/abort"),
    ("decline_key: escape\n", "consent, welcome", "vt.yaml:7: phases.consent.decline_key: key 'escape' is reserved "
                                                  "for withdraw/abort"),
    ("agree_key: space\n", "consent, welcome", "phases.consent.agree_key: 'space' is keys.continue"),
    ("role: instructions\n", "consent, welcome", "phases.consent.role: a consent phase has the role consent"),
    ("instructions: Read this.\n", "consent, welcome", "phases.consent.instructions: a consent phase shows no "
                                                       "instructions"),
], ids=["consent-not-first", "f12-agrees", "escape-declines", "continue-agrees", "other-role", "instructions"])
def test_validator_refuses_with_one_line_and_exit_2(tmp_path, consent, order, message):
    out = run_lhlab("validate", _protocol(tmp_path, consent, order), check_rc=EXIT_BAD_INPUT)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_validator_checks_demographic_fields(tmp_path):
    path = tmp_path / "dt.yaml"
    path.write_text(textwrap.dedent("""\
        schema_version: 1
        study: {id: dt, title: "Demographics test"}
        phases:
          about:
            task: demographics
            standard: age sex
            prefer_not_key: return
            fields:
              - {id: sex, levels: {female: F, male: M, diverse: D}}
              - {id: status, type: text, text: "?", description: "x"}
              - {id: yesno, type: choice, text: "?", description: "x", levels: {yes: Y, no: N}}
              - {id: hours, type: number, text: "?", description: "x"}
              - {id: Bad-Id, type: text, text: "?", description: "x"}
              - {id: handedness, type: choice}
        conditions:
          a: {kind: control, phases: [about]}
        debriefing: {pages: "Thanks."}
        """), encoding="utf-8")
    out = run_lhlab("validate", path, check_rc=EXIT_BAD_INPUT).stderr
    for expected in ("fields.0.levels: the values of 'sex' are BIDS'", "fields.1.id: 'status' is a column lhlab fills",
                     "fields.2.levels.True: YAML reads an unquoted yes", "fields.3.low: low and high are required",
                     "fields.4.id: must be lower-case", "fields.5.id: 'handedness' is a standard question: list it",
                     "prefer_not_key: 'return' types or edits an answer"):
        assert expected in out, out
    assert "Traceback" not in out


# -- the shipped protocols --------------------------------------------------------------------

SHIPPED = sorted(p for p in (REPO / "protocols").glob("*.yaml") if p.name != "demo.yaml")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_protocols_start_with_consent_then_demographics(path):
    proto = load_protocol(path)
    for cond in proto.conditions.values():
        tasks = [proto.phases[p].task for p in cond.phases]
        assert tasks[:2] == ["consent", "demographics"], (path.name, cond.name)
    consent = next(ph for ph in proto.phases.values() if ph.task == "consent").params
    text = " ".join(consent["pages"]).lower()
    for words in ("f12", "without any disadvantage", "pseudonymous", "unpleasant", "voluntary"):
        assert words in text, (path.name, words)
    assert "control" not in text and "unsolvable" not in text            # the purpose stays neutral
    assert "[LAB NAME]" in consent["contact"] and "[E-MAIL ADDRESS]" in consent["contact"]
    about = next(ph for ph in proto.phases.values() if ph.task == "demographics").params
    assert about["standard"].split() == ["age", "sex", "handedness"] and about["fields"]
