"""Shipped protocols faithful to the published experiments (issue 10): every number in the
Hiroto & Seligman protocols cites its source, the counts are the published ones where known,
the control group of the problem experiments sees the cards, the test items are the same for
everyone, and each condition reads its own debriefing."""

from __future__ import annotations

import re
import textwrap

import pytest

from conftest import REPO
from experiment.errors import ProtocolError
from experiment.protocol import load_protocol

PROTOCOLS = sorted((REPO / "protocols").glob("*.yaml"))
HS = sorted((REPO / "protocols").glob("hiroto-seligman-*.yaml"))
NUMBER = re.compile(r"^\s+(?:- )?\w+: (?:-?\d+(?:\.\d+)?|\[[\d, ]+\]|true|false)\s*(#.*)?$")


@pytest.mark.parametrize("path", HS, ids=lambda p: p.stem)
def test_every_number_cites_its_source(path):
    text = path.read_text(encoding="utf-8")
    phases = text.split("\nphases:\n", 1)[1].split("\nconditions:\n", 1)[0]
    for line in phases.splitlines():
        m = NUMBER.match(line)
        if m:
            assert m.group(1) and re.search(r"\[(HS75|H74|cited|lhlab)\]", m.group(1)), f"{path.name}: {line.strip()}"
    for source in ("[HS75]", "[H74]", "[cited]", "[lhlab]"):
        assert f"#   {source}" in text, f"{path.name} does not define {source}"


def test_no_protocol_points_to_a_file_users_do_not_have():
    for path in PROTOCOLS:
        assert "PARADIGMS" not in path.read_text(encoding="utf-8"), path.name


def test_published_counts_control_cards_and_the_same_test_items_for_everyone():
    for path in HS:
        proto = load_protocol(path)
        for cond in proto.conditions.values():
            phases = [proto.phases[p] for p in cond.phases]
            test = next(ph for ph in phases if ph.role == "test")
            if test.task == "shuttle":
                assert test.params["n_trials"] == 18                        # Hiroto (1974)
            else:
                assert test.params["order"] == "fixed" and test.params["n_trials"] == 20
            if "problems" in path.name:
                modes = [ph.params["mode"] for ph in phases if ph.task == "discrimination"]
                assert modes == [{"controllable": "soluble", "helpless": "insoluble", "control": "control"}[cond.kind]]
            check = next(ph for ph in phases if ph.task == "rating")
            assert check.params["require_movement"] is True


def _write(tmp_path, debriefing: str):
    text = textwrap.dedent("""\
        schema_version: 1
        study: {id: deb, title: "Debriefing"}
        phases:
          welcome: {task: instructions, pages: "Hello"}
        conditions:
          a: {kind: controllable, phases: [welcome]}
          b: {kind: helpless, phases: [welcome]}
        """) + debriefing
    path = tmp_path / "deb.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_debriefing_pages_per_condition_with_a_shared_default(tmp_path):
    proto = load_protocol(_write(tmp_path, "debriefing:\n  pages:\n    default: Shared.\n    b: [Yours, Two]\n"))
    assert proto.debriefing_for("a") == ["Shared."] and proto.debriefing_for("b") == ["Yours", "Two"]
    proto = load_protocol(_write(tmp_path, "debriefing: {pages: [Everyone.]}\n"))
    assert proto.debriefing_for("a") == proto.debriefing_for("b") == ["Everyone."]
    with pytest.raises(ProtocolError) as e:
        load_protocol(_write(tmp_path, "debriefing:\n  pages:\n    b: Yours.\n    c: Nobody.\n"))
    text = str(e.value)
    assert "debriefing.pages.c: unknown condition 'c'" in text
    assert "condition(s) a have no debriefing" in text


def test_demo_solvable_group_is_not_told_its_anagrams_were_unsolvable():
    proto = load_protocol(REPO / "protocols" / "demo.yaml")
    assert "your anagrams could not be solved" in proto.debriefing_for("unsolvable")[0]
    assert "Yours could all be solved" in proto.debriefing_for("solvable")[0]
    assert proto.phases["repair"].instructions          # the repair task has its own introduction
