"""Input of the trial-level model reference (analysis/trial_models.py). Reproduce from the
repository root:

    .venv/bin/python tests/reference/trial_models_reference.py

writes trial_models_input.csv (a synthetic trial-level test phase: 3 groups x 12 participants
x 10 items, seed 11), the inputs of the crossed mixed models (trial_models_crossed_input.csv:
3 groups x 14 participants x 12 items with participant and item effects on both outcomes, seed
12; trial_models_singular_input.csv: 2 groups x 10 participants x 8 items and no item effect at
all, where lme4's item SD goes to 0, seed 14) and of the three-group likelihood-ratio test of a
yes/no measure (binary_lrt_input.csv: one 0/1 per participant, 3 groups, one with no success). The reference values are R's: trial_models_reference.R fits the same
models with lme4 (lmer, REML) and glm + sandwich::vcovCL and writes trial_models_lme4.csv:

    Rscript tests/reference/trial_models_reference.R > tests/reference/trial_models_lme4.csv

(Debian 12: apt-get install r-base-core r-cran-lme4 r-cran-sandwich; R is needed only to
regenerate that file, never by the tests). Until 2026-12 the reference was lhlab's own fit
(trial_models_expected.csv, R being unavailable); lme4 agreed with it to 2e-8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
KINDS = {"unsolvable": "helpless", "solvable": "controllable", "notraining": "control"}


def make_input() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    rows = []
    items = [f"i{k:02d}" for k in range(10)]
    item_eff = dict(zip(items, rng.normal(0, 0.25, len(items))))
    for g, (shift, logit) in {"unsolvable": (0.4, -0.6), "solvable": (0.0, -1.8), "notraining": (0.05, -1.7)}.items():
        for p in range(12):
            pid = f"sub-{g[:2]}{p:02d}"
            u = rng.normal(0, 0.3)
            for trial, item in enumerate(rng.permutation(items), 1):
                failed = rng.random() < 1 / (1 + np.exp(-(logit + u + item_eff[item])))
                lat = 100.0 if failed else float(np.exp(2.3 + shift + u + item_eff[item] + rng.normal(0, 0.5)))
                rows.append({"participant_id": pid, "session": 1, "condition": g, "condition_kind": KINDS[g],
                             "phase": "test", "role": "test", "task": "anagram", "trial": trial, "item_id": item,
                             "outcome": "timeout" if failed else "solved", "latency_scored": round(min(lat, 100.0), 4)})
    return pd.DataFrame(rows)


def make_crossed_input(seed: int = 12, groups: dict | None = None, per_group: int = 14, n_items: int = 12,
                       sd_participant: float = 0.7, sd_item: float = 0.6) -> pd.DataFrame:
    """Trials of an anagram test phase with a participant and an item effect on the logit of failing
    and on log latency (crossed: every participant meets every item), for the crossed models."""
    rng = np.random.default_rng(seed)
    groups = groups or {"unsolvable": (0.35, -0.4), "solvable": (0.0, -1.3), "notraining": (0.05, -1.2)}
    items = [f"i{k:02d}" for k in range(n_items)]
    item_eff = dict(zip(items, rng.normal(0, 1, n_items)))
    rows = []
    for g, (shift, logit) in groups.items():
        for p in range(per_group):
            pid = f"sub-{g[:2]}{p:02d}"
            u = rng.normal(0, 1)
            for trial, item in enumerate(rng.permutation(items), 1):
                eta = logit + sd_participant * u + sd_item * item_eff[item]
                failed = rng.random() < 1 / (1 + np.exp(-eta))
                lat = 100.0 if failed else float(np.exp(2.3 + shift + 0.4 * sd_participant * u
                                                         + 0.4 * sd_item * item_eff[item] + rng.normal(0, 0.5)))
                rows.append({"participant_id": pid, "session": 1, "condition": g, "condition_kind": KINDS[g],
                             "phase": "test", "role": "test", "task": "anagram", "trial": trial, "item_id": item,
                             "outcome": "timeout" if failed else "solved", "latency_scored": round(min(lat, 100.0), 4)})
    return pd.DataFrame(rows)


def make_binary_input() -> pd.DataFrame:
    """One yes/no value per participant in 3 groups: a case for the likelihood-ratio test of
    condition in a logistic regression: pattern_found ('notraining' has no success at all: a zero cell) and
    insight (every cell filled)."""
    rows = []
    for g, (n, x, z) in {"unsolvable": (11, 3, 4), "solvable": (12, 9, 8), "notraining": (10, 0, 6)}.items():
        for i in range(n):
            rows.append({"participant_id": f"sub-{g[:2]}{i:02d}", "condition": g, "condition_kind": KINDS[g],
                         "pattern_found": int(i < x), "insight": int(i >= n - z)})
    return pd.DataFrame(rows)


if __name__ == "__main__":
    d = make_input()
    d.to_csv(HERE / "trial_models_input.csv", index=False)
    make_crossed_input().to_csv(HERE / "trial_models_crossed_input.csv", index=False)
    make_crossed_input(14, {"unsolvable": (0.3, -0.5), "solvable": (0.0, -1.2)}, 10, 8, 0.8, 0.0).to_csv(
        HERE / "trial_models_singular_input.csv", index=False)
    make_binary_input().to_csv(HERE / "binary_lrt_input.csv", index=False)
