"""Per-participant measures, one row per participant, from the tidy trials table.

Measures are computed per task type, for the phases that matter to the design:

* test phases (role ``test``): column prefix = the phase id, e.g. ``test_mean_latency``;
* training phases (role ``training``): prefix ``training`` (conditions run different training
  phases, e.g. ``trainsolvable`` / ``trainunsolvable``; their summaries share one column);
* manipulation checks (role ``check``): prefix = the phase id; a rating question ``control``
  in phase ``check`` gives the column ``check_control``.

Anagram (task ``anagram``; test role unless noted)
    ``n_trials``; ``solved``; ``failures`` (timeouts and skips); ``mean_latency`` (s; unsolved
    trials scored at the time limit, the classic score); ``median_latency`` (s, same scoring);
    ``trials_to_criterion`` (trial on which the criterion run was completed; participants who
    never reach it get the number of trials they had, the classic score, and
    ``criterion_censored`` = 1); ``pattern_found`` (1 if the criterion was reached: the usual
    operationalisation of having found the letter order). Training: ``n_trials``, ``solved``,
    ``failures``, ``mean_latency``.
Shuttle (task ``shuttle``; columns ``outcome`` in escape/avoid/fail and ``latency``)
    ``n_trials``; ``failures`` (no response in the window); ``escapes``; ``avoidances``;
    ``mean_latency`` and ``median_latency`` (s; failures scored at the trial's window when the
    file has ``latency_scored`` or a window column, else left out); ``trials_to_criterion`` with
    ``criterion_censored`` (the file's ``criterion_reached`` column when present, else the first
    run of `shuttle_criterion` consecutive escapes/avoidances).
Noise escape (task ``noise_escape``; training)
    ``n_trials``; ``escapes`` (outcome escaped); ``timeouts``; ``noise_time`` (s, total noise
    heard: the sum of ``noise_duration``; what the yoking check compares); ``mean_escape_latency``
    (escapes only); ``escape_responses`` (completed responses, which change nothing when the
    noise is inescapable).
Discrimination problems (task ``discrimination``; training)
    ``n_trials``; ``correct_feedback`` (count of "correct" feedback); ``timeouts``;
    ``correct_choices`` (soluble problems); ``mean_rt``.
Any other task
    ``n_trials``; ``escapes``; ``outcome_<level>`` counts for a short outcome list;
    ``noise_time`` (from ``noise_duration``/``noise_time``/``duration`` or offset minus onset);
    ``mean_rt``.
Rating (task ``rating``)
    one column per question id (mean response if asked more than once).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

CATALOG_COLUMNS = ["column", "phase", "role", "task", "measure", "label", "unit", "worse", "kind", "censor_column",
                   "low", "high"]
ID_COLUMNS = ["participant_id", "condition", "condition_kind"]
NOISE_TIME_COLUMNS = ("noise_duration", "noise_time", "duration")
WINDOW_COLUMNS = ("time_limit", "window", "response_window", "noise_window")


@dataclass
class Measures:
    """`table`: one row per participant (``participant_id``, ``condition``, ``condition_kind``,
    then one column per measure). `catalog`: one row per measure column (``column``, ``phase``,
    ``role``, ``task``, ``measure``, ``label``, ``unit``, ``worse`` = "higher"/"lower" for
    performance measures where that direction is worse, else "", ``kind`` ("binary" for a
    yes/no per participant, "count", "mean", ...), ``censor_column``, ``low``/``high`` = the
    range the measure can take (from the task's limits; +-inf when unbounded), which no
    interval may leave).
    `criterion_from_option`: the shuttle criterion had to be derived with `shuttle_criterion`
    because the files do not record it (else the option does not apply)."""

    table: pd.DataFrame
    catalog: pd.DataFrame
    criterion_from_option: bool = False

    def performance(self, role: str = "test") -> pd.DataFrame:
        """Catalog rows of the performance measures (those with a 'worse' direction) of a role."""
        c = self.catalog
        return c[(c["role"] == role) & (c["worse"] != "")]


def safe(name: str) -> str:
    """An identifier-safe column name part."""
    out = re.sub(r"[^0-9A-Za-z_]+", "_", str(name)).strip("_")
    return out if out and not out[0].isdigit() else f"x{out}"


def participant_measures(trials: pd.DataFrame, participants: pd.DataFrame | None = None,
                         shuttle_criterion: int = 3) -> Measures:
    """Measures of every participant in `participants` (default: everyone in `trials`).

    Only the session named in `participants['session']` is used for each participant.
    """
    if participants is None:
        participants = (trials.groupby("participant_id", sort=False)
                        .agg(session=("session", "min"), condition=("condition", "first"),
                             condition_kind=("condition_kind", "first")).reset_index())
    base = participants[["participant_id", "condition", "condition_kind"]].reset_index(drop=True)
    catalog: list[dict] = []
    blocks: list[pd.DataFrame] = []
    if trials.empty:
        return Measures(base, pd.DataFrame(columns=CATALOG_COLUMNS))
    from_option = False
    keys = participants[["participant_id", "session"]]
    t = trials.merge(keys, on=["participant_id", "session"], how="inner")
    t = t[t["role"].isin(["test", "training", "check"])]
    t = t.assign(_prefix=np.where(t["role"] == "training", "training", t["phase"].astype(str)))
    order = list(dict.fromkeys(zip(t["role"], t["_prefix"], t["task"])))
    role_rank = {"training": 0, "check": 1, "test": 2}
    order.sort(key=lambda x: role_rank[x[0]])
    for role, prefix, task in order:
        part = t[(t["_prefix"] == prefix) & (t["task"] == task)]
        phase = ";".join(dict.fromkeys(part["phase"].astype(str)))
        if task == "anagram":
            block, cat = _anagram(part, role)
        elif task == "shuttle":
            block, cat = _shuttle(part, role, shuttle_criterion)
            from_option = from_option or (role == "test" and not _has(part, "criterion_reached"))
        elif task == "rating":
            block, cat = _rating(part)
        elif task == "noise_escape":
            block, cat = _noise_escape(part)
        elif task == "discrimination":
            block, cat = _discrimination(part)
        elif task == "instructions":
            continue
        else:
            block, cat = _generic(part)
        pre = safe(prefix)
        block = block.add_prefix(pre + "_")
        for entry in cat:
            entry.update(column=f"{pre}_{entry['measure']}", phase=phase, role=role, task=task)
            if entry.get("censor_column"):
                entry["censor_column"] = f"{pre}_{entry['censor_column']}"
            catalog.append(entry)
        blocks.append(block)
    table = base.set_index("participant_id")
    for b in blocks:
        dup = [c for c in b.columns if c in table.columns]
        table = table.join(b.drop(columns=dup), how="left")
    cat = pd.DataFrame(catalog, columns=CATALOG_COLUMNS).drop_duplicates("column")
    cat["censor_column"] = cat["censor_column"].fillna("")
    nonneg = cat["kind"].isin(["count", "sum"]) | (cat["unit"] == "s")     # counts and times are >= 0
    cat["low"] = pd.to_numeric(cat["low"]).fillna(pd.Series(np.where(nonneg, 0.0, -np.inf), index=cat.index))
    cat["high"] = pd.to_numeric(cat["high"]).fillna(np.inf)
    return Measures(table.reset_index(), cat.reset_index(drop=True), from_option)


def _m(measure, label, unit="", worse="", kind="mean", censor_column="", low=None, high=None):
    return {"measure": measure, "label": label, "unit": unit, "worse": worse, "kind": kind,
            "censor_column": censor_column, "low": low, "high": high}


def _limit(df: pd.DataFrame, col: str) -> float | None:
    """The largest value of a limit column (e.g. time_limit), or None when not recorded."""
    v = _num(df, col).max()
    return float(v) if np.isfinite(v) else None


def _has(df: pd.DataFrame, col: str) -> bool:
    """The column holds data for these rows (the trials table is the union of every task's columns)."""
    return col in df.columns and bool(df[col].notna().any())


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    if col not in df.columns:
        return pd.Series(np.nan, index=df.index)
    return pd.to_numeric(df[col], errors="coerce")


def _first_reached(df: pd.DataFrame, reached: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(trials to criterion, censored flag, n trials) per participant: the first trial where
    `reached` is true, or the number of trials if never."""
    g = df.groupby("participant_id", sort=False)
    n = g.size()
    first = df.loc[reached.to_numpy(dtype=bool), ["participant_id", "trial"]].groupby("participant_id")["trial"].min()
    first = first.reindex(n.index)
    censored = first.isna().astype(int)
    return first.fillna(g["trial"].max()).astype(float), censored, n


def _anagram(df: pd.DataFrame, role: str):
    outcome = df["outcome"].astype(str) if "outcome" in df.columns else pd.Series("", index=df.index)
    solved = outcome == "solved"
    latency = _num(df, "latency_scored")
    fallback = _num(df, "rt").where(solved, _num(df, "time_limit"))
    latency = latency.fillna(fallback)
    w = pd.DataFrame({"participant_id": df["participant_id"].to_numpy(), "solved": solved.to_numpy(),
                      "fail": outcome.isin(["timeout", "skipped"]).to_numpy(), "lat": latency.to_numpy()})
    g = w.groupby("participant_id", sort=False)
    out = pd.DataFrame({"n_trials": g.size(), "solved": g["solved"].sum(), "failures": g["fail"].sum(),
                        "mean_latency": g["lat"].mean()})
    n_max = float(out["n_trials"].max()) if len(out) else None
    t_max = _limit(df, "time_limit")
    cat = [_m("n_trials", "Trials", kind="count", low=0),
           _m("solved", "Anagrams solved", worse="lower", kind="count", low=0, high=n_max),
           _m("failures", "Failures (unsolved)", worse="higher", kind="count", low=0, high=n_max),
           _m("mean_latency", "Mean latency (failures at the limit)", "s", worse="higher", low=0, high=t_max)]
    if role == "test":
        out["median_latency"] = g["lat"].median()
        cat.append(_m("median_latency", "Median latency (failures at the limit)", "s", worse="higher", low=0,
                      high=t_max))
        reached = _num(df, "criterion_reached").fillna(0) > 0
        ttc, censored, _ = _first_reached(df, reached)
        out["trials_to_criterion"] = ttc
        out["criterion_censored"] = censored
        out["pattern_found"] = 1 - censored
        cat += [_m("trials_to_criterion", "Trials to criterion (never reached: number of trials)", "",
                   worse="higher", kind="trials_to_criterion", censor_column="criterion_censored", low=1,
                   high=n_max),
                _m("criterion_censored", "Criterion never reached (censored)", kind="flag", low=0, high=1),
                _m("pattern_found", "Pattern found (criterion reached)", worse="lower", kind="binary", low=0,
                   high=1)]
    return out, cat


def _shuttle(df: pd.DataFrame, role: str, criterion: int):
    outcome = df["outcome"].astype(str) if "outcome" in df.columns else pd.Series("", index=df.index)
    fail = outcome == "fail"
    if _has(df, "latency_scored"):
        lat = _num(df, "latency_scored")
    else:
        lat = _num(df, "latency")
        for c in WINDOW_COLUMNS:
            if _has(df, c):
                lat = lat.where(~(fail & lat.isna()), _num(df, c))
                break
    w = pd.DataFrame({"participant_id": df["participant_id"].to_numpy(), "fail": fail.to_numpy(),
                      "escape": (outcome == "escape").to_numpy(), "avoid": (outcome == "avoid").to_numpy(),
                      "lat": lat.to_numpy()})
    g = w.groupby("participant_id", sort=False)
    out = pd.DataFrame({"n_trials": g.size(), "failures": g["fail"].sum(), "escapes": g["escape"].sum(),
                        "avoidances": g["avoid"].sum(), "mean_latency": g["lat"].mean(),
                        "median_latency": g["lat"].median()})
    n_max = float(out["n_trials"].max()) if len(out) else None
    cat = [_m("n_trials", "Trials", kind="count", low=0),
           _m("failures", "Failures to escape", worse="higher", kind="count", low=0, high=n_max),
           _m("escapes", "Escapes", kind="count", low=0, high=n_max),
           _m("avoidances", "Avoidances", worse="lower", kind="count", low=0, high=n_max),
           _m("mean_latency", "Mean latency", "s", worse="higher", low=0),
           _m("median_latency", "Median latency", "s", worse="higher", low=0)]
    if role == "test":
        recorded = _has(df, "criterion_reached")
        if recorded:
            reached = _num(df, "criterion_reached").fillna(0) > 0
        else:
            ok = (~fail).astype(int)
            # length of the current run of successes, per participant (reset by a failure)
            run_id = fail.groupby(df["participant_id"]).cumsum()
            run = ok.groupby([df["participant_id"], run_id]).cumsum()
            reached = run >= criterion
        ttc, censored, _ = _first_reached(df, reached)
        out["trials_to_criterion"] = ttc
        out["criterion_censored"] = censored
        how = ("as the task records it" if recorded
               else f"{criterion} escapes/avoidances in a row, --shuttle-criterion")
        cat += [_m("trials_to_criterion", f"Trials to criterion ({how}; never reached: number of trials)", "",
                   worse="higher", kind="trials_to_criterion", censor_column="criterion_censored", low=1,
                   high=n_max),
                _m("criterion_censored", "Criterion never reached (censored)", kind="flag", low=0, high=1)]
    return out, cat


def _rating(df: pd.DataFrame):
    w = pd.DataFrame({"participant_id": df["participant_id"].to_numpy(),
                      "question": df["question"].astype(str).map(safe).to_numpy(),
                      "response": _num(df, "response").to_numpy()})
    out = w.pivot_table(index="participant_id", columns="question", values="response", aggfunc="mean", sort=False)
    out.columns = [str(c) for c in out.columns]
    q = df["question"].astype(str).map(safe)
    lows = _num(df, "scale_low").groupby(q).min()
    highs = _num(df, "scale_high").groupby(q).max()
    cat = [_m(c, f"Rating: {c}", kind="rating", low=lows.get(c), high=highs.get(c)) for c in out.columns]
    return out, cat


def _noise_escape(df: pd.DataFrame):
    outcome = df["outcome"].astype(str) if _has(df, "outcome") else pd.Series("", index=df.index)
    pid = df["participant_id"]
    g = df.groupby("participant_id", sort=False)
    out = pd.DataFrame({"n_trials": g.size(),
                        "escapes": (outcome == "escaped").groupby(pid, sort=False).sum(),
                        "timeouts": (outcome == "timeout").groupby(pid, sort=False).sum()})
    cat = [_m("n_trials", "Noise trials", kind="count"),
           _m("escapes", "Noise escapes", worse="lower", kind="count"),
           _m("timeouts", "Noise not escaped (time-out)", kind="count")]
    noise = _noise_time(df)
    if noise is not None:
        out["noise_time"] = noise.groupby(pid, sort=False).sum(min_count=1)
        cat.append(_m("noise_time", "Total noise time", "s", worse="higher", kind="sum"))
    if _has(df, "escape_latency"):
        out["mean_escape_latency"] = _num(df, "escape_latency").groupby(pid, sort=False).mean()
        cat.append(_m("mean_escape_latency", "Mean escape latency (escapes only)", "s"))
    if _has(df, "responses_completed"):
        out["escape_responses"] = _num(df, "responses_completed").groupby(pid, sort=False).sum()
        cat.append(_m("escape_responses", "Escape responses completed (inescapable: no effect)", kind="count"))
    return out, cat


def _discrimination(df: pd.DataFrame):
    pid = df["participant_id"]
    feedback = df["feedback"].astype(str) if _has(df, "feedback") else pd.Series("", index=df.index)
    g = df.groupby("participant_id", sort=False)
    out = pd.DataFrame({"n_trials": g.size(),
                        "correct_feedback": (feedback == "correct").groupby(pid, sort=False).sum(),
                        "timeouts": (feedback == "timeout").groupby(pid, sort=False).sum()})
    cat = [_m("n_trials", "Discrimination trials", kind="count"),
           _m("correct_feedback", "'Correct' feedback received", worse="lower", kind="count"),
           _m("timeouts", "No choice in time", kind="count")]
    if _has(df, "choice_correct"):
        out["correct_choices"] = _num(df, "choice_correct").groupby(pid, sort=False).sum(min_count=1)
        cat.append(_m("correct_choices", "Correct choices (soluble problems)", kind="count"))
    if _has(df, "rt"):
        out["mean_rt"] = _num(df, "rt").groupby(pid, sort=False).mean()
        cat.append(_m("mean_rt", "Mean choice time", "s"))
    return out, cat


def _noise_time(df: pd.DataFrame) -> pd.Series | None:
    for c in NOISE_TIME_COLUMNS:
        if _has(df, c):
            return _num(df, c)
    if _has(df, "noise_onset") and _has(df, "noise_offset"):
        return _num(df, "noise_offset") - _num(df, "noise_onset")
    return None


def _generic(df: pd.DataFrame):
    g = df.groupby("participant_id", sort=False)
    out = pd.DataFrame({"n_trials": g.size()})
    cat = [_m("n_trials", "Trials", kind="count")]
    if _has(df, "outcome"):
        outcome = df["outcome"].astype(str)
        esc = outcome.isin(["escape", "escaped"])
        if esc.any():
            out["escapes"] = esc.groupby(df["participant_id"], sort=False).sum()
            cat.append(_m("escapes", "Escapes", kind="count"))
        levels = [lv for lv in outcome[df["outcome"].notna()].unique()]
        if 0 < len(levels) <= 5:
            for lv in sorted(levels):
                name = f"outcome_{safe(lv)}"
                out[name] = (outcome == lv).groupby(df["participant_id"], sort=False).sum()
                cat.append(_m(name, f"Trials with outcome '{lv}'", kind="count"))
    noise = _noise_time(df)
    if noise is not None:
        out["noise_time"] = noise.groupby(df["participant_id"], sort=False).sum(min_count=1)
        cat.append(_m("noise_time", "Total noise time", "s", kind="sum"))
    if _has(df, "rt"):
        out["mean_rt"] = _num(df, "rt").groupby(df["participant_id"], sort=False).mean()
        cat.append(_m("mean_rt", "Mean response time", "s"))
    return out, cat
