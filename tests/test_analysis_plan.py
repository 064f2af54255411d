"""The protocol's analysis: section: validated with file:line, read back by `lhlab analyze`,
and any change of the protocol after the first session shown as a deviation."""

from __future__ import annotations

import io
import json
import os
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pandas as pd
import pytest
import yaml

from experiment.analysis_plan import TEST_MEASURES
from test_analysis_cohort import ROOT, simulate_study

PROTOCOL = ROOT / "protocols" / "unsolvable-anagrams.yaml"
SHUTTLE = ROOT / "protocols" / "hiroto-seligman-noise-shuttle.yaml"


def lhlab(*argv) -> tuple[int, str, str]:
    from experiment.cli import main
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def analyze(*argv) -> tuple[int, str, str]:
    return lhlab("analyze", *argv)


def protocol_copy(tmp_path: Path, section: str, source: Path = PROTOCOL) -> Path:
    """The protocol with its analysis: section replaced by `section` (its relative stimulus
    paths still resolve: ../stimuli is linked beside the copy)."""
    (tmp_path / "stimuli").symlink_to(ROOT / "stimuli")
    d = tmp_path / "protocols"
    d.mkdir()
    text = source.read_text(encoding="utf-8")
    text = text[:text.index("\nanalysis:")] + "\n" + section
    path = d / source.name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("section, field, message", [
    ("analysis:\n  primary: test.mean_latencyy\n  alpha: 0.05\n", "analysis.primary",
     "unknown measure 'test.mean_latencyy'; known: test.solved, test.failures, test.mean_latency"),
    ("analysis:\n  primary: trainsolvable.mean_latency\n", "analysis.primary", "unknown measure"),
    ("analysis:\n  primary: test.mean_latency\n  alpha: 0.5\n", "analysis.alpha",
     "must be a number between 0 and 0.5, e.g. 0.05 (got 0.5)"),
    ("analysis:\n  primary: test.mean_latency\n  alpha: 0\n", "analysis.alpha", "(got 0)"),
    ("analysis:\n  primary: test.mean_latency\n  alpha: small\n", "analysis.alpha", "(got 'small')"),
    ("analysis:\n  alpha: 0.05\n", "analysis.primary", "is required"),
    ("analysis:\n  primary: test.mean_latency\n  secondary: all\n", "analysis.secondary", "unknown field"),
])
def test_a_bad_analysis_section_fails_validation_with_file_and_line(tmp_path, section, field, message):
    path = protocol_copy(tmp_path, section)
    code, out, err = lhlab("validate", path)
    assert code == 2
    lines = [ln for ln in (out + err).splitlines() if ": analysis" in ln]
    assert len(lines) == 1, out + err
    m = re.match(rf"^(.+):(\d+): {re.escape(field)}: (.*)$", lines[0])
    assert m and m[1].endswith(path.name) and message in m[3], lines[0]
    key = field.split(".")[-1]
    text_lines = path.read_text(encoding="utf-8").splitlines()
    want = next((i for i, ln in enumerate(text_lines, 1) if ln.strip().startswith(f"{key}:")),
                next(i for i, ln in enumerate(text_lines, 1) if ln.startswith("analysis:")))
    assert int(m[2]) == want


