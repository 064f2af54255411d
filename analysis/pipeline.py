"""From a study folder to every table of the analysis (`analyze`), and to files (`write_outputs`).

    result = analyze("data/unsolvable-anagrams", Options(rules=ExclusionRules(pilot=False)))
    result.tables["deficits"]            # how much worse the helpless group did, per measure
    write_outputs(result, "out/")        # CSVs + report.html

Tables in `Analysis.tables` (each also written as <name>.csv):
    trials, sessions, participants, measures, measure_catalog, exclusions, yoking,
    load_problems, descriptives, anova, welch, kruskal, contrasts, mannwhitney, deficits,
    survival, logrank, provenance.
The statistics tables are long: one block per measure, with ``measure`` and ``role`` first.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from analysis import stats
from analysis.exclusions import ExclusionRules, exclusions, yoking_check
from analysis.loading import Study, load_study
from analysis.measures import Measures, participant_measures

Progress = Callable[[str], None]
DEFAULT_OUT = Path("derivatives") / "lhlab-analysis"


@dataclass
class Options:
    """Analysis settings; the CLI flags map onto these one to one."""

    rules: ExclusionRules = field(default_factory=ExclusionRules)
    session_rule: str = "first"
    between: str = "condition"
    shuttle_criterion: int = 3
    yoke_tolerance: float = 0.05
    ci: float = 0.95


@dataclass
class Analysis:
    study: Study
    options: Options
    measures: Measures
    included: pd.DataFrame          # measures table, included participants only
    kinds: dict                     # level of `between` -> condition kind
    order: list                     # levels of `between`, helpless first
    tables: dict[str, pd.DataFrame]
    warnings: list[str]
    created: str


def analyze(study_dir: Path | str, options: Options | None = None, progress: Progress | None = None) -> Analysis:
    """Load, measure, exclude and compare. Raises BadInput for a folder that is not a study."""
    options = options or Options()
    say = progress or (lambda msg: None)
    study = load_study(study_dir, session_rule=options.session_rule, progress=progress)
    say(f"loaded {len(study.sessions)} sessions, {len(study.trials)} trials "
        f"({len(study.problems)} load problem(s))")
    measures = participant_measures(study.trials, study.participants, options.shuttle_criterion)
    cat = measures.catalog
    noise_cols = cat.loc[(cat["role"] == "training") & (cat["measure"] == "noise_time"), "column"]
    yoking = yoking_check(measures.table, study.participants,
                          noise_column=noise_cols.iloc[0] if len(noise_cols) else "training_noise_time",
                          tolerance=options.yoke_tolerance)
    test_cols = list(measures.performance("test")["column"])
    excl = exclusions(study.participants, measures.table, options.rules, yoking, test_columns=test_cols)
    keep = ~measures.table["participant_id"].isin(excl["participant_id"])
    included = measures.table[keep].reset_index(drop=True)
    between = options.between
    kinds = (study.participants.drop_duplicates(between).set_index(between)["condition_kind"].to_dict()
             if between != "condition_kind" else {k: k for k in study.participants["condition_kind"].dropna()})
    order = stats.level_order(study.participants, between, kinds)
    say(f"{len(included)} of {len(measures.table)} participants included; computing statistics")

    warnings = []
    if included.empty:
        codes = excl["reason_code"].value_counts()
        hint = " (simulated data are pilot data: pass --include-pilot)" if codes.get("pilot", 0) else ""
        warnings.append(f"every participant is excluded ({', '.join(f'{k}: {v}' for k, v in codes.items())})"
                        f"{hint}")
    shas = study.sessions["protocol_sha256"].dropna().unique()
    if len(shas) > 1:
        warnings.append(f"the sessions ran {len(shas)} different protocol versions (see provenance)")
    small = included.groupby(between).size()
    for lv in order:
        if small.get(lv, 0) < 2 and not included.empty:
            warnings.append(f"group {lv} has {small.get(lv, 0)} included participant(s): its statistics are undefined")

    tables = _statistics(included, measures, between, kinds, order, options.ci)
    tables.update({
        "trials": study.trials, "sessions": study.sessions, "participants": study.participants,
        "measures": measures.table, "measure_catalog": measures.catalog, "exclusions": excl,
        "yoking": yoking, "load_problems": study.problems,
    })
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    tables["provenance"] = _provenance(study, options, created)
    return Analysis(study, options, measures, included, kinds, order, tables, warnings, created)


def analysed_measures(measures: Measures) -> pd.DataFrame:
    """Catalog rows that get the full group comparison: performance measures of the test and
    training phases, and the manipulation-check ratings."""
    c = measures.catalog
    sel = ((c["role"].isin(["test", "training"]) & (c["worse"] != "")) | (c["role"] == "check") & (c["kind"] == "rating"))
    role_rank = c["role"].map({"test": 0, "check": 1, "training": 2})
    return c[sel].assign(_r=role_rank).sort_values("_r", kind="stable").drop(columns="_r")


def _statistics(data: pd.DataFrame, measures: Measures, between: str, kinds: dict, order: list,
                ci: float) -> dict[str, pd.DataFrame]:
    out: dict[str, list] = {k: [] for k in ("descriptives", "anova", "welch", "kruskal", "contrasts",
                                            "mannwhitney", "survival", "logrank")}
    analysed = analysed_measures(measures)
    for m in analysed.itertuples():
        if m.column not in data.columns:
            continue
        res = stats.compare_groups(data, m.column, between, kinds, ci)
        if between != "condition_kind":
            res["descriptives"].insert(1, "condition_kind", res["descriptives"][between].map(kinds))
        res["contrasts"].insert(0, "method", "pooled")
        res["contrasts_welch"].insert(0, "method", "welch")
        res["contrasts"] = pd.concat([res["contrasts"], res.pop("contrasts_welch")], ignore_index=True)
        for name, frame in res.items():
            out[name].append(frame.assign(measure=m.column, role=m.role))
        if m.kind == "trials_to_criterion" and m.censor_column in data.columns:
            d = data.assign(_event=1 - pd.to_numeric(data[m.censor_column], errors="coerce"))
            km = stats.kaplan_meier(d, m.column, "_event", between, ci, order=order)
            lr = stats.logrank(d, m.column, "_event", between, detail=True, order=order)
            out["survival"].append(km.assign(measure=m.column, role=m.role))
            out["logrank"].append(lr.assign(measure=m.column, role=m.role))
    tables = {}
    for name, frames in out.items():
        if frames:
            df = pd.concat(frames, ignore_index=True)
            front = ["measure", "role"]
            tables[name] = df[front + [c for c in df.columns if c not in front]]
        else:
            tables[name] = pd.DataFrame(columns=["measure", "role"])
    perf = measures.performance("test")
    perf = perf[perf["column"].isin(data.columns)]
    tables["deficits"] = stats.deficit_table(data, perf, between, kinds, ci)
    return tables


def _provenance(study: Study, options: Options, created: str) -> pd.DataFrame:
    from importlib.metadata import PackageNotFoundError, version
    rows = [("study", str(study.path.resolve())), ("analysed_at", created)]
    for dist in ("lhlab", "numpy", "pandas", "scipy", "matplotlib"):
        try:
            rows.append((f"analysis_version_{dist}", version(dist)))
        except PackageNotFoundError:
            rows.append((f"analysis_version_{dist}", "not installed"))
    rows.append(("analysis_python", platform.python_version()))
    s = study.sessions
    for (sha, path), n in s.groupby(["protocol_sha256", "protocol_file"], dropna=False).size().items():
        rows.append(("protocol", f"{sha} {path} ({n} sessions)"))
    for col, key in (("lhlab_version", "data_lhlab_version"), ("python_version", "data_python_version"),
                     ("simulated", "simulation_profile"), ("experimenter", "experimenter")):
        for val, n in s[col].value_counts(dropna=False).items():
            shown = "n/a" if val is None or (isinstance(val, float) and np.isnan(val)) else val
            rows.append((key, f"{shown} ({n} sessions)"))
    for val, n in s["stimuli"].dropna().str.split(";").explode().value_counts().items():
        rows.append(("stimulus_file", f"{val} ({n} sessions)"))
    for val, n in s["calibration_id"].dropna().value_counts().items():
        rows.append(("calibration", f"{val} ({n} sessions)"))
    dose = pd.to_numeric(s["noise_dose_percent"], errors="coerce").dropna()
    if len(dose):
        rows.append(("noise_dose_percent", f"median {dose.median():.2f}%, max {dose.max():.2f}% of the NIOSH "
                                           f"daily dose ({len(dose)} sessions with noise)"))
    seeds = pd.to_numeric(s["seed"], errors="coerce").dropna()
    rows.append(("seeds", f"{seeds.nunique()} distinct seeds in {len(s)} sessions (per session in sessions.csv)"
                 + (f": {', '.join(str(int(x)) for x in seeds[:20])}{' ...' if len(seeds) > 20 else ''}"
                    if len(seeds) else "")))
    rows.append(("session_rule", options.session_rule))
    rows.append(("grouping", options.between))
    rows.append(("confidence_level", f"{options.ci:g}"))
    for line in options.rules.describe():
        rows.append(("exclusion_rule", line))
    return pd.DataFrame(rows, columns=["key", "value"])


def write_outputs(result: Analysis, out_dir: Path | str, plots: bool = True, trials_csv: bool = True,
                  progress: Progress | None = None) -> Path:
    """Write every table as CSV and report.html into `out_dir`; return the report's path."""
    from analysis import report
    say = progress or (lambda msg: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say(f"writing tables to {out}")
    for name, df in result.tables.items():
        if name == "trials" and not trials_csv:
            continue
        df.to_csv(out / f"{name}.csv", index=False, na_rep="NA")
    _derivative_description(out, result)
    say("drawing plots and writing report.html")
    return report.write_report(result, out, plots=plots)


def _derivative_description(out: Path, result: Analysis) -> None:
    import json
    desc = {"Name": f"lhlab analysis of {result.study.path.name}", "BIDSVersion": "1.10.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "lhlab analyze", "Description": "per-participant measures, group statistics, "
                                                                     "plots and report.html"}]}
    (out / "dataset_description.json").write_text(json.dumps(desc, indent=2) + "\n", encoding="utf-8")


def default_out(study_dir: Path | str) -> Path:
    return Path(study_dir) / DEFAULT_OUT


def stderr_progress(msg: str) -> None:
    print(f"lhlab analyze: {msg}", file=sys.stderr, flush=True)
