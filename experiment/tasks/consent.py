"""Informed consent: the protocol's consent text, then agree or decline with one key each.

The participant reads the pages (the continue key turns a page, as in the instructions); the
last page asks the question. The agree key lets the session go on. The decline key ends it at
once with status `declined` (experiment.errors.Declined): nothing but this phase's record is
written and no debriefing is shown, because nothing happened that needs explaining. The
withdraw key (F12) works here as everywhere, and on the consent pages it also counts as
declining: a person who has not agreed has not taken part, so their session is never analysed.

The decision is recorded twice: the phase's TSV (one row per page; the last row's `response`
is the decision) and the session record (`consent`: decision, date and time, phase).
The validator requires a consent phase to be the first phase of every condition.
"""

from __future__ import annotations

from datetime import datetime, timezone

from experiment.devices import View
from experiment.errors import Declined, Withdrawn
from experiment.tasks.base import COMMON_COLUMNS, Column, FileProblem, Param, Problem, Task


class Consent(Task):
    name = "consent"
    summary = ("The consent text, one page per screen; the last page asks for consent: the agree key goes on, "
               "the decline key (or the withdraw key) ends the session with status declined, before any other data.")
    default_role = "consent"
    fixed_role = True
    takes_instructions = False      # every page is the task's, so F12 on any of them declines
    params = (
        Param("pages", "pages", "the consent text, one screen each; the last one ends with the question"),
        Param("contact", "text", "who to ask about the study (lab, responsible researcher, e-mail), shown on the "
                                 "last page above the question", None),
        Param("question", "text", "the question under the last page", "Do you agree to take part in this study?"),
        Param("agree_key", "key", "key that gives consent", "y"),
        Param("decline_key", "key", "key that declines: the session ends (status declined)", "n"),
        Param("hint", "text", "key hint on the last page (default: names the agree and decline keys)", None),
        Param("min_time", "number", "seconds a page stays before a key is accepted", 0, low=0),
    )
    columns = COMMON_COLUMNS + (
        Column("onset", "Session time the page appeared.", "s"),
        Column("rt", "Time from page onset to the key that turned the page or decided.", "s"),
        Column("response", "What the participant did on the page; the last row holds the decision.",
               levels={"continue": "read the page and went on", "agree": "gave consent",
                       "decline": "declined consent: the session ended",
                       "withdraw": "pressed the withdraw key before agreeing: counted as declined"}),
    )

    def check(self, params, base_dir):
        if params["agree_key"] == params["decline_key"]:
            return [Problem("decline_key", f"must differ from agree_key ({params['agree_key']!r})")]
        return []

    def check_keys(self, params, keys):
        problems = []
        for k in ("agree_key", "decline_key"):
            if params[k] == keys["continue"]:
                problems.append(Problem(k, f"{params[k]!r} is keys.continue, which turns the consent pages: a "
                                           "participant paging on would answer without reading; choose e.g. y or n"))
        return problems

    def check_conditions(self, conditions, phases):
        """A consent phase comes first, in every condition once one has it: no data before consent."""
        consent = {pid for pid, ph in phases.items() if ph.task == self.name}
        if not consent:
            return []
        problems = []
        for name, cond in conditions.items():
            where = ("conditions", name, "phases")
            listed = [i for i, pid in enumerate(cond.phases) if pid in consent]
            if not listed:
                problems.append(FileProblem(where, f"has no consent phase ({', '.join(sorted(consent))}); when a "
                                                   "protocol asks for consent, every condition starts with it"))
            elif listed[0] != 0:
                problems.append(FileProblem(where + (listed[0],), f"the consent phase {cond.phases[listed[0]]!r} "
                                                                  "must be the first phase: no data before consent"))
            elif len(listed) > 1:
                problems.append(FileProblem(where + (listed[1],), "only one consent phase per condition"))
        return problems

    def row_rules(self, v, params):
        try:
            n = int(float(v.row["trial"]))      # a bad trial cell is reported by the common rules
        except (TypeError, ValueError):
            return
        if params:
            pages = self.plan(params, None, None)
            last = n == len(pages)
            if n > len(pages):
                v.bad("trial", f"the consent text has {len(pages)} pages (got page {n})")
            elif not last and v.text("response") not in ("continue", "withdraw"):
                v.bad("response", f"page {n} of {len(pages)} is turned, not decided (got {v.text('response')!r})")
            elif last and v.text("response") == "continue":
                v.bad("response", "the last page is decided: agree, decline or withdraw")

    def plan(self, params, rng, base_dir):
        pages = params["pages"]
        return [{"page": p} for p in ([pages] if isinstance(pages, str) else pages)]

    def expected_duration(self, params, schedule):
        return len(schedule) * max(params["min_time"], 60.0)

    def run(self, ctx, schedule):
        p = ctx.params
        agree, decline = p["agree_key"], p["decline_key"]
        hint = p["hint"] or (f"Press {agree.upper()} to agree and take part.\n"
                             f"Press {decline.upper()} if you do not want to take part.")
        for n, trial in enumerate(schedule, 1):
            last = n == len(schedule)
            keys = [agree, decline] if last else [ctx.keys["continue"]]
            text = trial["page"]
            if last:
                text += "".join(f"\n\n{t}" for t in (p["contact"], p["question"]) if t)
            footer = (hint if last else ctx.texts["continue_hint"]) + "\n" + ctx.texts["withdraw_hint"]
            view = View("consent", text=text, footer=footer,
                        data={"page": n, "of": len(schedule), "keys": keys, "agree": agree, "decline": decline,
                              "decide": last})
            onset = ctx.screen.show(view)
            ctx.progress("page", kind="consent")
            try:
                if p["min_time"] > 0:
                    ctx.clock.wait_until(onset + p["min_time"])
                press = ctx.keyboard.wait_key(keys, since=onset + p["min_time"])
            except Withdrawn:
                _decided(ctx, n, onset, ctx.clock.now(), "withdraw", len(schedule))
                raise Declined("participant pressed the withdraw key on the consent screen") from None
            if not last:
                ctx.write_row({"trial": n, "onset": onset, "rt": press.t - onset, "response": "continue"})
                continue
            decision = "agree" if press.key == agree else "decline"
            _decided(ctx, n, onset, press.t, decision, len(schedule))
            if decision == "decline":
                raise Declined("participant declined consent")


def _decided(ctx, page: int, onset: float, t: float, decision: str, pages: int) -> None:
    """The decision's row (written before the session can end) and the session's record of it."""
    ctx.write_row({"trial": page, "onset": onset, "rt": t - onset, "response": decision})
    ctx.state["consent"] = {"phase": ctx.phase_id, "decision": decision,
                            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                            "page": page, "pages": pages}
