"""Rating scales (manipulation check: perceived control, mood), answered with the keyboard.

The marker starts in the middle (or at `start`); left/right move it, Enter confirms. A
keyboard scale works the same on every layout and is easy to simulate.
"""

from __future__ import annotations

from dataclasses import replace

from experiment.devices import View
from experiment.identifiers import is_label
from experiment.tasks.base import COMMON_COLUMNS, Column, Param, Problem, Task

QUESTION_KEYS = {"id", "text", "low", "high", "low_label", "high_label", "start"}


class Rating(Task):
    name = "rating"
    summary = "One or more rating scales; left/right to move, Enter to confirm."
    default_role = "check"
    params = (
        Param("questions", "questions", "list of {id, text, low, high, low_label, high_label}"),
        Param("hint", "text", "line under each scale", "Use the LEFT and RIGHT arrow keys, then press ENTER."),
        Param("require_movement", "bool", "ENTER counts only once the marker was moved (jsPsych's "
                                          "require_movement): an untouched starting value is no answer", False),
    )
    columns = COMMON_COLUMNS + (
        Column("question", "Question id from the protocol."),
        Column("response", "Chosen scale value."),
        Column("scale_low", "Lowest value of the scale."),
        Column("scale_high", "Highest value of the scale."),
        Column("onset", "Session time the question appeared.", "s"),
        Column("rt", "Time from onset to the confirming Enter key.", "s"),
        Column("moves", "Number of marker moves before confirming."),
    )

    def check(self, params, base_dir):
        qs = params["questions"]
        if not isinstance(qs, list) or not qs:
            return [Problem("questions", "must be a non-empty list of questions")]
        problems, seen = [], set()
        for i, q in enumerate(qs):
            where = f"questions.{i}"
            if not isinstance(q, dict):
                problems.append(Problem(where, "must be a mapping with id, text, low, high"))
                continue
            for k in q:
                if k not in QUESTION_KEYS:
                    problems.append(Problem(f"{where}.{k}", f"unknown field; allowed: {', '.join(sorted(QUESTION_KEYS))}"))
            qid = q.get("id")
            if not is_label(qid):
                problems.append(Problem(f"{where}.id", "must be letters and digits only"))
            elif qid in seen:
                problems.append(Problem(f"{where}.id", f"duplicate question id {qid!r}"))
            else:
                seen.add(qid)
            if not isinstance(q.get("text"), str) or not q.get("text", "").strip():
                problems.append(Problem(f"{where}.text", "is required: the question shown to the participant"))
            low, high = q.get("low"), q.get("high")
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
                problems.append(Problem(f"{where}.low", "low and high must be whole numbers"))
            elif low >= high:
                problems.append(Problem(f"{where}.high", f"must be > low ({low}) (got {high})"))
            elif high - low > 100:
                problems.append(Problem(f"{where}.high", f"a scale of more than 101 points cannot be answered "
                                                         f"with arrow keys (got {low}..{high})"))
            elif "start" in q and not (type(q["start"]) is int and low <= q["start"] <= high):   # true is not 1
                problems.append(Problem(f"{where}.start", f"must be a whole number from {low} to {high}"))
            for k in ("low_label", "high_label"):
                if k in q and not isinstance(q[k], str):
                    problems.append(Problem(f"{where}.{k}", "must be text"))
        return problems

    def row_rules(self, v, params):
        low, high, value = v.whole("scale_low", None), v.whole("scale_high", None), v.whole("response", None)
        if low is None or high is None or value is None or not low <= value <= high:
            v.bad("response", f"a whole number on the scale ({low}..{high}) (got {value})")
        v.whole("moves")
        if params:
            q = next((q for q in params["questions"] if q["id"] == v.text("question")), None)
            if q is None:
                v.bad("question", f"{v.text('question')!r} is not a question of the phase")
            elif (q["low"], q["high"]) != (low, high):
                v.bad("scale_low", f"the scale of {q['id']!r} is {q['low']}..{q['high']} (got {low}..{high})")

    def plan(self, params, rng, base_dir):
        return [dict(q) for q in params["questions"]]

    def expected_duration(self, params, schedule):
        return 15.0 * len(schedule)

    def run(self, ctx, schedule):
        for n, q in enumerate(schedule, 1):
            low, high = q["low"], q["high"]
            value = q.get("start", (low + high) // 2)
            view = View("rating", text=q["text"], scale=(low, high),
                        scale_labels=(q.get("low_label", str(low)), q.get("high_label", str(high))),
                        marker=value, footer=ctx.params["hint"] + "\n" + ctx.texts["withdraw_hint"],
                        data={"question": q["id"], "must_move": ctx.params["require_movement"]})
            onset = ctx.screen.show(view)
            ctx.progress("trial_start", trial=n, of=len(schedule))
            moves = 0
            while True:
                press = ctx.keyboard.wait_key(["left", "right", "return"], since=onset)
                if press.key == "return":
                    if moves or not ctx.params["require_movement"]:
                        break
                    continue
                new = max(low, min(high, value + (1 if press.key == "right" else -1)))
                if new != value:
                    value, moves = new, moves + 1
                    view = replace(view, marker=value, data={**view.data, "must_move": False})
                    ctx.screen.show(view)
            ctx.write_row({"trial": n, "question": q["id"], "response": value, "scale_low": low,
                           "scale_high": high, "onset": onset, "rt": press.t - onset, "moves": moves})
            ctx.state.setdefault("ratings", {})[q["id"]] = value
            ctx.progress("trial", trial=n, of=len(schedule), outcome=str(value))
