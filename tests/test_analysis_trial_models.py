"""Trial-level models of the test phase (analysis/trial_models.py).

Expected values: tests/reference/trial_models_expected.csv, written by
tests/reference/trial_models_reference.py from lhlab's own fit. They are NOT R/lme4 values (R was
not available where they were made): they catch changes. The mixed model's fit is checked
against an independent implementation, statsmodels' MixedLM, below; the logistic model is
statsmodels' GLM itself. The script holds the lme4 / glm calls that should reproduce the values
once R is at hand.
"""

from __future__ import annotations

import pandas as pd
import pytest

from analysis import trial_models
from analysis.pipeline import Options, analyze
from test_analysis_cohort import run_sessions
from test_analysis_stats import REF

KINDS = {"unsolvable": "helpless", "solvable": "controllable", "notraining": "control"}


def test_models_match_the_pinned_statsmodels_values():
    d = pd.read_csv(REF / "trial_models_input.csv")
    want = pd.read_csv(REF / "trial_models_expected.csv").set_index("key")["value"]
    out = trial_models.fit(d, "condition", KINDS, list(KINDS)).set_index("model")
    assert list(out.index) == ["latency", "failure"] and out["converged"].all()
    for key, value in want.items():
        model, col = key.split(".")
        assert float(out.loc[model, col]) == pytest.approx(value, rel=1e-5, abs=1e-9), key
    # the synthetic helpless group is slower and fails more often: positive = helpless worse
    assert out.loc["latency", "effect_ci_low"] > 1 and out.loc["failure", "effect_ci_low"] > 1


def test_the_fast_reml_fit_agrees_with_statsmodels_mixedlm():
    import warnings

    import numpy as np
    import statsmodels.formula.api as smf
    d = pd.read_csv(REF / "trial_models_input.csv")
    f = trial_models._frame(d, "anagram", "condition", KINDS)
    f = f.assign(grp=pd.Categorical(f["grp"], categories=list(KINDS)))
    X = trial_models.design(f, "0 + C(grp) + C(item, Sum)")
    mine = trial_models.random_intercept_reml(f["log_latency"].to_numpy(), X.to_numpy(float), f["pid"].to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # statsmodels' gradient optimisers stall on this likelihood; Nelder-Mead then Powell converge
        sm = smf.mixedlm("log_latency ~ 0 + C(grp) + C(item, Sum)", f, groups=f["pid"]).fit(
            reml=True, method=["nm", "powell"], maxiter=5000)
    assert sm.converged and mine["converged"]
    assert list(X.columns) == list(sm.fe_params.index)
    assert np.allclose(mine["params"], sm.fe_params.to_numpy(), rtol=1e-6, atol=1e-8)
    k = len(sm.fe_params)
    assert np.allclose(np.sqrt(np.diag(mine["cov"])), np.sqrt(np.diag(sm.cov_params().iloc[:k, :k])), rtol=1e-4)
    assert mine["tau2"] == pytest.approx(float(sm.cov_re.iloc[0, 0]), rel=1e-4)
    assert mine["sigma2"] == pytest.approx(sm.scale, rel=1e-5)


def test_a_group_that_never_fails_is_reported_not_fitted():
    d = pd.read_csv(REF / "trial_models_input.csv")
    d.loc[d["condition"] == "solvable", "outcome"] = "solved"
    out = trial_models.fit(d, "condition", KINDS, list(KINDS)).set_index("model")
    assert not out.loc["failure", "converged"] and "separation): solvable never failed" in out.loc["failure", "note"]
    assert out.loc["latency", "converged"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return run_sessions(tmp_path_factory.mktemp("trialmodels"), 18, profile="default,helplessness_effect=0.9", seed=3)


def test_the_analysis_fits_them_and_skips_them_above_the_limit_unless_asked(study, monkeypatch):
    r = analyze(study, Options())
    tm = r.tables["trial_models"].set_index("model")
    assert tm.loc["latency", "estimate"] > 0 and tm.loc["latency", "n_participants"] == 18
    monkeypatch.setattr(trial_models, "MAX_PARTICIPANTS", 10)
    r = analyze(study, Options())
    assert r.tables["trial_models"].empty
    assert any("trial-level models skipped: 18 participants" in w for w in r.warnings)
    assert len(analyze(study, Options(trial_models="on")).tables["trial_models"]) == 2
    assert analyze(study, Options(trial_models="off")).tables["trial_models"].empty
