"""report.html: one self-contained page (inline PNGs, inline CSS) with the deficit, the
statistics, the figures, exclusions, load problems and provenance."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import plots as figures
from analysis import timing

MAX_ROWS = 200       # longer lists (exclusions, problems) are cut in the page; the CSVs have them all

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;margin:0;color:#212121;
     background:#fafafa;line-height:1.4}
main{max-width:1100px;margin:0 auto;padding:24px 28px 60px;background:#fff;box-shadow:0 0 6px #0001}
h1{font-size:1.6em;margin:0 0 4px} h2{font-size:1.25em;border-bottom:2px solid #e0e0e0;padding-bottom:3px;
margin-top:34px} h3{font-size:1.05em;margin:20px 0 6px}
.sub{color:#616161;font-size:.92em} .note{color:#616161;font-size:.88em}
table{border-collapse:collapse;margin:8px 0 14px;font-size:.86em}
th,td{border:1px solid #e0e0e0;padding:3px 8px;text-align:right;vertical-align:top;white-space:nowrap}
td.t{white-space:normal}
th{background:#f1f3f5;text-align:center} td.t{text-align:left}
tr:nth-child(even) td{background:#fbfbfb}
.worse{color:#b71c1c;font-weight:600} .better{color:#1b5e20;font-weight:600} .unclear{color:#616161}
.mark{position:sticky;top:0;z-index:9;background:#b71c1c;color:#fff;font-weight:700;text-align:center;
      letter-spacing:.08em;padding:6px;font-size:1.05em}
.primary{background:#e3f2fd;border-left:4px solid #1565c0;padding:8px 12px;margin:12px 0}
.warn{background:#fff3e0;border-left:4px solid #ef6c00;padding:8px 12px;margin:12px 0}
.ok{background:#e8f5e9;border-left:4px solid #2e7d32;padding:8px 12px;margin:12px 0}
img{max-width:100%;border:1px solid #eee;margin:6px 0}
nav a{margin-right:12px;font-size:.9em} code{background:#f5f5f5;padding:0 3px}
"""


# -- formatting ----------------------------------------------------------------------------------

def num(v, digits: int = 2) -> str:
    """APA precision: whole numbers as they are, everything else to 2 decimals."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "&ndash;"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    try:
        f = float(v)
    except (TypeError, ValueError):
        return html.escape(str(v))
    if not math.isfinite(f):
        return "&ndash;"
    if f == int(f) and abs(f) < 1e6:
        return str(int(f))
    return f"{f:.{digits}f}"


def pval(p) -> str:
    try:
        p = float(p)
    except (TypeError, ValueError):
        return "&ndash;"
    if not math.isfinite(p):
        return "&ndash;"
    return "&lt; .001" if p < 0.001 else f"{p:.3f}".lstrip("0")


def ci(lo, hi) -> str:
    return f"[{num(lo)}, {num(hi)}]"


def table(rows: list[list[str]], header: list[str], text_cols: tuple[int, ...] = (0,)) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = []
    for r in rows:
        body.append("<tr>" + "".join(f'<td class="t">{c}</td>' if i in text_cols else f"<td>{c}</td>"
                                     for i, c in enumerate(r)) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def esc(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "&ndash;"
    return html.escape(str(v))


def img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


# -- the page ------------------------------------------------------------------------------------

def write_report(result, out: Path, plots: bool = True) -> Path:
    """Write `out`/report.html (atomically), the figures into `out`/figures/, and return the
    report's path."""
    page = render(result, plots, fig_dir=Path(out) / "figures" if plots else None)
    path = Path(out) / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def render(result, with_plots: bool = True, fig_dir: Path | None = None) -> str:
    t = result.tables
    study = result.study
    between = result.options.between
    title = _study_title(study.path)
    cat = result.measures.catalog.set_index("column")
    mark = getattr(result, "data_mark", "")
    banner = (f'<div class="mark">{esc(mark)}: these results describe simulated/pilot sessions, not a study of '
              f"people</div>" if mark else "")
    parts = [f"<h1>{esc(title)}{f' &ndash; {esc(mark)}' if mark else ''}</h1>",
             f'<div class="sub">lhlab analysis of <code>{esc(study.path.resolve())}</code>, '
             f"{esc(result.created)}</div>",
             '<nav><a href="#primary">Primary outcome</a><a href="#deficit">Deficit</a><a href="#figures">Figures</a><a href="#stats">Statistics</a>'
             '<a href="#survival">Trials to criterion</a><a href="#check">Manipulation check</a>'
             '<a href="#yoking">Yoking</a><a href="#timing">Timing</a><a href="#exclusions">Exclusions</a><a href="#problems">Load problems</a>'
             '<a href="#provenance">Provenance</a></nav>']
    for w in result.warnings:
        parts.append(f'<div class="warn">Warning: {esc(w)}</div>')
    parts.append(_sample(result))
    parts.append(_outcomes(result, cat))
    parts.append(_deficit(result, cat))
    if with_plots:
        parts.append(_figures(result, cat, fig_dir))
    parts.append(_stats_section(result, cat, "test", "stats", "Statistics: test phase"))
    parts.append(_survival(result, cat))
    parts.append(_trial_models(result, cat))
    parts.append(_stats_section(result, cat, "check", "check", "Manipulation check"))
    parts.append(_stats_section(result, cat, "training", "training", "Training"))
    parts.append(_yoking(t["yoking"]))
    if "timing" in t:
        parts.append(timing.html_section(t["timing"], timing.methods_sentence(t["timing"]), esc, table))
    parts.append(_exclusions(result))
    parts.append(_problems(t["load_problems"], study.notes))
    parts.append(_provenance(t["provenance"]))
    parts.append(_files())
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{f'{esc(mark)}: ' if mark else ''}{esc(title)} &ndash; lhlab analysis</title>"
            f"<style>{CSS}</style></head><body>{banner}<main>{body}</main>{banner}</body></html>\n")


