"""Reference values for analysis/trial_models.py: NOT from R (R/CRAN was unreachable where these
were made). They are lhlab's own results (its REML fit, checked against statsmodels' MixedLM in
the test; statsmodels' GLM for the logistic model), pinned so that any change of the model, its
coding or its contrast shows up. Reproduce from the repository root:

    .venv/bin/python tests/reference/trial_models_reference.py

writes trial_models_input.csv (a synthetic trial-level test phase: 3 groups x 12 participants
x 10 items, seed 11) and trial_models_expected.csv (key,value). The same models in R, to
replace these values by lme4's once R is available (lmer's REML fit of this model is the
same likelihood as statsmodels' MixedLM):

    d <- read.csv("tests/reference/trial_models_input.csv")
    d$condition <- factor(d$condition, levels = c("unsolvable", "solvable", "notraining"))
    options(contrasts = c("contr.sum", "contr.poly"))
    m <- lme4::lmer(log(latency_scored) ~ 0 + condition + item_id + (1 | participant_id), data = d, REML = TRUE)
    # contrast helpless - mean(others): c(1, -0.5, -0.5) on the three condition means
    g <- glm(I(outcome != "solved") ~ 0 + condition + item_id, family = binomial, data = d)
    # SE clustered by participant: sandwich::vcovCL(g, cluster = ~ participant_id) (HC1 with the G / (G - 1)
    # adjustment, which should be what statsmodels' cov_type = "cluster" does by default)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
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


def expected(d: pd.DataFrame) -> pd.DataFrame:
    from analysis import trial_models
    out = trial_models.fit(d, "condition", KINDS, list(KINDS))
    rows = []
    for r in out.itertuples():
        for col in ("estimate", "se", "ci_low", "ci_high", "statistic", "p", "n_trials"):
            rows.append({"key": f"{r.model}.{col}", "value": float(getattr(r, col))})
    return pd.DataFrame(rows)


if __name__ == "__main__":
    d = make_input()
    d.to_csv(HERE / "trial_models_input.csv", index=False)
    expected(pd.read_csv(HERE / "trial_models_input.csv")).to_csv(HERE / "trial_models_expected.csv", index=False,
                                                                    float_format="%.15g")
