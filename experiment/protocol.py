"""Load and validate a protocol file into typed models.

The whole file is checked before anything runs, and every problem is reported as
`file:line: field.path: message`. See protocols/README.md for the format.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from experiment import analysis_plan
from experiment.errors import ProtocolError
from experiment.tasks import TASKS
from experiment.identifiers import check_key, check_study_id, is_label
from experiment.tasks.base import check_value
from experiment.yamlsource import YamlProblem, load_with_lines, read_source

SCHEMA_VERSION = 1
ROLES = ("consent", "demographics", "instructions", "practice", "training", "check", "test", "repair")
CONDITION_KINDS = ("helpless", "controllable", "control")

TASK_ANSWER_KEYS = {"return", "num_enter", "left", "right", "up", "down", "backspace", "delete", "tab", "space"}
DEFAULT_KEYS = {"withdraw": "f12", "abort": "escape", "continue": "space"}
DEFAULT_TEXTS = {
    "withdraw_hint": "You may stop at any time by pressing F12.",
    "continue_hint": "Press SPACE to continue.",
    "withdrawn": "You have chosen to stop. Thank you for your time. Please read the following.",
    "goodbye": "Thank you! The session is over. Please let the experimenter know.",
    "declined": "You have chosen not to take part. Nothing more about you will be recorded. Thank you for your "
                "time; please let the experimenter know.",
}
TOP_KEYS = {"schema_version", "study", "keys", "texts", "phases", "conditions", "debriefing", "analysis"}
STUDY_KEYS = {"id", "title", "description", "reference", "block_size", "planned_n"}
PHASE_KEYS = {"task", "role", "instructions"}
CONDITION_KEYS = {"kind", "description", "phases", "yoked_to"}
DEBRIEF_KEYS = {"pages", "repair"}


@dataclass(frozen=True)
class Phase:
    id: str
    task: str
    role: str
    params: dict            # task parameters with defaults filled in
    instructions: list[str]
    line: int


@dataclass(frozen=True)
class Condition:
    name: str
    kind: str
    description: str
    phases: tuple[str, ...]
    yoked_to: str | None


@dataclass(frozen=True)
class Protocol:
    path: Path
    sha256: str
    study_id: str
    title: str
    block_size: int
    keys: dict
    texts: dict
    phases: dict[str, Phase]
    conditions: dict[str, Condition]
    debriefing_pages: list[str]     # the shared default (pages.default, or pages given as a text/list)
    repair_phase: str | None
    debriefing_by_condition: dict[str, list[str]] = field(default_factory=dict)
    raw: dict = field(repr=False, default_factory=dict)
    planned_n: dict[str, int] = field(default_factory=dict)   # study.planned_n per condition ({}: none planned)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def phase_sequence(self, condition: str) -> list[Phase]:
        """The condition's phases in order, then the repair task after the debriefing."""
        return [self.phases[p] for p in self.conditions[condition].phases]

    def noise_levels(self, condition: str) -> list[float]:
        """The noise levels (dB(A)) the condition's phases play; [] when it plays no noise."""
        return [level for ph in self.phase_sequence(condition)
                for level, seconds in TASKS[ph.task].exposure(ph.params) if seconds > 0]

    def noise_sound(self) -> str | None:
        """The aversive sound the protocol plays, as calibrated ('noise' or 'tone <Hz> Hz'), None
        when it plays none; one per protocol (the validator refuses a mix)."""
        sounds = _sounds(self.phases.values())
        return sounds[0] if sounds else None

    def debriefing_for(self, condition: str) -> list[str]:
        """The debriefing pages `condition` reads: its own (debriefing.pages.<condition>) or the default."""
        return self.debriefing_by_condition.get(condition) or self.debriefing_pages

    def has_task(self, *names: str) -> bool:
        return any(p.task in names for p in self.phases.values())