def _study_title(path: Path) -> str:
    try:
        return json.loads((path / "dataset_description.json").read_text(encoding="utf-8")).get("Name") or path.name
    except (OSError, ValueError):
        return path.name


def _label(cat, col) -> str:
    if col in cat.index:
        unit = cat.at[col, "unit"]
        return esc(cat.at[col, "label"]) + (f" ({esc(unit)})" if unit else "")
    return esc(col)


def _sample(result) -> str:
    between = result.options.between
    part = result.study.participants
    excl = result.tables["exclusions"]
    rows = []
    for lv in result.order:
        ids = part.loc[part[between] == lv, "participant_id"]
        n_ex = int(ids.isin(excl["participant_id"]).sum())
        rows.append([esc(lv), esc(result.kinds.get(lv, "")), str(len(ids)), str(n_ex), str(len(ids) - n_ex)])
    rows.append(["<b>total</b>", "", str(len(part)), str(part["participant_id"].isin(excl["participant_id"]).sum()),
                 str(len(result.included))])
    return ('<h2 id="sample">Participants</h2>' +
            table(rows, [esc(between), "kind", "participants", "excluded", "analysed"], (0, 1)))


def _effect(r) -> str:
    return f"{num(r.deficit)} {ci(r.deficit_ci_low, r.deficit_ci_high)}"


def _g(r) -> str:
    return f"{num(r.g)} {ci(r.g_ci_low, r.g_ci_high)}"


def _test(r) -> str:
    if r.test == "Fisher exact":
        return "Fisher exact"
    return f"{esc(r.test)}: t({num(r.df)}) = {num(r.statistic)}"


SIGN_NOTE = ("Every effect here has one sign: <b>positive = the helpless group did worse</b> (slower, more "
             "failures, fewer solved, pattern found less often), for the difference, its CI, the effect size and "
             "its CI alike. Yes/no measures: difference of proportions with Newcombe's CI, the odds ratio of the "
             "worse outcome, Fisher's exact test, and d from the log odds ratio (Chinn 2000) as effect size. "
             "Other measures: difference of means (Welch CI), Hedges g. No interval leaves the range the measure "
             "can take.")


