"""Power analysis by simulation: many simulated studies, each analysed as `lhlab analyze` would.

One study is a pure function of (protocol, profile, n per group, seed): `run_study` simulates
it in memory (experiment.simstudy: the real Session and task code, nothing written),
turns the trial logs into the tidy tables with the loader's own reader (`study_tables`), and
analyses them with the functions `analysis.pipeline.analyze` calls (`analyse_study`:
participant_measures -> yoking_check -> exclusions -> outcomes.outcomes). Its result is one row
per test measure: the primary outcome's confirmatory test and every secondary measure's
Holm-adjusted test, with p, significance and the standardised deficit.

`summarise` turns many study rows into power per (profile, n per group, measure): the share
of studies whose test rejected at the protocol's alpha (two-sided, as the report counts it),
with a Wilson 95% Monte-Carlo interval, the share that rejected in the wrong direction, and
the mean standardised deficit. Under the `no-effect` profile that share is the false-positive
rate. `smallest_n` finds the smallest group size whose power reaches the target.

Seeds: study i of cell (profile, n) has seed `study_seed(seed, profile, n, i)`; nothing depends
on which worker (process, Dask worker) runs it, so the numbers are the same for any --workers.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from experiment.errors import BadInput

RESULT_COLUMNS = ["profile", "n_per_group", "study", "seed", "measure", "plan", "n_analysed", "deficit", "g", "p",
                  "p_adjusted", "significant"]
SUMMARY_COLUMNS = ["profile", "n_per_group", "measure", "plan", "studies", "rejections", "power", "ci_low",
                   "ci_high", "wrong_direction", "mean_g", "mean_n_analysed"]


@dataclass(frozen=True)
class StudyTask:
    """The unit of work: everything one simulated study depends on (picklable, small)."""

    protocol: str           # path of the protocol file
    sha256: str             # its SHA-256 (a worker refuses a file that changed meanwhile)
    profile: str
    n_per_group: int
    index: int              # study number within the cell
    seed: int               # the run's seed (--seed)


@dataclass(frozen=True)
class Spec:
    """What the analysis needs once per protocol: the plan (primary column, alpha)."""

    primary: str | None
    declared: str | None
    alpha: float


@functools.lru_cache(maxsize=8)
def _protocol(path: str, sha256: str):
    from experiment.protocol import load_protocol
    proto = load_protocol(Path(path))
    if proto.sha256 != sha256:
        raise BadInput(f"{path} changed while the power analysis ran (SHA-256 {proto.sha256[:12]}, "
                       f"expected {sha256[:12]}); start it again")
    return proto


@functools.lru_cache(maxsize=8)
def analysis_spec(path: str, sha256: str) -> Spec:
    """The protocol's plan, read by analysis.plan.read_plan (the function `lhlab analyze` uses)."""
    from analysis.plan import read_plan
    proto = _protocol(path, sha256)
    sessions = pd.DataFrame({"protocol_sha256": [proto.sha256], "protocol_file": [str(proto.path.resolve())],
                             "started": ["0"]})
    plan = read_plan(sessions)
    return Spec(plan.primary, plan.declared, plan.alpha)


# -- one study -----------------------------------------------------------------------------------

def session_row(record: dict) -> dict:
    """The `sessions` table row of an in-memory session record (the columns the analysis uses;
    the loader's other provenance columns are left empty)."""
    from analysis.loading import SESSION_COLUMNS
    phases = {ph["id"]: ph for ph in record["phases"]}
    sim = record.get("simulated")
    row = dict.fromkeys(SESSION_COLUMNS)
    row.update({
        "participant_id": f"sub-{record['participant']}", "session": record["session"],
        "condition": record["condition"], "condition_kind": record.get("condition_kind"),
        "yoked_to": f"sub-{record['yoked_to']}" if record.get("yoked_to") else None,
        "status": record.get("status"), "session_status": record.get("effective_status"),
        "pilot": bool(record.get("pilot")), "simulated": sim.get("profile") if isinstance(sim, dict) else None,
        "seed": record.get("seed"), "protocol_sha256": (record.get("protocol") or {}).get("sha256"),
        "protocol_file": (record.get("protocol") or {}).get("file"),
        "started": record.get("started"), "ended": record.get("ended"),
        "phases": ";".join(phases),
        "phases_completed": ";".join(k for k, v in phases.items() if v.get("status") == "complete"),
    })
    return row


