"""The anagram stimulus sets in stimuli/anagrams/ are what PARADIGMS.md asks for.

The checks are written out here rather than imported from the generator, so a bug
in make_anagrams.py cannot hide itself; only the lexicon look-ups are shared.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `stimuli` is a plain folder, not an installed package

from stimuli import lexicon as lx  # noqa: E402
from stimuli import make_anagrams as gen  # noqa: E402

pytest.importorskip("wordfreq")
from wordfreq import zipf_frequency  # noqa: E402

ANAGRAMS = ROOT / "stimuli" / "anagrams"
HEADER = "item_id\tletters\tsolution\tsolvable"
PATTERN = (3, 4, 2, 5, 1)
# name: (solvable count, unsolvable count, word length, minimum zipf of solutions)
SETS = {
    "training": (30, 30, 5, 3.5),
    "patterned-34251": (30, 0, 5, 3.5),
    "practice": (4, 0, 4, 4.0),
    "repair": (6, 0, 4, 4.5),
}
VOWELS = set("aeiou")


def read_rows(name: str) -> list[dict]:
    lines = (ANAGRAMS / f"{name}.tsv").read_text(encoding="utf-8").split("\n")
    keys = lines[0].split("\t")
    return [dict(zip(keys, line.split("\t"))) for line in lines[1:] if line]


@pytest.fixture(scope="module")
def words():
    """The lexicon, loaded once for the module (about 1 s)."""
    return lx.load_lexicon()[0]


@pytest.fixture(scope="module")
def rows():
    return {name: read_rows(name) for name in SETS}


def all_items(rows, solvable=None):
    for name, items in rows.items():
        for r in items:
            if solvable is None or r["solvable"] == ("1" if solvable else "0"):
                yield name, r


# ---- the same checks, as functions, so we can show they reject bad items ----

def solvable_problems(letters: str, solution: str, words) -> list[str]:
    problems = []
    if lx.solutions(letters) != [solution]:
        problems.append(f"lexicon solutions {lx.solutions(letters)}")
    if letters in words:
        problems.append("letters are a word")
    if sorted(letters) != sorted(solution) or letters == solution:
        problems.append("not a scramble of the solution")
    rivals = lx.any_reading(letters, gen.RIVAL_ZIPF) - {solution}
    if rivals:
        problems.append(f"other readings {sorted(rivals)}")
    return problems


def unsolvable_problems(letters: str) -> list[str]:
    problems = []
    if lx.solutions(letters):
        problems.append(f"lexicon solutions {lx.solutions(letters)}")
    readings = lx.any_reading(letters, gen.UNSOLVABLE_ZIPF)
    if readings:
        problems.append(f"readings {sorted(readings)}")
    return problems


def stats(strings):
    strings = list(strings)
    letters = "".join(strings)
    return (sum(c in VOWELS for s in strings for c in s) / len(strings),
            sum(gen.LETTER_FREQ[c] for c in letters) / len(letters))


# ---- lexicon helper ----

def test_lexicon_info_and_record(words):
    _, info = lx.load_lexicon()
    assert info["name"] == "english-words web2+gcide (lower, alpha)"
    assert info["size"] == len(words) > 200_000
    # `alpha` means "non-alphanumerics removed": a few entries keep digits ('1st').
    assert all(w.isalnum() and w == w.lower() for w in words)
    record = json.loads((ANAGRAMS / "LEXICON.json").read_text(encoding="utf-8"))
    assert {k: record[k] for k in info} == info
    assert record["generated_by"] == "stimuli/make_anagrams.py"
    assert record["seed"] == gen.SEED


def test_index_finds_trochee_and_extra_check_finds_trochees(words):
    # The index works: 'ocherte' spells 'trochee'.
    assert "trochee" in words
    assert "trochee" in lx.solutions("ocherte")
    assert {"earth", "heart", "hater"} <= set(lx.solutions("heart"))
    # web2/gcide lack plurals, so the lexicon alone passes the published
    # "impossible" OCHERSTE; the inflection-aware check must not.
    assert "trochees" not in words
    assert "trochees" in lx.any_reading("ocherste")


def test_checks_reject_bad_items(words):
    assert unsolvable_problems("ocherste")  # = trochees
    assert unsolvable_problems("aercs")  # cares/races/acres: not in web2, still words
    assert solvable_problems("aecrs", "scare", words)  # many solutions
    assert solvable_problems("heart", "earth", words)  # letters are a word
    assert solvable_problems("aihrc", "chair", words)  # archi, chria are in web2
    assert solvable_problems("owlnc", "clown", words) == []


# ---- file format ----

@pytest.mark.parametrize("name", SETS)
def test_file_format_exact(name):
    raw = (ANAGRAMS / f"{name}.tsv").read_bytes()
    text = raw.decode("utf-8")
    assert "\r" not in text and text.endswith("\n") and not text.endswith("\n\n")
    lines = text[:-1].split("\n")
    assert lines[0] == HEADER
    for line in lines[1:]:
        assert line.count("\t") == 3, line
        item_id, letters, solution, solvable = line.split("\t")
        assert re.fullmatch(r"[a-z]{2}\d{2}", item_id)
        assert re.fullmatch(r"[a-z]+", letters)
        assert solvable in ("0", "1")
        assert re.fullmatch(r"[a-z]+" if solvable == "1" else "", solution), line


def test_counts_lengths_and_ids(rows):
    for name, (n_yes, n_no, length, _) in SETS.items():
        items = rows[name]
        assert sum(r["solvable"] == "1" for r in items) == n_yes, name
        assert sum(r["solvable"] == "0" for r in items) == n_no, name
        assert {len(r["letters"]) for r in items} == {length}, name
    ids = [r["item_id"] for _, r in all_items(rows)]
    assert len(ids) == len(set(ids))


def test_solutions_are_common_and_not_blocked(rows):
    for name, r in all_items(rows, solvable=True):
        assert zipf_frequency(r["solution"], "en") >= SETS[name][3], r
        assert r["solution"] not in gen.BLOCKLIST | gen.NOT_ANSWERS, r


def test_no_solution_in_two_sets(rows):
    seen = {}
    for name, r in all_items(rows, solvable=True):
        assert r["solution"] not in seen, (r["solution"], name, seen.get(r["solution"]))
        seen[r["solution"]] = name


# ---- solvability ----

def test_solvable_items_have_exactly_their_solution(rows, words):
    bad = {r["item_id"]: p for _, r in all_items(rows, solvable=True)
           if (p := solvable_problems(r["letters"], r["solution"], words))}
    assert not bad


def test_unsolvable_items_have_no_solution(rows):
    bad = {r["item_id"]: p for _, r in all_items(rows, solvable=False)
           if (p := unsolvable_problems(r["letters"]))}
    assert not bad


def test_random_scrambles_leave_no_letter_in_place(rows):
    for name in ("training", "practice", "repair"):
        for r in rows[name]:
            if r["solvable"] == "1":
                assert all(a != b for a, b in zip(r["letters"], r["solution"])), r


# ---- patterned set ----

def test_patterned_set_follows_34251(rows):
    sidecar = json.loads((ANAGRAMS / "patterned-34251.json").read_text(encoding="utf-8"))
    assert sidecar == {"pattern": list(PATTERN)}
    assert "".join("chair"[p - 1] for p in PATTERN) == "aihrc"  # the documented example
    items = rows["patterned-34251"]
    for r in items:
        s = r["solution"]
        assert r["letters"] == "".join(s[p - 1] for p in PATTERN), r
    assert sum(len(set(r["solution"])) == 5 for r in items) >= 20
    assert all(len(set(r["solution"])) == 5 for r in items[:20])  # the test uses these


# ---- training halves look alike ----

def test_training_halves_are_matched(rows):
    yes = [r["letters"] for r in rows["training"] if r["solvable"] == "1"]
    no = [r["letters"] for r in rows["training"] if r["solvable"] == "0"]
    assert {len(s) for s in yes} == {len(s) for s in no} == {5}
    (v_yes, f_yes), (v_no, f_no) = stats(yes), stats(no)
    assert abs(v_yes - v_no) < 0.3
    assert abs(f_yes - f_no) / f_yes < 0.15


# ---- reproducible ----

def test_generator_reproduces_committed_files(tmp_path, words, capsys):
    assert gen.main(["--out", str(tmp_path)]) == 0
    committed = sorted(p.name for p in ANAGRAMS.iterdir() if p.is_file())
    assert sorted(p.name for p in tmp_path.iterdir()) == committed
    for name in committed:
        assert (tmp_path / name).read_bytes() == (ANAGRAMS / name).read_bytes(), name
    assert "training solvable: mean vowels" in capsys.readouterr().out