def _outcomes(result, cat) -> str:
    o = result.tables.get("outcomes", pd.DataFrame())
    plan = getattr(result, "plan", None)
    out = ['<h2 id="primary">Primary outcome (confirmatory) and secondary outcomes (exploratory)</h2>']
    if plan is not None:
        fixed = ("The plan is the protocol's <code>analysis:</code> section. It is part of the protocol file, whose "
                 "SHA-256 every session record stores, so it was fixed before the first session.")
        out.append(f'<p class="note">{esc(plan.describe())}. {fixed}</p>')
        if plan.deviations:
            for d in plan.deviations:
                out.append(f'<div class="warn">Deviation from the plan: {esc(d)}</div>')
        elif plan.sha256:
            out.append('<div class="ok">No deviation: every session ran the same protocol file, and it is the one '
                       "the plan was read from.</div>")
    if o.empty:
        out.append("<p>No test-phase measure could be compared (no helpless group, or no test data).</p>")
        return "".join(out)
    out.append(f'<p class="note">{SIGN_NOTE} The test of each measure compares the helpless group with all other '
               "groups (Welch contrast against the mean of the other groups' means; yes/no measures: the other "
               "groups pooled).</p>")
    rows = []
    for r in o.itertuples():
        label = _label(cat, r.measure)
        if r.plan == "primary":
            label = f"<b>{label}</b>"
        sig = '<span class="worse">yes</span>' if r.significant and r.deficit > 0 else \
            ('<span class="better">yes</span>' if r.significant else "no")
        rows.append([label, esc(r.plan), esc(r.analysis), _effect(r), f"{esc(r.effect_size)}: {_g(r)}", _test(r),
                     pval(r.p), pval(r.p_adjusted), esc(r.adjustment), sig])
    out.append(table(rows, ["measure", "plan", "analysis", "deficit [95% CI]", "effect size [95% CI]", "test", "p",
                            "p adjusted", "adjustment", f"p adj. &lt; {num(o['alpha'].iloc[0])}"], (0, 1, 2, 4, 5, 8)))
    prim = o[o["plan"] == "primary"]
    if len(prim):
        r = prim.iloc[0]
        verdict = ("the helpless group did worse" if r["significant"] and r["deficit"] > 0 else
                   "the helpless group did better" if r["significant"] else "no difference at this alpha")
        out.append(f'<div class="primary">Confirmatory result: {_label(cat, r["measure"])}: {esc(verdict)} '
                   f"(deficit {num(r['deficit'])} {ci(r['deficit_ci_low'], r['deficit_ci_high'])}, "
                   f"p {pval(r['p']) if pval(r['p']).startswith('&lt;') else '= ' + pval(r['p'])}).</div>")
    else:
        out.append('<div class="warn">No primary outcome is declared, so every result here is exploratory. Declare '
                   "one in the protocol's <code>analysis:</code> section before the next study begins.</div>")
    return "".join(out)


def _deficit(result, cat) -> str:
    d = result.tables["deficits"]
    out = ['<h2 id="deficit">Test-phase deficit, group by group</h2>',
           f'<p class="note">How much worse the helpless group did than each comparison group. {SIGN_NOTE} '
           "p: Welch's t or Fisher's exact test; p (Holm): adjusted over every row of this table (these pairwise "
           "follow-ups are exploratory); direction from the adjusted p.</p>"]
    if d.empty:
        out.append("<p>No test-phase measures could be compared (no included participants with test data, or "
                   "no helpless group).</p>")
        return "".join(out)
    rows = []
    for r in d.itertuples():
        cls = {"helpless worse": "worse", "helpless better": "better"}.get(r.direction, "unclear")
        unit = "proportion" if r.kind == "binary" else "mean"
        rows.append([_label(cat, r.measure), f"{esc(r.helpless)} vs&nbsp;{esc(r.comparison)}",
                     f"{num(r.mean_helpless)} (n={r.n_helpless})", f"{num(r.mean_comparison)} (n={r.n_comparison})",
                     esc(unit), _effect(r), f"{_g(r)}" + ("" if r.kind != "binary" else
                                                         f"<br>OR {num(r.odds_ratio)} {ci(r.or_ci_low, r.or_ci_high)}"),
                     esc(r.test), pval(r.p), pval(r.p_holm), f'<span class="{cls}">{esc(r.direction)}</span>'])
    out.append(table(rows, ["measure", "groups", "helpless", "comparison", "", "deficit [95% CI]",
                            "g or d [95% CI]", "test", "p", "p (Holm)", "direction"], (0, 1, 4, 7, 10)))
    return "".join(out)


