"""What `lhlab power` writes: CSV tables, the power curve (SVG and PNG), a short HTML page, JSON.

Files in the output folder:
    power.csv        one row per profile x n per group x measure (analysis.power.SUMMARY_COLUMNS)
    smallest_n.csv   per profile and measure, the smallest n per group reaching the target
    studies.csv      one row per simulated study and measure (analysis.power.RESULT_COLUMNS)
    power_curve.svg / .png   the primary outcome's power against n per group, one line per
                     profile with its 95% Monte-Carlo band; the secondary measures beside it
    power.html       the page: what was simulated, the answer, the figure, the tables
    power.json       the same numbers for scripts (also printed with --json)
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd


def summary_json(meta: dict, summary: pd.DataFrame, smallest: pd.DataFrame) -> dict:
    def records(df: pd.DataFrame) -> list[dict]:
        return [{k: (None if isinstance(v, float) and not np.isfinite(v) else
                     (v.item() if hasattr(v, "item") else v)) for k, v in row.items()}
                for row in df.to_dict("records")]
    return {**meta, "power": records(summary), "smallest_n": records(smallest)}


def write_outputs(out: Path, meta: dict, results: pd.DataFrame, summary: pd.DataFrame,
                  smallest: pd.DataFrame) -> dict[str, Path]:
    """Write every file into `out` (created); returns {name: path}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"power.csv": out / "power.csv", "smallest_n.csv": out / "smallest_n.csv",
             "studies.csv": out / "studies.csv", "power.json": out / "power.json"}
    summary.to_csv(paths["power.csv"], index=False, na_rep="NA")
    smallest.to_csv(paths["smallest_n.csv"], index=False, na_rep="NA")
    results.to_csv(paths["studies.csv"], index=False, na_rep="NA")
    paths["power.json"].write_text(json.dumps(summary_json(meta, summary, smallest), indent=1) + "\n",
                                   encoding="utf-8")
    if len(summary):
        for ext in ("svg", "png"):
            paths[f"power_curve.{ext}"] = out / f"power_curve.{ext}"
        figure(summary, meta, paths["power_curve.svg"], paths["power_curve.png"])
    paths["power.html"] = out / "power.html"
    paths["power.html"].write_text(page(meta, summary, smallest), encoding="utf-8")
    return paths


def figure(summary: pd.DataFrame, meta: dict, svg: Path, png: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    primary = summary[summary["plan"] == "primary"]
    secondary = summary[summary["plan"] != "primary"]
    panels = 1 + (len(secondary) > 0)
    fig, axes = plt.subplots(1, panels, figsize=(6.2 * panels, 5.6), squeeze=False)
    ax = axes[0][0]
    for profile, g in (primary if len(primary) else summary).groupby("profile", sort=False):
        g = g.sort_values("n_per_group")
        line, = ax.plot(g["n_per_group"], g["power"], marker="o", label=profile)
        ax.fill_between(g["n_per_group"], g["ci_low"], g["ci_high"], color=line.get_color(), alpha=0.2, lw=0)
    ax.axhline(meta["target"], color="0.3", ls="--", lw=1, label=f"target {meta['target']:g}")
    ax.axhline(meta["alpha"], color="0.6", ls=":", lw=1, label=f"alpha {meta['alpha']:g}")
    ax.set(xlabel="participants per group", ylabel="power (share of studies with p < alpha)", ylim=(0, 1.02),
           title=f"Primary outcome: {meta.get('primary') or '(none declared)'}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.16), ncol=3, frameon=False)
    ax.grid(alpha=0.3)
    if panels > 1:
        # one colour per measure, one line style per profile (the no-effect lines are left out
        # when other profiles are shown: their level is the primary panel's false-positive line)
        ax2 = axes[0][1]
        shown = [p for p in dict.fromkeys(secondary["profile"]) if p != "no-effect"] or ["no-effect"]
        colours = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(secondary["measure"]))}
        styles = dict(zip(shown, ["-", "--", ":", "-."] * 4))
        for (profile, measure), g in secondary.groupby(["profile", "measure"], sort=False):
            if profile not in styles:
                continue
            g = g.sort_values("n_per_group")
            ax2.plot(g["n_per_group"], g["power"], marker=".", color=colours[measure], ls=styles[profile],
                     label=f"{measure} ({profile})")
        ax2.axhline(meta["target"], color="0.3", ls="--", lw=1)
        ax2.set(xlabel="participants per group", ylabel="power (Holm-adjusted)", ylim=(0, 1.02),
                title="Secondary measures (exploratory)")
        ax2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.16), ncol=2, frameon=False)
        ax2.grid(alpha=0.3)
    fig.suptitle(f"{meta['title']}: power by simulation ({meta['studies']} studies per point)", fontsize=10)
    fig.tight_layout()
    fig.savefig(svg)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def _table(df: pd.DataFrame, cols: list[str]) -> str:
    def cell(v) -> str:
        if isinstance(v, float):
            return "–" if not np.isfinite(v) else f"{v:.3f}".rstrip("0").rstrip(".") if v % 1 else f"{v:.0f}"
        return html.escape(str(v))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in df[cols].itertuples(index=False))
    return f"<table><tr>{head}</tr>{body}</table>"