def study_tables(sessions: list) -> "Study":
    """The loader's `Study` (trials, sessions, participants) of in-memory sessions
    (experiment.simstudy.SimulatedSession), built by the loader's own trial reader
    from the lines `RowSink` kept, exactly as `load_study` builds it from the files."""
    from analysis import loading
    from analysis.timing import session_timing
    study = Path("<memory>")
    problems = loading._Problems(study)
    reader = loading._TrialReader(problems)
    # files in the order load_study reads them: participant folders, then file names, sorted
    for s in sorted(sessions, key=lambda s: (f"sub-{s.record['participant']}", s.record["session"])):
        rec = s.record
        pid = f"sub-{rec['participant']}"
        ran = [(index, ph) for index, ph in enumerate(rec["phases"]) if ph["id"] in s.logs]
        for index, ph in sorted(ran, key=lambda x: Path(x[1]["file"]).name):
            header, lines = s.logs[ph["id"]]
            entry = {"path": f"{pid}/{ph['id']}", "participant_id": pid, "session": rec["session"],
                     "phase": ph["id"], "task": ph.get("task"), "recorded": ph.get("trials"),
                     "phase_status": ph.get("status"), "index": index, "checked": True}
            reader.fast.setdefault(tuple(header), []).append(("".join(lines), len(lines), reader._register(entry)))
    frame = pd.DataFrame([session_row(s.record) for s in sessions], columns=loading.SESSION_COLUMNS)
    frame = frame.sort_values(["participant_id", "session"], kind="stable").reset_index(drop=True)
    trials = reader.frame(frame)
    participants, notes = loading._participants(study, frame, "first", problems)
    timing = {(f"sub-{s.record['participant']}", s.record["session"]): session_timing(s.record) for s in sessions}
    return loading.Study(study, trials, frame, participants, problems.frame(), notes, timing)


def analyse_study(study, spec: Spec, rules=None) -> pd.DataFrame:
    """The planned tests of a study (`outcomes.outcomes`), computed through the same steps as
    `analysis.pipeline.analyze`: measures, yoking check, exclusions (simulated data are
    analysed: pilot exclusion off), then the primary and the Holm-adjusted secondary tests."""
    from analysis import outcomes
    from analysis.exclusions import ExclusionRules, exclusions, yoking_check
    from analysis.measures import participant_measures
    from analysis.pipeline import DEFAULT_SHUTTLE_CRITERION, DEFAULT_YOKE_TOLERANCE
    rules = rules or ExclusionRules(pilot=False)
    part = study.participants
    measures = participant_measures(study.trials, part, DEFAULT_SHUTTLE_CRITERION)
    cat = measures.catalog
    noise_cols = cat.loc[(cat["role"] == "training") & (cat["measure"] == "noise_time"), "column"]
    yoking = yoking_check(measures.table, part, noise_column=noise_cols.iloc[0] if len(noise_cols)
                          else "training_noise_time", tolerance=DEFAULT_YOKE_TOLERANCE)
    perf = measures.performance("test")
    excl = exclusions(part, measures.table, rules, yoking, test_columns=list(perf["column"]))
    included = measures.table[~measures.table["participant_id"].isin(excl["participant_id"])].reset_index(drop=True)
    kinds = part.drop_duplicates("condition").set_index("condition")["condition_kind"].to_dict()
    perf = perf[perf["column"].isin(included.columns)]
    primary = spec.primary if spec.primary in set(perf["column"]) else None
    return outcomes.outcomes(included, perf, "condition", kinds, 0.95, primary, spec.alpha)