def _figures(result, cat, fig_dir=None) -> str:
    """The figures, embedded as PNG; with `fig_dir` also written there as PNG, SVG and PDF."""
    between = result.options.between
    mark = getattr(result, "data_mark", "")
    out = ['<h2 id="figures">Figures</h2>']
    if fig_dir is not None:
        out.append('<p class="note">Each figure is also in <code>figures/</code> as PNG (200 dpi), SVG and PDF.</p>')
    t = result.tables
    inc = result.included[["participant_id"]].merge(result.study.participants[["participant_id", "session"]],
                                                     on="participant_id")
    trials = result.study.trials
    test = trials[trials["role"] == "test"].merge(inc, on=["participant_id", "session"]) if len(trials) else trials
    if len(test):
        for (phase, task), df in test.groupby(["phase", "task"], sort=False):
            value = {"anagram": "latency_scored", "shuttle": "latency"}.get(task)
            if value is None or value not in df.columns:
                continue
            ylabel = "latency (s; unsolved at the limit)" if task == "anagram" else "latency (s)"
            limit = pd.to_numeric(df.get("time_limit", pd.Series(dtype=float)), errors="coerce").max()
            fig = figures.learning_curves(df, value, between, result.order, result.kinds,
                                          f"Learning curves: {phase} ({task}), mean and 95% CI by trial", ylabel,
                                          mark=mark, high=float(limit) if np.isfinite(limit) else None)
            out.append(img(figures.save(fig, fig_dir, f"learning-curves-{phase}"), f"learning curves {phase}"))
    desc = t["descriptives"]
    for role, title in (("test", "Test phase: participants, group means (proportions) with 95% CI"),
                        ("check", "Manipulation check: participants, group means with 95% CI")):
        ms = cat.reset_index()
        ms = ms[(ms["column"].isin(desc["measure"])) & (ms["role"] == role)]
        if role == "test":
            ms = ms[ms["worse"] != ""]
        if len(ms) and len(desc):
            fig = figures.group_means(desc, ms, between, result.order, result.kinds, title, data=result.included,
                                      mark=mark)
            out.append(img(figures.save(fig, fig_dir, f"group-means-{role}"), title))
    km = t["survival"]
    for m in km["measure"].unique() if len(km) else []:
        fig = figures.survival_curves(km[km["measure"] == m], between, result.order, result.kinds,
                                      f"Kaplan-Meier: {cat.at[m, 'label'] if m in cat.index else m}", mark=mark)
        out.append(img(figures.save(fig, fig_dir, f"survival-{m}"), f"survival {m}"))
    if len(out) <= 2:
        out.append("<p>No figures: no included participants with test data.</p>")
    return "".join(out)


