"""What goes into a paper: APA-style tables (Markdown and LaTeX), a methods-and-results text
generated from the numbers, and Parquet copies of the tidy tables.

    write_paper(result, out)   ->  out/tables/*.md, out/tables/*.tex, out/methods.md,
                                   out/trials.parquet, out/measures.parquet

APA precision everywhere: 2 decimals, p to 3 decimals without the leading zero, "< .001".
Every number in methods.md comes from the analysis tables; nothing in it is typed by hand.
The LaTeX tables use booktabs (``\\usepackage{booktabs}``).
"""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass
from experiment.versions import package_version
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import timing

CITATIONS = {
    "Python": "Python Software Foundation. Python Language Reference, version {v}. https://www.python.org",
    "numpy": "Harris, C. R., et al. (2020). Array programming with NumPy. Nature, 585, 357-362.",
    "pandas": "McKinney, W. (2010). Data structures for statistical computing in Python. Proceedings of the 9th "
              "Python in Science Conference, 56-61.",
    "scipy": "Virtanen, P., et al. (2020). SciPy 1.0: Fundamental algorithms for scientific computing in Python. "
             "Nature Methods, 17, 261-272.",
    "statsmodels": "Seabold, S., & Perktold, J. (2010). statsmodels: Econometric and statistical modeling with "
                   "Python. Proceedings of the 9th Python in Science Conference, 92-96.",
    "matplotlib": "Hunter, J. D. (2007). Matplotlib: A 2D graphics environment. Computing in Science & "
                  "Engineering, 9(3), 90-95.",
    "PsychoPy": "Peirce, J., Gray, J. R., Simpson, S., MacAskill, M., Hochenberger, R., Sogo, H., Kastman, E., & "
                "Lindelov, J. K. (2019). PsychoPy2: Experiments in behavior made easy. Behavior Research Methods, "
                "51, 195-203.",
}
METHOD_CITATIONS = {
    "holm": "Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scandinavian Journal of "
            "Statistics, 6, 65-70.",
    "newcombe": "Newcombe, R. G. (1998). Interval estimation for the difference between independent proportions: "
                "Comparison of eleven methods. Statistics in Medicine, 17, 873-890.",
    "hedges": "Hedges, L. V., & Olkin, I. (1985). Statistical methods for meta-analysis. Academic Press.",
    "chinn": "Chinn, S. (2000). A simple method for converting an odds ratio to effect size for use in "
             "meta-analysis. Statistics in Medicine, 19, 3127-3131.",
}
LME4 = ("Bates, D., Maechler, M., Bolker, B., & Walker, S. (2015). Fitting linear mixed-effects models using "
        "lme4. Journal of Statistical Software, 67(1), 1-48.")
TRIAL_MODELS = ("failure_glmm", "latency_crossed")      # the trial-level models a paper reports


# -- APA number formatting ---------------------------------------------------------------------

def f2(v, digits: int = 2) -> str:
    """A number to `digits` decimals ("-" when missing); whole counts without decimals."""
    if v is None:
        return "-"
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(int(v))
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(x):
        return "-"
    return f"{x:.{digits}f}"


def p_apa(p) -> str:
    """p to 3 decimals without the leading zero; "< .001" below that."""
    try:
        x = float(p)
    except (TypeError, ValueError):
        return "-"
    if not math.isfinite(x):
        return "-"
    if x < 0.001:
        return "< .001"
    return f"{x:.3f}".replace("0.", ".", 1) if x < 1 else "1.000"


def p_eq(p) -> str:
    s = p_apa(p)
    return f"p {s}" if s.startswith("<") else f"p = {s}"


def ci2(lo, hi) -> str:
    return f"[{f2(lo)}, {f2(hi)}]"


# -- tables ---------------------------------------------------------------------------------------

