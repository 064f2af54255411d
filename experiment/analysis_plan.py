"""The protocol's `analysis:` section: the pre-registered primary outcome and alpha.

    analysis:
      primary: test.mean_latency     # <test phase id>.<measure>
      alpha: 0.05                    # optional, default 0.05; 0 < alpha < 0.5

The section is part of the protocol file, so its SHA-256 (stored in every session record)
fixes the plan before the first participant is run. `lhlab analyze` reports the primary
outcome's test as confirmatory and every other test-phase measure as secondary (Holm-adjusted,
exploratory). This module is the one list of the test-phase measure names a plan may name,
per task; analysis/measures.py computes exactly these (tests/test_analysis_plan.py checks).
It knows no analysis code: `experiment` never imports `analysis`.
"""

from __future__ import annotations

DEFAULT_ALPHA = 0.05
KEYS = {"primary", "alpha"}

# task -> {measure: kind}; kind decides the analysis: "binary" (a yes/no per participant:
# proportions, Fisher / chi-square), "count" (of trials), "continuous", "trials_to_criterion".
TEST_MEASURES: dict[str, dict[str, str]] = {
    "anagram": {"solved": "count", "failures": "count", "mean_latency": "continuous",
                "median_latency": "continuous", "trials_to_criterion": "trials_to_criterion",
                "pattern_found": "binary"},
    "shuttle": {"failures": "count", "escapes": "count", "avoidances": "count", "mean_latency": "continuous",
                "median_latency": "continuous", "trials_to_criterion": "trials_to_criterion"},
}


def measure_names(phases: dict) -> list[str]:
    """Every `<phase>.<measure>` a plan may name, for {phase id: Phase} (test phases only)."""
    return [f"{pid}.{m}" for pid, ph in phases.items() if getattr(ph, "role", None) == "test"
            for m in TEST_MEASURES.get(getattr(ph, "task", None), {})]


def problems(section, phases: dict) -> list[tuple[tuple, str]]:
    """(field path inside `analysis`, message) for every problem of the section; [] if fine
    or absent. `phases`: the validated {phase id: Phase} (with ``task`` and ``role``)."""
    if section is None:
        return []
    if not isinstance(section, dict):
        return [((), f"must be a mapping with primary and alpha (got {type(section).__name__})")]
    out = [((k,), f"unknown field; allowed here: {', '.join(sorted(KEYS))}") for k in section if k not in KEYS]
    known = measure_names(phases)
    primary = section.get("primary")
    if primary is None:
        out.append((("primary",), "is required: the one pre-declared outcome, as <test phase>.<measure>"
                                  + (f"; known: {', '.join(known)}" if known else "")))
    elif not isinstance(primary, str) or primary not in known:
        why = ("the protocol has no test phase with a known task (anagram or shuttle)" if not known
               else f"known: {', '.join(known)}")
        out.append((("primary",), f"unknown measure {primary!r}; {why}"))
    alpha = section.get("alpha", DEFAULT_ALPHA)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 0.5:
        out.append((("alpha",), f"must be a number between 0 and 0.5, e.g. 0.05 (got {alpha!r})"))
    return out
