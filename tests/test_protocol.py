"""Protocol validation: shipped files pass; bad files fail with file:line: field: message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_lhlab
from experiment.errors import ProtocolError
from experiment.protocol import load_protocol, plan

SHIPPED = sorted((REPO / "protocols").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_protocols_validate_and_plan(path):
    proto = load_protocol(path)
    for cond in proto.conditions:
        schedule = plan(proto, cond, seed=1)
        assert schedule and all(trials for _, trials, _ in schedule)
        assert plan(proto, cond, seed=1) == schedule                 # seeded: same schedule
    assert len(proto.sha256) == 64


def test_plan_differs_by_seed_and_keeps_proportion():
    proto = load_protocol(REPO / "protocols/unsolvable-anagrams.yaml")
    a = {ph.id: t for ph, t, _ in plan(proto, "unsolvable", 1)}
    b = {ph.id: t for ph, t, _ in plan(proto, "unsolvable", 2)}
    assert [i["item_id"] for i in a["trainunsolvable"]] != [i["item_id"] for i in b["trainunsolvable"]]
    assert [i["item_id"] for i in a["test"]] == [i["item_id"] for i in b["test"]]   # order: fixed (issue 10)
    assert all(not i["solvable"] for i in a["trainunsolvable"])
    assert len(a["test"]) == 20 and len({i["item_id"] for i in a["test"]}) == 20


def _write(tmp_path: Path, text: str) -> Path:
    # Bad protocols live beside a copy-free reference to the real stimuli folder.
    text = text.replace("STIM/", str(REPO / "stimuli" / "anagrams") + "/")
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    return path


BASE = """\
schema_version: 1
study:
  id: t
  title: T
phases:
  train:
    task: anagram
    items: STIM/training.tsv
    n_trials: 5
    unsolvable_proportion: 1
    time_limit: 20
    criterion_run: 0
  check:
    task: rating
    questions:
      - {id: control, text: "Control?", low: 1, high: 10}
  test:
    task: anagram
    role: test
    items: STIM/patterned-34251.tsv
    n_trials: 5
    pattern: [3, 4, 2, 5, 1]
conditions:
  a:
    kind: helpless
    phases: [train, check, test]
  b:
    kind: control
    phases: [check, test]
debriefing:
  pages: "Explained."
