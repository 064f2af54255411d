"""Demographics: age, sex, handedness and the protocol's own questions, one screen each.

Every answer becomes a column of the study's BIDS participants.tsv, described in
participants.json (Description; Levels for choices, Units for numbers such as age in years),
through the session record's `demographics` (experiment.datafile.upsert_participant). Every
question may be left unanswered with the prefer-not-to-say key (default F1): the cell is then
n/a, like a question never asked.

Three kinds of question:
  choice   the options are listed with the number keys (1-7); the number marks an option,
           ENTER confirms it; the prefer-not key marks "Prefer not to say"
  number   typed, then ENTER; a number outside low..high (or not a whole number when `whole`)
           is refused on the screen and asked again (age: whole years, 16-99 by default)
  text     typed, then ENTER (at most max_length characters); written %-escaped like typed
           anagram answers, so a typed 'n/a' is 'n%2Fa', never the missing value

The standard questions (`standard`, default "age sex handedness") come first and use BIDS'
column names and values (sex: female, male, other; handedness: right, left, ambidextrous), so
the BIDS validator accepts them. A field of `fields` with a standard id rewords that question
(text, description, option labels, age range); its values stay BIDS'.
"""

from __future__ import annotations

import re
from dataclasses import replace

from experiment import datafile
from experiment.devices import KeyPress, View
from experiment.tasks.base import COMMON_COLUMNS, Column, FileProblem, Param, Problem, Task

FIELD_KEYS = {"id", "type", "text", "description", "levels", "low", "high", "whole", "units", "max_length"}
FIELD_TYPES = ("choice", "number", "text")
FIELD_ID_RE = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
LEVEL_RE = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")
NUMBER_RE = re.compile(r"[+-]?\d{1,9}(?:[.,]\d{1,6})?\Z", re.ASCII)
MAX_LEVELS = 7              # number keys 1-7, plus the prefer-not line: eight lines fit the screen
MAX_TEXT = 200
MAX_LABEL = 48              # an option's label fits one line of the screen
ENTER = ("return", "num_enter")
# Keys that type or edit an answer, so they cannot mean "prefer not to say".
EDIT_KEYS = {"return", "num_enter", "backspace", "delete", "left", "right", "up", "down", "tab", "space"}
# participants.tsv columns lhlab fills itself, and the columns the analysis adds to its participants table.
RESERVED = set(datafile.PARTICIPANT_COLUMNS) | {
    "session", "condition_kind", "session_status", "pilot", "simulated", "seed", "protocol_sha256", "protocol_file",
    "experimenter", "started", "ended", "debriefing_shown", "lhlab_version", "python_version", "phases",
    "phases_completed", "calibration_id", "noise_dose_percent", "stimuli", "n_sessions"}
NOT_ASKED = " n/a: not answered (prefer not to say) or not asked."

STANDARD = {
    "age": {"id": "age", "type": "number", "text": "How old are you? Please type your age in years.",
            "description": "Age of the participant in years (self-report).", "units": "years",
            "low": 16, "high": 99, "whole": True},
    "sex": {"id": "sex", "type": "choice", "text": "What is your sex?",
            "description": "Sex of the participant (self-report).",
            "levels": {"female": "Female", "male": "Male", "other": "Other"}},
    "handedness": {"id": "handedness", "type": "choice", "text": "Which hand do you write with?",
                   "description": "Handedness of the participant (self-report).",
                   "levels": {"right": "Right", "left": "Left", "ambidextrous": "Both equally"}},
}


