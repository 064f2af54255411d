"""The deficit and the planned tests on a simulated study of every shipped protocol: one sign
convention, intervals inside each measure's range, yes/no measures by Fisher / Newcombe (checked
against scipy and statsmodels), the protocol's primary outcome first and the rest Holm-adjusted
(checked against statsmodels' multipletests)."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep

from analysis.pipeline import analyze
from test_analysis_cohort import ROOT

PROTOCOLS = sorted((ROOT / "protocols").glob("*.yaml"))
PRIMARY = {"anagram": "mean_latency", "shuttle": "failures"}


def simulate(protocol: Path, data_dir: Path, n: int, seed: int) -> Path:
    from experiment.cli import main
    with redirect_stdout(io.StringIO()):
        code = main(["simulate", str(protocol), "--participants", str(n), "--data-dir", str(data_dir), "--seed",
                     str(seed), "--profile", "strong"])
    assert code == 0
    return data_dir / yaml.safe_load(protocol.read_text(encoding="utf-8"))["study"]["id"]


@pytest.fixture(scope="module", params=PROTOCOLS, ids=[p.stem for p in PROTOCOLS])
def result(request, tmp_path_factory):
    study = simulate(request.param, tmp_path_factory.mktemp(request.param.stem), 12, seed=5)
    return request.param, analyze(study)          # simulated only: analysed with the pilots, marked


def finite(*vals) -> bool:
    return all(np.isfinite(float(v)) for v in vals)


def test_primary_outcome_from_the_protocol_comes_first(result):
    protocol, r = result
    spec = yaml.safe_load(protocol.read_text(encoding="utf-8"))
    test_phase = next(pid for pid, ph in spec["phases"].items() if ph.get("role") == "test")
    want = f"{test_phase}_{PRIMARY[spec['phases'][test_phase]['task']]}"
    o = r.tables["outcomes"]
    assert r.plan.primary == want and r.data_mark == "SIMULATED DATA"
    assert o.iloc[0]["measure"] == want and o.iloc[0]["plan"] == "primary"
    assert o.iloc[0]["analysis"] == "confirmatory" and o.iloc[0]["p_adjusted"] == o.iloc[0]["p"]
    sec = o.iloc[1:]
    assert len(sec) >= 3 and set(sec["analysis"]) == {"exploratory"}
    holm = multipletests(sec["p"].to_numpy(float), method="holm")[1]
    assert np.allclose(sec["p_adjusted"].to_numpy(float), holm, rtol=1e-12, equal_nan=True)


def test_one_sign_convention_in_every_row(result):
    _, r = result
    for name in ("deficits", "outcomes"):
        t = r.tables[name]
        assert len(t)
        for row in t.itertuples():
            if not finite(row.g, row.p):
                # no variance in either group (every value the same): nothing to standardise or test
                assert np.isnan(row.p) and (name == "outcomes" or row.direction == "not estimable"), row
                continue
            assert np.sign(row.deficit) == np.sign(row.g), (name, row.measure, row.deficit, row.g)
            assert row.deficit_ci_low <= row.deficit <= row.deficit_ci_high, (name, row.measure)
            assert row.g_ci_low <= row.g <= row.g_ci_high, (name, row.measure)
        assert t["g"].notna().mean() > 0.5
    # the simulated effect is strong: the helpless group is worse on the primary outcome
    prim = r.tables["outcomes"].iloc[0]
    assert prim["deficit"] > 0 and prim["g"] > 0


def test_no_interval_leaves_the_measures_range(result):
    _, r = result
    cat = r.measures.catalog.set_index("column")
    d = r.tables["descriptives"]
    for row in d.itertuples():
        lo, hi = cat.at[row.measure, "low"], cat.at[row.measure, "high"]
        if finite(row.ci_low, row.ci_high):
            assert lo <= row.ci_low <= row.ci_high <= hi, (row.measure, row.ci_low, row.ci_high, lo, hi)
    for name in ("deficits", "outcomes"):
        for row in r.tables[name].itertuples():
            width = cat.at[row.measure, "high"] - cat.at[row.measure, "low"]
            if finite(row.deficit_ci_low, row.deficit_ci_high):
                assert -width <= row.deficit_ci_low and row.deficit_ci_high <= width, (name, row.measure)


def test_yes_no_measures_use_proportion_methods(result):
    _, r = result
    cat = r.measures.catalog
    binary = set(cat.loc[cat["kind"] == "binary", "column"])
    assert binary.isdisjoint(r.tables["anova"]["measure"]) and binary.isdisjoint(r.tables["welch"]["measure"])
    d = r.tables["deficits"]
    data = r.included
    for row in d[d["kind"] == "binary"].itertuples():
        x = data.loc[data["condition"] == row.helpless, row.measure].dropna()
        y = data.loc[data["condition"] == row.comparison, row.measure].dropna()
        a, b = int(x.sum()), int(y.sum())
        assert row.test == "Fisher exact"
        assert row.p == pytest.approx(sps.fisher_exact([[a, len(x) - a], [b, len(y) - b]]).pvalue, rel=1e-12)
        lo, hi = confint_proportions_2indep(a, len(x), b, len(y), method="newcomb", compare="diff")
        # "pattern found" is better when higher: the deficit is comparison minus helpless
        assert row.deficit == pytest.approx(-(a / len(x) - b / len(y)), abs=1e-12)
        assert (row.deficit_ci_low, row.deficit_ci_high) == pytest.approx((-hi, -lo), abs=1e-12)
        assert -1 <= row.deficit_ci_low and row.deficit_ci_high <= 1
    if any(c.endswith("pattern_found") for c in binary):
        assert (d["kind"] == "binary").any() and len(r.tables["binary"])
