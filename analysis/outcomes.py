"""The helpless group's deficit, per measure, and the pre-declared primary test.

One sign convention everywhere in this module: **positive = the helpless group did worse**.
For a measure where higher is worse (latency, failures) that is helpless minus comparison; where
lower is worse (anagrams solved, pattern found) it is comparison minus helpless. The
difference, its CI, the standardised effect and its CI are all oriented this way, so a row
never shows a positive deficit beside a negative effect size.

Tests per kind of measure (`kind` in the measure catalog):
    continuous, count, trials to criterion: Welch's t (2 groups) / Welch-type contrast (helpless
        against the mean of the other groups); Hedges g.
    binary (one yes/no per participant): risk difference with Newcombe's CI, odds ratio (of the
        worse outcome) with Woolf's CI, Fisher's exact test; effect size d from the log odds
        ratio (Chinn 2000). See analysis/binary.py.
A difference of means of a measure bounded to [low, high] cannot leave [-(high - low), high - low];
its CI is truncated there (it only matters for tiny or degenerate groups).

`outcomes` is the plan: the protocol's primary outcome (``analysis.primary``) is tested once,
helpless vs all other groups, as the confirmatory test at the protocol's alpha; every other
test measure is secondary, its p Holm-adjusted over the secondary family, and labelled
exploratory. Without a declared primary every measure is secondary.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from analysis import binary, stats

DEFICIT_COLUMNS = ["measure", "label", "unit", "worse", "kind", "plan", "helpless", "comparison", "n_helpless",
                   "n_comparison", "mean_helpless", "mean_comparison", "deficit", "deficit_ci_low",
                   "deficit_ci_high", "effect_size", "g", "g_ci_low", "g_ci_high", "odds_ratio", "or_ci_low",
                   "or_ci_high", "test", "statistic", "df", "p", "p_holm", "direction"]
OUTCOME_COLUMNS = ["measure", "label", "unit", "worse", "kind", "plan", "analysis", "comparison", "n_helpless",
                   "n_comparison", "mean_helpless", "mean_comparison", "deficit", "deficit_ci_low",
                   "deficit_ci_high", "effect_size", "g", "g_ci_low", "g_ci_high", "odds_ratio", "or_ci_low",
                   "or_ci_high", "test", "statistic", "df", "p", "p_adjusted", "adjustment", "alpha", "significant"]
G_LABEL = "Hedges g"
D_OR_LABEL = "d from log odds ratio (Chinn 2000)"


def _orient(sign: float, lo: float, hi: float) -> tuple[float, float]:
    a, b = sign * lo, sign * hi
    return (a, b) if a <= b else (b, a)


def _clip(lo: float, hi: float, width: float) -> tuple[float, float]:
    if np.isfinite(width):
        return max(lo, -width), min(hi, width)
    return lo, hi


def compare(x: np.ndarray, y: np.ndarray, m, ci: float = 0.95) -> dict:
    """Helpless values `x` against comparison values `y` of one catalog row `m` (with ``worse``,
    ``kind``, ``low``, ``high``): the oriented deficit, effect size and test (columns as in
    DEFICIT_COLUMNS from ``n_helpless`` to ``p``)."""
    sign = 1.0 if m.worse == "higher" else -1.0
    nan = np.nan
    row = {"n_helpless": len(x), "n_comparison": len(y), "mean_helpless": x.mean() if len(x) else nan,
           "mean_comparison": y.mean() if len(y) else nan, "deficit": nan, "deficit_ci_low": nan,
           "deficit_ci_high": nan, "g": nan, "g_ci_low": nan, "g_ci_high": nan, "odds_ratio": nan,
           "or_ci_low": nan, "or_ci_high": nan, "statistic": nan, "df": nan, "p": nan}
    if m.kind == "binary":
        xs, ys = int((x > 0).sum()), int((y > 0).sum())
        diff, lo, hi = binary.newcombe(xs, len(x), ys, len(y), ci)
        # the odds ratio of the worse outcome (for "lower is worse": of a 0) in the helpless group
        if sign > 0:
            or_, olo, ohi = binary.odds_ratio(xs, len(x), ys, len(y), ci)
        else:
            or_, olo, ohi = binary.odds_ratio(len(x) - xs, len(x), len(y) - ys, len(y), ci)
        dlo, dhi = _orient(sign, lo, hi)
        row.update(effect_size=D_OR_LABEL, test="Fisher exact", deficit=sign * diff, deficit_ci_low=dlo,
                   deficit_ci_high=dhi, odds_ratio=or_, or_ci_low=olo, or_ci_high=ohi,
                   g=binary.d_from_log_or(or_), g_ci_low=binary.d_from_log_or(olo),
                   g_ci_high=binary.d_from_log_or(ohi), p=binary.fisher(xs, len(x), ys, len(y)))
        return row
    t = stats.welch_t(x, y, ci).iloc[0]
    gg = stats.hedges_g(x, y, ci).iloc[0]
    lo, hi = _clip(*_orient(sign, t["ci_low"], t["ci_high"]), float(m.high) - float(m.low))
    glo, ghi = _orient(sign, gg["ci_low"], gg["ci_high"])
    row.update(effect_size=G_LABEL, test="Welch t", deficit=sign * t["diff"], deficit_ci_low=lo, deficit_ci_high=hi,
               g=sign * gg["g"], g_ci_low=glo, g_ci_high=ghi, statistic=sign * t["t"], df=t["df"], p=t["p_unc"])
    return row


def _values(data: pd.DataFrame, col: str, between: str, levels) -> np.ndarray:
    v = pd.to_numeric(data[col], errors="coerce")
    return v[data[between].isin(levels)].dropna().to_numpy(float)


def _direction(deficit: float, p_adj: float, alpha: float) -> str:
    if not (np.isfinite(deficit) and np.isfinite(p_adj)):
        return "not estimable"
    if p_adj < alpha:
        return "helpless worse" if deficit > 0 else "helpless better"
    return "no clear difference"


def deficit_table(data: pd.DataFrame, measures: pd.DataFrame, between: str, kinds: Mapping, ci: float = 0.95,
                  primary: str | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """How much worse each helpless group did than each comparison group, per measure.

    `measures`: catalog rows (``column``, ``label``, ``unit``, ``worse``, ``kind``, ``low``,
    ``high``). Returns one row per measure x helpless level x comparison level with the columns
    of DEFICIT_COLUMNS: the oriented ``deficit`` with its CI, ``effect_size`` (which standardised
    effect ``g`` is), ``g`` with its CI, the odds ratio of the worse outcome (binary measures),
    the ``test`` with its ``statistic`` (oriented), ``df`` and ``p``, ``p_holm`` (Holm over every
    row of the table: these pairwise comparisons are exploratory follow-ups) and ``direction``
    ("helpless worse" / "helpless better" when ``p_holm`` < `alpha`, else "no clear difference").
    """
    order = stats.level_order(data, between, kinds)
    helpless = [lv for lv in order if kinds.get(lv) == "helpless"]
    others = [lv for lv in order if kinds.get(lv) != "helpless"]
    rows = []
    for m in measures.itertuples():
        for h in helpless:
            x = _values(data, m.column, between, [h])
            for c in others:
                y = _values(data, m.column, between, [c])
                rows.append({"measure": m.column, "label": m.label, "unit": m.unit, "worse": m.worse, "kind": m.kind,
                             "plan": "primary" if m.column == primary else "secondary", "helpless": h,
                             "comparison": c, **compare(x, y, m, ci)})
    out = pd.DataFrame(rows, columns=DEFICIT_COLUMNS)
    out["p_holm"] = stats.holm(out["p"].to_numpy(float)) if len(out) else []
    out["direction"] = [_direction(d, p, alpha) for d, p in zip(out["deficit"], out["p_holm"])]
    return out


def outcomes(data: pd.DataFrame, measures: pd.DataFrame, between: str, kinds: Mapping, ci: float = 0.95,
             primary: str | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """The planned test of every test measure: the helpless group(s) against all other groups.

    Returns one row per measure (primary first) with the columns of OUTCOME_COLUMNS: ``plan``
    (primary/secondary), ``analysis`` (confirmatory/exploratory), ``comparison`` (the groups
    pooled against the helpless), the oriented deficit with its CI and effect size, the test
    with its statistic, df and ``p``, ``p_adjusted`` (primary: p itself; secondary: Holm over
    the secondary measures), ``adjustment``, ``alpha`` and ``significant``
    (``p_adjusted < alpha``). Continuous measures: the deficit is the Welch contrast (helpless
    mean minus the mean of the other groups' means) and g the standardised contrast; binary:
    the helpless proportion against the other groups pooled (Fisher's exact test).
    """
    order = stats.level_order(data, between, kinds)
    helpless = [lv for lv in order if kinds.get(lv) == "helpless"]
    others = [lv for lv in order if kinds.get(lv) != "helpless"]
    group_of = data[between].to_numpy()
    rows = []
    for m in measures.itertuples():
        v = np.asarray(pd.to_numeric(data[m.column], errors="coerce"), float)
        ok = np.isfinite(v)
        groups = {lv: v[ok & (group_of == lv)] for lv in order}
        x = np.concatenate([groups[lv] for lv in helpless]) if helpless else np.array([])
        y = np.concatenate([groups[lv] for lv in others]) if others else np.array([])
        if m.kind == "binary" or not (helpless and others):
            res = compare(x, y, m, ci)
        else:
            res = _contrast(groups, m, helpless, others, ci)
            res.update(n_helpless=len(x), n_comparison=len(y))
        rows.append({"measure": m.column, "label": m.label, "unit": m.unit, "worse": m.worse, "kind": m.kind,
                     "plan": "primary" if m.column == primary else "secondary",
                     "comparison": " + ".join(map(str, others)), **res})
    rows.sort(key=lambda r: r["plan"] != "primary")             # the primary outcome first (stable)
    prim = np.array([r["plan"] == "primary" for r in rows], bool)
    p = np.array([r["p"] for r in rows], float)
    adj = p.copy()
    adj[~prim] = stats.holm(p[~prim])
    n_sec = int((~prim).sum())
    for r, is_prim, pa in zip(rows, prim, adj):
        r.update(analysis="confirmatory" if is_prim else "exploratory", p_adjusted=pa, alpha=alpha,
                 adjustment="none (the one pre-declared test)" if is_prim else f"Holm over {n_sec} secondary measures",
                 significant=bool(pa < alpha))
    return pd.DataFrame(rows, columns=OUTCOME_COLUMNS)


def _mean(a: np.ndarray) -> float:
    return float(a.mean()) if len(a) else np.nan


def _contrast(groups: dict, m, helpless, others, ci) -> dict:
    sign = 1.0 if m.worse == "higher" else -1.0
    levels = list(helpless) + list(others)
    w = np.array([1 / len(helpless)] * len(helpless) + [-1 / len(others)] * len(others))
    c = stats.contrast_row([groups[lv] for lv in levels], w, equal_var=False, ci=ci)
    hm = np.mean([_mean(groups[lv]) for lv in helpless])
    om = np.mean([_mean(groups[lv]) for lv in others])
    lo, hi = _clip(*_orient(sign, c["ci_low"], c["ci_high"]), float(m.high) - float(m.low))
    glo, ghi = _orient(sign, c["g_ci_low"], c["g_ci_high"])
    return {"mean_helpless": hm, "mean_comparison": om, "deficit": sign * c["estimate"], "deficit_ci_low": lo,
            "deficit_ci_high": hi, "effect_size": G_LABEL + " (contrast)", "g": sign * c["g"], "g_ci_low": glo,
            "g_ci_high": ghi, "odds_ratio": np.nan, "or_ci_low": np.nan, "or_ci_high": np.nan,
            "test": "Welch contrast", "statistic": sign * c["t"], "df": c["df"], "p": c["p_unc"]}