def page(meta: dict, summary: pd.DataFrame, smallest: pd.DataFrame) -> str:
    prim = summary[summary["plan"] == "primary"]
    answer = []
    for row in smallest[smallest["plan"] == "primary"].itertuples():
        if row.profile == "no-effect":
            continue
        n = "not reached in this grid" if not np.isfinite(row.n_per_group) else f"{int(row.n_per_group)} per group"
        answer.append(f"<li>profile <b>{html.escape(row.profile)}</b>: {n} for power {meta['target']:g}</li>")
    null = prim[prim["profile"] == "no-effect"]
    fpr = ""
    if len(null):
        rate = null["rejections"].sum() / null["studies"].sum()
        fpr = (f"<p>False-positive rate under <b>no-effect</b> (all group sizes pooled): {rate:.3f} "
               f"(alpha {meta['alpha']:g}); per group size in the table.</p>")
    stopped = "<p class=warn>The run was stopped early: only the finished cells are shown.</p>" \
        if meta.get("stopped") else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Power: {html.escape(meta['title'])}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}}
table{{border-collapse:collapse;font-size:90%}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}
.warn{{color:#a00}} code{{background:#f4f4f4}}</style></head><body>
<h1>Power by simulation: {html.escape(meta['title'])}</h1>
<p>SIMULATED DATA. {meta['studies']} simulated studies per point, each run through lhlab's task code with
simulated participants and analysed with the planned test `lhlab analyze` reports:
primary outcome <code>{html.escape(str(meta.get('declared')))}</code> (alpha {meta['alpha']:g}, the protocol's
<code>analysis:</code> section); secondary measures Holm-adjusted. Power = share of studies whose test
rejected; the band is its 95% Monte-Carlo (Wilson) interval.</p>
{stopped}
<h2>Smallest group size reaching power {meta['target']:g}</h2><ul>{''.join(answer) or '<li>none</li>'}</ul>
{fpr}
<img src="power_curve.svg" alt="power curve" style="max-width:100%">
<h2>Primary outcome</h2>{_table(prim, ['profile', 'n_per_group', 'studies', 'power', 'ci_low', 'ci_high', 'mean_g'])}
<h2>Smallest n per group, every measure</h2>{_table(smallest, ['profile', 'measure', 'plan', 'n_per_group', 'n_ci_above'])}
<p>Every measure and group size: power.csv; every study: studies.csv.</p>
<p>Command: <code>{html.escape(meta['command'])}</code><br>Protocol {html.escape(meta['protocol'])}
(SHA-256 {meta['sha256'][:12]}); seed {meta['seed']}; {meta['seconds']:.0f} s.</p>
</body></html>
"""
