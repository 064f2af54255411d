"""Figures for the report and for papers, drawn with matplotlib's Agg canvas (no display, no
pyplot state).

Each function returns a matplotlib Figure; `save` writes it as PNG (200 dpi), SVG and PDF
(vector, for journals) and returns that PNG's bytes, which the report embeds. Groups are coloured by
condition kind: helpless red, controllable blue, control grey. `mark` (e.g. "SIMULATED DATA")
is printed on the figure itself, so a figure copied out of the report still says so.
"""

from __future__ import annotations

import io
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

KIND_COLOURS = {"helpless": ["#c62828", "#ef6c00", "#ad1457"], "controllable": ["#1565c0", "#00838f", "#4527a0"],
                "control": ["#616161", "#8d6e63", "#9e9d24"]}
OTHER = ["#2e7d32", "#6a1b9a", "#f9a825"]


def colours(order: Sequence, kinds: Mapping) -> dict:
    used: dict[str, int] = {}
    out = {}
    for lv in order:
        k = kinds.get(lv)
        pal = KIND_COLOURS.get(k, OTHER)
        out[lv] = pal[used.get(k, 0) % len(pal)]
        used[k] = used.get(k, 0) + 1
    return out


MAX_POINTS = 400      # individual points drawn per group and panel (a random subset above this)
FORMATS = ("png", "svg", "pdf")
PNG_DPI = 200


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _mark(fig, mark: str) -> None:
    if mark:
        fig.text(0.995, 0.005, mark, ha="right", va="bottom", fontsize=9, color="#b71c1c", fontweight="bold")