def test_shipped_protocols_declare_their_primary_outcome_and_say_why():
    for path in sorted((ROOT / "protocols").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        spec = yaml.safe_load(text)
        test = next(pid for pid, ph in spec["phases"].items() if ph.get("role") == "test")
        task = spec["phases"][test]["task"]
        want = {"anagram": "mean_latency", "shuttle": "failures"}[task]
        assert spec["analysis"] == {"primary": f"{test}.{want}", "alpha": 0.05}, path.name
        comment = text[:text.index("\nanalysis:")].rsplit("\n\n", 1)[-1]
        assert comment.startswith("#") and "Hiroto" in comment and "SHA-256" in comment, path.name


@pytest.fixture(scope="module")
def anagram_study(tmp_path_factory):
    return simulate_study(tmp_path_factory.mktemp("plan"), 6, seed=4)


def test_measure_names_are_the_ones_the_analysis_computes(anagram_study, tmp_path):
    from analysis.measures import participant_measures
    from analysis.loading import load_study
    from test_analysis_outcomes import simulate
    shuttle = simulate(SHUTTLE, tmp_path, 3, seed=2)
    for study, task in ((anagram_study, "anagram"), (shuttle, "shuttle")):
        s = load_study(study)
        cat = participant_measures(s.trials, s.participants).catalog
        test = cat[(cat["role"] == "test") & (cat["task"] == task)]
        declared = TEST_MEASURES[task]
        assert set(declared) <= set(test["measure"]), task
        assert set(test.loc[test["worse"] != "", "measure"]) <= set(declared), task
        kinds = dict(zip(test["measure"], test["kind"]))
        assert {m for m, k in declared.items() if k == "binary"} == {m for m in declared if kinds[m] == "binary"}


def test_no_deviation_is_reported_when_nothing_changed(anagram_study, tmp_path):
    code, out, err = analyze(anagram_study, "--out", tmp_path / "o", "--no-plots", "--quiet")
    assert code == 0, err
    html = (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    assert "No deviation" in html and "Deviation from the plan" not in html
    assert "whose SHA-256 every session record stores" in html


def test_a_protocol_edited_after_the_first_session_is_a_visible_deviation(anagram_study, tmp_path):
    import shutil
    study = tmp_path / "study"
    shutil.copytree(anagram_study, study, ignore=shutil.ignore_patterns("derivatives"))
    last = sorted(study.glob("sub-*/ses-1/*_session.json"), key=lambda p: json.loads(p.read_text())["started"])[-1]
    rec = json.loads(last.read_text(encoding="utf-8"))
    rec["protocol"]["sha256"] = "0" * 64          # the last session ran another version of the file
    last.write_text(json.dumps(rec), encoding="utf-8")
    code, out, err = analyze(study, "--out", tmp_path / "o", "--no-plots")
    assert code == 0, err
    assert "the protocol file changed after the first session: 5 sessions ran" in err
    html = (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    assert "Deviation from the plan: the protocol file changed after the first session" in html
    prov = pd.read_csv(tmp_path / "o" / "provenance.csv")
    assert prov.loc[prov["key"] == "analysis_plan_deviation", "value"].str.contains("changed after").any()


def test_an_edited_plan_file_is_a_deviation_and_a_missing_plan_makes_everything_exploratory(anagram_study, tmp_path):
    edited = protocol_copy(tmp_path, "analysis:\n  primary: test.failures\n  alpha: 0.01\n")
    code, out, err = analyze(anagram_study, "--out", tmp_path / "o", "--no-plots", "--quiet", "--protocol", edited)
    assert code == 0, err
    assert "is not the file the first session ran" in err
    o = pd.read_csv(tmp_path / "o" / "outcomes.csv")
    assert o.iloc[0]["measure"] == "test_failures" and o.iloc[0]["alpha"] == 0.01
    bare = tmp_path / "bare.yaml"
    text = edited.read_text(encoding="utf-8")
    bare.write_text(text[:text.index("\nanalysis:")] + "\n", encoding="utf-8")
    os.replace(bare, edited)
    code, out, err = analyze(anagram_study, "--out", tmp_path / "p", "--no-plots", "--quiet", "--protocol", edited)
    assert code == 0, err
    o = pd.read_csv(tmp_path / "p" / "outcomes.csv")
    assert set(o["plan"]) == {"secondary"} and set(o["analysis"]) == {"exploratory"}
    assert "No primary outcome is declared" in (tmp_path / "p" / "report.html").read_text(encoding="utf-8")


def test_shuttle_criterion_option_is_refused_when_the_task_recorded_its_criterion(tmp_path):
    from test_analysis_outcomes import simulate
    study = simulate(SHUTTLE, tmp_path, 3, seed=6)
    code, out, err = analyze(study, "--out", tmp_path / "o", "--quiet", "--shuttle-criterion", "5")
    assert code == 2 and err.count("\n") == 1
    assert "--shuttle-criterion 5 does not apply: the shuttle task records when each participant reached" in err
    code, out, err = analyze(study, "--out", tmp_path / "o", "--quiet", "--no-plots")
    assert code == 0, err
    cat = pd.read_csv(tmp_path / "o" / "measure_catalog.csv")
    assert cat.loc[cat["column"] == "shuttle_trials_to_criterion", "label"].str.contains("as the task records it").all()
    prov = pd.read_csv(tmp_path / "o" / "provenance.csv")
    assert prov["value"].str.contains("sessions with noise").any()        # noise study: the dose is reported