def load_protocol(path: str | Path) -> Protocol:
    """Load and validate `path`; raise ProtocolError listing every problem."""
    path = Path(path)
    shown = str(path)
    try:
        raw_bytes = read_source(path)      # a regular file of at most 1 MB
        data, lines = load_with_lines(path, raw_bytes)
    except YamlProblem as e:
        raise ProtocolError([f"{shown}:{e.line}: {e.field}: {e}"]) from None
    v = _Validator(shown, path.parent.resolve(), lines)
    proto = v.protocol(data, path, hashlib.sha256(raw_bytes).hexdigest())
    if v.problems:
        raise ProtocolError(v.problems)
    return proto


class _Validator:
    def __init__(self, shown: str, base_dir: Path, lines: dict):
        self.shown, self.base_dir, self.lines = shown, base_dir, lines
        self.problems: list[str] = []
        self.defined_phases: set = set()      # phase ids in the file, broken ones included

    def err(self, path: tuple, message: str) -> None:
        line = self._line(path)
        dotted = ".".join(str(p) for p in path) or "(top)"
        self.problems.append(f"{self.shown}:{line}: {dotted}: {message}")

    def _line(self, path: tuple) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def mapping(self, value, path: tuple, allowed: set | None) -> dict:
        if not isinstance(value, dict):
            self.err(path, f"must be a mapping of fields (got {type(value).__name__})")
            return {}
        if allowed is not None:
            for k in value:
                if k not in allowed:
                    self.err(path + (k,), f"unknown field; allowed here: {', '.join(sorted(allowed))}")
        return value

    def text(self, value, path: tuple, required: bool = True) -> str:
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            self.err(path, "must be a non-empty text" if value is not None else "is required")
            return ""
        return value

    def pages(self, value, path: tuple) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.err(path, "must be a text or a list of texts")
            return []
        return list(value)

    # -- the file -----------------------------------------------------------------------
    def protocol(self, data, path: Path, sha: str) -> Protocol | None:
        top = self.mapping(data, (), TOP_KEYS)
        sv = top.get("schema_version")
        if sv is None:
            self.err(("schema_version",), f"is required (this lhlab reads schema_version: {SCHEMA_VERSION})")
        elif type(sv) is not int or sv != SCHEMA_VERSION:      # true and 1.0 are not the integer 1
            self.err(("schema_version",), f"this lhlab reads schema_version {SCHEMA_VERSION} (got {sv!r})")

        study = self.mapping(top.get("study", {}), ("study",), STUDY_KEYS)
        study_id = study.get("id")
        if check_study_id(study_id):
            self.err(("study", "id"), check_study_id(study_id))
        title = self.text(study.get("title"), ("study", "title"))

        keys = dict(DEFAULT_KEYS)
        for k, val in self.mapping(top.get("keys", {}), ("keys",), set(DEFAULT_KEYS)).items():
            if check_key(val):
                self.err(("keys", k), check_key(val))
            else:
                keys[k] = val
        if keys["withdraw"] == keys["abort"]:
            self.err(("keys", "withdraw"), "must differ from keys.abort")
        for k in ("withdraw", "abort"):
            # The stop keys work everywhere, so they must never be a key a participant uses to answer.
            if len(keys[k]) == 1 or keys[k] in TASK_ANSWER_KEYS or keys[k] == keys["continue"]:
                self.err(("keys", k), f"{keys[k]!r} is a key participants answer with (letters, digits, "
                                      f"{', '.join(sorted(TASK_ANSWER_KEYS))}, keys.continue); choose e.g. f12 or escape")

        texts = dict(DEFAULT_TEXTS)
        for k, val in self.mapping(top.get("texts", {}), ("texts",), set(DEFAULT_TEXTS)).items():
            if k not in DEFAULT_TEXTS:
                continue        # reported by mapping(): a typo must not leave the default in place silently
            texts[k] = self.text(val, ("texts", k))

        phases = self.all_phases(top.get("phases"), keys)
        conditions = self.conditions(top.get("conditions"), phases)
        for fld, msg in analysis_plan.problems(top.get("analysis"), phases):
            self.err(("analysis",) + fld, msg)

        block_size = study.get("block_size", 2 * max(1, len(conditions)))
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            self.err(("study", "block_size"), f"must be a whole number >= 1 (got {block_size!r})")
        elif conditions and block_size % len(conditions):
            self.err(("study", "block_size"),
                     f"must be a multiple of the number of conditions ({len(conditions)}) so blocks balance")

        planned_n = self.planned_n(study.get("planned_n"), conditions)

        debrief = self.mapping(top.get("debriefing"), ("debriefing",), DEBRIEF_KEYS) \
            if "debriefing" in top else self.err(("debriefing",), "is required: every session ends with a debriefing") or {}
        debrief_pages, by_condition = self.debriefing_pages(debrief, conditions) if debrief else ([], {})
        repair = debrief.get("repair")
        if repair is not None:
            if not isinstance(repair, str) or repair not in phases:
                self.err(("debriefing", "repair"), f"unknown phase {repair!r}; define it under phases")
            elif phases[repair].task != "anagram" or phases[repair].params.get("unsolvable_proportion", 0) != 0:
                self.err(("debriefing", "repair"), "must be a solvable anagram phase (unsolvable_proportion: 0)")
            elif any(repair in c.phases for c in conditions.values()):
                self.err(("debriefing", "repair"), "the repair phase runs after the debriefing; do not list it in a condition")
        if self.problems:
            return None
        return Protocol(path=path, sha256=sha, study_id=study_id, title=title, block_size=block_size,
                        keys=keys, texts=texts, phases=phases, conditions=conditions,
                        debriefing_pages=debrief_pages, repair_phase=repair, raw=top,
                        debriefing_by_condition=by_condition, planned_n=planned_n)

    def planned_n(self, value, conditions: dict) -> dict[str, int]:
        """study.planned_n: one whole number for every condition, or condition -> number
        (a condition left out has no planned n, so the study is never full)."""
        where = ("study", "planned_n")
        if value is None:
            return {}

        def whole(n) -> bool:
            return isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 100_000
        if not isinstance(value, dict):
            if not whole(value):
                self.err(where, f"must be a whole number from 1 to 100000, or condition: number (got {value!r})")
                return {}
            return {c: value for c in conditions}
        out = {}
        for c, n in value.items():
            if c not in conditions:
                self.err(where + (str(c),), f"is not a condition; use one of: {', '.join(conditions)}")
            elif not whole(n):
                self.err(where + (c,), f"must be a whole number from 1 to 100000 (got {n!r})")
            else:
                out[c] = n
        return out

    def debriefing_pages(self, debrief: dict, conditions: dict) -> tuple[list[str], dict[str, list[str]]]:
        """debriefing.pages: a text or list for everyone, or a mapping of condition -> pages with
        `default` for the rest (each group is told what happened to it, e.g. a solvable group is
        not told its anagrams were unsolvable)."""
        value, path = debrief.get("pages"), ("debriefing", "pages")
        if not isinstance(value, dict):
            pages = self.pages(value, path)
            if not pages:
                self.err(path, "is required: the text that explains the study")
            return pages, {}
        by_condition = {}
        for name, pages in value.items():
            if name != "default" and name not in conditions:
                self.err(path + (name,), f"unknown condition {name!r}; use a condition name or default")
            elif not self.pages(pages, path + (name,)):
                self.err(path + (name,), "must be a text or a non-empty list of texts")
            else:
                by_condition[name] = self.pages(pages, path + (name,))
        default = by_condition.pop("default", [])
        missing = [c for c in conditions if c not in by_condition]
        if missing and not default and "default" not in value:
            self.err(path, f"condition(s) {', '.join(missing)} have no debriefing: add pages.default or "
                           f"pages.<condition>")
        return default, by_condition

    def all_phases(self, value, keys: dict) -> dict[str, Phase]:
        if value is None:
            self.err(("phases",), "is required: a mapping of phase id -> task and parameters")
            return {}
        out = {}
        self.defined_phases = set(value) if isinstance(value, dict) else set()
        for pid, spec in self.mapping(value, ("phases",), None).items():
            if not is_label(pid):
                self.err(("phases", pid), "phase ids must be letters and digits only (they become BIDS task labels)")
                continue
            phase = self.phase(pid, spec, keys)
            if phase:
                out[pid] = phase
        return out

    def phase(self, pid: str, spec, keys: dict) -> Phase | None:
        path = ("phases", pid)
        spec = self.mapping(spec, path, None)
        task_name = spec.get("task")
        if not isinstance(task_name, str) or task_name not in TASKS:
            self.err(path + ("task",), f"unknown task {task_name!r}; known: {', '.join(sorted(TASKS))}")
            return None
        task = TASKS[task_name]
        allowed = PHASE_KEYS | {p.name for p in task.params}
        for k in spec:
            if k not in allowed:
                self.err(path + (k,), f"unknown field for task {task_name}; allowed: {', '.join(sorted(allowed))}")
        role = spec.get("role", task.default_role)
        if role not in ROLES:
            self.err(path + ("role",), f"must be one of {', '.join(ROLES)} (got {role!r})")
        elif task.fixed_role and role != task.default_role:
            self.err(path + ("role",), f"a {task_name} phase has the role {task.default_role} (got {role!r})")
        elif role in FIXED_ROLES and FIXED_ROLES[role] != task_name:
            self.err(path + ("role",), f"the role {role} belongs to {FIXED_ROLES[role]} phases (got a {task_name} phase)")
        if "instructions" in spec and not task.takes_instructions:
            self.err(path + ("instructions",), f"a {task_name} phase shows no instructions: put the text in its pages")
        params, ok = {}, True
        for p in task.params:
            if p.name not in spec:
                if p.required:
                    self.err(path + (p.name,), f"is required: {p.help}")
                    ok = False
                else:
                    params[p.name] = p.default
                continue
            msg = check_value(p, spec[p.name], self.base_dir)
            if msg:
                self.err(path + (p.name,), msg)
                ok = False
            else:
                params[p.name] = spec[p.name]
        if ok:
            for prob in task.check(params, self.base_dir) + task.check_keys(params, keys):
                self.err(path + tuple(int(f) if f.isdigit() else f for f in prob.field.split(".")), prob.message)
        for k in (keys["withdraw"], keys["abort"]):
            for p in task.params:
                if p.kind == "key" and params.get(p.name) == k:
                    self.err(path + (p.name,), f"key {k!r} is reserved for withdraw/abort; choose another")
                if p.name in task.key_list_params and k in str(params.get(p.name, "")).split():
                    self.err(path + (p.name,), f"key {k!r} is reserved for withdraw/abort; choose another")
        if not ok:
            return None         # reported; cross-phase checks must not see half-checked params
        return Phase(pid, task_name, role, params, self.pages(spec.get("instructions"), path + ("instructions",)),
                     self._line(path))

    def conditions(self, value, phases: dict[str, Phase]) -> dict[str, Condition]:
        if value is None:
            self.err(("conditions",), "is required: a mapping of condition name -> phases")
            return {}
        out = {}
        conds = self.mapping(value, ("conditions",), None)
        for name, spec in conds.items():
            path = ("conditions", name)
            if not is_label(name):
                self.err(path, "condition names must be letters and digits only")
                continue
            spec = self.mapping(spec, path, CONDITION_KEYS)
            kind = spec.get("kind")
            if kind not in CONDITION_KINDS:
                self.err(path + ("kind",), f"must be one of {', '.join(CONDITION_KINDS)} (got {kind!r})")
            seq = spec.get("phases")
            if not isinstance(seq, list) or not seq:
                self.err(path + ("phases",), "must be a non-empty list of phase ids")
                seq = []
            roles, complete = [], True
            for i, pid in enumerate(seq):
                if not isinstance(pid, str):
                    self.err(path + ("phases", i), f"must be a phase id (got {pid!r})")
                    complete = False
                    continue
                if pid not in phases and pid in self.defined_phases:
                    complete = False    # the phase itself is broken and reported already
                    continue
                if pid not in phases:
                    self.err(path + ("phases", i), f"unknown phase {pid!r}")
                else:
                    roles.append(phases[pid].role)
            if all(isinstance(p, str) for p in seq) and len(set(seq)) != len(seq):
                self.err(path + ("phases",), "a phase may appear only once per condition (data files are per phase)")
            if complete:
                self._check_order(path, roles)
            yoked = spec.get("yoked_to")
            if yoked is not None and (not isinstance(yoked, str) or yoked not in conds or yoked == name):
                self.err(path + ("yoked_to",), f"must name another condition (got {yoked!r})")
                yoked = None
            description = spec.get("description") or ""
            if not isinstance(description, str):
                self.err(path + ("description",), "must be text")
                description = ""
            out[name] = Condition(name, kind, description, tuple(p for p in seq if isinstance(p, str)), yoked)
        if not out and not self.problems:
            self.err(("conditions",), "needs at least one condition")
        self._check_across(out, phases)
        return out

    def _check_across(self, conds: dict[str, Condition], phases: dict[str, Phase]) -> None:
        """Each task's rules across phases and conditions (e.g. what a yoked phase replays), then
        the lab's noise dose limit per condition, from every phase's worst-case exposure."""
        from experiment.noise import dose, lab_limits
        sounds = _sounds(phases.values())
        if len(sounds) > 1:      # one calibration per session: the headphones are calibrated for one sound
            self.err(("phases",), f"the noise phases play different sounds ({', '.join(sounds)}); use one "
                                  "sound and tone_hz in every phase")
        for task in TASKS.values():
            for prob in task.check_conditions(conds, phases):
                self.err(prob.path, prob.message)
        limits = None
        for name, cond in conds.items():
            exposures = []
            for pid in cond.phases:
                if pid in phases:
                    exposures += TASKS[phases[pid].task].condition_exposure(phases[pid], cond, conds, phases)
            if exposures:
                limits = limits or lab_limits()
                worst = dose(exposures)
                if worst > limits.max_session_dose:
                    self.err(("conditions", name, "phases"),
                             f"worst-case noise dose {100 * worst:.1f}% of the NIOSH daily dose exceeds the lab "
                             f"limit of {100 * limits.max_session_dose:g}% per session; use fewer or shorter "
                             "bursts or a lower level")

    def _check_order(self, path: tuple, roles: list[str]) -> None:
        if "test" in roles and "training" in roles:
            if roles.index("test") < max(i for i, r in enumerate(roles) if r == "training"):
                self.err(path + ("phases",), "a test phase comes before the end of training")
        if "training" in roles:
            last_train = max(i for i, r in enumerate(roles) if r == "training")
            if "check" not in roles[last_train:]:
                self.err(path + ("phases",), "needs a manipulation check (role: check) after training")


# Roles only one task type has (a consent phase is always role consent, and only it is).
FIXED_ROLES = {t.default_role: t.name for t in TASKS.values() if t.fixed_role}


def _sounds(phases) -> list[str]:
    """The distinct aversive sounds ('noise', 'tone <Hz> Hz') that phases playing sound use."""
    from experiment.noise import sound_name
    return sorted({sound_name(ph.params.get("sound", "noise"), ph.params.get("tone_hz"))
                   for ph in phases if any(s > 0 for _, s in TASKS[ph.task].exposure(ph.params))})


def plan(proto: Protocol, condition: str, seed: int) -> list[tuple]:
    """The seeded schedule: [(phase, [trial dicts], expected seconds)] in running order."""
    import random
    rng = random.Random(seed)
    out = []
    seq = proto.phase_sequence(condition)
    if proto.repair_phase:
        seq = seq + [proto.phases[proto.repair_phase]]
    for phase in seq:
        task = TASKS[phase.task]
        schedule = task.plan(phase.params, rng, proto.base_dir)
        out.append((phase, schedule, task.expected_duration(phase.params, schedule)))
    return out
