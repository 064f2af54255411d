"""From a study folder to every table of the analysis (`analyze`), and to files (`write_outputs`).

    result = analyze("data/unsolvable-anagrams", Options(rules=ExclusionRules(pilot=False)))
    result.tables["deficits"]            # how much worse the helpless group did, per measure
    write_outputs(result, "out/")        # CSVs + report.html

Tables in `Analysis.tables` (each also written as <name>.csv):
    trials, sessions, participants, measures, measure_catalog, exclusions, yoking,
    load_problems, descriptives, anova, welch, kruskal, contrasts, mannwhitney, effects
    (eta^2 / omega^2 with CI), assumptions (Brown-Forsythe, Shapiro-Wilk), binary (chi-square /
    Fisher for yes/no measures), deficits, outcomes (the primary test first, then the Holm-adjusted
    secondary ones), survival, logrank, provenance.
The statistics tables are long: one block per measure, with ``measure`` and ``role`` first.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from analysis import binary, effects, outcomes, spreadsheet, stats
from analysis.exclusions import ExclusionRules, exclusions, yoking_check
from analysis.loading import Study, load_study
from analysis.measures import Measures, participant_measures
from analysis.plan import Plan, read_plan
from analysis.timing import timing_exclusions, timing_table
from experiment.errors import BadInput

Progress = Callable[[str], None]
DEFAULT_OUT = Path("derivatives") / "lhlab-analysis"


@dataclass
class Options:
    """Analysis settings; the CLI flags map onto these one to one. `shuttle_criterion`,
    `yoke_tolerance` and `protocol` are None when not given (the default applies); given for a
    study they cannot apply to, `analyze` refuses (BadInput) instead of ignoring them."""

    rules: ExclusionRules = field(default_factory=ExclusionRules)
    session_rule: str = "first"
    between: str = "condition"
    shuttle_criterion: int | None = None
    yoke_tolerance: float | None = None
    ci: float = 0.95
    protocol: Path | None = None
    trial_models: str = "auto"     # auto (up to 10,000 participants), on, off
    max_dropped_frames: float | None = None     # % of frames (analysis.timing)

    def describe(self) -> list[tuple[str, str]]:
        """Every option as (provenance key, value), defaults included, saying which were given."""
        crit = (f"{self.shuttle_criterion} (given)" if self.shuttle_criterion is not None
                else f"{DEFAULT_SHUTTLE_CRITERION} (default; used only for shuttle files that do not record "
                     "criterion_reached)")
        tol = f"{self.yoke_tolerance:g} s (given)" if self.yoke_tolerance is not None else \
            f"{DEFAULT_YOKE_TOLERANCE:g} s (default)"
        return [("option_session_rule", self.session_rule), ("option_grouping", self.between),
                ("option_confidence_level", f"{self.ci:g}"), ("option_shuttle_criterion", crit),
                ("option_yoke_tolerance", tol),
                ("option_trial_models", self.trial_models + (" (fitted up to 10,000 participants)"
                                                         if self.trial_models == "auto" else "")),
                ("option_protocol", str(self.protocol) if self.protocol else "(the file the sessions name)"),
                ("option_max_dropped_frames", f"{self.max_dropped_frames:g}% (given)" if self.max_dropped_frames
                 is not None else "none (default: no participant is excluded for dropped frames)")]


DEFAULT_SHUTTLE_CRITERION = 3
DEFAULT_YOKE_TOLERANCE = 0.05


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
    plan: Plan = field(default_factory=Plan)
    data_mark: str = ""             # "SIMULATED DATA" / "PILOT DATA" when such sessions are analysed


def analyze(study_dir: Path | str, options: Options | None = None, progress: Progress | None = None) -> Analysis:
    """Load, measure, exclude and compare. Raises BadInput for a folder that is not a study, an
    option that cannot apply to it, or a study where every participant is excluded."""
    options = options or Options()
    say = progress or (lambda msg: None)
    study = load_study(study_dir, session_rule=options.session_rule, progress=progress)
    say(f"loaded {len(study.sessions)} sessions, {len(study.trials)} trials "
        f"({len(study.problems)} load problem(s))")
    warnings = []
    rules = options.rules
    part = study.participants
    if rules.pilot and len(part) and part["pilot"].astype(bool).all():
        rules = replace(rules, pilot=False)
        options = replace(options, rules=rules)
        warnings.append("every session in this folder is pilot or simulated data, so they are analysed "
                        "(as with --include-pilot); the results describe simulated participants, not people")
    measures = participant_measures(study.trials, part, options.shuttle_criterion or DEFAULT_SHUTTLE_CRITERION)
    _check_options(options, measures, part)
    cat = measures.catalog
    noise_cols = cat.loc[(cat["role"] == "training") & (cat["measure"] == "noise_time"), "column"]
    yoking = yoking_check(measures.table, part,
                          noise_column=noise_cols.iloc[0] if len(noise_cols) else "training_noise_time",
                          tolerance=options.yoke_tolerance if options.yoke_tolerance is not None
                          else DEFAULT_YOKE_TOLERANCE)
    test_cols = list(measures.performance("test")["column"])
    excl = exclusions(part, measures.table, rules, yoking, test_columns=test_cols)
    timing = timing_table(study)
    if options.max_dropped_frames is not None and not timing["audited"].astype(bool).any():
        raise BadInput(f"--max-dropped-frames {options.max_dropped_frames:g} does not apply: no session of this study "
                       "recorded a timing audit (data-only simulation or an older lhlab); leave it out")
    dropped = timing_exclusions(timing, part, options.max_dropped_frames)
    if dropped:
        excl = pd.concat([excl, pd.DataFrame(dropped, columns=excl.columns)], ignore_index=True)
    keep = ~measures.table["participant_id"].isin(excl["participant_id"])
    included = measures.table[keep].reset_index(drop=True)
    if included.empty:
        raise BadInput(_all_excluded(excl, rules))
    between = options.between
    kinds = (part.drop_duplicates(between).set_index(between)["condition_kind"].to_dict()
             if between != "condition_kind" else {k: k for k in part["condition_kind"].dropna()})
    order = stats.level_order(part, between, kinds)
    say(f"{len(included)} of {len(measures.table)} participants included; computing statistics")

    inc = part[part["participant_id"].isin(included["participant_id"])]
    sim = inc["simulated"].notna() & (inc["simulated"].astype(str) != "")
    data_mark = "SIMULATED DATA" if sim.any() else ("PILOT DATA" if inc["pilot"].astype(bool).any() else "")
    plan = read_plan(study.sessions, options.protocol)
    warnings.extend(plan.deviations)
    if plan.primary is not None and plan.primary not in set(measures.performance("test")["column"]):
        warnings.append(f"the protocol's primary outcome {plan.declared} is not among this study's test measures; "
                        "every measure is reported as exploratory")
        plan = replace(plan, primary=None, source=plan.source + f"; {plan.declared} not measured")
    small = included.groupby(between).size()
    for lv in order:
        if small.get(lv, 0) < 2:
            warnings.append(f"group {lv} has {small.get(lv, 0)} included participant(s): its statistics are undefined")

    tables = _statistics(included, measures, between, kinds, order, options.ci, plan)
    tables.update({
        "trials": study.trials, "sessions": study.sessions, "participants": study.participants,
        "measures": measures.table, "measure_catalog": measures.catalog, "exclusions": excl,
        "yoking": yoking, "load_problems": study.problems, "timing": timing,
    })
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    tables["trial_models"] = _trial_models(study, included, between, kinds, order, options, warnings, say)
    tables["provenance"] = _provenance(study, options, created, plan, data_mark)
    return Analysis(study, options, measures, included, kinds, order, tables, warnings, created, plan, data_mark)


def _trial_models(study: Study, included: pd.DataFrame, between: str, kinds: dict, order: list, options: Options,
                  warnings: list, say: Progress) -> pd.DataFrame:
    """The trial-level models (analysis.trial_models): run up to MAX_PARTICIPANTS included
    participants when `options.trial_models` is "auto", always with "on", never with "off"."""
    from analysis import trial_models
    n = len(included)
    if options.trial_models == "off" or (options.trial_models == "auto" and n > trial_models.MAX_PARTICIPANTS):
        if options.trial_models == "auto":
            warnings.append(f"trial-level models skipped: {n} participants (more than "
                            f"{trial_models.MAX_PARTICIPANTS:,}); pass --trial-models on to fit them")
        return pd.DataFrame(columns=trial_models.COLUMNS)
    say(f"fitting trial-level models ({n} participants)")
    t = trial_models.test_trials(study.trials, study.participants, included["participant_id"])
    return trial_models.fit(t, between, kinds, order,          # trials carry condition and condition_kind
                            glmm=True if options.trial_models == "on" else None)


def _check_options(options: Options, measures: Measures, participants: pd.DataFrame) -> None:
    """Refuse an option given for a study it cannot apply to (never ignore it silently)."""
    cat = measures.catalog
    if options.shuttle_criterion is not None:
        has_shuttle = ((cat["task"] == "shuttle") & (cat["role"] == "test")).any()
        if not has_shuttle:
            raise BadInput(f"--shuttle-criterion {options.shuttle_criterion} does not apply: this study has no "
                           "shuttle test phase; leave it out")
        if not measures.criterion_from_option:
            raise BadInput(f"--shuttle-criterion {options.shuttle_criterion} does not apply: the shuttle task records "
                           "when each participant reached its criterion (the protocol's criterion_run), and that "
                           "one definition is used; leave the option out")
    yoked = "yoked_to" in participants.columns and participants["yoked_to"].notna().any()
    if options.yoke_tolerance is not None and not yoked:
        raise BadInput(f"--yoke-tolerance {options.yoke_tolerance:g} does not apply: no participant in this study "
                       "is yoked; leave it out")
    if not options.rules.broken_yoke and not yoked:
        raise BadInput("--include-broken-yokes does not apply: no participant in this study is yoked; leave it out")


FLAGS = {"pilot": "--include-pilot", "withdrawn": "--include-withdrawn", "incomplete": "--include-incomplete",
         "broken_yoke": "--include-broken-yokes", "failed_check": "a looser --check-rule (or none)",
         "timing": "a larger --max-dropped-frames (or none)",
         "missing_data": "(no flag: they have no test data)",
         "declined": "(no flag: they declined consent)"}


def _all_excluded(excl: pd.DataFrame, rules: ExclusionRules) -> str:
    per = excl.groupby("reason_code")["participant_id"].nunique()
    reasons = ", ".join(f"{k}: {v}" for k, v in per.items())
    flags = [FLAGS[k] for k in per.index if k in FLAGS and not FLAGS[k].startswith("(")]
    hint = f"; to analyse them anyway pass {' and/or '.join(dict.fromkeys(flags))}" if flags else ""
    return f"every participant is excluded ({reasons}), so there is nothing to analyse{hint}"


def analysed_measures(measures: Measures) -> pd.DataFrame:
    """Catalog rows that get the full group comparison: performance measures of the test and
    training phases, and the manipulation-check ratings."""
    c = measures.catalog
    sel = ((c["role"].isin(["test", "training"]) & (c["worse"] != "")) | (c["role"] == "check") & (c["kind"] == "rating"))
    role_rank = c["role"].map({"test": 0, "check": 1, "training": 2})
    return c[sel].assign(_r=role_rank).sort_values("_r", kind="stable").drop(columns="_r")


STAT_TABLES = ("descriptives", "anova", "welch", "kruskal", "contrasts", "mannwhitney", "effects", "assumptions",
               "binary", "survival", "logrank")


def _statistics(data: pd.DataFrame, measures: Measures, between: str, kinds: dict, order: list,
                ci: float, plan: Plan) -> dict[str, pd.DataFrame]:
    out: dict[str, list] = {k: [] for k in STAT_TABLES}
    analysed = analysed_measures(measures)
    for m in analysed.itertuples():
        if m.column not in data.columns:
            continue
        tag = {"measure": m.column, "role": m.role}
        if m.kind == "binary":
            # a yes/no per participant: proportions with Wilson CIs and chi-square / Fisher, not ANOVA
            prop = binary.proportions(data, m.column, between, ci, order=order)
            desc = prop.rename(columns={"proportion": "mean"}).assign(ci_method="Wilson")
            desc = desc[[between, "n", "mean", "ci_low", "ci_high", "ci_method", "successes"]]
            if between != "condition_kind":
                desc.insert(1, "condition_kind", desc[between].map(kinds))
            out["descriptives"].append(desc.assign(**tag))
            out["binary"].append(binary.chi_square(data, m.column, between, order=order).assign(**tag))
            continue
        res = stats.compare_groups(data, m.column, between, kinds, ci)
        d = res["descriptives"]
        lo, hi = float(m.low), float(m.high)
        clipped = (d["ci_low"] < lo) | (d["ci_high"] > hi)
        d["ci_low"], d["ci_high"] = d["ci_low"].clip(lower=lo), d["ci_high"].clip(upper=hi)
        d["ci_method"] = np.where(clipped, "t, truncated to the measure's range", "t")
        if between != "condition_kind":
            d.insert(1, "condition_kind", d[between].map(kinds))
        res["contrasts"].insert(0, "method", "pooled")
        res["contrasts_welch"].insert(0, "method", "welch")
        res["contrasts"] = pd.concat([res["contrasts"], res.pop("contrasts_welch")], ignore_index=True)
        res["effects"] = effects.omnibus_effects(data, m.column, between, ci)
        res["assumptions"] = effects.assumptions(data, m.column, between, order=order)
        for name, frame in res.items():
            out[name].append(frame.assign(**tag))
        if m.kind == "trials_to_criterion" and m.censor_column in data.columns:
            d = data.assign(_event=1 - pd.to_numeric(data[m.censor_column], errors="coerce"))
            km = stats.kaplan_meier(d, m.column, "_event", between, ci, order=order)
            lr = stats.logrank(d, m.column, "_event", between, detail=True, order=order)
            out["survival"].append(km.assign(**tag))
            out["logrank"].append(lr.assign(**tag))
    tables = {}
    for name, frames in out.items():
        frames = [f for f in frames if len(f)]
        if frames:
            df = pd.concat(frames, ignore_index=True)
            front = ["measure", "role"]
            tables[name] = df[front + [c for c in df.columns if c not in front]]
        else:
            tables[name] = pd.DataFrame(columns=["measure", "role"])
    perf = measures.performance("test")
    perf = perf[perf["column"].isin(data.columns)]
    tables["deficits"] = outcomes.deficit_table(data, perf, between, kinds, ci, plan.primary, plan.alpha)
    tables["outcomes"] = outcomes.outcomes(data, perf, between, kinds, ci, plan.primary, plan.alpha)
    return tables


def _provenance(study: Study, options: Options, created: str, plan: Plan, data_mark: str) -> pd.DataFrame:
    from experiment.versions import package_version
    rows = [("study", str(study.path.resolve())), ("analysed_at", created)]
    if data_mark:
        rows.append(("data", data_mark))
    for dist in VERSIONED:
        rows.append((f"analysis_version_{dist}", package_version(dist) or "not installed"))
    rows.append(("analysis_python", platform.python_version()))
    s = study.sessions
    for (sha, path), n in s.groupby(["protocol_sha256", "protocol_file"], dropna=False).size().items():
        rows.append(("protocol", f"{sha} {path} ({n} sessions)"))
    rows.append(("analysis_plan", plan.describe()))
    rows.append(("analysis_plan_fixed", "the plan is part of the protocol file, whose SHA-256 every session record "
                                        "stores, so it was fixed before the first session"
                 + ("" if not plan.deviations else "; but see the deviations")))
    for dev in plan.deviations:
        rows.append(("analysis_plan_deviation", dev))
    if not plan.deviations:
        rows.append(("analysis_plan_deviation", "none: every session ran the same protocol file, and it is the one "
                                                "read for the plan" if plan.sha256 else "none found"))
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
    dose = dose[dose > 0]
    if len(dose):
        rows.append(("noise_dose_percent", f"median {dose.median():.2f}%, max {dose.max():.2f}% of the NIOSH "
                                           f"daily dose ({len(dose)} sessions with noise)"))
    seeds = pd.to_numeric(s["seed"], errors="coerce").dropna()
    rows.append(("seeds", f"{seeds.nunique()} distinct seeds in {len(s)} sessions (per session in sessions.csv)"
                 + (f": {', '.join(str(int(x)) for x in seeds[:20])}{' ...' if len(seeds) > 20 else ''}"
                    if len(seeds) else "")))
    rows.extend(options.describe())
    for line in options.rules.describe():
        rows.append(("exclusion_rule", line))
    return pd.DataFrame(rows, columns=["key", "value"])


VERSIONED = ("lhlab", "numpy", "pandas", "scipy", "statsmodels", "matplotlib", "pyarrow")


def write_outputs(result: Analysis, out_dir: Path | str, plots: bool = True, trials_csv: bool = True,
                  progress: Progress | None = None) -> Path:
    """Write every table as CSV, tables/*.md|tex, methods.md, trials/measures as Parquet, the
    figures (figures/*.png|svg|pdf) and report.html into `out_dir`; return the report's path."""
    from analysis import report
    say = progress or (lambda msg: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say(f"writing tables to {out}")
    for name, df in result.tables.items():
        if name == "trials" and not trials_csv:
            continue
        spreadsheet.neutralise(df).to_csv(out / f"{name}.csv", index=False, na_rep="NA")   # no formulas
    _derivative_description(out, result)
    from analysis import paper
    say("writing tables/ (Markdown, LaTeX), methods.md and Parquet")
    paper.write_paper(result, out, trials=trials_csv)
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