@dataclass
class Table:
    name: str
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str

    def markdown(self, mark: str = "") -> str:
        lines = [f"**{self.title}**" + (f" ({mark})" if mark else ""), "",
                 "| " + " | ".join(self.header) + " |",
                 "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(self.header))) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in self.rows]
        lines += ["", f"*Note.* {self.note}", ""]
        return "\n".join(lines)

    def latex(self, mark: str = "") -> str:
        def tex(s: str) -> str:
            out = s
            for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                         ("<", r"$<$"), (">", r"$>$"), ("^2", r"\textsuperscript{2}")):
                out = out.replace(a, b)
            return out
        cols = "l" + "r" * (len(self.header) - 1)
        lines = ["% generated by lhlab analyze; needs \\usepackage{booktabs}",
                 "\\begin{table}[htbp]", "\\centering", "\\small",
                 f"\\caption{{{tex(self.title)}{(' (' + tex(mark) + ')') if mark else ''}}}",
                 f"\\label{{tab:{self.name}}}", f"\\begin{{tabular}}{{{cols}}}", "\\toprule",
                 " & ".join(tex(h) for h in self.header) + " \\\\", "\\midrule"]
        lines += [" & ".join(tex(c) for c in r) + " \\\\" for r in self.rows]
        lines += ["\\bottomrule", "\\end{tabular}", "",
                  f"\\par\\smallskip\\parbox{{\\linewidth}}{{\\footnotesize\\textit{{Note.}} {tex(self.note)}}}",
                  "\\end{table}", ""]
        return "\n".join(lines)


def _label(cat: pd.DataFrame, col: str) -> str:
    if col in cat.index:
        unit = cat.at[col, "unit"]
        return str(cat.at[col, "label"]) + (f" ({unit})" if unit else "")
    return col


SIGN = "Positive deficits and effect sizes mean the helpless group did worse."


def tables(result) -> list[Table]:
    t = result.tables
    cat = result.measures.catalog.set_index("column")
    between = result.options.between
    out = []
    o = t.get("outcomes", pd.DataFrame())
    if len(o):
        rows = []
        for r in o.itertuples():
            stat = f"t({f2(r.df)}) = {f2(r.statistic)}" if r.test != "Fisher exact" else "Fisher exact"
            rows.append([_label(cat, r.measure), f"{r.plan} ({r.analysis})", f"{f2(r.deficit)} {ci2(r.deficit_ci_low, r.deficit_ci_high)}",
                         f"{f2(r.g)} {ci2(r.g_ci_low, r.g_ci_high)}", stat, p_apa(r.p), p_apa(r.p_adjusted)])
        out.append(Table("outcomes", "Primary and secondary outcomes: helpless group against the other groups",
                         ["Measure", "Plan", "Deficit [95% CI]", "g or d [95% CI]", "Test", "p", "p adj."], rows,
                         f"{SIGN} The primary outcome was declared in the protocol before data collection and is "
                         "tested once (confirmatory); secondary outcomes are exploratory, with Holm-adjusted p. "
                         "Continuous and count measures: Welch-type contrast and Hedges g; yes/no measures: "
                         "difference of proportions (Newcombe CI), Fisher's exact test, d from the log odds ratio."))
    d = t.get("deficits", pd.DataFrame())
    if len(d):
        rows = [[_label(cat, r.measure), f"{r.helpless} vs {r.comparison}", f"{f2(r.mean_helpless)} ({r.n_helpless})",
                 f"{f2(r.mean_comparison)} ({r.n_comparison})", f"{f2(r.deficit)} {ci2(r.deficit_ci_low, r.deficit_ci_high)}",
                 f"{f2(r.g)} {ci2(r.g_ci_low, r.g_ci_high)}", r.test, p_apa(r.p), p_apa(r.p_holm)]
                for r in d.itertuples()]
        out.append(Table("deficits", "Test-phase deficit of the helpless group, group by group",
                         ["Measure", "Groups", "Helpless M (n)", "Comparison M (n)", "Deficit [95% CI]",
                          "g or d [95% CI]", "Test", "p", "p (Holm)"], rows,
                         f"{SIGN} Yes/no measures show proportions. p (Holm): adjusted over every row."))
    desc = t.get("descriptives", pd.DataFrame())
    desc = desc[desc["role"] == "test"] if len(desc) else desc
    if len(desc):
        rows = [[_label(cat, r.measure), str(getattr(r, between)), str(r.n), f2(r.mean),
                 "-" if getattr(r, "ci_method", "t") == "Wilson" else f2(r.sd), ci2(r.ci_low, r.ci_high)]
                for r in desc.itertuples()]
        out.append(Table("descriptives", "Test-phase measures by group",
                         ["Measure", "Group", "n", "M or proportion", "SD", "95% CI"], rows,
                         "Proportions (yes/no measures) with Wilson intervals; means with t intervals, truncated "
                         "to the range the measure can take."))
    an = t.get("anova", pd.DataFrame())
    if len(an):
        we, kw = t["welch"].set_index("measure"), t["kruskal"].set_index("measure")
        ef = t["effects"].set_index("measure") if len(t.get("effects", [])) else pd.DataFrame()
        rows = []
        for r in an[an["role"] == "test"].itertuples():
            w, k = we.loc[r.measure], kw.loc[r.measure]
            e = ef.loc[r.measure] if r.measure in ef.index else None
            rows.append([_label(cat, r.measure), f"F({f2(r.ddof1, 0)}, {f2(r.ddof2, 0)}) = {f2(r.F)}", p_apa(r.p_unc),
                         f"F({f2(w.ddof1, 0)}, {f2(w.ddof2)}) = {f2(w.F)}", p_apa(w.p_unc),
                         f"H({f2(k.ddof1, 0)}) = {f2(k.H)}", p_apa(k.p_unc),
                         f2(e.eta2) if e is not None else "-", f2(e.omega2) if e is not None else "-",
                         ci2(e.pve_ci_low, e.pve_ci_high) if e is not None else "-"])
        if rows:
            out.append(Table("omnibus", "Omnibus tests of the test-phase measures",
                             ["Measure", "ANOVA", "p", "Welch", "p", "Kruskal-Wallis", "p", "eta^2", "omega^2",
                              "95% CI"], rows,
                             "95% CI of the population proportion of variance explained (noncentral F)."))
    trial = trial_table(result)
    if trial is not None:
        out.append(trial)
    return out