def _stats_section(result, cat, role: str, anchor: str, title: str) -> str:
    t = result.tables
    between = result.options.between
    out = [f'<h2 id="{anchor}">{esc(title)}</h2>']
    desc = t["descriptives"]
    desc = desc[desc["role"] == role] if len(desc) else desc
    if desc.empty:
        out.append("<p>Nothing to compare for this part of the design.</p>")
        return "".join(out)
    rows = []
    for r in desc.itertuples():
        method = getattr(r, "ci_method", "t")
        prop = method == "Wilson"
        rows.append([_label(cat, r.measure), esc(getattr(r, between)), str(r.n),
                     f"{num(r.mean)}" + (f" ({int(r.successes)}/{r.n})" if prop else ""),
                     "&ndash;" if prop else num(r.sd), ci(r.ci_low, r.ci_high), esc(method),
                     "&ndash;" if prop else num(r.median)])
    out.append("<h3>Group descriptives</h3>"
               '<p class="note">Yes/no measures: the proportion with its Wilson interval. Others: mean with a t-based '
               "interval, truncated where it would leave the range the measure can take.</p>" +
               table(rows, ["measure", esc(between), "n", "mean or proportion", "sd", "95% CI", "CI", "median"],
                     (0, 1, 6)))
    an = t["anova"].set_index("measure") if len(t["anova"]) else pd.DataFrame()
    we = t["welch"].set_index("measure") if len(t["welch"]) else pd.DataFrame()
    kw = t["kruskal"].set_index("measure") if len(t["kruskal"]) else pd.DataFrame()
    ef = t["effects"].set_index("measure") if len(t.get("effects", [])) else pd.DataFrame()
    asm = t["assumptions"].set_index("measure") if len(t.get("assumptions", [])) else pd.DataFrame()
    rows, advice = [], []
    for m in dict.fromkeys(desc["measure"]):
        if m not in an.index:
            continue
        a, w, k = an.loc[m], we.loc[m], kw.loc[m]
        welch = f"F({num(w.ddof1)}, {num(w.ddof2)}) = {num(w.F)}"
        if isinstance(w.get("note"), str) and w.get("note"):
            welch = f"{esc(w['note'])}"
        e = ef.loc[m] if m in ef.index else None
        eff = (f"&eta;&sup2; {num(e.eta2)}, &omega;&sup2; {num(e.omega2)} {ci(e.pve_ci_low, e.pve_ci_high)}"
               if e is not None else "&ndash;")
        rows.append([_label(cat, m), f"F({num(a.ddof1)}, {num(a.ddof2)}) = {num(a.F)}", pval(a.p_unc), eff,
                     welch, pval(w.p_unc), f"H({num(k.ddof1)}) = {num(k.H)}", pval(k.p_unc)])
        if m in asm.index:
            x = asm.loc[m]
            advice.append([_label(cat, m), f"W = {num(x.brown_forsythe_W)}, p {pval(x.brown_forsythe_p)}",
                           esc(x.shapiro_groups), esc(x.advice)])
    if rows:
        out.append("<h3>Omnibus tests</h3>"
                   '<p class="note">&eta;&sup2; and &omega;&sup2; with the 95% CI of the population proportion of '
                   "variance explained (noncentral F).</p>" +
                   table(rows, ["measure", "one-way ANOVA", "p", "&eta;&sup2;, &omega;&sup2; [95% CI]", "Welch ANOVA",
                                "p", "Kruskal-Wallis", "p"], (0, 3, 4)))
    if advice:
        out.append("<h3>Assumption checks: which test to read</h3>" +
                   table(advice, ["measure", "Brown-Forsythe (equal variances)", "Shapiro-Wilk per group",
                                  "read"], (0, 1, 2, 3)))
    bt = t.get("binary", pd.DataFrame())
    bt = bt[bt["role"] == role] if len(bt) else bt
    if len(bt):
        rows = [[_label(cat, r.measure), esc(r.test), f"&chi;&sup2;({r.dof}) = {num(r.chi2)}", pval(r.p_chi2),
                 f"&chi;&sup2;({r.dof}) = {num(getattr(r, 'lr_chi2', np.nan))}", pval(getattr(r, "p_lr", np.nan)),
                 pval(r.p_fisher), num(r.cramers_v), esc(r.note)] for r in bt.itertuples()]
        out.append("<h3>Yes/no measures: tests of proportions</h3>"
                   '<p class="note">Likelihood ratio: the test of condition in a logistic regression of the yes/no '
                   "value (as R's <code>anova(glm(y ~ condition, binomial), test = \"LRT\")</code>).</p>" +
                   table(rows, ["measure", "test to read", "Pearson chi-square", "p", "likelihood ratio (logistic)",
                                "p", "Fisher exact p", "Cram&eacute;r's V", "note"], (0, 1, 8)))
    c = t["contrasts"]
    c = c[c["role"] == role] if len(c) else c
    if len(c):
        rows = [[_label(cat, r.measure), esc(r.contrast.replace("_", " ")), esc(r.method),
                 f"{num(r.estimate)} {ci(r.ci_low, r.ci_high)}", f"t({num(r.df)}) = {num(r.t)}", pval(r.p_unc),
                 f"{num(r.g)} {ci(r.g_ci_low, r.g_ci_high)}"] for r in c.itertuples()]
        out.append("<h3>Planned contrasts</h3>"
                   '<p class="note">Raw estimates in the measure\'s own direction (helpless minus the others; '
                   "controllable minus control); the oriented deficit is in the tables above. pooled: ANOVA error "
                   "term; welch: separate variances. g: standardised contrast.</p>" +
                   table(rows, ["measure", "contrast", "method", "estimate [95% CI]", "t", "p", "g [95% CI]"],
                         (0, 1, 2)))
    mw = t["mannwhitney"]
    mw = mw[mw["role"] == role] if len(mw) else mw
    if len(mw):
        rows = [[_label(cat, r.measure), f"{esc(r.A)} vs {esc(r.B)}", num(r.U), pval(r.p_unc), pval(r.p_holm),
                 num(r.rbc)] for r in mw.itertuples()]
        out.append("<h3>Rank-based check: pairwise Mann-Whitney U</h3>" +
                   table(rows, ["measure", "groups", "U", "p", "p (Holm)", "rank-biserial r"], (0, 1)))
    return "".join(out)


