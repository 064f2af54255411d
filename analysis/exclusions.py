"""Who is left out of the group comparison, and why: configurable rules, every reason listed.

Reasons (``reason_code``):
    ``declined``       the participant declined consent: always excluded (no rule keeps them;
                       their session holds nothing but the consent decision)
    ``pilot``          pilot or simulated data (session JSON ``pilot: true``)
    ``withdrawn``      the participant withdrew
    ``incomplete``     the session was aborted, crashed or is still running
    ``broken_yoke``    a yoked participant whose partner is missing or whose noise differs
    ``missing_data``   no usable test-phase data (e.g. its file was skipped as corrupt)
    ``failed_check``   a manipulation-check rule (`CheckRule`) was not met
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from experiment.errors import BadInput

EXCLUSION_COLUMNS = ["participant_id", "condition", "condition_kind", "reason_code", "reason"]
YOKING_COLUMNS = ["participant_id", "condition", "yoked_to", "partner_found", "partner_status", "noise_time",
                  "partner_noise_time", "difference", "checked", "ok", "problem"]
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
       "!=": operator.ne}
RULE_RE = re.compile(r"^\s*(?P<who>[A-Za-z0-9_*]+)\s*:\s*(?P<col>[A-Za-z_][A-Za-z0-9_]*)\s*"
                     r"(?P<op><=|>=|==|!=|<|>)\s*(?P<val>-?\d+(\.\d*)?)\s*$")


@dataclass(frozen=True)
class CheckRule:
    """Participants of `who` (a condition kind, a condition name, or ``*``) fail the
    manipulation check when ``measures[column] <op> value``; e.g. ``helpless:check_control>=8``
    (a helpless participant who felt in control did not experience the manipulation)."""

    who: str
    column: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> "CheckRule":
        m = RULE_RE.match(text or "")
        if not m:
            raise BadInput(f"check rule {text!r}: write WHO:MEASURE<OP>VALUE, e.g. helpless:check_control>=8 "
                           "(WHO: a condition kind, a condition or *; OP: < <= > >= == !=)")
        return cls(m["who"], m["col"], m["op"], float(m["val"]))

    def __str__(self) -> str:
        return f"{self.who}:{self.column}{self.op}{self.value:g}"


@dataclass(frozen=True)
class ExclusionRules:
    """What to exclude. Each flag True = exclude participants with that reason."""

    pilot: bool = True
    withdrawn: bool = True
    incomplete: bool = True
    broken_yoke: bool = True
    missing_data: bool = True
    checks: tuple[CheckRule, ...] = field(default_factory=tuple)

    def describe(self) -> list[str]:
        out = ["declined consent: always excluded"]
        out += [f"{name.replace('_', ' ')}: {'excluded' if getattr(self, name) else 'kept'}"
                for name in ("pilot", "withdrawn", "incomplete", "broken_yoke", "missing_data")]
        out += [f"manipulation check rule: {r}" for r in self.checks] or ["manipulation check rules: none"]
        return out


def yoking_check(measures: pd.DataFrame, participants: pd.DataFrame, noise_column: str = "training_noise_time",
                 tolerance: float = 0.05) -> pd.DataFrame:
    """Every yoked participant against their partner.

    Returns one row per participant with a ``yoked_to`` partner: ``participant_id``,
    ``condition``, ``yoked_to``, ``partner_found``, ``partner_status``, ``noise_time``,
    ``partner_noise_time``, ``difference`` (s), ``checked`` (both noise times known), ``ok``
    (partner found and, when checked, ``|difference| <= tolerance``), ``problem`` (text).
    """
    if "yoked_to" not in participants.columns:
        return pd.DataFrame(columns=YOKING_COLUMNS)
    yoked = participants[participants["yoked_to"].notna()]
    if yoked.empty:
        return pd.DataFrame(columns=YOKING_COLUMNS)
    status = participants.set_index("participant_id")["session_status"]
    noise = (measures.set_index("participant_id")[noise_column] if noise_column in measures.columns
             else pd.Series(dtype=float))
    rows = []
    for p in yoked.itertuples():
        partner = p.yoked_to
        found = partner in status.index
        own = float(noise.get(p.participant_id, np.nan))
        other = float(noise.get(partner, np.nan)) if found else np.nan
        checked = bool(np.isfinite(own) and np.isfinite(other))
        diff = own - other if checked else np.nan
        problem = ""
        if not found:
            problem = f"partner {partner} is not in the study"
        elif checked and abs(diff) > tolerance:
            problem = f"noise time {own:.3f} s differs from partner's {other:.3f} s by {diff:+.3f} s"
        elif not checked:
            problem = "no noise data to compare" if not np.isfinite(own) and not np.isfinite(other) else \
                "noise time missing for one of the pair"
        ok = found and (not checked or abs(diff) <= tolerance)
        rows.append({"participant_id": p.participant_id, "condition": p.condition, "yoked_to": partner,
                     "partner_found": found, "partner_status": status.get(partner) if found else None,
                     "noise_time": own, "partner_noise_time": other, "difference": diff, "checked": checked,
                     "ok": ok, "problem": problem})
    return pd.DataFrame(rows, columns=YOKING_COLUMNS)


def exclusions(participants: pd.DataFrame, measures: pd.DataFrame, rules: ExclusionRules = ExclusionRules(),
               yoking: pd.DataFrame | None = None, test_columns: list[str] | None = None) -> pd.DataFrame:
    """Every reason to exclude each participant under `rules`, one row per participant and reason.

    `measures`: the measures table (one row per participant); `test_columns`: the test-phase
    measure columns whose absence means missing data; `yoking`: `yoking_check` output.
    Returns ``participant_id``, ``condition``, ``condition_kind``, ``reason_code``, ``reason``.
    A participant is excluded if they have at least one row.
    """
    rows = []
    part = participants.set_index("participant_id")

    def add(pid, code, reason):
        rows.append({"participant_id": pid, "condition": part.at[pid, "condition"],
                     "condition_kind": part.at[pid, "condition_kind"], "reason_code": code, "reason": reason})

    declined = set()
    for p in participants.itertuples():
        st = p.session_status
        if st == "declined":          # no consent, no data: never analysed, whatever the rules
            add(p.participant_id, "declined", f"declined consent in ses-{p.session}")
            declined.add(p.participant_id)
            continue
        if rules.pilot and bool(p.pilot):
            sim = getattr(p, "simulated", None)
            add(p.participant_id, "pilot", "pilot data" + (f" (simulated participant, profile {sim})"
                                                           if isinstance(sim, str) and sim else ""))
        if rules.withdrawn and st == "withdrawn":
            add(p.participant_id, "withdrawn", f"withdrew in ses-{p.session}")
        if rules.incomplete and st in ("aborted", "crashed", "running"):
            add(p.participant_id, "incomplete", f"ses-{p.session} is {st}")
    if rules.broken_yoke and yoking is not None and not yoking.empty:
        for y in yoking[~yoking["ok"].astype(bool)].itertuples():
            add(y.participant_id, "broken_yoke", f"broken yoke with {y.yoked_to}: {y.problem}")
    mt = measures.set_index("participant_id")
    if rules.missing_data and test_columns is not None:
        cols = [c for c in test_columns if c in mt.columns]
        missing = mt[cols].isna().all(axis=1) if cols else pd.Series(True, index=mt.index)
        for pid in missing[missing].index:
            if pid in part.index:
                add(pid, "missing_data", "no usable test-phase data")
    for rule in rules.checks:
        if rule.column not in mt.columns:
            raise BadInput(f"check rule {rule}: no measure {rule.column!r}; measures: "
                           f"{', '.join(c for c in mt.columns if c not in ('condition', 'condition_kind'))}")
        who = mt.index if rule.who == "*" else mt.index[(mt["condition_kind"] == rule.who) |
                                                        (mt["condition"] == rule.who)]
        vals = pd.to_numeric(mt.loc[who, rule.column], errors="coerce")
        fail = vals[OPS[rule.op](vals, rule.value)]
        for pid, v in fail.items():
            add(pid, "failed_check", f"failed manipulation check: {rule.column} = {v:g} ({rule})")
    rows = [r for r in rows if r["participant_id"] not in declined or r["reason_code"] == "declined"]   # one reason
    return pd.DataFrame(rows, columns=EXCLUSION_COLUMNS)