class Demographics(Task):
    name = "demographics"
    summary = ("Questions about the participant (age, sex, handedness and the protocol's own fields), one screen "
               "each; the answers become participants.tsv columns; every question can be answered "
               "'prefer not to say' (n/a).")
    default_role = "demographics"
    fixed_role = True
    params = (
        Param("standard", "str", "standard questions asked first, in this order (space-separated; any of age, "
                                 "sex, handedness; '' for none)", "age sex handedness"),
        Param("fields", "questions", "the protocol's own questions: list of {id, type (choice | number | text), "
                                     "text, description, levels (choice: value -> label), low, high, whole, units "
                                     "(number), max_length (text)}; an id of a standard question rewords it", []),
        Param("prefer_not_key", "key", "key that answers 'prefer not to say' (n/a) to any question", "f1"),
        Param("prefer_not_label", "text", "the option shown for that key", "Prefer not to say"),
        Param("choice_hint", "text", "hint under a choice question", "Press the number of your answer, then ENTER."),
        Param("entry_hint", "text", "hint under a typed question", "Type your answer and press ENTER."),
        Param("prefer_not_hint", "text", "hint naming the prefer-not key (default: 'Press F1 if you prefer not to "
                                         "say.' with the key)", None),
        Param("text_choose_first", "text", "shown after ENTER with no option marked",
              "First press the number of your answer."),
        Param("text_bad_number", "text", "shown when a typed number is refused ({low} and {high} are filled in)",
              "Please type a number from {low} to {high}."),
        Param("text_bad_whole", "text", "shown when a whole number is refused ({low} and {high} are filled in)",
              "Please type a whole number from {low} to {high}."),
        Param("text_too_long", "text", "shown when a typed text is too long ({max} is filled in)",
              "Please use at most {max} characters."),
    )
    columns = COMMON_COLUMNS + (
        Column("field", "Question id: the participants.tsv column the answer went to."),
        Column("response", "The answer as written to participants.tsv: a choice's value, a number, or typed text "
                           "(trimmed; '%', '|', '/', '\"' and control characters written %XX); n/a: prefer not "
                           "to say."),
        Column("prefer_not", "1: answered 'prefer not to say' (response n/a); 0: answered."),
        Column("onset", "Session time the question appeared.", "s"),
        Column("rt", "Time from onset to the key that confirmed the answer.", "s"),
        Column("attempts", "Answers submitted (more than 1 when an answer was refused and the question asked again)."),
        Column("refused_answers", "Typed answers refused (out of range, not a number, too long), each escaped like "
                                  "response, separated by '|'; n/a if none."),
    )

    # -- validation -------------------------------------------------------------------------
    def check(self, params, base_dir):
        problems: list[Problem] = []
        standard = params["standard"].split()
        for i, sid in enumerate(standard):
            if sid not in STANDARD:
                problems.append(Problem("standard", f"unknown standard question {sid!r}; known: "
                                                    f"{', '.join(STANDARD)}"))
            elif sid in standard[:i]:
                problems.append(Problem("standard", f"{sid!r} is listed twice"))
        fields = params["fields"]
        if not isinstance(fields, list):
            return problems + [Problem("fields", "must be a list of questions (or left out)")]
        seen: set = set()
        for i, f in enumerate(fields):
            problems += _field_problems(f, f"fields.{i}", standard, seen)
        key = params["prefer_not_key"]
        if len(key) == 1 or key in EDIT_KEYS or key.startswith("num_"):
            problems.append(Problem("prefer_not_key", f"{key!r} types or edits an answer; choose a key that types "
                                                      "nothing, e.g. f1"))
        if not problems and not resolve(params):
            problems.append(Problem("standard", "asks nothing: list standard questions or add fields"))
        return problems

    def check_keys(self, params, keys):
        if params["prefer_not_key"] == keys["continue"]:
            return [Problem("prefer_not_key", f"{keys['continue']!r} is keys.continue; choose e.g. f1")]
        return []

    def check_conditions(self, conditions, phases):
        """One demographics phase per condition, and a column means the same in every phase
        that asks it (participants.tsv has one description per column)."""
        problems = []
        mine = {pid: ph for pid, ph in phases.items() if ph.task == self.name}
        for name, cond in conditions.items():
            listed = [i for i, pid in enumerate(cond.phases) if pid in mine]
            if len(listed) > 1:
                problems.append(FileProblem(("conditions", name, "phases", listed[1]),
                                            "only one demographics phase per condition (one participants.tsv row)"))
        described: dict[str, tuple[str, dict]] = {}
        for pid, ph in mine.items():
            for f in resolve(ph.params):
                other = described.setdefault(f["id"], (pid, sidecar(f)))
                if other[1] != sidecar(f):
                    problems.append(FileProblem(("phases", pid, "fields"), f"{f['id']!r} is described differently "
                                                                           f"in phase {other[0]!r}; a "
                                                                           "participants.tsv column has one meaning"))
        return problems

    def row_rules(self, v, params):
        prefer = v.whole("prefer_not")
        if prefer not in (0, 1, None):
            v.bad("prefer_not", f"must be 0 or 1 (got {prefer})")
        elif prefer is not None and (prefer == 1) != v.is_na("response"):
            v.bad("response", "is n/a exactly when the answer is 'prefer not to say'")
        attempts = v.whole("attempts")
        if attempts is not None and attempts < 1:
            v.bad("attempts", "every question has at least one answer")
        if not params:
            return
        field = next((f for f in resolve(params) if f["id"] == v.text("field")), None)
        if field is None:
            v.bad("field", f"{v.text('field')!r} is not a question of the phase")
            return
        value = v.text("response")
        if value is None:
            return
        if field["type"] == "choice" and value not in field["levels"]:
            v.bad("response", f"must be one of {', '.join(field['levels'])} (got {value!r})")
        elif field["type"] == "number":
            number = v.num("response")
            if number is not None and not field["low"] <= number <= field["high"]:
                v.bad("response", f"must be from {field['low']:g} to {field['high']:g} (got {number:g})")

    # -- schedule ---------------------------------------------------------------------------
    def plan(self, params, rng, base_dir):
        return resolve(params)

    def expected_duration(self, params, schedule):
        return 20.0 * len(schedule)

    # -- running ----------------------------------------------------------------------------
    def run(self, ctx, schedule):
        p = ctx.params
        key = p["prefer_not_key"]
        prefer_hint = p["prefer_not_hint"] or f"Press {key.upper()} if you prefer not to say."
        answers = ctx.state.setdefault("demographics", {"phase": ctx.phase_id, "answers": {}, "columns": {}})
        for f in schedule:
            answers["columns"][f["id"]] = sidecar(f)
        for n, f in enumerate(schedule, 1):
            data = {"field": f["id"], "type": f["type"], "trial": n, "of": len(schedule), "prefer_not_key": key,
                    **{k: f[k] for k in ("low", "high", "whole", "max_length") if k in f}}
            ctx.progress("trial_start", trial=n, of=len(schedule))
            if f["type"] == "choice":
                hint = p["choice_hint"] + "\n" + ctx.texts["withdraw_hint"]
                onset, t, value, attempts, refused = _ask_choice(ctx, f, key, data, hint)
            else:
                hint = p["entry_hint"] + "\n" + prefer_hint + "\n" + ctx.texts["withdraw_hint"]
                onset, t, value, attempts, refused = _ask_typed(ctx, f, key, data, hint)
            ctx.write_row({"trial": n, "field": f["id"], "response": value, "prefer_not": int(value is None),
                           "onset": onset, "rt": t - onset, "attempts": attempts,
                           "refused_answers": datafile.join_answers(refused)})
            answers["answers"][f["id"]] = value
            ctx.progress("trial", trial=n, of=len(schedule), outcome="prefer_not" if value is None else "answered",
                         rt=round(t - onset, 4))


