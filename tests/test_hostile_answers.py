"""Typed answers (issue 9): every answer recoverable exactly, a typed 'n/a' never reads as
missing, '|' inside an answer never splits it; formulas never run from the analysis CSVs
(the raw TSVs and Parquet keep the exact text)."""

from __future__ import annotations

import csv
import json
import random
import shutil

import pandas as pd
import pytest

from experiment import datafile
from experiment.devices import KeyPress, TextEntry
from experiment.devices.virtual import data_only_devices
from experiment.protocol import load_protocol
from experiment.tasks import TASKS
from experiment.tasks.base import PhaseContext
from test_protocol import BASE, _write

NASTY = ["n/a", "N/A", "NA", "a|b", "|", "", " ", "tab\there", "new\nline", "cr\rx", 'say "hi"', "100%", "%2F",
         "%", "=cmd|' /C calc'!A0", "+1", "-2", "@SUM(A1)", "ü€😀", "\x00\x1b[31m", "a/b/c", "\\", "'quoted'"]


@pytest.mark.parametrize("text", NASTY, ids=repr)
def test_escape_round_trip(text):
    cell = datafile.escape_text(text)
    assert datafile.unescape_text(cell) == text
    assert cell != datafile.NA and not any(c in cell for c in '|\t\n\r"/\x00')


def test_answer_lists_round_trip():
    rng = random.Random(3)
    for _ in range(200):
        answers = rng.sample([a for a in NASTY if a], rng.randint(1, 5))
        assert datafile.split_answers(datafile.join_answers(answers)) == answers
    assert datafile.join_answers([]) is None and datafile.split_answers(datafile.NA) == []


class Typist:
    """A scripted participant: trial n submits TYPED[n] in turn, then waits for the time limit."""

    def __init__(self, typed: dict[int, list[str]]):
        self.typed = {n: list(a) for n, a in typed.items()}
        self.view = None

    def see(self, view, t):
        self.view = view

    def enter_phase(self, role):
        pass

    def press(self, keys, t, until):
        return KeyPress(keys[0], t + 0.5)

    def answer_text(self, t, until, extra_keys):
        left = self.typed.get(self.view.data["trial"], [])
        if not left:
            return None
        return TextEntry(left.pop(0), t + 1.0, t + 0.4)


TYPED = {1: ["n/a"], 2: ["a|b", "c"], 3: ["=cmd|' /C calc'!A0"], 4: [],
         5: ['say "hi"\there', " Mixed Case ", "100%", "ü€", "@x"]}


def test_the_anagram_task_records_every_answer_exactly(tmp_path):
    proto = load_protocol(_write(tmp_path, BASE))
    phase = proto.phases["train"]                 # unsolvable items: every answer is wrong
    task = TASKS["anagram"]
    schedule = task.plan(phase.params, random.Random(1), proto.base_dir)
    clock, screen, keyboard, speaker = data_only_devices(Typist(TYPED), proto.keys)
    path = tmp_path / "sub-x_ses-1_task-train_beh.tsv"
    log = datafile.TrialLog(path, [c.name for c in task.columns], durable=False)
    common = {"participant_id": "sub-x", "session": 1, "condition": "a", "phase": "train", "role": "training",
              "task": "anagram"}
    ctx = PhaseContext("train", "training", phase.params, clock, screen, keyboard, speaker, proto.texts,
                       proto.keys, lambda row: log.write({**common, **row}), lambda *a, **k: None,
                       proto.base_dir)
    task.run(ctx, schedule)
    log.close()
    text = path.read_text(encoding="utf-8")
    assert '"' not in text                         # no csv quoting: the analysis' fast path reads it
    rows, problems = datafile.read_trials(path)
    assert not problems and len(rows) == 5
    for n, row in enumerate(rows, 1):
        typed = TYPED[n]
        assert datafile.split_answers(row["answers"]) == typed, row
        assert int(row["attempts"]) == len(typed)
        assert datafile.split_answers(row["wrong_answers"]) == [t.strip().lower() for t in typed]
        if typed:
            assert row["response"] != datafile.NA
            assert datafile.unescape_text(row["response"]) == typed[-1].strip().lower()
        else:
            assert row["response"] == row["answers"] == datafile.NA          # no answer: n/a, attempts 0
        assert task.check_row(row, phase.params) == [], row
    # pandas reads 'n/a' as missing: the typed one is not
    df = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
    assert df["response"].notna().tolist() == [True, True, True, False, True]


def test_analysis_csvs_neutralise_formulas_and_parquet_keeps_them(tmp_path):
    from analysis.spreadsheet import neutralise
    df = pd.DataFrame({"answer": ["=cmd|' /C calc'!A0", "+1", "-x", "@SUM(A1)", "\tx", "ok", None],
                       "latency": [-0.5, 1, 2, 3, 4, 5, 6]})
    out = neutralise(df)
    assert out["answer"].tolist()[:6] == ["'=cmd|' /C calc'!A0", "'+1", "'-x", "'@SUM(A1)", "'\tx", "ok"]
    assert out["answer"].isna().iloc[6] and out["latency"].tolist() == df["latency"].tolist()
    assert df["answer"].iloc[0] == "=cmd|' /C calc'!A0"             # the input is not changed


def test_lhlab_analyze_writes_safe_csvs(tmp_path):
    from analysis.pipeline import Options, analyze, write_outputs
    from analysis.exclusions import ExclusionRules
    from test_analysis_cohort import run_sessions
    study = run_sessions(tmp_path / "data", 6, seed=11)
    formula = '=HYPERLINK("http://example.org","x")'
    for rec_path in study.glob("sub-*/ses-*/*_session.json"):
        rec = json.loads(rec_path.read_text())
        rec["experimenter"] = formula
        rec_path.write_text(json.dumps(rec))
    tag = "<img src=x onerror=alert(1)>"
    (next(study.glob("sub-*")) / tag).write_text("x")           # reported as an unexpected file
    result = analyze(study, Options(rules=ExclusionRules(pilot=False)))
    out = tmp_path / "out"
    report = write_outputs(result, out, plots=False)
    html = report.read_text(encoding="utf-8")
    assert tag not in html and "&lt;img src=x onerror=alert(1)&gt;" in html      # shown, never run
    with open(out / "sessions.csv", newline="") as f:
        cells = [r["experimenter"] for r in csv.DictReader(f)]
    assert cells and all(c == "'" + formula for c in cells)
    if (out / "trials.parquet").exists():
        assert result.tables["sessions"]["experimenter"].eq(formula).all()
    shutil.rmtree(out)
