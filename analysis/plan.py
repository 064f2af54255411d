"""The analysis plan a study was run under: the protocol's `analysis:` section, and whether the
protocol changed while the data were collected.

The plan is read from the protocol file the sessions name (its path and SHA-256 are in every
session record), or from `--protocol FILE` when the study folder moved. Because the SHA-256
of the whole file is stored in each session, a plan that was edited after the first session
shows up as a hash that differs across sessions, or as a file whose hash differs from the
first session's: both are reported as deviations, never silently used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from experiment.analysis_plan import DEFAULT_ALPHA
from experiment.errors import BadInput, ProtocolError
from experiment.protocol import load_protocol

from analysis.measures import safe


@dataclass
class Plan:
    """`primary`: measure column of the pre-declared primary outcome (None: none declared);
    `declared`: as written in the protocol (``<phase>.<measure>``); `alpha`; `protocol`: the file
    read (or None); `sha256` of that file; `reference`: the protocol's study.reference;
    `first_sha256`: the hash the first session ran; `deviations`: sentences for the report."""

    primary: str | None = None
    declared: str | None = None
    alpha: float = DEFAULT_ALPHA
    protocol: Path | None = None
    sha256: str | None = None
    reference: str = ""
    title: str = ""
    first_sha256: str | None = None
    deviations: list[str] = field(default_factory=list)
    source: str = ""

    def describe(self) -> str:
        if self.primary is None:
            return f"no primary outcome declared ({self.source}); every measure is exploratory"
        return f"primary outcome {self.declared} (alpha {self.alpha:g}), declared in {self.source}"


def read_plan(sessions: pd.DataFrame, protocol: Path | None = None) -> Plan:
    """The plan for these sessions (the `sessions` table of `load_study`)."""
    plan = Plan()
    s = sessions.sort_values("started", kind="stable", na_position="last") if "started" in sessions else sessions
    shas = s["protocol_sha256"].dropna()
    plan.first_sha256 = shas.iloc[0] if len(shas) else None
    counts = shas.value_counts()
    if len(counts) > 1:
        later = ", ".join(f"{sha[:12]} ({n} sessions)" for sha, n in counts.items() if sha != plan.first_sha256)
        plan.deviations.append(
            f"the protocol file changed after the first session: {counts[plan.first_sha256]} sessions ran "
            f"{plan.first_sha256[:12]}, then {later}; the pre-declared plan may not be the one analysed")
    if protocol is None:
        files = s["protocol_file"].dropna()
        if not len(files):
            plan.source = "the session records name no protocol file"
            return plan
        protocol = Path(files.iloc[0])
        if not protocol.is_file():
            plan.source = f"protocol file {protocol} not found; pass --protocol FILE"
            return plan
    elif not Path(protocol).is_file():
        raise BadInput(f"--protocol {protocol}: no such file")
    protocol = Path(protocol)
    plan.protocol = protocol
    plan.sha256 = hashlib.sha256(protocol.read_bytes()).hexdigest()
    if plan.first_sha256 and plan.sha256 != plan.first_sha256:
        plan.deviations.append(
            f"{protocol} (SHA-256 {plan.sha256[:12]}) is not the file the first session ran "
            f"({plan.first_sha256[:12]}): it was edited after data collection began, or it is another protocol")
    try:
        proto = load_protocol(protocol)
    except ProtocolError as e:
        plan.source = f"{protocol} does not validate ({str(e).splitlines()[0]})"
        return plan
    plan.reference = str(proto.raw.get("study", {}).get("reference") or "")
    plan.title = proto.title
    section = proto.raw.get("analysis")
    if not isinstance(section, dict):
        plan.source = f"{protocol} has no analysis: section"
        return plan
    phase, measure = str(section["primary"]).split(".", 1)
    plan.declared = section["primary"]
    plan.primary = f"{safe(phase)}_{measure}"
    plan.alpha = float(section.get("alpha", DEFAULT_ALPHA))
    plan.source = f"{protocol.name}, SHA-256 {plan.sha256[:12]}"
    return plan
