"""Discrimination problems: 5 dimensions x 2 values; truthful, fixed-in-advance or no feedback."""

from __future__ import annotations

import textwrap
from collections import defaultdict

from audiotools import read_rows, row_problems, run_session


def protocol(folder):
    path = folder / "disc.yaml"
    path.write_text(textwrap.dedent("""\
        schema_version: 1
        study: {id: disc, title: "Discrimination test", block_size: 3}
        phases:
          sol: {task: discrimination, mode: soluble}
          ins: {task: discrimination, mode: insoluble}
          con: {task: discrimination, mode: control, n_problems: 2, trials_per_problem: 5}
          check:
            task: rating
            questions: [{id: control, text: "Control?", low: 1, high: 10}]
        conditions:
          soluble: {kind: controllable, phases: [sol, check]}
          insoluble: {kind: helpless, phases: [ins, check]}
          control: {kind: control, phases: [con, check]}
        debriefing: {pages: "Some problems had no solution."}
        """))
    return path


def test_cards_and_truthful_feedback_in_soluble_problems(tmp_path):
    path = protocol(tmp_path)
    _, study = run_session(path, tmp_path, "s1", "soluble", seed=4)
    rows = read_rows(study, "s1", "sol")
    assert len(rows) == 40 and {r["problem"] for r in rows} == {"1", "2", "3", "4"}     # 4 x 10 by default
    assert row_problems(path, "sol", rows) == []      # cards differ on every dimension; truthful feedback
    targets = {(r["problem"], r["target_dimension"], r["target_value"]) for r in rows}
    assert len(targets) == 4 and len({t[1:] for t in targets}) == 4          # one distinct target per problem
    # the simulated participant finds the target: the last 3 cards of each problem are mostly correct
    last = [r["choice_correct"] == "1" for r in rows if int(r["problem_trial"]) >= 8]
    assert sum(last) / len(last) > 0.8


def test_insoluble_feedback_is_fixed_in_advance_and_independent_of_the_choice(tmp_path):
    from experiment.protocol import load_protocol, plan
    path = protocol(tmp_path)
    proto = load_protocol(path)
    _, study = run_session(proto, tmp_path, "i1", "insoluble", seed=9)
    rows = read_rows(study, "i1", "ins")
    planned = [t for ph, trials, _ in plan(proto, "insoluble", 9) if ph.id == "ins" for t in trials]
    assert [r["feedback"] for r in rows] == [t["fixed_feedback"] for t in planned]
    assert row_problems(proto, "ins", rows) == []     # no target, no correct choice
    per_problem = defaultdict(int)
    for r in rows:
        per_problem[r["problem"]] += r["feedback"] == "correct"
    assert dict(per_problem) == {"1": 5, "2": 5, "3": 5, "4": 5}              # 50 % "correct"
    # another participant with other choices on the same schedule gets the same feedback
    _, study = run_session(proto, tmp_path, "i2", "insoluble", seed=9, profile="default,choice_median=5")
    other = read_rows(study, "i2", "ins")
    assert [r["feedback"] for r in other] == [r["feedback"] for r in rows]


def test_control_cards_have_no_feedback(tmp_path):
    path = protocol(tmp_path)
    _, study = run_session(path, tmp_path, "c1", "control", seed=2)
    rows = read_rows(study, "c1", "con")
    assert row_problems(path, "con", rows) == []
    assert len(rows) == 10 and {r["feedback"] for r in rows} == {"none"}