def save(fig, out_dir=None, name: str = "figure") -> bytes:
    """Write `fig` as out_dir/name.png (200 dpi), .svg and .pdf when `out_dir` is given; return
    the PNG bytes (one raster render serves the file and the report)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI if out_dir is not None else 100)
    if out_dir is not None:
        from pathlib import Path
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{name}.png").write_bytes(buf.getvalue())
        for fmt in ("svg", "pdf"):
            fig.savefig(d / f"{name}.{fmt}", format=fmt, metadata={"Creator": "lhlab analyze"})
    return buf.getvalue()


def _label(lv, kinds) -> str:
    k = kinds.get(lv)
    return f"{lv} ({k})" if k and k != lv else str(lv)


def learning_curves(trials: pd.DataFrame, value: str, between: str, order: Sequence, kinds: Mapping,
                    title: str, ylabel: str, ci: float = 0.95, mark: str = "", low: float = 0.0,
                    high: float | None = None):
    """Mean `value` per trial number and group, with a t-based CI band."""
    fig = _figure(7.5, 3.8)
    ax = fig.add_subplot()
    col = colours(order, kinds)
    d = trials[[between, "trial", value]].copy()
    d[value] = pd.to_numeric(d[value], errors="coerce")
    g = d.dropna().groupby([between, "trial"])[value].agg(["mean", "std", "count"]).reset_index()
    for lv in order:
        s = g[g[between] == lv]
        if s.empty:
            continue
        half = sps.t.ppf(0.5 + ci / 2, np.maximum(s["count"] - 1, 1)) * s["std"] / np.sqrt(s["count"])
        ax.plot(s["trial"], s["mean"], marker="o", ms=3, lw=1.6, color=col[lv],
                label=f"{_label(lv, kinds)}, n={int(s['count'].max())}")
        # the band never leaves what the value can be (latencies: 0 to the time limit)
        ax.fill_between(s["trial"], np.clip(s["mean"] - half, low, high), np.clip(s["mean"] + half, low, high),
                        color=col[lv], alpha=0.15, lw=0)
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    _mark(fig, mark)
    return fig


def group_means(descriptives: pd.DataFrame, measures: pd.DataFrame, between: str, order: Sequence,
                kinds: Mapping, title: str, data: pd.DataFrame | None = None, mark: str = "", seed: int = 1):
    """One panel per measure: every participant's value (jittered points; yes/no measures as
    the count per value) behind the group mean or proportion with its CI (from `descriptives`)."""
    cols = list(measures["column"])
    n = max(1, len(cols))
    ncol = min(3, n)
    nrow = int(np.ceil(n / ncol))
    fig = _figure(3.2 * ncol + 0.6, 2.6 * nrow + 0.5)
    fig.suptitle(title, fontsize=11)
    col = colours(order, kinds)
    labels = dict(zip(measures["column"], measures["label"]))
    units = dict(zip(measures["column"], measures["unit"]))
    kinds_of = dict(zip(measures["column"], measures["kind"])) if "kind" in measures else {}
    rng = np.random.default_rng(seed)
    for i, m in enumerate(cols):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        d = descriptives[descriptives["measure"] == m].set_index(between)
        levels = [lv for lv in order if lv in d.index]
        for j, lv in enumerate(levels):
            r = d.loc[lv]
            if data is not None and m in data.columns:
                v = pd.to_numeric(data.loc[data[between] == lv, m], errors="coerce").dropna().to_numpy(float)
                if len(v) > MAX_POINTS:
                    v = rng.choice(v, MAX_POINTS, replace=False)
                if kinds_of.get(m) == "binary":
                    for val in (0.0, 1.0):
                        k = int((v == val).sum())
                        if k:
                            ax.scatter([j + 0.28], [val], s=12 + 60 * k / max(len(v), 1), color=col[lv], alpha=0.35,
                                       lw=0)
                            ax.annotate(str(k), (j + 0.38, val), fontsize=6.5, va="center", color="#424242")
                else:
                    ax.scatter(j + rng.uniform(-0.22, 0.22, len(v)), v, s=7, color=col[lv], alpha=0.35, lw=0)
            err = np.array([[r["mean"] - r["ci_low"]], [r["ci_high"] - r["mean"]]])
            err = np.where(np.isfinite(err), np.maximum(err, 0), 0)
            ax.errorbar([j], [r["mean"]], yerr=err, fmt="o", color="black", mfc=col[lv], capsize=5, ms=7, lw=1.4,
                        zorder=3)
        ax.set_xticks(range(len(levels)))
        ax.set_xticklabels([str(lv) for lv in levels], fontsize=8)
        ax.set_xlim(-0.6, len(levels) - 0.4)
        unit = units.get(m) or ""
        extra = " (proportion)" if kinds_of.get(m) == "binary" else ""
        ax.set_title(labels.get(m, m) + (f" ({unit})" if unit else "") + extra, fontsize=8.5)
        ax.grid(axis="y", alpha=0.3)
    _mark(fig, mark)
    return fig


def survival_curves(km: pd.DataFrame, between: str, order: Sequence, kinds: Mapping, title: str,
                    xlabel: str = "trial", mark: str = ""):
    """Kaplan-Meier step curves (probability of not yet having reached criterion) with CI bands;
    ticks mark censored participants."""
    fig = _figure(7.5, 3.8)
    ax = fig.add_subplot()
    col = colours(order, kinds)
    for lv in order:
        s = km[km[between] == lv]
        if s.empty:
            continue
        t = np.concatenate([[0], s["time"].to_numpy(float)])
        surv = np.concatenate([[1.0], s["survival"].to_numpy(float)])
        lo = np.concatenate([[1.0], s["ci_low"].to_numpy(float)])
        hi = np.concatenate([[1.0], s["ci_high"].to_numpy(float)])
        n0 = int(s["n_risk"].iloc[0])
        ax.step(t, surv, where="post", color=col[lv], lw=1.8, label=f"{_label(lv, kinds)}, n={n0}")
        ax.fill_between(t, np.nan_to_num(lo, nan=0.0), np.nan_to_num(hi, nan=0.0), step="post",
                        color=col[lv], alpha=0.12, lw=0)
        cens = s[s["n_censor"] > 0]
        ax.plot(cens["time"], cens["survival"], "|", color=col[lv], ms=10, mew=1.5)
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("not yet at criterion")
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    _mark(fig, mark)
    return fig