def _survival(result, cat) -> str:
    lr = result.tables["logrank"]
    out = ['<h2 id="survival">Trials to criterion: survival analysis</h2>',
           '<p class="note">Participants who never reached criterion are censored at their last trial '
           "(Kaplan-Meier; log-rank test across groups). The classic score (never = number of trials) is in the "
           "tables above.</p>"]
    if lr.empty:
        out.append("<p>No trials-to-criterion measure in this study.</p>")
        return "".join(out)
    between = result.options.between
    rows = [[_label(cat, r.measure), esc(getattr(r, between)), str(r.n), num(r.observed), num(r.expected),
             f"&chi;&sup2;({r.dof}) = {num(r.chi2)}", pval(r.p_unc)] for r in lr.itertuples()]
    out.append(table(rows, ["measure", esc(between), "n", "reached criterion", "expected", "log-rank", "p"], (0, 1)))
    return "".join(out)


def _trial_models(result, cat) -> str:
    tm = result.tables.get("trial_models", pd.DataFrame())
    out = ['<h2 id="trials">Trial-level models (test phase)</h2>',
           '<p class="note">Every test trial, helpless group against the mean of the other groups, signed so that a '
           "positive estimate means the helpless group did worse (Wald z, 95% CI). Failure, first: logistic mixed "
           "model of each trial's failure with crossed random intercepts for participants and items, fitted by "
           "maximum likelihood with the Laplace approximation (as lme4's <code>glmer</code>; odds ratio of failing, "
           "random-effect SDs on the logit scale). Latency: linear mixed model of log latency with crossed random "
           "intercepts (REML, as <code>lmer</code>; ratio of latencies). The models with items as fixed effects "
           "(and, for failure, SEs clustered by participant) are shown as a check. A singular fit (an SD estimated "
           "as 0) or a fit that did not converge says so in the note.</p>"]
    if tm.empty:
        out.append("<p>Not fitted (see the warnings, or --trial-models).</p>")
        return "".join(out)
    rank = {"failure_glmm": 0, "latency_crossed": 1, "failure": 2, "latency": 3}
    tm = tm.sort_values(["phase", "model"], key=lambda c: c.map(rank) if c.name == "model" else c, kind="stable")

    def sds(r) -> str:
        parts = [f"{w} {num(v)}" for w, v in (("participant", getattr(r, "sd_participant", np.nan)),
                                               ("item", getattr(r, "sd_item", np.nan)),
                                               ("residual", getattr(r, "sd_residual", np.nan))) if pd.notna(v)]
        return ", ".join(parts) if parts else "&ndash;"

    def status(r) -> str:
        if not bool(r.converged) and not pd.notna(r.estimate):
            return '<span class="worse">not fitted</span>'
        flags = [] if bool(r.converged) else ['<span class="worse">did not converge</span>']
        sing = getattr(r, "singular", False)
        if sing is not None and not (isinstance(sing, float) and math.isnan(sing)) and bool(sing):
            flags.append('<span class="worse">singular</span>')
        return ", ".join(flags) or "ok"
    rows = [[esc(r.phase), esc(r.model), esc(r.method), str(r.n_trials), str(r.n_participants), str(r.n_items),
             f"{num(r.estimate)} {ci(r.ci_low, r.ci_high)}", f"{num(r.effect)} {ci(r.effect_ci_low, r.effect_ci_high)}",
             esc(r.effect_scale), f"z = {num(r.statistic)}", pval(r.p), sds(r), status(r), esc(r.note)]
            for r in tm.itertuples()]
    out.append(table(rows, ["phase", "model", "method", "trials", "participants", "items", "estimate [95% CI]",
                            "effect [95% CI]", "effect is", "test", "p", "random-effect SDs", "fit", "note"],
                     (0, 1, 2, 8, 11, 12, 13)))
    return "".join(out)