def _ask_choice(ctx, f: dict, key: str, data: dict, hint: str):
    """(onset, time of the confirming ENTER, chosen value or None, ENTER presses, [])."""
    codes = list(f["levels"])
    options = tuple((str(i), label) for i, label in enumerate(f["levels"].values(), 1)) + \
        ((key.upper(), ctx.params["prefer_not_label"]),)
    view = View("form", text=f["text"], options=options, footer=hint, data={**data, "levels": codes})
    onset = ctx.screen.show(view)
    number_keys = {str(i): i - 1 for i in range(1, len(codes) + 1)}
    number_keys.update({f"num_{i}": i - 1 for i in range(1, len(codes) + 1)})
    selected, attempts = None, 0
    while True:
        press = ctx.keyboard.wait_key([*number_keys, key, *ENTER], since=onset)
        if press.key in ENTER:
            attempts += 1
            if selected is not None:
                return onset, press.t, (codes[selected] if selected < len(codes) else None), attempts, []
            view = replace(view, message=ctx.params["text_choose_first"])
        else:
            selected = len(codes) if press.key == key else number_keys[press.key]
            view = replace(view, selected=selected, message="")
        ctx.screen.show(view)


def _ask_typed(ctx, f: dict, key: str, data: dict, hint: str):
    """(onset, time of the confirming key, value or None, answers submitted, [refused answers as typed])."""
    view = View("form", text=f["text"], entry=True, footer=hint, data=data)
    onset = ctx.screen.show(view)
    refused: list[str] = []
    while True:
        got = ctx.keyboard.read_text(float("inf"), view, extra_keys=(key,), since=onset)
        if isinstance(got, KeyPress):
            return onset, got.t, None, len(refused) + 1, refused
        text = got.text.strip()
        if not text:
            continue                    # ENTER on an empty box: nothing was answered
        value, problem = parse_answer(f, text, ctx.params)
        if problem is None:
            return onset, got.t, value, len(refused) + 1, refused
        refused.append(got.text)
        view = replace(view, message=problem)
        ctx.screen.show(view)


