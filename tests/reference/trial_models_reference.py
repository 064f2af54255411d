"""Input of the trial-level model reference (analysis/trial_models.py). Reproduce from the
repository root:

    .venv/bin/python tests/reference/trial_models_reference.py

writes trial_models_input.csv (a synthetic trial-level test phase: 3 groups x 12 participants
x 10 items, seed 11). The reference values are R's: trial_models_reference.R fits the same
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


if __name__ == "__main__":
    d = make_input()
    d.to_csv(HERE / "trial_models_input.csv", index=False)