def run_study(task: StudyTask) -> dict:
    """One simulated study, analysed: {"rows": [one dict per test measure], "simulate_s", "analyse_s"
    (wall time), "simulate_cpu_s", "analyse_cpu_s" (CPU time of the process)}.
    A pure function of `task` (the same task gives the same rows in any process)."""
    from experiment.simstudy import simulate_study, study_seed
    proto = _protocol(task.protocol, task.sha256)
    spec = analysis_spec(task.protocol, task.sha256)
    seed = study_seed(task.seed, task.profile, task.n_per_group, task.index)
    t0, c0 = time.perf_counter(), time.process_time()
    yoked = any(c.yoked_to for c in proto.conditions.values())
    # only the rows the planned tests read (test phases; training too where yoking is checked)
    roles = frozenset({"test", "training"} if yoked else {"test"})
    sessions = simulate_study(proto, task.profile, task.n_per_group, seed, roles=roles)
    t1, c1 = time.perf_counter(), time.process_time()
    out = analyse_study(study_tables(sessions), spec)
    t2, c2 = time.perf_counter(), time.process_time()
    return {"rows": result_rows(out, task.profile, task.n_per_group, task.index, seed),
            "simulate_s": t1 - t0, "analyse_s": t2 - t1, "simulate_cpu_s": c1 - c0, "analyse_cpu_s": c2 - c1}


def result_rows(outcome: pd.DataFrame, profile: str, n_per_group: int, index: int, seed: int) -> list[dict]:
    """One study's `outcomes.outcomes` table as study rows (RESULT_COLUMNS)."""
    return [{"profile": profile, "n_per_group": n_per_group, "study": index, "seed": seed,
             "measure": r.measure, "plan": r.plan, "n_analysed": int(r.n_helpless + r.n_comparison),
             "deficit": float(r.deficit), "g": float(r.g), "p": float(r.p),
             "p_adjusted": float(r.p_adjusted), "significant": bool(r.significant)}
            for r in outcome.itertuples()]


def run_chunk(tasks: list[StudyTask]) -> list[dict]:
    """Several studies in one call (fewer round trips to a worker)."""
    return [run_study(t) for t in tasks]


# -- many studies ---------------------------------------------------------------------------------

def summarise(results: pd.DataFrame, ci: float = 0.95) -> pd.DataFrame:
    """Power per (profile, n_per_group, measure) from study rows (RESULT_COLUMNS): the share of
    studies that rejected (``significant``), its Wilson interval (Monte-Carlo error), the share
    that rejected with the helpless group better (``wrong_direction``), the mean g."""
    from statsmodels.stats.proportion import proportion_confint
    if results.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    rows = []
    for (profile, n, measure), g in results.groupby(["profile", "n_per_group", "measure"], sort=False):
        k, m = int(g["significant"].sum()), len(g)
        lo, hi = proportion_confint(k, m, alpha=1 - ci, method="wilson")
        wrong = int((g["significant"] & (g["deficit"] < 0)).sum())
        rows.append({"profile": profile, "n_per_group": int(n), "measure": measure, "plan": g["plan"].iloc[0],
                     "studies": m, "rejections": k, "power": k / m, "ci_low": lo, "ci_high": hi,
                     "wrong_direction": wrong / m, "mean_g": float(g["g"].mean()),
                     "mean_n_analysed": float(g["n_analysed"].mean())})
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    rank = {"primary": 0, "secondary": 1}
    return out.sort_values(["profile", "measure", "n_per_group"], key=lambda s: s.map(rank) if s.name == "plan"
                           else s, kind="stable").reset_index(drop=True)


def smallest_n(summary: pd.DataFrame, target: float) -> pd.DataFrame:
    """Per (profile, measure): the smallest n per group whose power reaches `target` (NaN: none
    in the grid), and the smallest whose whole CI is above it (``n_ci_above``)."""
    rows = []
    for (profile, measure), g in summary.groupby(["profile", "measure"], sort=False):
        g = g.sort_values("n_per_group")
        reach = g[g["power"] >= target]
        sure = g[g["ci_low"] >= target]
        rows.append({"profile": profile, "measure": measure, "plan": g["plan"].iloc[0], "target": target,
                     "n_per_group": int(reach["n_per_group"].iloc[0]) if len(reach) else np.nan,
                     "n_ci_above": int(sure["n_per_group"].iloc[0]) if len(sure) else np.nan})
    return pd.DataFrame(rows, columns=["profile", "measure", "plan", "target", "n_per_group", "n_ci_above"])


def results_frame(chunks: list[dict]) -> pd.DataFrame:
    """Study results (as returned by run_study) as one table, in a fixed order."""
    rows = [r for c in chunks for r in c["rows"]]
    df = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    return df.sort_values(["profile", "n_per_group", "study", "measure"], kind="stable").reset_index(drop=True)
