"""Anagrams: solvable or unsolvable training, the patterned test, the mood-repair task.

The participant types the word and presses Enter; answers are case-insensitive and checked
against the item's solution. A wrong answer says so and the trial goes on until the time
limit; an optional skip key moves on. Typed text comes from the text box (it follows the
keyboard layout), timing from the keyboard's timestamps.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import replace
from pathlib import Path

from experiment import datafile
from experiment.devices import KeyPress, View
from experiment.tasks.base import COMMON_COLUMNS, DEADLINE_SLACK, TIME_TOL, TIMING_OK, Column, Param, Problem, Task

ITEM_COLUMNS = ["item_id", "letters", "solution", "solvable"]


@functools.lru_cache(maxsize=32)
def _read_items(path: str, mtime_ns: int) -> tuple[tuple[dict, ...], str | None]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter="\t")
            if reader.fieldnames != ITEM_COLUMNS:
                return (), f"stimulus file {path} must have the columns {' '.join(ITEM_COLUMNS)} (got {reader.fieldnames})"
            items = []
            for i, row in enumerate(reader, 2):
                if row["solvable"] not in ("0", "1") or not row["letters"].isalpha():
                    return (), f"stimulus file {path}:{i}: bad row (letters must be letters, solvable 0 or 1)"
                items.append({"item_id": row["item_id"], "letters": row["letters"].lower(),
                              "solution": row["solution"].lower(), "solvable": row["solvable"] == "1"})
            return tuple(items), None
    except csv.Error as e:       # e.g. a field longer than the csv module's limit (131072 characters)
        return (), f"stimulus file {path}:{reader.line_num}: not a readable TSV row ({e})"
    except UnicodeDecodeError as e:
        return (), f"stimulus file {path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8"
    except OSError as e:
        return (), f"cannot read stimulus file {path}: {e.strerror or e}"


def read_items(path: Path) -> tuple[list[dict], str | None]:
    path = path.resolve()
    items, error = _read_items(str(path), path.stat().st_mtime_ns)
    return [dict(i) for i in items], error


def obeys_pattern(letters: str, solution: str, pattern: list[int]) -> bool:
    """letters[i] == solution[pattern[i] - 1] for every position (pattern 3-4-2-5-1: CHAIR -> AIHRC)."""
    return len(letters) == len(solution) == len(pattern) and all(
        letters[i] == solution[p - 1] for i, p in enumerate(pattern))


class Anagram(Task):
    name = "anagram"
    summary = "Type the word the letters spell; solvable, unsolvable or patterned items."
    default_role = "training"
    params = (
        Param("items", "file", "TSV of items (item_id, letters, solution, solvable), relative to the protocol"),
        Param("n_trials", "int", "number of trials (default: every item the proportion allows)", None, low=1),
        Param("unsolvable_proportion", "number", "share of trials drawn from unsolvable items", 0, low=0, high=1),
        Param("order", "choice", "item order: shuffled (drawn and ordered per participant, seeded; for training) "
              "or fixed (the file's first items in the file's order for everyone: use it for a test phase, as the "
              "classic anagram test gives every group the same items in the same order)", "shuffled",
              choices=("shuffled", "fixed")),
        Param("time_limit", "number", "seconds per anagram", 100, above=0),
        Param("pattern", "pattern", "letter order every item must obey, e.g. [3, 4, 2, 5, 1]", None),
        Param("criterion_run", "int", "consecutive fast solutions that reach criterion (0: none)", 3, low=0),
        Param("criterion_time", "number", "a solution counts toward criterion if faster than this (s)", 15, above=0),
        Param("stop_at_criterion", "bool", "end the phase once criterion is reached", False),
        Param("allow_skip", "bool", "let the participant give up on an item with the skip key", False),
        Param("skip_key", "key", "key that skips the item when allow_skip is true", "f2"),
        Param("prompt", "text", "line under the letters", "Type the word and press ENTER."),
        Param("feedback", "bool", "show the outcome after each anagram", True),
        Param("feedback_duration", "number", "seconds the outcome stays on screen", 1.5, low=0),
        Param("text_correct", "text", "feedback for a solution", "Correct!"),
        Param("text_wrong", "text", "shown under the letters after a wrong answer", "That is not the word. Try again."),
        Param("text_timeout", "text", "feedback at the time limit", "Time is up."),
        Param("text_skipped", "text", "feedback after a skip", "Skipped."),
        Param("iti", "number", "blank interval between anagrams (s)", 1.0, low=0),
    )
    columns = COMMON_COLUMNS + (
        Column("item_id", "Stimulus item id."),
        Column("letters", "Letters shown."),
        Column("solvable", "Whether the letters spell a word (1) or not (0)."),
        Column("solution", "The one word the letters spell (n/a for unsolvable items)."),
        Column("onset", "Session time the letters appeared.", "s"),
        Column("outcome", "How the trial ended.",
               levels={"solved": "correct word typed", "timeout": "time limit reached",
                       "skipped": "participant skipped"}),
        Column("rt", "Time from onset to the Enter key of the correct answer (n/a if unsolved).", "s"),
        Column("latency_scored", "rt, or the time limit when unsolved (classic scoring).", "s"),
        Column("first_key", "Time from onset to the first typed key of the final answer.", "s"),
        Column("response", "Last answer submitted as scored (trimmed, lower-cased), n/a if none; '%', '|', '/', "
                           "'\"' and control characters are written %XX (a typed 'n/a' is 'n%2Fa'), so "
                           "URL-decoding gives the text back."),
        Column("attempts", "Number of answers submitted (0: no answer)."),
        Column("wrong_answers", "Wrong answers as scored, each escaped like response, separated by '|'."),
        Column("answers", "Every answer submitted, in order, exactly as typed (case and spaces kept), each "
                          "escaped like response, separated by '|'; n/a if none."),
        Column("time_limit", "Time limit of the trial.", "s"),
        Column("fast_run", "Consecutive solutions under criterion_time up to this trial."),
        Column("criterion_reached", "1 from the trial where criterion was reached on."),
        TIMING_OK,
    )

    # -- validation -------------------------------------------------------------------------
    def check(self, params, base_dir):
        items, error = read_items(base_dir / params["items"])
        if error:
            return [Problem("items", error)]
        solvable = [i for i in items if i["solvable"]]
        unsolvable = [i for i in items if not i["solvable"]]
        problems = []
        n, prop = params["n_trials"], params["unsolvable_proportion"]
        n_uns, n_sol = _split(n if n is not None else _default_n(len(solvable), len(unsolvable), prop), prop)
        if n_uns > len(unsolvable):
            problems.append(Problem("unsolvable_proportion" if n is None else "n_trials",
                                    f"needs {n_uns} unsolvable items but {params['items']} has {len(unsolvable)}"))
        if n_sol > len(solvable):
            problems.append(Problem("n_trials", f"needs {n_sol} solvable items but {params['items']} has {len(solvable)}"))
        if n_uns + n_sol == 0:
            problems.append(Problem("items", f"{params['items']} has no items for this phase"))
        total = n_uns + n_sol
        if params["criterion_run"] > total:
            problems.append(Problem("criterion_run",
                                    f"criterion of {params['criterion_run']} in a row is longer than the phase ({total} trials)"))
        if params["criterion_run"] and params["criterion_time"] > params["time_limit"]:
            problems.append(Problem("criterion_time",
                                    f"must not exceed time_limit ({params['time_limit']:g} s)"))
        pattern = params["pattern"]
        if pattern:
            for it in items:
                if not it["solvable"] or not obeys_pattern(it["letters"], it["solution"], pattern):
                    problems.append(Problem("pattern", f"item {it['item_id']} ({it['letters']}) does not follow "
                                                       f"the pattern {'-'.join(map(str, pattern))}"))
                    break
        for it in solvable:
            if it["letters"] == it["solution"]:
                problems.append(Problem("items", f"item {it['item_id']}: the letters already spell the solution "
                                                 f"{it['solution']!r}; scramble them"))
                break
            if sorted(it["letters"]) != sorted(it["solution"]):
                problems.append(Problem("items", f"item {it['item_id']}: letters {it['letters']!r} do not spell "
                                                 f"the solution {it['solution']!r}"))
                break
        return problems

    def row_rules(self, v, params):
        outcome, limit = v.text("outcome"), v.num("time_limit")
        rt, scored, solvable = v.num("rt"), v.num("latency_scored"), v.whole("solvable")
        attempts = v.whole("attempts")
        if limit is None or limit <= 0:
            v.bad("time_limit", "every trial has a time limit > 0")
            return
        if params and abs(limit - params["time_limit"]) > TIME_TOL:
            v.bad("time_limit", f"{limit:g} s is not the phase's time_limit ({params['time_limit']:g} s)")
        if solvable is not None and solvable > 1:
            v.bad("solvable", f"must be 0 or 1 (got {solvable})")
        if outcome == "solved":
            if solvable == 0:
                v.bad("outcome", "an unsolvable item cannot be solved")
            if v.text("response") is None or v.text("response") != v.text("solution"):
                v.bad("response", f"a solved trial's response is the solution ({v.text('response')!r} "
                                  f"vs {v.text('solution')!r})")
            if rt is None or rt > limit + DEADLINE_SLACK:
                v.bad("rt", f"a solved trial has an rt within the time limit of {limit:g} s (got {rt})")
            elif scored is None or abs(scored - rt) > TIME_TOL:
                v.bad("latency_scored", f"is the rt ({rt:g} s) when solved (got {scored})")
            first = v.num("first_key")
            if rt is not None and first is not None and first > rt + TIME_TOL:
                v.bad("first_key", f"the first key ({first:g} s) comes after the answer ({rt:g} s)")
        else:
            if rt is not None:
                v.bad("rt", f"is n/a when the item was not solved (outcome {outcome}, rt {rt:g})")
            if scored is None or abs(scored - limit) > TIME_TOL:
                v.bad("latency_scored", f"is the time limit ({limit:g} s) when not solved (got {scored})")
        if outcome == "skipped" and params and not params["allow_skip"]:
            v.bad("outcome", "skipped, but the phase does not allow skipping")
        if attempts is not None and (attempts == 0) != v.is_na("response"):
            v.bad("attempts", f"{attempts} answers submitted, last response {v.text('response')!r}")
        if outcome == "solved" and attempts == 0:
            v.bad("attempts", "a solved trial has at least one answer")
        v.whole("fast_run")
        if v.whole("criterion_reached") not in (0, 1, None):
            v.bad("criterion_reached", "must be 0 or 1")

    # -- schedule ---------------------------------------------------------------------------
    def plan(self, params, rng, base_dir):
        items, _ = read_items(base_dir / params["items"])
        solvable = [i for i in items if i["solvable"]]
        unsolvable = [i for i in items if not i["solvable"]]
        prop = params["unsolvable_proportion"]
        n = params["n_trials"] if params["n_trials"] is not None else _default_n(len(solvable), len(unsolvable), prop)
        n_uns, n_sol = _split(n, prop)
        if params["order"] == "fixed":
            chosen = [i for i in items if i in unsolvable[:n_uns] or i in solvable[:n_sol]]
        else:
            chosen = rng.sample(unsolvable, n_uns) + rng.sample(solvable, n_sol)
            rng.shuffle(chosen)
        return chosen

    def expected_duration(self, params, schedule):
        per = params["time_limit"] + (params["feedback_duration"] if params["feedback"] else 0) + params["iti"]
        return per * len(schedule)

    # -- running ----------------------------------------------------------------------------
    def run(self, ctx, schedule):
        p = ctx.params
        fast_run, reached = 0, False
        extra = [p["skip_key"]] if p["allow_skip"] else []
        hint = ctx.texts["withdraw_hint"]
        if p["allow_skip"]:
            hint = f"Press {p['skip_key'].upper()} to skip.   " + hint
        for n, item in enumerate(schedule, 1):
            view = View("anagram", letters=item["letters"].upper(), text=p["prompt"], entry=True,
                        footer=hint, data={"trial": n, "of": len(schedule)})
            onset = ctx.screen.show(view)
            ctx.progress("trial_start", trial=n, of=len(schedule))
            deadline = onset + p["time_limit"]
            wrong: list[str] = []
            typed_raw: list[str] = []       # every answer exactly as typed
            outcome, answer, first_key = "timeout", None, None
            while True:
                got = ctx.keyboard.read_text(deadline, view, extra_keys=extra, since=onset)
                if got is None:
                    break
                if isinstance(got, KeyPress):
                    outcome = "skipped"
                    break
                typed = got.text.strip().lower()
                if not typed:
                    continue
                answer, first_key = got, got.first_key
                typed_raw.append(got.text)
                if item["solvable"] and typed == item["solution"]:
                    outcome = "solved"
                    break
                wrong.append(typed)
                view = replace(view, text=p["text_wrong"])
                ctx.screen.show(view)
            rt = answer.t - onset if outcome == "solved" else None
            if outcome == "solved" and rt < p["criterion_time"]:
                fast_run += 1
            else:
                fast_run = 0
            if p["criterion_run"] and fast_run >= p["criterion_run"]:
                reached = True
            ctx.write_row({
                "trial": n, "item_id": item["item_id"], "letters": item["letters"],
                "solvable": int(item["solvable"]), "solution": item["solution"] or None,
                "onset": onset, "outcome": outcome, "rt": rt,
                "latency_scored": rt if rt is not None else p["time_limit"],
                "first_key": (first_key - onset) if first_key is not None else None,
                "response": datafile.escape_text(answer.text.strip().lower()) if answer else None,
                "attempts": len(wrong) + (outcome == "solved"), "wrong_answers": datafile.join_answers(wrong),
                "answers": datafile.join_answers(typed_raw),
                "time_limit": p["time_limit"], "fast_run": fast_run, "criterion_reached": int(reached),
                "timing_ok": ctx.timing_ok(onset, ctx.clock.now(), "letters"),
            })
            ctx.progress("trial", trial=n, of=len(schedule), outcome=outcome,
                         rt=round(rt, 3) if rt is not None else None)
            end = ctx.clock.now()
            if p["feedback"] and p["feedback_duration"] > 0:
                text = {"solved": p["text_correct"], "timeout": p["text_timeout"], "skipped": p["text_skipped"]}[outcome]
                end = ctx.screen.show(View("feedback", text=text, footer=ctx.texts["withdraw_hint"],
                                           data={"outcome": outcome}))
                ctx.clock.wait_until(end + p["feedback_duration"])
                end = end + p["feedback_duration"]
            if p["iti"] > 0:
                ctx.screen.show(View("blank", footer=ctx.texts["withdraw_hint"]))
                ctx.clock.wait_until(end + p["iti"])
            if reached and p["stop_at_criterion"]:
                break


def _split(n: int, prop: float) -> tuple[int, int]:
    n_uns = round(n * prop)
    return n_uns, n - n_uns


def _default_n(n_sol: int, n_uns: int, prop: float) -> int:
    """Largest trial count the items allow at the requested proportion."""
    if prop <= 0:
        return n_sol
    if prop >= 1:
        return n_uns
    return max(k for k in range(0, n_sol + n_uns + 1)
               if _split(k, prop)[0] <= n_uns and _split(k, prop)[1] <= n_sol)
