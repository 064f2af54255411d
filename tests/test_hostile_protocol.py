"""Hostile and damaged protocol files (issue 9): every one is refused quickly with one
`file:line: field: message` line, exit 2 and no traceback; nothing hangs or eats memory."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from conftest import REPO, run_lhlab
from experiment.errors import ProtocolError
from experiment.protocol import load_protocol
from test_protocol import BASE, _write

STIM = REPO / "stimuli" / "anagrams"
LINE_RE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<field>[^:]+): (?P<message>.+)$")


def _refused(path: Path, field: str, message: str, line: int | None = None) -> str:
    """load_protocol raises ProtocolError whose first problem names field and message."""
    with pytest.raises(ProtocolError) as err:
        load_protocol(path)
    first = err.value.problems[0]
    m = LINE_RE.match(first)
    assert m and "\n" not in first, first
    assert m["file"] == str(path), first
    assert m["field"] == field, first
    assert message in m["message"], first
    if line is not None:
        assert int(m["line"]) == line, first
    return first


# -- whole-file problems: size, alias bombs, encodings, control characters --------------------

BILLION_LAUGHS = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10)) + "schema_version: 1\n"


def test_alias_bomb_is_refused_fast(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BILLION_LAUGHS, encoding="utf-8")
    t0 = time.perf_counter()
    first = _refused(path, "(file)", "expands to more than")
    assert time.perf_counter() - t0 < 1.0, first


@pytest.mark.parametrize("kind", ["list", "comments"])
def test_a_50_mb_file_is_refused_before_it_is_parsed(tmp_path, kind):
    path = tmp_path / "huge.yaml"
    line = "- 1\n" if kind == "list" else "# padding padding padding padding padding padding\n"
    with open(path, "w") as f:
        f.write("schema_version: 1\nitems:\n" if kind == "list" else BASE)
        f.write(line * (50 * 2**20 // len(line)))
    t0 = time.perf_counter()
    _refused(path, "(file)", "too large (at most 1.0 MB)", line=1)
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("kind", ["block list", "flow mapping", "aliases"])
def test_a_1_mb_file_of_small_values_is_refused_fast(tmp_path, kind):
    """Under the size limit but far more values than a protocol holds: refused while composing."""
    body = {"block list": "items:\n" + "- 1\n" * 250_000,
            "flow mapping": "m: {" + ", ".join(f"k{i}: {i}" for i in range(100_000)) + "}\n",
            "aliases": "a: &a [x, x, x, x]\n" + "".join(f"b{i}: *a\n" for i in range(100_000))}[kind]
    path = tmp_path / "many.yaml"
    path.write_text(("schema_version: 1\n" + body)[:2**20 - 10], encoding="utf-8")
    t0 = time.perf_counter()
    _refused(path, "(file)", "more than 5000 values")
    assert time.perf_counter() - t0 < 1.0


def test_a_file_just_under_the_limit_is_not_refused_for_size(tmp_path):
    path = _write(tmp_path, BASE + "#" * (2**20 - len(BASE) - 200) + "\n")
    load_protocol(path)


ENCODINGS = [
    ("NUL byte", lambda b: b.replace(b"title: T", b"title: T\x00"), 4, "control character"),
    ("escape character", lambda b: b.replace(b"title: T", b"title: T\x1b[31m"), 4, "control character"),
    ("C1 control", lambda b: b.replace(b"title: T", "title: T\x85x".encode()), 4, "control character"),
    ("invalid UTF-8", lambda b: b.replace(b"title: T", b"title: T\xff\xfe"), 4, "not UTF-8"),
    ("Latin-1", lambda b: b.replace(b"title: T", "title: Tübingen".encode("latin-1")), 4, "not UTF-8"),
    ("UTF-16 with BOM", lambda b: b.decode().encode("utf-16"), 1, "not UTF-8"),
    ("UTF-16 without BOM", lambda b: b.decode().encode("utf-16-le"), 1, "control character"),
    ("truncated UTF-8 sequence", lambda b: b.replace(b"title: T", b"title: T\xe2\x82"), 4, "not UTF-8"),
]


@pytest.mark.parametrize("case", ENCODINGS, ids=[c[0] for c in ENCODINGS])
def test_bad_bytes_name_their_line(tmp_path, case):
    _, damage, line, message = case
    path = _write(tmp_path, BASE)
    path.write_bytes(damage(path.read_bytes()))
    _refused(path, "(file)", message, line=line)


def test_utf8_bom_is_fine(tmp_path):
    path = _write(tmp_path, BASE)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    load_protocol(path)


def test_protocol_that_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    _refused(fifo, "(file)", "pipe (FIFO)", line=1)
    assert time.perf_counter() - t0 < 1.0
    _refused(Path("/dev/zero"), "(file)", "a device", line=1)
    _refused(tmp_path, "(file)", "a folder", line=1)
    _refused(tmp_path / "missing.yaml", "(file)", "not found (check the path)", line=1)
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    _refused(loop, "(file)", "symlink loop", line=1)


# -- values: numbers, booleans, ids, keys ------------------------------------------------------

VALUES = [
    # (description, (old, new), field, message)
    ("400-digit integer as a time", ("time_limit: 20", "time_limit: " + "9" * 400), "phases.train.time_limit",
     "finite number"),
    ("400-digit integer as a count", ("n_trials: 5\n    unsolvable", "n_trials: " + "9" * 400 + "\n    unsolvable"),
     "phases.train.n_trials", "at most 10000"),
    ("5000-digit integer (beyond Python's int limit)", ("time_limit: 20", "time_limit: " + "9" * 5000),
     "(file)", "value cannot be read"),
    ("schema_version true", ("schema_version: 1", "schema_version: true"), "schema_version", "got True"),
    ("schema_version 1.0", ("schema_version: 1", "schema_version: 1.0"), "schema_version", "got 1.0"),
    ("schema_version '1'", ("schema_version: 1", "schema_version: '1'"), "schema_version", "got '1'"),
    ("rating start true", ("low: 1, high: 10", "low: 1, high: 10, start: true"), "phases.check.questions.0.start",
     "whole number"),
    ("time is a boolean", ("time_limit: 20", "time_limit: true"), "phases.train.time_limit", "must be a number"),
    ("study id with a newline", ("id: t", 'id: "demo\\n"'), "study.id", "lower-case"),
    ("study id too long", ("id: t", "id: " + "a" * 65), "study.id", "at most 64"),
    ("study id with a slash", ("id: t", "id: ../etc"), "study.id", "lower-case"),
    ("phase id with a newline", ("  train:\n", '  "train\\n":\n'), "phases.train\n", "letters and digits"),
    ("condition name with a newline", ("  a:\n    kind: helpless", '  "a\\n":\n    kind: helpless'),
     "conditions.a\n", "letters and digits"),
    ("question id with a newline", ("id: control, text", 'id: "control\\n", text'), "phases.check.questions.0.id",
     "letters and digits"),
    ("key name with a newline", ("schema_version: 1", 'schema_version: 1\nkeys: {withdraw: "f12\\n"}'),
     "keys.withdraw", "key name"),
    ("NUL written as a YAML escape", ("title: T", 'title: "T\\0"'), "study.title", "control character"),
    ("terminal escape in a debriefing page", ('pages: "Explained."', 'pages: "\\e[2JExplained."'),
     "debriefing.pages", "control character"),
    ("unknown text (typo)", ("schema_version: 1", "schema_version: 1\ntexts: {withdraw_hnt: Press F12.}"),
     "texts.withdraw_hnt", "unknown field"),
    ("5000-character items path", ("STIM/training.tsv", "x" * 5000), "phases.train.items", "at most 1024 characters"),
    ("items path too long for the file system", ("STIM/training.tsv", "/".join(["y" * 250] * 4)),
     "phases.train.items", "stimulus file"),
]


@pytest.mark.parametrize("case", VALUES, ids=[c[0] for c in VALUES])
def test_bad_values_are_refused_with_their_field(tmp_path, case):
    _, (old, new), field, message = case
    assert old in BASE
    path = _write(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(ProtocolError) as err:
        load_protocol(path)
    assert any(f": {field}: " in p and message in p for p in err.value.problems), err.value.problems


def _stimulus_case(tmp_path: Path, make) -> Path:
    target = tmp_path / "items.tsv"
    make(target)
    return _write(tmp_path, BASE.replace("STIM/training.tsv", str(target), 1))


STIMULI = [
    ("FIFO", lambda p: os.mkfifo(p), "pipe (FIFO)"),
    ("/dev/zero", lambda p: p.symlink_to("/dev/zero"), "not a regular file"),
    ("symlink loop", lambda p: p.symlink_to(p), "symlink loop"),
    ("folder", lambda p: p.mkdir(), "folder"),
    ("200,000-character field", lambda p: p.write_text("item_id\tletters\tsolution\tsolvable\n"
                                                       f"t1\t{'a' * 200_000}\thello\t1\n"), "not a readable TSV row"),
    ("Latin-1 bytes", lambda p: p.write_bytes("item_id\tletters\tsolution\tsolvable\nt1\tlöhel\thello\t1\n"
                                              .encode("latin-1")), "not UTF-8"),
    ("11 MB file", lambda p: p.write_bytes(b"item_id\tletters\tsolution\tsolvable\n" + b"#" * (11 * 2**20)),
     "too large"),
]


@pytest.mark.parametrize("case", STIMULI, ids=[c[0] for c in STIMULI])
def test_bad_stimulus_files_are_refused(tmp_path, case):
    _, make, message = case
    path = _stimulus_case(tmp_path, make)
    t0 = time.perf_counter()
    with pytest.raises(ProtocolError) as err:
        load_protocol(path)
    assert time.perf_counter() - t0 < 2.0
    assert any(": phases.train.items: " in p and message in p for p in err.value.problems), err.value.problems


# -- the command line: one line per problem, exit 2, no traceback -----------------------------

def test_cli_refuses_the_corpus_in_one_line_each(tmp_path):
    files = []
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BILLION_LAUGHS)
    files.append(bomb)
    nul = tmp_path / "nul.yaml"
    nul.write_bytes(BASE.encode().replace(b"title: T", b"title: T\x00"))
    files.append(nul)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (2 * 2**20))
    files.append(big)
    files.append(_stimulus_case(tmp_path, lambda p: os.mkfifo(p)))
    t0 = time.perf_counter()
    out = run_lhlab("validate", *files, check_rc=2, timeout=60)
    elapsed = time.perf_counter() - t0
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == len(files), out.stderr
    for line in lines:
        assert LINE_RE.match(line), line
    assert elapsed < 15, elapsed


def test_cli_plan_and_run_refuse_a_bomb_too(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BILLION_LAUGHS)
    for args in (("plan", bomb, "--condition", "a"),
                 ("run", bomb, "--participant", "P1", "--condition", "a", "--data-dir", tmp_path / "data",
                  "--simulate", "default")):
        out = run_lhlab(*args, check_rc=2, timeout=60)
        assert "Traceback" not in out.stderr and "expands to more than" in out.stderr
    assert not (tmp_path / "data").exists()