def parse_answer(f: dict, text: str, params: dict) -> tuple[object, str | None]:
    """(the value to record, None) or (None, the message that refuses `text`)."""
    if f["type"] == "text":
        if len(text) > f["max_length"]:
            return None, params["text_too_long"].replace("{max}", str(f["max_length"]))
        return datafile.escape_text(text), None
    low, high, whole = f["low"], f["high"], f.get("whole", False)
    message = (params["text_bad_whole"] if whole else params["text_bad_number"]) \
        .replace("{low}", f"{low:g}").replace("{high}", f"{high:g}")
    if not NUMBER_RE.match(text):
        return None, message
    number = float(text.replace(",", "."))
    if not low <= number <= high or (whole and not number.is_integer()):
        return None, message
    return (int(number) if number.is_integer() else number), None


def resolve(params: dict) -> list[dict]:
    """The questions in the order they are asked, every field filled in (standard ones with
    the protocol's rewording), for a phase whose parameters passed `check`."""
    fields = params["fields"] if isinstance(params.get("fields"), list) else []
    own = {f.get("id"): f for f in fields if isinstance(f, dict)}
    out = []
    for sid in params["standard"].split():
        out.append(_filled({**STANDARD[sid], **own.get(sid, {})}))
    out += [_filled(f) for f in fields if isinstance(f, dict) and f.get("id") not in STANDARD]
    return out


def _filled(f: dict) -> dict:
    f = dict(f)
    if f.get("type") == "text":
        f.setdefault("max_length", 60)
    if f.get("type") == "number":
        f.setdefault("whole", False)
    return f


def sidecar(f: dict) -> dict:
    """The field's participants.json entry."""
    out: dict = {"Description": f["description"].rstrip() + NOT_ASKED}
    if f["type"] == "choice":
        out["Levels"] = dict(f["levels"])
    if f["type"] == "number" and f.get("units"):
        out["Units"] = f["units"]
    return out


