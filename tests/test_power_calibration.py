"""Each calibrated profile reproduces its target effect (docs/simulation.md) within a stated tolerance.

The effect is the standardised deficit the planned test reports for a protocol's primary
outcome (helpless vs the other groups, Hedges g of the Welch contrast), averaged over large
simulated studies run through the task code:
- the anagram test's mean latency, protocols/unsolvable-anagrams.yaml (test.mean_latency);
- the shuttle test's failures to escape, pooled over the two 1975 shuttle experiments
  (hiroto-seligman-noise-shuttle.yaml and hiroto-seligman-problems-shuttle.yaml, shuttle.failures).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis import power, power_run
from analysis.measures import participant_measures
from experiment.protocol import load_protocol
from experiment import simstudy as memory
from experiment.simulation.participant import PEOPLE, PROFILES

REPO = Path(__file__).resolve().parent.parent
PROTOCOLS = REPO / "protocols"
ANAGRAMS = PROTOCOLS / "unsolvable-anagrams.yaml"
SHUTTLES = [PROTOCOLS / "hiroto-seligman-noise-shuttle.yaml", PROTOCOLS / "hiroto-seligman-problems-shuttle.yaml"]
N_PER_GROUP = 100
STUDIES = 2                 # per profile: two anagram studies, one of each shuttle experiment
SHUTTLE_N_PER_GROUP = 100
# measure: {profile: (target g, tolerance)}; the targets and their sources are in docs/simulation.md
TARGETS = {
    "test_mean_latency": {"classic": (1.0, 0.2), "replication": (0.3, 0.15), "no-effect": (0.0, 0.15)},
    "shuttle_failures": {"classic": (1.0, 0.2), "replication": (0.3, 0.15), "no-effect": (0.0, 0.15)},
}


def _tasks(path: Path, studies: int, n: int = N_PER_GROUP) -> list:
    proto = load_protocol(path)
    return [power.StudyTask(str(proto.path.resolve()), proto.sha256, prof, n, i, 2026)
            for prof in TARGETS["test_mean_latency"] for i in range(studies)]


def test_profiles_reproduce_their_targets():
    tasks = _tasks(ANAGRAMS, STUDIES) + [t for path in SHUTTLES for t in _tasks(path, 1, SHUTTLE_N_PER_GROUP)]
    results = power.results_frame(power_run.run_tasks(tasks, workers=2).chunks)
    primary = results[results["plan"] == "primary"]
    assert set(primary["measure"]) == set(TARGETS)
    assert (primary["measure"] == "shuttle_failures").sum() == len(SHUTTLES) * 3     # both shuttle experiments
    for measure, targets in TARGETS.items():
        for prof, (target, tol) in targets.items():
            g = primary.loc[(primary["profile"] == prof) & (primary["measure"] == measure), "g"].mean()
            assert abs(g - target) <= tol, f"{prof}, {measure}: simulated g {g:.2f}, target {target} +- {tol}"


def _control_group(proto, profile: str, measure: str, n: int = 40, seed: int = 3):
    st = power.study_tables(memory.simulate_study(proto, profile, n, seed, roles=frozenset({"test"})))
    m = participant_measures(st.trials, st.participants).table
    control = [c for c, k in st.participants.drop_duplicates("condition")[["condition", "condition_kind"]]
               .itertuples(index=False) if k == "control"]
    return m[m["condition"].isin(control)].sort_values("participant_id")[measure].reset_index(drop=True)


def test_individual_differences_give_realistic_within_group_spread():
    """People differ: with the calibrated profiles (and no-effect) a group's SD of the anagram
    test's mean latency and of the shuttle test's failures to escape is far above what
    trial-to-trial noise alone gives (the same profile without the between-person spreads)."""
    anagrams, shuttle = load_protocol(ANAGRAMS), load_protocol(SHUTTLES[0])
    flat = "no-effect," + ",".join(f"{k}=0" for k in PEOPLE)
    assert _control_group(anagrams, "no-effect", "test_mean_latency", n=100).std() > \
        1.5 * _control_group(anagrams, flat, "test_mean_latency", n=100).std()
    assert _control_group(shuttle, "no-effect", "shuttle_failures").std() > \
        2 * _control_group(shuttle, flat, "shuttle_failures").std()


def test_no_effect_is_the_calibrated_people_without_the_effect():
    """The false-positive rate is estimated on realistic data: no-effect has the same people as
    the calibrated profiles, so in a study with the same seed its untrained group is the very
    same data as under `classic`; only the trained groups differ."""
    assert all(getattr(PROFILES["no-effect"], k) == v for k, v in PEOPLE.items())
    shuttle = load_protocol(SHUTTLES[0])
    assert _control_group(shuttle, "no-effect", "shuttle_failures").equals(
        _control_group(shuttle, "classic", "shuttle_failures"))


@pytest.mark.parametrize("name", ["classic", "replication", "no-effect"])
def test_calibrated_profiles_are_documented(name):
    doc = (REPO / "docs" / "simulation.md").read_text(encoding="utf-8")
    assert f"`{name}`" in doc and "tolerance" in doc and "shuttle_failures" in doc