def trial_table(result) -> Table | None:
    """The APA table of the crossed trial-level mixed models (None when the study has none)."""
    tm = _trial_rows(result)
    if len(tm):
        rows = []
        for r in tm.itertuples():
            sd = ", ".join(f"{w} {f2(v)}" for w, v in (("participants", r.sd_participant), ("items", r.sd_item))
                           if pd.notna(v))
            fit = "not fitted" if not pd.notna(r.estimate) else (
                "; ".join(x for x in ("" if r.converged else "did not converge",
                                      "singular" if _flag(r.singular) else "") if x) or "ok")
            rows.append([str(r.phase), "Failure (logistic)" if r.model == "failure_glmm" else "Log latency (linear)",
                         f"{f2(r.effect)} {ci2(r.effect_ci_low, r.effect_ci_high)}", f2(r.statistic), p_apa(r.p),
                         sd or "-", f"{r.n_trials} / {r.n_participants} / {r.n_items}", fit])
        return Table("trial_models", "Trial-level mixed models of the test phase: helpless group against the "
                         "other groups",
                         ["Phase", "Model", "OR or ratio [95% CI]", "z", "p", "Random-intercept SDs",
                          "Trials / participants / items", "Fit"], rows,
                         "Failure: logistic mixed model of each trial's failure with crossed random intercepts for "
                         "participants and items (maximum likelihood, Laplace approximation), odds ratio of failing a "
                         "trial; SDs on the logit scale. Log latency: linear mixed model with crossed random intercepts "
                         "(REML), ratio of latencies; SDs on the log scale. Wald z tests and intervals. Values above 1 "
                         "mean the helpless group did worse. A singular fit has a random-intercept SD estimated as 0.")
    return None