def _field_problems(f, where: str, standard: list[str], seen: set) -> list[Problem]:
    if not isinstance(f, dict):
        return [Problem(where, "must be a mapping with id, type, text and description")]
    problems = [Problem(f"{where}.{k}", f"unknown field; allowed: {', '.join(sorted(FIELD_KEYS))}")
                for k in f if k not in FIELD_KEYS]
    fid = f.get("id")
    if not isinstance(fid, str) or not FIELD_ID_RE.match(fid):
        return problems + [Problem(f"{where}.id", "must be lower-case letters, digits and _, starting with a letter "
                                                  "(at most 32): it becomes a participants.tsv column")]
    if fid in seen:
        problems.append(Problem(f"{where}.id", f"duplicate question id {fid!r}"))
    seen.add(fid)
    if fid in RESERVED:
        return problems + [Problem(f"{where}.id", f"{fid!r} is a column lhlab fills itself; choose another id")]
    base = STANDARD.get(fid)
    if base is not None and fid not in standard:
        return problems + [Problem(f"{where}.id", f"{fid!r} is a standard question: list it in standard to ask it")]
    ftype = f.get("type", base["type"] if base else None)
    if ftype not in FIELD_TYPES:
        return problems + [Problem(f"{where}.type", f"must be one of {', '.join(FIELD_TYPES)} (got {ftype!r})")]
    if base is not None and ftype != base["type"]:
        return problems + [Problem(f"{where}.type", f"the standard question {fid!r} is a {base['type']} question")]
    for k in ("text", "description"):
        value = f.get(k, base[k] if base else None)
        if not isinstance(value, str) or not value.strip():
            problems.append(Problem(f"{where}.{k}", "is required: " + ("the question shown to the participant"
                                                                        if k == "text" else
                                                                        "what the column means (participants.json)")))
    allowed = {"choice": {"levels"}, "number": {"low", "high", "whole", "units"}, "text": {"max_length"}}[ftype]
    for k in f:
        if k in FIELD_KEYS - {"id", "type", "text", "description"} - allowed:
            problems.append(Problem(f"{where}.{k}", f"does not apply to a {ftype} question"))
    if base is not None and fid == "age" and ("whole" in f or "units" in f):
        problems.append(Problem(f"{where}.{'whole' if 'whole' in f else 'units'}", "age is in whole years (BIDS)"))
    if ftype == "choice":
        problems += _levels_problems(f.get("levels", base["levels"] if base else None), f"{where}.levels", base)
    elif ftype == "number":
        low, high = f.get("low", base["low"] if base else None), f.get("high", base["high"] if base else None)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e9 for v in (low, high)):
            problems.append(Problem(f"{where}.low", "low and high are required numbers: the range an answer must be "
                                                    "in (a typed number outside it is refused and asked again)"))
        elif low >= high:
            problems.append(Problem(f"{where}.high", f"must be > low ({low:g}) (got {high:g})"))
        if "whole" in f and not isinstance(f["whole"], bool):
            problems.append(Problem(f"{where}.whole", "must be true or false"))
        if "units" in f and (not isinstance(f["units"], str) or not f["units"].strip()):
            problems.append(Problem(f"{where}.units", "must be a text, e.g. years or h"))
    else:
        m = f.get("max_length", 60)
        if type(m) is not int or not 1 <= m <= MAX_TEXT:
            problems.append(Problem(f"{where}.max_length", f"must be a whole number from 1 to {MAX_TEXT}"))
    return problems


def _levels_problems(levels, where: str, base: dict | None) -> list[Problem]:
    if not isinstance(levels, dict) or not levels:
        return [Problem(where, "is required: a mapping of value -> label, e.g. {school: Secondary school}")]
    problems = []
    if not 2 <= len(levels) <= MAX_LEVELS:
        problems.append(Problem(where, f"needs 2 to {MAX_LEVELS} options (number keys 1-{MAX_LEVELS}; got "
                                       f"{len(levels)})"))
    for code, label in levels.items():
        if isinstance(code, bool) or code in ("True", "False"):      # YAML's yes/no (the loader keeps keys as text)
            problems.append(Problem(f"{where}.{code}", "YAML reads an unquoted yes, no, true or false as a truth "
                                                       "value: quote it ('yes': ...) or use another word"))
        elif not isinstance(code, str) or not LEVEL_RE.match(code):
            problems.append(Problem(f"{where}.{code}", "a value is letters, digits, _ or - (at most 32): it is "
                                                       "written to participants.tsv"))
        if not isinstance(label, str) or not label.strip():
            problems.append(Problem(f"{where}.{code}", "needs a label: the text shown for the option"))
        elif len(label) > MAX_LABEL:
            problems.append(Problem(f"{where}.{code}", f"an option is one line on the screen: at most {MAX_LABEL} "
                                                       f"characters (got {len(label)})"))
    if base is not None and set(levels) != set(base["levels"]):
        problems.append(Problem(where, f"the values of {base['id']!r} are BIDS' ({', '.join(base['levels'])}); "
                                       "relabel or reorder them, do not add or rename"))
    return problems
