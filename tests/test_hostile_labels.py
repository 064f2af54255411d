"""Participant labels, ids and the experimenter id (issue 9): one definition
(experiment/identifiers.py), a full match, a length limit, and every refusal before any
folder is made."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import LHLAB, REPO
from experiment import identifiers

PROTO = "protocols/unsolvable-anagrams.yaml"

GOOD_LABELS = ["P1", "a", "ABCdef123", "x" * identifiers.LABEL_MAX]
BAD_LABELS = ["P1\n", "\nP1", "P1\r", "P 1", "P-1", "P_1", "", "../P1", "P1/x", "Pü", "P1\x00", "P1\t",
              "x" * (identifiers.LABEL_MAX + 1), "x" * 300, "P1\udcff", "=HYPERLINK(\"x\")", "１２"]


@pytest.mark.parametrize("label", GOOD_LABELS)
def test_good_labels(label):
    assert identifiers.check_label(label) is None and identifiers.is_label(label)


@pytest.mark.parametrize("label", BAD_LABELS, ids=repr)
def test_bad_labels_by_full_match_and_length(label):
    problem = identifiers.check_label(label, "--participant")
    assert problem and problem.startswith("--participant") and "\n" not in problem
    assert not identifiers.is_label(label)
    # the exported patterns are anchored at the very end: even .match cannot accept a trailing newline
    assert not identifiers.LABEL_RE.match(label) or len(label) > identifiers.LABEL_MAX


@pytest.mark.parametrize("text", ["demo\n", "Demo", "-demo", "de mo", "a" * 65, 5, None])
def test_bad_study_ids(text):
    assert identifiers.check_study_id(text)


@pytest.mark.parametrize("text", ["space\n", "F12", "f 12", "", "k" * 33, 1])
def test_bad_key_names(text):
    assert identifiers.check_key(text)
    if isinstance(text, str):
        assert not identifiers.KEY_RE.match(text) or len(text) > identifiers.KEY_MAX


@pytest.mark.parametrize("text", ["ab\ncd", "x\x1b[2J", "a" * 201, "ok\udcff"])
def test_bad_free_text(text):
    assert identifiers.check_free_text(text, "--experimenter")


def test_no_second_definition_of_the_patterns():
    """The label, study-id and key patterns are defined once (experiment/identifiers.py)."""
    offenders = []
    for path in [p for d in ("experiment", "gui", "analysis") for p in (REPO / d).rglob("*.py")]:
        if path.relative_to(REPO).as_posix() == "experiment/identifiers.py":
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in ("[A-Za-z0-9]+", "[a-z0-9_]+", "[a-z0-9][a-z0-9-]*"):
            if pattern in text:
                offenders.append(f"{path.relative_to(REPO)}: {pattern}")
    assert not offenders, offenders


def _run(tmp_path, *args: bytes | str) -> subprocess.CompletedProcess:
    argv = [*LHLAB, "run", PROTO, "--condition", "solvable", "--data-dir", str(tmp_path / "data"),
            "--simulate", "default", *args]
    return subprocess.run([a.encode() if isinstance(a, str) else a for a in argv], cwd=REPO,
                          capture_output=True, timeout=60, env=os.environ)


CLI = [
    ("label with newline", ["--participant", "P1\n"], b"--participant"),
    ("300-character label", ["--participant", "P" * 300], b"at most 64 characters"),
    ("label with invalid UTF-8", [b"--participant", b"P\xff1"], b"--participant"),
    ("experimenter with invalid UTF-8", ["--participant", "P1", b"--experimenter", b"jo\xffe"],
     b"not valid UTF-8"),
    ("experimenter with a newline", ["--participant", "P1", "--experimenter", "jo\ne"], b"control characters"),
    ("experimenter too long", ["--participant", "P1", "--experimenter", "j" * 500], b"at most 200"),
    ("400-digit session number", ["--participant", "P1", "--session", "9" * 400], b"--session must be"),
    ("400-digit seed", ["--participant", "P1", "--seed", "9" * 400], b"--seed must be"),
    ("data folder name too long", ["--participant", "P1", "--data-dir", "/tmp/" + "d" * 300], b"too long"),
]


@pytest.mark.parametrize("case", CLI, ids=[c[0] for c in CLI])
def test_cli_refuses_before_any_folder_is_made(tmp_path, case):
    _, args, message = case
    out = _run(tmp_path, *args)
    assert out.returncode == 2, out.stderr
    assert b"Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert message in out.stderr, out.stderr
    assert not (tmp_path / "data").exists()


def test_a_formula_as_experimenter_id_is_recorded_faithfully(tmp_path):
    """Raw data keep the exact text; the spreadsheet copies in the analysis neutralise it
    (tests/test_hostile_data.py)."""
    out = _run(tmp_path, "--participant", "P1", "--experimenter", '=HYPERLINK("http://x","y")', "--seed", "1")
    assert out.returncode == 0, out.stderr
    import json
    rec = json.loads((tmp_path / "data/unsolvable-anagrams/sub-P1/ses-1/sub-P1_ses-1_session.json").read_text())
    assert rec["experimenter"] == '=HYPERLINK("http://x","y")'