"""


def test_base_fixture_is_valid(tmp_path):
    load_protocol(_write(tmp_path, BASE))


BAD = [
    # (description, replace old -> new, expected line (or text on it), expected field, expected message part)
    ("time limit <= 0", ("time_limit: 20", "time_limit: -5"), "time_limit: -5", "phases.train.time_limit", "must be > 0"),
    ("wrong type", ("time_limit: 20", "time_limit: soon"), "soon", "phases.train.time_limit", "must be a number"),
    ("bool is not a number", ("n_trials: 5\n    unsolvable", "n_trials: true\n    unsolvable"), "n_trials: true",
     "phases.train.n_trials", "whole number"),
    ("unknown key", ("criterion_run: 0", "criterion_run: 0\n    colour: red"), "colour", "phases.train.colour", "unknown field"),
    ("unknown task", ("task: rating", "task: ratings"), "ratings", "phases.check.task", "unknown task 'ratings'"),
    ("missing stimulus file", ("STIM/training.tsv", "STIM/nope.tsv"), "nope.tsv", "phases.train.items", "stimulus file not found"),
    ("criterion longer than phase", ("pattern: [3, 4, 2, 5, 1]", "pattern: [3, 4, 2, 5, 1]\n    criterion_run: 6"), "criterion_run: 6",
     "phases.test.criterion_run", "longer than the phase"),
    ("pattern not obeyed", ("pattern: [3, 4, 2, 5, 1]", "pattern: [1, 2, 3, 4, 5]"), "pattern: [1", "phases.test.pattern",
     "does not follow"),
    ("too many unsolvable", ("n_trials: 5\n    unsolvable", "n_trials: 50\n    unsolvable"), "n_trials: 50", "phases.train.n_trials",
     "unsolvable items"),
    ("unknown phase in condition", ("phases: [check, test]", "phases: [check, tset]"), "tset", "conditions.b.phases.1",
     "unknown phase 'tset'"),
    ("bad kind", ("kind: control", "kind: controls"), "controls", "conditions.b.kind", "must be one of"),
    ("test before training", ("phases: [train, check, test]", "phases: [test, train, check]"), "[test, train",
     "conditions.a.phases", "before the end of training"),
    ("no check after training", ("phases: [train, check, test]", "phases: [check, train, test]"), "[check, train",
     "conditions.a.phases", "manipulation check"),
    ("schema version", ("schema_version: 1", "schema_version: 9"), 1, "schema_version", "reads schema_version 1"),
    ("no debriefing", ('debriefing:\n  pages: "Explained."\n', ""), 1, "debriefing", "is required"),
    ("bad study id", ("id: t", "id: T_1"), "T_1", "study.id", "lower-case"),
    ("rating low >= high", ("low: 1, high: 10", "low: 10, high: 1"), "low: 10", "phases.check.questions.0.high", "must be > low"),
    ("phase id not BIDS-safe", ("  train:\n", "  train_1:\n"), "train_1:", "phases.train_1", "letters and digits"),
    ("reserved key", ("criterion_run: 0", "criterion_run: 0\n    allow_skip: true\n    skip_key: f12"), "skip_key",
     "phases.train.skip_key", "reserved"),
    ("duplicate key", ("time_limit: 20", "time_limit: 20\n    time_limit: 30"), "time_limit: 30", "phases.train.time_limit", "duplicate"),
    ("code in YAML", ("title: T", "title: !!python/object/apply:os.system ['echo pwned']"), "pwned", "", "unsupported YAML tag"),
    ("syntax error", ("  title: T", "  title: [T"), 5, "", "YAML syntax: expected ',' or ']', but got ':' (while parsing a flow sequence on line 4)"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_protocol_reports_file_line_field(tmp_path, case):
    _, (old, new), line, field, message = case
    assert old in BASE
    text = BASE.replace(old, new, 1)
    path = _write(tmp_path, text)
    if isinstance(line, str):      # the line that holds the mistake
        line = next(i for i, ln in enumerate(text.splitlines(), 1) if line in ln)
    with pytest.raises(ProtocolError) as err:
        load_protocol(path)
    first = err.value.problems[0]
    assert first.startswith(f"{path}:{line}: "), first
    if field:
        assert f": {field}: " in first, first
    assert message in first, first


def test_every_problem_is_reported_at_once(tmp_path):
    text = BASE.replace("time_limit: 20", "time_limit: 0").replace("kind: control", "kind: x") \
        .replace("task: rating", "task: nope")
    with pytest.raises(ProtocolError) as err:
        load_protocol(_write(tmp_path, text))
    fields = [p.split(": ")[1] for p in err.value.problems]
    assert fields[:3] == ["phases.train.time_limit", "phases.check.task", "conditions.b.kind"], err.value.problems


def test_validate_cli_exit_codes_and_one_line_per_problem(tmp_path):
    good = run_lhlab("validate", *SHIPPED, check_rc=0)
    assert good.stdout.count(": ok") == len(SHIPPED)
    bad = _write(tmp_path, BASE.replace("time_limit: 20", "time_limit: -1"))
    out = run_lhlab("validate", bad, check_rc=2)
    assert "Traceback" not in out.stderr
    assert re.fullmatch(rf"{re.escape(str(bad))}:11: phases\.train\.time_limit: must be > 0 \(got -1\)\n", out.stderr)


def test_code_in_protocol_is_never_run(tmp_path):
    marker = tmp_path / "pwned"
    path = _write(tmp_path, BASE.replace("title: T", f"title: !!python/object/apply:os.system ['touch {marker}']"))
    run_lhlab("validate", path, check_rc=2)
    run_lhlab("plan", path, "--condition", "a", check_rc=2)
    assert not marker.exists()


def test_plan_cli_prints_schedule_and_duration():
    out = run_lhlab("plan", "protocols/unsolvable-anagrams.yaml", "--condition", "unsolvable", "--seed", "4", check_rc=0)
    assert "test (anagram, test): 20 trials" in out.stdout and "Expected duration" in out.stdout
    bad = run_lhlab("plan", "protocols/unsolvable-anagrams.yaml", "--condition", "nope", check_rc=2)
    assert "choose one of: solvable, unsolvable, notraining" in bad.stderr


HOSTILE = [
    ("NaN time", ("time_limit: 20", "time_limit: .nan"), "phases.train.time_limit", "finite number"),
    ("infinite time", ("time_limit: 20", "time_limit: .inf"), "phases.train.time_limit", "finite number"),
    ("absurd trial count", ("n_trials: 5\n    unsolvable", "n_trials: 1000000000\n    unsolvable"),
     "phases.train.n_trials", "at most 10000"),
    ("task is a list", ("task: rating", "task: [rating]"), "phases.check.task", "unknown task"),
    ("phase entry is a mapping", ("phases: [check, test]", "phases: [{a: 1}, test]"), "conditions.b.phases.0",
     "must be a phase id"),
    ("yoked_to is a list", ("kind: control", "kind: control\n    yoked_to: [a]"), "conditions.b.yoked_to",
     "must name another condition"),
    ("question id is a list", ("id: control, text", "id: [a], text"), "phases.check.questions.0.id", "letters and digits"),
    ("withdraw is a letter", ("schema_version: 1", "schema_version: 1\nkeys: {withdraw: a}"), "keys.withdraw",
     "participants answer with"),
    ("withdraw is continue", ("schema_version: 1", "schema_version: 1\nkeys: {continue: f12}"), "keys.withdraw",
     "participants answer with"),
    ("abort on an arrow", ("schema_version: 1", "schema_version: 1\nkeys: {abort: left}"), "keys.abort",
     "participants answer with"),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_values_are_refused_cleanly(tmp_path, case):
    _, (old, new), field, message = case
    assert old in BASE
    path = _write(tmp_path, BASE.replace(old, new, 1))
    out = run_lhlab("validate", path, check_rc=2)
    assert "Traceback" not in out.stderr
    assert f": {field}: " in out.stderr and message in out.stderr, out.stderr


def test_deeply_nested_yaml_is_refused(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("schema_version: 1\nstudy: " + "[" * 3000 + "]" * 3000 + "\n")
    out = run_lhlab("validate", path, check_rc=2)
    assert "Traceback" not in out.stderr and "nested too deeply" in out.stderr
