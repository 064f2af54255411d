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
.warn{background:#fff3e0;border-left:4px solid #ef6c00;padding:8px 12px;margin:12px 0}
.ok{background:#e8f5e9;border-left:4px solid #2e7d32;padding:8px 12px;margin:12px 0}
img{max-width:100%;border:1px solid #eee;margin:6px 0}
nav a{margin-right:12px;font-size:.9em} code{background:#f5f5f5;padding:0 3px}
"""


# -- formatting ----------------------------------------------------------------------------------

def num(v, digits: int = 3) -> str:
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
    a = abs(f)
    if a >= 100:
        return f"{f:.1f}"
    if a >= 1:
        return f"{f:.{digits - 1}f}" if a < 10 else f"{f:.{max(digits - 2, 1)}f}"
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
    """Write `out`/report.html (atomically) and return its path."""
    page = render(result, plots)
    path = Path(out) / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def render(result, with_plots: bool = True) -> str:
    t = result.tables
    study = result.study
    between = result.options.between
    title = _study_title(study.path)
    cat = result.measures.catalog.set_index("column")
    parts = [f"<h1>{esc(title)}</h1>",
             f'<div class="sub">lhlab analysis of <code>{esc(study.path.resolve())}</code>, '
             f"{esc(result.created)}</div>",
             '<nav><a href="#deficit">Deficit</a><a href="#figures">Figures</a><a href="#stats">Statistics</a>'
             '<a href="#survival">Trials to criterion</a><a href="#check">Manipulation check</a>'
             '<a href="#yoking">Yoking</a><a href="#exclusions">Exclusions</a><a href="#problems">Load problems</a>'
             '<a href="#provenance">Provenance</a></nav>']
    for w in result.warnings:
        parts.append(f'<div class="warn">Warning: {esc(w)}</div>')
    parts.append(_sample(result))
    parts.append(_deficit(result, cat))
    if with_plots:
        parts.append(_figures(result, cat))
    parts.append(_stats_section(result, cat, "test", "stats", "Statistics: test phase"))
    parts.append(_survival(result, cat))
    parts.append(_stats_section(result, cat, "check", "check", "Manipulation check"))
    parts.append(_stats_section(result, cat, "training", "training", "Training"))
    parts.append(_yoking(t["yoking"]))
    parts.append(_exclusions(result))
    parts.append(_problems(t["load_problems"], study.notes))
    parts.append(_provenance(t["provenance"]))
    parts.append(_files())
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)} &ndash; lhlab analysis</title><style>{CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")


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


def _deficit(result, cat) -> str:
    d = result.tables["deficits"]
    out = ['<h2 id="deficit">Test-phase deficit</h2>',
           '<p class="note">How much worse the helpless group did than each comparison group. '
           "Deficit = difference in means signed so that positive means the helpless group did worse "
           "(95% Welch CI); g = Hedges g of helpless minus comparison (95% CI, normal approximation); "
           "p from Welch's t test.</p>"]
    if d.empty:
        out.append("<p>No test-phase measures could be compared (no included participants with test data, or "
                   "no helpless group).</p>")
        return "".join(out)
    rows = []
    for r in d.itertuples():
        cls = {"helpless worse": "worse", "helpless better": "better"}.get(r.direction, "unclear")
        rows.append([_label(cat, r.measure), f"{esc(r.helpless)} vs {esc(r.comparison)}".replace(" vs ", " vs&nbsp;"),
                     f"{num(r.mean_helpless)} (n={r.n_helpless})", f"{num(r.mean_comparison)} (n={r.n_comparison})",
                     f"{num(r.deficit)} {ci(r.deficit_ci_low, r.deficit_ci_high)}",
                     f"{num(r.g)} {ci(r.g_ci_low, r.g_ci_high)}", pval(r.p_welch),
                     f'<span class="{cls}">{esc(r.direction)}</span>'])
    out.append(table(rows, ["measure", "groups", "helpless mean", "comparison mean", "deficit [95% CI]",
                            "g [95% CI]", "p", "direction"], (0, 1, 7)))
    return "".join(out)


def _figures(result, cat) -> str:
    between = result.options.between
    out = ['<h2 id="figures">Figures</h2>']
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
            png = figures.learning_curves(df, value, between, result.order, result.kinds,
                                        f"Learning curves: {phase} ({task}), mean and 95% CI by trial", ylabel)
            out.append(img(png, f"learning curves {phase}"))
    desc = t["descriptives"]
    for role, title in (("test", "Test phase: group means with 95% CI"),
                        ("check", "Manipulation check: group means with 95% CI")):
        ms = cat.reset_index()
        ms = ms[(ms["column"].isin(desc["measure"])) & (ms["role"] == role)]
        if role == "test":
            ms = ms[ms["worse"] != ""]
        if len(ms) and len(desc):
            out.append(img(figures.group_means(desc, ms, between, result.order, result.kinds, title), title))
    km = t["survival"]
    for m in km["measure"].unique() if len(km) else []:
        out.append(img(figures.survival_curves(km[km["measure"] == m], between, result.order, result.kinds,
                                             f"Kaplan-Meier: {cat.at[m, 'label'] if m in cat.index else m}"),
                       f"survival {m}"))
    if len(out) == 1:
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
    rows = [[_label(cat, r.measure), esc(getattr(r, between)), str(r.n), num(r.mean), num(r.sd), ci(r.ci_low, r.ci_high),
             num(r.median)] for r in desc.itertuples()]
    out.append("<h3>Group descriptives</h3>" +
               table(rows, ["measure", esc(between), "n", "mean", "sd", "95% CI", "median"], (0, 1)))
    an = t["anova"].set_index("measure")
    we = t["welch"].set_index("measure")
    kw = t["kruskal"].set_index("measure")
    rows = []
    for m in dict.fromkeys(desc["measure"]):
        a, w, k = an.loc[m], we.loc[m], kw.loc[m]
        rows.append([_label(cat, m), f"F({num(a.ddof1)}, {num(a.ddof2)}) = {num(a.F)}", pval(a.p_unc), num(a.np2),
                     f"F({num(w.ddof1)}, {num(w.ddof2)}) = {num(w.F)}", pval(w.p_unc),
                     f"H({num(k.ddof1)}) = {num(k.H)}", pval(k.p_unc)])
    out.append("<h3>Omnibus tests</h3>" +
               table(rows, ["measure", "one-way ANOVA", "p", "&eta;&sup2;", "Welch ANOVA", "p", "Kruskal-Wallis", "p"]))
    c = t["contrasts"]
    c = c[c["role"] == role] if len(c) else c
    if len(c):
        rows = [[_label(cat, r.measure), esc(r.contrast.replace("_", " ")), esc(r.method),
                 f"{num(r.estimate)} {ci(r.ci_low, r.ci_high)}", f"t({num(r.df)}) = {num(r.t)}", pval(r.p_unc),
                 f"{num(r.g)} {ci(r.g_ci_low, r.g_ci_high)}"] for r in c.itertuples()]
        out.append("<h3>Planned contrasts</h3>"
                   '<p class="note">helpless vs others: the helpless group against the mean of the other groups; '
                   "controllable vs control. pooled: ANOVA error term; welch: separate variances. g: standardised "
                   "contrast (Hedges g, SD pooled over the groups in the contrast).</p>" +
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
    names = ["deficits", "descriptives", "anova", "welch", "kruskal", "contrasts", "mannwhitney", "survival",
             "logrank", "measures", "measure_catalog", "participants", "sessions", "trials", "exclusions", "yoking",
             "load_problems", "provenance"]
    return ('<h2 id="files">Tables</h2><p class="note">Every table is also in this folder as CSV (NA = missing): '
            + ", ".join(f"<code>{n}.csv</code>" for n in names) + ".</p>")
