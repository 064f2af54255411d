"""The four Hiroto & Seligman (1975) experiments: every shipped protocol validates, plans and
runs end to end in data-only simulation (through the CLI, yoked participants after their
partners), and simulated triads show the deficit in the test phase."""

from __future__ import annotations

import json
import statistics

import pytest

from conftest import REPO, events, run_lhlab

PROTOCOLS = sorted((REPO / "protocols").glob("*.yaml"))
HS = sorted((REPO / "protocols").glob("hiroto-seligman-*.yaml"))


def test_there_are_four_hiroto_seligman_experiments_with_three_groups_each():
    from experiment.protocol import load_protocol
    assert [p.name for p in HS] == ["hiroto-seligman-noise-anagrams.yaml", "hiroto-seligman-noise-shuttle.yaml",
                                    "hiroto-seligman-problems-anagrams.yaml", "hiroto-seligman-problems-shuttle.yaml"]
    for path in HS:
        proto = load_protocol(path)
        kinds = sorted(c.kind for c in proto.conditions.values())
        assert kinds == ["control", "controllable", "helpless"], path
        assert proto.repair_phase and proto.debriefing_pages
        tests = {proto.phases[p].task for c in proto.conditions.values() for p in c.phases
                 if proto.phases[p].role == "test"}
        assert tests == ({"shuttle"} if "shuttle" in path.name else {"anagram"})
        for c in proto.conditions.values():
            roles = [proto.phases[p].role for p in c.phases]
            assert "check" in roles and roles.index("check") < roles.index("test")
        if path.name.startswith("hiroto-seligman-noise"):
            helpless = next(c for c in proto.conditions.values() if c.kind == "helpless")
            assert helpless.yoked_to == next(c.name for c in proto.conditions.values() if c.kind == "controllable")


def test_every_shipped_protocol_validates():
    out = run_lhlab("validate", *PROTOCOLS, check_rc=0)
    assert out.stdout.count(": ok (") == len(PROTOCOLS)


@pytest.mark.parametrize("path", HS, ids=lambda p: p.stem)
def test_plans_and_runs_every_condition_end_to_end(path, tmp_path):
    from experiment.protocol import load_protocol
    proto = load_protocol(path)
    ordered = sorted(proto.conditions.values(), key=lambda c: c.yoked_to is not None)   # partners first
    labels = {}
    for n, cond in enumerate(ordered, 1):
        plan = json.loads(run_lhlab("plan", path, "--condition", cond.name, "--seed", n, "--json", check_rc=0).stdout)
        assert plan["expected_max_s"] > 0
        label = f"s{n}"
        args = ["run", path, "--participant", label, "--condition", cond.name, "--data-dir", tmp_path,
                "--simulate", "default", "--seed", n]
        if cond.yoked_to:
            args += ["--yoked-to", labels[cond.yoked_to]]
        out = run_lhlab(*args, check_rc=0)
        assert events(out.stdout)[-1]["status"] == "complete"
        labels[cond.name] = label
        record = json.loads((tmp_path / proto.study_id / f"sub-{label}/ses-1/sub-{label}_ses-1_session.json").read_text())
        assert record["status"] == "complete" and record["debriefing_shown"]
        assert [ph["status"] for ph in record["phases"]] == ["complete"] * len(record["phases"])
        for ph, planned in zip(record["phases"], plan["phases"]):
            assert ph["trials"] == len(planned["trials"]) or ph["task"] in ("anagram",), ph
        noisy = any(proto.phases[p].task in ("noise_escape", "shuttle") for p in cond.phases)
        assert ((record["noise_dose"] or {}).get("dose_percent", 0) > 0) == noisy
        assert (record["calibration"] is not None) == noisy
        if cond.yoked_to:
            assert record["yoke"]["partner"] == labels[cond.yoked_to]


def _triad_measures(path, tmp_path, n: int) -> dict[str, list[float]]:
    """Failures and mean latency in the test phase for n simulated triads."""
    from audiotools import read_rows, run_session
    from experiment.protocol import load_protocol
    proto = load_protocol(path)
    by_kind = {c.kind: c for c in proto.conditions.values()}
    test = next(p.id for p in proto.phases.values() if p.role == "test")
    out: dict[str, list] = {"controllable": [], "helpless": [], "control": []}
    for i in range(n):
        labels = {}
        for kind in ("controllable", "helpless", "control"):
            cond = by_kind[kind]
            label = f"{ {'controllable': 'e', 'helpless': 'h', 'control': 'n'}[kind]}{i}"
            yoked = labels["controllable"] if cond.yoked_to else None
            _, study = run_session(proto, tmp_path, label, cond.name, seed=1000 * i + len(labels), yoked_to=yoked)
            labels[kind] = label
            rows = read_rows(study, label, test)
            if test == "shuttle":
                fails = sum(r["outcome"] == "fail" for r in rows)
                latency = statistics.mean(float(r["latency"]) for r in rows)
            else:
                fails = sum(r["outcome"] != "solved" for r in rows)
                latency = statistics.mean(float(r["latency_scored"]) for r in rows)
            out[kind].append((fails, latency))
    return out


@pytest.mark.parametrize("path", HS, ids=lambda p: p.stem)
def test_simulated_triads_show_the_helplessness_deficit(path, tmp_path):
    m = _triad_measures(path, tmp_path, 8)
    lat = {k: statistics.mean(v[1] for v in vs) for k, vs in m.items()}
    fails = {k: statistics.mean(v[0] for v in vs) for k, vs in m.items()}
    assert lat["helpless"] > 1.3 * lat["controllable"] and lat["helpless"] > 1.3 * lat["control"], lat
    if "shuttle" in path.name:
        assert fails["helpless"] > fails["controllable"] + 2 and fails["helpless"] > fails["control"] + 2, fails


def test_without_a_helplessness_effect_the_yoked_group_escapes_like_the_others(tmp_path):
    from audiotools import read_rows, run_session
    path = REPO / "protocols" / "hiroto-seligman-noise-shuttle.yaml"
    # the yoking mechanism alone: no effect and identical people (the no-effect profile's
    # between-person spread would make 6 against 6 a coin toss, not a test of the yoke)
    prof = "no-effect,ability_sd=0,insight_sd=0,respond_sd=0,latency_sd=0,susceptibility_sd=0"
    fails = {"e": [], "y": []}
    for i in range(6):
        run_session(path, tmp_path, f"e{i}", "escapable", seed=50 + i, profile=prof)
        _, study = run_session(path, tmp_path, f"y{i}", "inescapable", seed=80 + i, profile=prof, yoked_to=f"e{i}")
        for g in "ey":
            fails[g].append(sum(r["outcome"] == "fail" for r in read_rows(study, f"{g}{i}", "shuttle")))
    assert abs(statistics.mean(fails["y"]) - statistics.mean(fails["e"])) < 2, fails
