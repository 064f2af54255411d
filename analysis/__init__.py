"""lhlab analysis: trial logs -> per-participant measures -> group statistics -> plots and report.

    from analysis import analyze, write_outputs, Options, ExclusionRules
    result = analyze("data/unsolvable-anagrams", Options(rules=ExclusionRules(pilot=False)))
    result.tables["outcomes"]     # the protocol's primary outcome first, then Holm-adjusted secondaries
    result.tables["deficits"]     # positive = the helpless group did worse, in every column

Modules: loading (study folder -> tidy tables), measures (per participant), stats (pingouin-shaped
group statistics), binary (yes/no measures: Wilson, Newcombe, odds ratio, Fisher, chi-square),
effects (eta/omega squared with CIs, assumption checks), outcomes (the oriented deficit and the
planned primary/secondary tests), plan (the protocol's analysis: section and deviations from it),
trial_models (trial-level mixed/logistic models), exclusions (rules and the yoking check),
pipeline (analyze, write_outputs), plots, report, paper (APA tables, methods.md, Parquet), cli
(`lhlab analyze`). Names are imported lazily so `lhlab` starts fast.
"""

_EXPORTS = {
    "load_study": "analysis.loading", "Study": "analysis.loading",
    "participant_measures": "analysis.measures", "Measures": "analysis.measures",
    "ExclusionRules": "analysis.exclusions", "CheckRule": "analysis.exclusions",
    "exclusions": "analysis.exclusions", "yoking_check": "analysis.exclusions",
    "analyze": "analysis.pipeline", "write_outputs": "analysis.pipeline", "Options": "analysis.pipeline",
    "Analysis": "analysis.pipeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
