"""One rule set every written trial row obeys (`Task.check_row`, like jsPsych's simulation
consistency check): every condition of every shipped protocol, simulated data-only through the
real task code, writes only rows that pass it; a corrupted row is caught, and the analysis
skips it and says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from audiotools import read_rows, run_session
from conftest import REPO
from experiment import datafile
from experiment.protocol import load_protocol
from experiment.tasks import TASKS

SHIPPED = sorted((REPO / "protocols").glob("*.yaml"))


def simulate_protocol(path: Path, data_dir: Path, repeats: int = 3) -> list[tuple[dict, dict]]:
    """Every condition of `path`, `repeats` participants each (yoked conditions after their
    partners): [(params, row)] for every row written, with the phase's protocol parameters."""
    proto = load_protocol(path)
    out = []
    for r in range(repeats):
        labels: dict[str, str] = {}
        for n, cond in enumerate(sorted(proto.conditions.values(), key=lambda c: c.yoked_to is not None), 1):
            label = f"r{r}c{n}"
            record, study = run_session(proto, data_dir, label, cond.name, seed=100 * r + n,
                                        yoked_to=labels.get(cond.yoked_to))
            assert record["status"] == "complete", record["status"]
            labels[cond.name] = label
            for ph in record["phases"]:
                rows, problems = datafile.read_trials(study / ph["file"])
                assert not problems and rows
                out += [(proto.phases[ph["id"]].params, row) for row in rows]
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, list[tuple[dict, dict]]]:
    data = tmp_path_factory.mktemp("rows")
    return {path.name: simulate_protocol(path, data / path.stem) for path in SHIPPED}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_row_of_every_shipped_protocol_passes_check_row(written, path):
    rows = written[path.name]
    assert rows
    for params, row in rows:
        task = TASKS[row["task"]]
        assert task.check_row(row, params) == [], row
        assert task.check_row(row, {}) == [], row            # what the analysis checks (no protocol)


def _first(written, task: str, **where) -> tuple[dict, dict]:
    for rows in written.values():
        for params, row in rows:
            if row["task"] == task and all(row[k] == v for k, v in where.items()):
                return params, dict(row)
    raise AssertionError(f"no {task} row with {where} in the simulated data")


# (task, which row, column -> corrupted value, a part of the expected problem)
CORRUPT = [
    ("anagram", {"outcome": "solved"}, {"response": "zzzz"}, "response: a solved trial's response is the solution"),
    ("anagram", {"outcome": "solved"}, {"rt": "999"}, "rt: a solved trial has an rt within the time limit"),
    ("anagram", {"outcome": "timeout"}, {"latency_scored": "3"}, "latency_scored: is the time limit"),
    ("anagram", {"outcome": "timeout"}, {"rt": "4.2"}, "rt: is n/a when the item was not solved"),
    ("anagram", {}, {"trial": "0"}, "trial: must be a whole number >= 1"),
    ("anagram", {}, {"onset": "-1"}, "onset: a time must not be negative"),
    ("anagram", {}, {"outcome": "won"}, "outcome: must be one of"),
    ("anagram", {}, {"participant_id": "p1"}, "participant_id: must be sub-"),
    ("anagram", {}, {"task": "rating"}, "task: must be 'anagram'"),
    ("rating", {}, {"response": "11"}, "response: a whole number on the scale (1..10)"),
    ("rating", {}, {"rt": "soon"}, "rt: not a number"),
    ("noise_escape", {"outcome": "escaped"}, {"offset": "1"}, "noise_duration: must be offset - onset"),
    ("noise_escape", {"outcome": "yoked"}, {"noise_duration": "11", "planned_duration": "11"},
     "planned_duration: a 11 s burst exceeds the maximum of 10 s"),
    ("noise_escape", {"outcome": "escaped"}, {"escape_latency": "n/a"}, "escape_latency: escape_latency and"),
    ("noise_escape", {"outcome": "escaped"}, {"light": "failure"}, "light:"),
    ("noise_escape", {"outcome": "yoked"}, {"outcome": "escaped"}, "outcome: inescapable trials end yoked or fixed"),
    ("shuttle", {"outcome": "avoid"}, {"noise_duration": "2"}, "noise_onset: only an avoided trial has no noise"),
    ("shuttle", {"outcome": "escape"}, {"latency": "1"}, "latency: an escape's latency"),
    ("shuttle", {"outcome": "fail"}, {"avoid_run": "3"}, "avoid_run: counts consecutive avoidances"),
    ("discrimination", {"mode": "soluble"}, {"choice_correct": "1", "feedback": "wrong"}, "choice_correct: the choice"),
    ("discrimination", {}, {"chosen_pattern": "red-red-red-red-red"}, "chosen_pattern: is the"),
    ("instructions", {}, {"rt": "n/a", "session": "x"}, "session: not a number"),
]


@pytest.mark.parametrize("case", CORRUPT, ids=lambda c: f"{c[0]}-{'-'.join(c[2])}")
def test_a_corrupted_row_is_caught(written, case):
    task, where, change, expected = case
    params, row = _first(written, task, **where)
    assert TASKS[task].check_row(row, params) == []
    row.update(change)
    problems = TASKS[task].check_row(row, params)
    assert any(expected in p for p in problems), problems


def test_a_row_without_its_columns_is_caught(written):
    params, row = _first(written, "anagram")
    del row["rt"], row["trial"]
    assert TASKS["anagram"].check_row(row, params) == ["columns missing: trial, rt"]


def test_the_analysis_skips_a_row_that_breaks_the_rules_and_says_so(tmp_path):
    from analysis.loading import load_study
    path = REPO / "protocols" / "unsolvable-anagrams.yaml"
    _, study = run_session(path, tmp_path, "p1", "solvable", seed=4)
    rows = read_rows(study, "p1", "test")
    solved = next(r for r in rows if r["outcome"] == "solved")
    tsv = datafile.beh_path(study, "p1", 1, "test")
    text = tsv.read_text(encoding="utf-8")
    line = "\t".join(solved.values())
    assert text.count(line) == 1
    tsv.write_text(text.replace(line, "\t".join({**solved, "response": "wrong"}.values())), encoding="utf-8")
    loaded = load_study(study)
    test = loaded.trials[loaded.trials["phase"] == "test"]
    assert len(test) == len(rows) - 1 and int(solved["trial"]) not in set(test["trial"])
    problem = loaded.problems[loaded.problems["action"] == "row skipped"]
    assert len(problem) == 1 and f"trial {solved['trial']}" in problem["problem"].iloc[0]
    assert "response: a solved trial's response is the solution" in problem["problem"].iloc[0]
