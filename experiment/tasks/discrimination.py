"""Discrimination problems (the cognitive pretreatment of Hiroto & Seligman 1975).

Each trial shows a card with two patterns. A pattern takes one of two values on each of 5
dimensions (10 values in all); the two patterns on a card always differ on every dimension.
The participant picks the left or the right pattern.

- soluble: each problem has one target value; feedback ("correct"/"wrong") is truthful.
- insoluble: feedback is fixed in advance (a shuffled sequence with `insoluble_correct_share`
  "correct"), independent of the choice.
- control: the same cards, no feedback.
"""

from __future__ import annotations

from experiment.devices import View
from experiment.tasks.base import COMMON_COLUMNS, DEADLINE_SLACK, TIMING_OK, Column, Param, Problem, Task

DIMENSIONS: dict[str, tuple[str, str]] = {
    "color": ("red", "blue"),
    "shape": ("circle", "square"),
    "size": ("large", "small"),
    "letter": ("A", "T"),
    "border": ("thick", "thin"),
}


def pattern_label(pattern: dict) -> str:
    return "-".join(pattern[d] for d in DIMENSIONS)


class Discrimination(Task):
    name = "discrimination"
    summary = "Two-pattern cards, 5 dimensions x 2 values: soluble, insoluble or no-feedback problems."
    default_role = "training"
    params = (
        Param("mode", "choice", "soluble (truthful feedback), insoluble (feedback fixed in advance) or control "
                                "(no feedback)", "soluble", choices=("soluble", "insoluble", "control")),
        Param("n_problems", "int", "number of problems", 4, low=1, high=10),
        Param("trials_per_problem", "int", "cards per problem", 10, low=1),
        Param("insoluble_correct_share", "number", "insoluble: share of 'correct' feedback", 0.5, low=0, high=1),
        Param("left_key", "key", "key that chooses the left pattern", "left"),
        Param("right_key", "key", "key that chooses the right pattern", "right"),
        Param("time_limit", "number", "seconds to choose (no choice: the trial counts as a time-out)", 30, above=0),
        Param("feedback_duration", "number", "seconds the feedback (or, in control, a neutral screen) stays", 1.5,
              low=0),
        Param("iti", "number", "blank interval between cards (s)", 0.5, low=0),
        Param("prompt", "text", "under the card",
              "Choose the pattern with the LEFT or the RIGHT arrow key."),
        Param("text_problem", "text", "shown before each problem ({n} = problem number)",
              "Problem {n}: one of the features is the correct one. Find out which."),
        Param("text_correct", "text", "feedback", "CORRECT"),
        Param("text_wrong", "text", "feedback", "WRONG"),
        Param("text_control", "text", "shown instead of feedback in the control condition", "Next card."),
        Param("problem_intro_duration", "number", "seconds the problem announcement stays", 3.0, low=0),
    )
    columns = COMMON_COLUMNS + (
        Column("mode", "Problem type.", levels={"soluble": "truthful feedback", "insoluble": "feedback fixed in advance",
                                                "control": "no feedback"}),
        Column("problem", "Problem number, from 1."),
        Column("problem_trial", "Card number within the problem, from 1."),
        Column("target_dimension", "Dimension of the correct value (soluble only)."),
        Column("target_value", "The correct value (soluble only)."),
        Column("left_pattern", "Left pattern: color-shape-size-letter-border."),
        Column("right_pattern", "Right pattern: color-shape-size-letter-border."),
        Column("onset", "Session time the card appeared.", "s"),
        Column("choice", "Side chosen.", levels={"left": "left", "right": "right"}),
        Column("chosen_pattern", "The pattern chosen."),
        Column("rt", "Card onset to the choice.", "s"),
        Column("choice_correct", "The choice had the target value (soluble only)."),
        Column("feedback", "Feedback shown.", levels={"correct": "correct", "wrong": "wrong", "none": "no feedback",
                                                      "timeout": "no choice in time"}),
        TIMING_OK,
    )

    def check(self, params, base_dir):
        problems = []
        if params["left_key"] == params["right_key"]:
            problems.append(Problem("right_key", "must differ from left_key"))
        if params["mode"] == "soluble" and params["n_problems"] > 2 * len(DIMENSIONS):
            problems.append(Problem("n_problems", f"at most {2 * len(DIMENSIONS)} soluble problems (one per value)"))
        return problems

    def row_rules(self, v, params):
        mode, choice, feedback = v.text("mode"), v.text("choice"), v.text("feedback")
        problem, within = v.whole("problem", 1), v.whole("problem_trial", 1)
        left, right = v.text("left_pattern"), v.text("right_pattern")
        cards = [(left or "").split("-"), (right or "").split("-")]
        if not all(len(c) == len(DIMENSIONS) for c in cards) or any(
                {a, b} != set(vs) for a, b, vs in zip(*cards, DIMENSIONS.values())):
            v.bad("right_pattern", f"the two patterns differ on every dimension (got {left!r} and {right!r})")
        timed_out = feedback == "timeout"
        if (choice is None) != timed_out or v.is_na("rt") != timed_out or v.is_na("chosen_pattern") != timed_out:
            v.bad("choice", "choice, rt and chosen_pattern are n/a exactly when the trial timed out")
        elif choice is not None and v.text("chosen_pattern") != (left if choice == "left" else right):
            v.bad("chosen_pattern", f"is the {choice} pattern")
        correct = v.whole("choice_correct")
        if mode == "soluble":
            dim, value = v.text("target_dimension"), v.text("target_value")
            if dim not in DIMENSIONS or value not in DIMENSIONS[dim]:
                v.bad("target_value", f"a soluble problem has a target (got {dim!r} = {value!r})")
            elif not timed_out and v.text("chosen_pattern") is not None:
                hit = v.text("chosen_pattern").split("-")[list(DIMENSIONS).index(dim)] == value
                if correct != int(hit) or feedback != ("correct" if hit else "wrong"):
                    v.bad("choice_correct", f"the choice {'has' if hit else 'lacks'} the target value {value!r} "
                                            f"(choice_correct {correct}, feedback {feedback})")
        elif mode in ("insoluble", "control"):
            if not (v.is_na("target_dimension") and v.is_na("target_value") and correct is None):
                v.bad("target_value", f"a {mode} problem has no target and no correct choice")
            allowed = ("correct", "wrong", "timeout") if mode == "insoluble" else ("none", "timeout")
            if feedback not in allowed:
                v.bad("feedback", f"a {mode} problem gives {' or '.join(allowed)} (got {feedback!r})")
        if params:
            k = params["trials_per_problem"]
            if mode != params["mode"]:
                v.bad("mode", f"{mode} is not the phase's mode ({params['mode']})")
            if problem is not None and within is not None and (
                    problem > params["n_problems"] or within > k or v.whole("trial") != (problem - 1) * k + within):
                v.bad("problem_trial", f"problem {problem} card {within} is not trial {v.whole('trial')} of "
                                       f"{params['n_problems']} problems x {k} cards")
            rt = v.num("rt")
            if rt is not None and rt > params["time_limit"] + DEADLINE_SLACK:
                v.bad("rt", f"{rt:g} s is longer than the time limit ({params['time_limit']:g} s)")

    def plan(self, params, rng, base_dir):
        values = [(d, v) for d, vs in DIMENSIONS.items() for v in vs]
        targets = rng.sample(values, params["n_problems"]) if params["n_problems"] <= len(values) \
            else [rng.choice(values) for _ in range(params["n_problems"])]
        out = []
        k = params["trials_per_problem"]
        for prob, (dim, value) in enumerate(targets, 1):
            n_correct = round(k * params["insoluble_correct_share"])
            fixed = ["correct"] * n_correct + ["wrong"] * (k - n_correct)
            rng.shuffle(fixed)
            for j in range(1, k + 1):
                left = {d: rng.choice(vs) for d, vs in DIMENSIONS.items()}
                right = {d: vs[1] if left[d] == vs[0] else vs[0] for d, vs in DIMENSIONS.items()}
                trial = {"problem": prob, "problem_trial": j, "left": pattern_label(left),
                         "right": pattern_label(right), "left_values": left, "right_values": right}
                if params["mode"] == "soluble":
                    trial.update(target_dimension=dim, target_value=value)
                elif params["mode"] == "insoluble":
                    trial["fixed_feedback"] = fixed[j - 1]
                out.append(trial)
        return out

    def expected_duration(self, params, schedule):
        per = params["time_limit"] + params["feedback_duration"] + params["iti"]
        return per * len(schedule) + params["problem_intro_duration"] * params["n_problems"]

    def run(self, ctx, schedule):
        p = ctx.params
        mode = p["mode"]
        hint = ctx.texts["withdraw_hint"]
        keys = {p["left_key"]: "left", p["right_key"]: "right"}
        for n, trial in enumerate(schedule, 1):
            if trial["problem_trial"] == 1 and p["problem_intro_duration"] > 0:
                t = ctx.screen.show(View("text", text=p["text_problem"].replace("{n}", str(trial["problem"])),
                                         footer=hint, data={"problem": trial["problem"], "state": "problem_start"}))
                ctx.clock.wait_until(t + p["problem_intro_duration"])
            view = View("card", text=p["prompt"], footer=hint,
                        data={"left": trial["left_values"], "right": trial["right_values"], "mode": mode,
                              "problem": trial["problem"], "problem_trial": trial["problem_trial"],
                              "keys": {"left": p["left_key"], "right": p["right_key"]}})
            onset = ctx.screen.show(view)
            ctx.progress("trial_start", trial=n, of=len(schedule))
            press = ctx.keyboard.wait_key(list(keys), onset + p["time_limit"], since=onset)
            choice = keys[press.key] if press else None
            chosen = trial[f"{choice}_values"] if choice else None
            correct = None
            if mode == "soluble" and chosen is not None:
                correct = chosen[trial["target_dimension"]] == trial["target_value"]
            if choice is None:
                feedback = "timeout"
            elif mode == "soluble":
                feedback = "correct" if correct else "wrong"
            elif mode == "insoluble":
                feedback = trial["fixed_feedback"]
            else:
                feedback = "none"
            ctx.write_row({
                "trial": n, "mode": mode, "problem": trial["problem"], "problem_trial": trial["problem_trial"],
                "target_dimension": trial.get("target_dimension"), "target_value": trial.get("target_value"),
                "left_pattern": trial["left"], "right_pattern": trial["right"], "onset": onset, "choice": choice,
                "chosen_pattern": trial[choice] if choice else None, "rt": (press.t - onset) if press else None,
                "choice_correct": correct, "feedback": feedback,
                "timing_ok": ctx.timing_ok(onset, ctx.clock.now(), "cards"),
            })
            ctx.progress("trial", trial=n, of=len(schedule), outcome=feedback,
                         rt=round(press.t - onset, 3) if press else None)
            if p["feedback_duration"] > 0:
                text = {"correct": p["text_correct"], "wrong": p["text_wrong"], "none": p["text_control"],
                        "timeout": p["text_control"]}[feedback]
                t = ctx.screen.show(View("card_feedback", text=text, footer=hint,
                                         data={"feedback": feedback, "chosen": chosen, "choice": choice,
                                               "problem": trial["problem"], "mode": mode,
                                               "last": trial["problem_trial"] == p["trials_per_problem"]}))
                ctx.clock.wait_until(t + p["feedback_duration"])
            elif chosen is not None:
                ctx.screen.show(View("card_feedback", text="", footer=hint,
                                     data={"feedback": feedback, "chosen": chosen, "choice": choice,
                                           "problem": trial["problem"], "mode": mode,
                                           "last": trial["problem_trial"] == p["trials_per_problem"]}))
            if p["iti"] > 0:
                t = ctx.screen.show(View("blank", footer=hint))
                ctx.clock.wait_until(t + p["iti"])