def _yoking(y: pd.DataFrame) -> str:
    out = ['<h2 id="yoking">Yoking check</h2>']
    if y.empty:
        out.append("<p>No yoked participants in this study.</p>")
        return "".join(out)
    bad = y[~y["ok"].astype(bool)]
    out.append(f'<div class="{"warn" if len(bad) else "ok"}">{len(y) - len(bad)} of {len(y)} yokes intact '
               f"(noise time equal to the partner's within the tolerance).</div>")
    rows = [[esc(r.participant_id), esc(r.yoked_to), num(r.noise_time), num(r.partner_noise_time), num(r.difference),
             "yes" if r.ok else '<span class="worse">no</span>', esc(r.problem)] for r in y.head(MAX_ROWS).itertuples()]
    out.append(table(rows, ["participant", "partner", "noise time (s)", "partner's (s)", "difference", "ok", "note"],
                     (0, 1, 6)))
    return "".join(out)


def _exclusions(result) -> str:
    e = result.tables["exclusions"]
    rules = result.options.rules.describe()
    out = ['<h2 id="exclusions">Exclusions</h2>',
           '<p class="note">Rules: ' + "; ".join(esc(r) for r in rules) + ".</p>"]
    if e.empty:
        out.append("<p>No participant excluded.</p>")
        return "".join(out)
    counts = e.groupby("reason_code")["participant_id"].nunique()
    out.append("<p>" + ", ".join(f"{esc(k)}: {v}" for k, v in counts.items()) +
               f" ({e['participant_id'].nunique()} participants in all).</p>")
    rows = [[esc(r.participant_id), esc(r.condition), esc(r.reason_code), esc(r.reason)]
            for r in e.head(MAX_ROWS).itertuples()]
    out.append(table(rows, ["participant", "condition", "reason", "detail"], (0, 1, 2, 3)))
    if len(e) > MAX_ROWS:
        out.append(f'<p class="note">First {MAX_ROWS} of {len(e)} rows; all in exclusions.csv.</p>')
    return "".join(out)


def _problems(p: pd.DataFrame, notes: list[str]) -> str:
    out = ['<h2 id="problems">Load problems</h2>']
    if p.empty:
        out.append('<div class="ok">Every file was read without problems.</div>')
    else:
        out.append(f'<div class="warn">{len(p)} problem(s) while reading the study; the files or rows named here '
                   "were not used as they are.</div>")
        rows = [[esc(r.path), esc(r.problem), esc(r.action)] for r in p.head(MAX_ROWS).itertuples()]
        out.append(table(rows, ["file", "problem", "action"], (0, 1, 2)))
        if len(p) > MAX_ROWS:
            out.append(f'<p class="note">First {MAX_ROWS} of {len(p)}; all in load_problems.csv.</p>')
    for n in notes[:MAX_ROWS]:
        out.append(f'<p class="note">{esc(n)}</p>')
    return "".join(out)


def _provenance(p: pd.DataFrame) -> str:
    rows = [[esc(r.key), esc(r.value)] for r in p.itertuples()]
    return '<h2 id="provenance">Provenance</h2>' + table(rows, ["item", "value"], (0, 1))


def _files() -> str:
    names = ["outcomes", "deficits", "descriptives", "anova", "welch", "kruskal", "effects", "assumptions", "binary",
             "contrasts", "mannwhitney", "survival", "logrank", "trial_models", "measures", "measure_catalog", "participants",
             "sessions", "trials", "exclusions", "yoking", "load_problems", "provenance"]
    return ('<h2 id="files">Files</h2><p class="note">Every table is also in this folder as CSV (NA = missing): '
            + ", ".join(f"<code>{n}.csv</code>" for n in names) + ". For papers: <code>tables/*.md</code> and "
            "<code>tables/*.tex</code> (APA style; LaTeX needs booktabs), <code>methods.md</code> (methods and results "
            "text generated from these numbers), <code>figures/*.svg|pdf|png</code>, and <code>trials.parquet</code>, "
            "<code>measures.parquet</code> (the tidy tables for pandas, R arrow or polars).</p>")