def _flag(v) -> bool:
    """A yes/no cell that may be missing (NaN: not applicable) as a bool."""
    return bool(v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else False


def _trial_rows(result) -> pd.DataFrame:
    """The crossed mixed models of the trial_models table (failure first), fitted or said not to be."""
    tm = result.tables.get("trial_models", pd.DataFrame())
    if tm is None or tm.empty or "model" not in tm.columns:
        return pd.DataFrame()
    tm = tm[tm["model"].isin(TRIAL_MODELS)]
    return tm.sort_values("model", key=lambda c: c.map({m: i for i, m in enumerate(TRIAL_MODELS)}), kind="stable")


def binary_omnibus_sentence(result, cat) -> str:
    """The omnibus tests of the test phase's yes/no measures across three or more groups: Pearson's
    chi-square and the likelihood-ratio test of condition in a logistic regression ("" if none)."""
    bt = result.tables.get("binary", pd.DataFrame())
    if bt is None or bt.empty or "lr_chi2" not in bt.columns:
        return ""
    bt = bt[(bt["role"] == "test") & (bt["dof"] >= 2) & bt["chi2"].notna()]
    if bt.empty:
        return ""
    parts = [f"{_label(cat, r.measure).lower()}: Pearson chi-square({int(r.dof)}) = {f2(r.chi2)}, {p_eq(r.p_chi2)}; "
             f"likelihood ratio chi-square({int(r.dof)}) = {f2(r.lr_chi2)}, {p_eq(r.p_lr)}" for r in bt.itertuples()]
    return ("Yes/no measures were compared across the groups with Pearson's chi-square test and, beside it, the "
            "likelihood-ratio test of condition in a logistic regression (" + "; ".join(parts) + ").")


def trial_sentence(result) -> str:
    """The methods-and-results sentences of the trial-level mixed models ("" when none was fitted)."""
    out = []
    for r in _trial_rows(result).itertuples():
        if not pd.notna(r.estimate):
            continue
        glmm = r.model == "failure_glmm"
        two = pd.notna(r.sd_item)
        what = (("Each test trial's failure (phase " + str(r.phase) + ") was analysed with a logistic mixed model with "
                 + ("random intercepts for participants and items" if two else "a random intercept for participants")
                 + ", fitted by maximum likelihood with the Laplace approximation (the model of lme4's glmer; Bates "
                 "et al., 2015)") if glmm else
                ("Log latency per test trial (phase " + str(r.phase) + "; unsolved trials scored at the limit) was "
                 "analysed with a linear mixed model with " + ("crossed random intercepts for participants and items"
                                                                if two else "a random intercept for participants")
                 + ", fitted by REML (the model of lme4's lmer)"))
        eff = (f"the helpless group's odds of failing a trial were {f2(r.effect)} times those of the other groups "
               f"(odds ratio, 95% CI {ci2(r.effect_ci_low, r.effect_ci_high)})" if glmm else
               f"the helpless group's latencies were {f2(r.effect)} times those of the other groups (ratio, 95% CI "
               f"{ci2(r.effect_ci_low, r.effect_ci_high)})")
        scale = "logit" if glmm else "log"
        sds = f"random-intercept SD for participants {f2(r.sd_participant)}" + (
            f" and for items {f2(r.sd_item)}" if two else "") + f" ({scale} scale)"
        flags = []
        if _flag(r.singular):
            flags.append("the fit was singular (" + (r.note.split("singular fit: ")[-1].split(";")[0]
                                                      if "singular fit: " in str(r.note) else "an SD estimated as 0") + ")")
        if not r.converged:
            flags.append("the optimiser did not converge; read these numbers with caution")
        out.append(f"{what}: {eff}, z = {f2(r.statistic)}, {p_eq(r.p)}; {sds}; "
                   f"{r.n_trials} trials from {r.n_participants} participants and {r.n_items} items"
                   + ("; " + "; ".join(flags) if flags else "") + ".")
    return " ".join(out)


def write_tables(result, out: Path) -> list[Path]:
    d = Path(out) / "tables"
    d.mkdir(parents=True, exist_ok=True)
    mark = getattr(result, "data_mark", "")
    written = []
    for tab in tables(result):
        for ext, text in (("md", tab.markdown(mark)), ("tex", tab.latex(mark))):
            path = d / f"{tab.name}.{ext}"
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


# -- methods and results text ----------------------------------------------------------------------

def _version(dist: str) -> str:
    return package_version(dist) or "not installed"


def methods(result) -> str:
    """methods.md: sample, exclusions, the primary test, the secondary family, software."""
    t = result.tables
    between = result.options.between
    cat = result.measures.catalog.set_index("column")
    plan = result.plan
    mark = getattr(result, "data_mark", "")
    lines = []
    if mark:
        lines += [f"> **{mark}.** These numbers describe simulated or pilot sessions, not a study of people.", ""]
    lines += ["# Methods and results (generated by lhlab analyze; edit before use)", ""]
    part = result.study.participants
    inc = result.included
    ex = t["exclusions"]
    n_groups = inc.groupby(between).size()
    groups = ", ".join(f"{lv} ({result.kinds.get(lv, '')}, n = {int(n_groups.get(lv, 0))})" for lv in result.order)
    lines.append("## Participants")
    lines.append("")
    why = ""
    declined = set(ex.loc[ex["reason_code"] == "declined", "participant_id"]) if len(ex) else set()
    ex = ex[ex["reason_code"] != "declined"] if declined else ex     # they did not take part
    took_part = len(part) - len(declined)
    if len(ex):
        per = ex.groupby("reason_code")["participant_id"].nunique()
        why = (f" {ex['participant_id'].nunique()} of {took_part} participants were excluded before analysis ("
               + "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in per.items()) + ").")
    if declined:
        why += (f" {len(declined)} more {'person' if len(declined) == 1 else 'people'} declined consent and "
                f"{'was' if len(declined) == 1 else 'were'} not tested.")
    lines.append(f"{took_part} participants took part; {len(inc)} were analysed: {groups}.{why}")
    described = _demographics(part[part["participant_id"].isin(inc["participant_id"])])
    if described:
        lines += ["", described]
    lines.append("")
    sentence = timing.methods_sentence(t["timing"]) if "timing" in t else ""
    if sentence:
        lines += ["## Apparatus timing (from each session's timing audit)", "", sentence, ""]
    lines.append("## Analysis plan")
    lines.append("")
    ref = f" ({plan.reference})" if plan.reference else ""
    if plan.primary:
        lines.append(f"The protocol{ref} declared the primary outcome, {_label(cat, plan.primary).lower()}, and "
                     f"alpha = {plan.alpha:g} before data collection: the plan is part of the protocol file, whose "
                     f"SHA-256 ({(plan.sha256 or '')[:12]}) is stored in every session record.")
    else:
        lines.append(f"The protocol{ref} declared no primary outcome; every test below is exploratory.")
    for dev in plan.deviations:
        lines.append(f"Deviation: {dev}.")
    lines.append("")
    lines.append("## Results")
    lines.append("")
    o = t.get("outcomes", pd.DataFrame())
    if len(o):
        prim = o[o["plan"] == "primary"]
        if len(prim):
            r = prim.iloc[0]
            lines.append(_result_sentence(r, cat, confirmatory=True))
            lines.append("")
        sec = o[o["plan"] != "primary"]
        if len(sec):
            lines.append(f"Secondary outcomes (exploratory; p adjusted by Holm's method over {len(sec)} measures): "
                         + "; ".join(_short(r, cat) for _, r in sec.iterrows()) + ".")
            lines.append("")
    lines.append("Deficits are signed so that positive values mean the helpless group did worse. Continuous and "
                 "count measures were compared with Welch-type contrasts (helpless against the mean of the other "
                 "groups) and Hedges' g (Hedges & Olkin, 1985); yes/no measures as proportions, with Newcombe's "
                 "(1998) interval for the difference, Fisher's exact test, and d from the log odds ratio (Chinn, "
                 "2000). Secondary p values were adjusted with Holm's (1979) method.")
    lines.append("")
    yes_no = binary_omnibus_sentence(result, cat)
    if yes_no:
        lines += [yes_no, ""]
    trial = trial_sentence(result)
    if trial:
        lines += ["### Trial-level models", "", trial + " Trial-level models are reported as a check of the "
                  "per-participant tests above; the primary outcome is the per-participant test.", ""]
    lines.append("## Software")
    lines.append("")
    py = platform.python_version()
    vers = {"lhlab": _version("lhlab"), "numpy": _version("numpy"), "pandas": _version("pandas"),
            "scipy": _version("scipy"), "statsmodels": _version("statsmodels"), "matplotlib": _version("matplotlib")}
    pp = result.study.sessions.get("psychopy_version", pd.Series(dtype=object)).dropna().unique()
    psychopy = (f"PsychoPy {', '.join(map(str, pp))} (Peirce et al., 2019) presented the tasks" if len(pp) else
                "PsychoPy (Peirce et al., 2019) presents the tasks in the lab; these sessions recorded no PsychoPy "
                "version (simulated in data-only mode)")
    lines.append(f"Data were collected with lhlab {result.study.sessions['lhlab_version'].dropna().iloc[0] if result.study.sessions['lhlab_version'].notna().any() else '(version not recorded)'}; "
                 f"{psychopy}. The analysis used lhlab {vers['lhlab']} with Python {py}, NumPy {vers['numpy']} "
                 f"(Harris et al., 2020), pandas {vers['pandas']} (McKinney, 2010), SciPy {vers['scipy']} (Virtanen "
                 f"et al., 2020), statsmodels {vers['statsmodels']} (Seabold & Perktold, 2010) and Matplotlib "
                 f"{vers['matplotlib']} (Hunter, 2007).")
    lines.append("")
    lines.append("## References")
    lines.append("")
    refs = [CITATIONS["Python"].format(v=py)] + [CITATIONS[k] for k in ("numpy", "pandas", "scipy", "statsmodels",
                                                                         "matplotlib", "PsychoPy")]
    refs += list(METHOD_CITATIONS.values())
    if trial:
        refs.append(LME4)
    if plan.reference:
        refs.append(plan.reference)
    lines += [f"- {r}" for r in sorted(refs)]
    lines.append("")
    return "\n".join(lines)


def _stat(r) -> str:
    if r["test"] == "Fisher exact":
        return f"Fisher's exact test, {p_eq(r['p'])}"
    return f"t({f2(r['df'])}) = {f2(r['statistic'])}, {p_eq(r['p'])}"


def _result_sentence(r, cat, confirmatory: bool) -> str:
    label = _label(cat, r["measure"])
    n = f"n = {int(r['n_helpless'])} helpless vs {int(r['n_comparison'])} others"
    what = ("proportions " if r["kind"] == "binary" else "means ")
    verdict = ("The helpless group did worse" if r["significant"] and r["deficit"] > 0 else
               "The helpless group did better" if r["significant"] else
               "The helpless group did not differ reliably from the other groups")
    return (f"Primary outcome (confirmatory), {label.lower()}: {verdict} ({n}; {what}{f2(r['mean_helpless'])} vs "
            f"{f2(r['mean_comparison'])}; deficit = {f2(r['deficit'])}, 95% CI {ci2(r['deficit_ci_low'], r['deficit_ci_high'])}; "
            f"{_stat(r)}; {r['effect_size']} = {f2(r['g'])}, 95% CI {ci2(r['g_ci_low'], r['g_ci_high'])}; "
            f"alpha = {r['alpha']:g}).")


def _short(r, cat) -> str:
    return (f"{_label(cat, r['measure']).lower()}: deficit = {f2(r['deficit'])} "
            f"{ci2(r['deficit_ci_low'], r['deficit_ci_high'])}, {_stat(r)}, Holm-adjusted {p_eq(r['p_adjusted'])}")


# -- parquet ---------------------------------------------------------------------------------------

def _arrow_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns that mix types (numbers and text) become text, so Arrow can store them."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            kinds = {type(v) for v in out[c].dropna()}
            if len(kinds) > 1:
                out[c] = out[c].map(lambda v: v if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    return out


def write_parquet(result, out: Path, names=("trials", "measures")) -> list[Path]:
    written = []
    for name in names:
        df = result.tables.get(name)
        if df is None:
            continue
        path = Path(out) / f"{name}.parquet"
        _arrow_safe(df).to_parquet(path, index=False)
        written.append(path)
    return written


def write_paper(result, out: Path, trials: bool = True) -> None:
    out = Path(out)
    write_tables(result, out)
    (out / "methods.md").write_text(methods(result), encoding="utf-8")
    write_parquet(result, out, ("trials", "measures") if trials else ("measures",))


def _demographics(part) -> str:
    """One sentence on the analysed participants' age, sex and handedness (participants.tsv
    columns of a demographics phase); '' when the study asked none of them."""
    bits = []
    if "age" in part.columns:
        ages = pd.to_numeric(part["age"], errors="coerce").dropna()
        if len(ages):
            unknown = len(part) - len(ages)
            bits.append(f"age M = {ages.mean():.1f} years (SD = {ages.std(ddof=1) if len(ages) > 1 else 0:.1f}, "
                        f"range {ages.min():g}-{ages.max():g}" + (f"; {unknown} not given" if unknown else "") + ")")
    for col in ("sex", "handedness"):
        if col in part.columns and part[col].notna().any():
            counts = part[col].fillna("not given").astype(str).value_counts()
            bits.append(f"{col}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return ("Analysed participants (self-report): " + "; ".join(bits) + ".") if bits else ""
