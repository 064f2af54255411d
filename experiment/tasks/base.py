"""What every task declares about itself, and the context it runs in.

A task module states its parameters (type, default, one-line meaning) and the data columns
it writes; the protocol validator and the BIDS sidecar JSON are both generated from that
one declaration, so they cannot drift apart (STYLE.md, 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from experiment.identifiers import LABEL_RE, check_key  # noqa: F401 - LABEL_RE: the one label pattern
from experiment.safeio import regular_file_problem

REQUIRED = object()
MAX_COUNT = 10_000          # trials, problems, presses: a bound so a typo cannot plan forever
MAX_SECONDS = 86_400.0      # any time or level in a protocol; NaN and infinity are refused too
MAX_STIMULUS_BYTES = 10 * 2**20     # a stimulus file (item list) larger than this is a mistake



@dataclass(frozen=True)
class Param:
    name: str
    kind: str          # int | number | bool | str | text | key | file | pages | pattern | questions | choice
    help: str
    default: Any = REQUIRED
    low: float | None = None        # inclusive lower bound
    above: float | None = None      # exclusive lower bound ("must be > above")
    high: float | None = None       # inclusive upper bound
    choices: tuple = ()

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Column:
    name: str
    description: str
    units: str | None = None
    levels: dict[str, str] | None = None

    def sidecar(self) -> dict:
        out: dict[str, Any] = {"Description": self.description}
        if self.units:
            out["Units"] = self.units
        if self.levels:
            out["Levels"] = dict(self.levels)
        return out


# Columns on every trial row, whatever the task (DESIGN.md: participant, session,
# condition, phase, task and trial number are on every row).
COMMON_COLUMNS: tuple[Column, ...] = (
    Column("participant_id", "Pseudonymous participant label (sub-<label>)."),
    Column("session", "Session number."),
    Column("condition", "Condition the participant was assigned to."),
    Column("phase", "Phase id from the protocol."),
    Column("role", "Role of the phase in the design.",
           levels={"consent": "informed consent", "demographics": "questions about the participant",
                   "instructions": "instructions", "practice": "practice trials",
                   "training": "training (manipulation)", "check": "manipulation check",
                   "test": "test phase", "repair": "mood repair after debriefing",
                   "debriefing": "debriefing"}),
    Column("task", "Task type that produced the row."),
    Column("trial", "Trial number within the phase, from 1."),
)

# The timing audit's verdict on a trial's stimulus window (letters shown, noise on, cards shown);
# declared by every task that has one, written through PhaseContext.timing_ok.
TIMING_OK = Column("timing_ok", "1: no frame was dropped while the trial's stimulus was on; 0: frames were "
                                "dropped (counts and times in the session's timing summary and *_frames.tsv.gz); "
                                "n/a: no window (data-only simulation).")


@dataclass
class Problem:
    field: str      # dotted path relative to the phase, e.g. "time_limit"
    message: str


@dataclass
class FileProblem:
    """A problem found across phases and conditions, located from the top of the file."""
    path: tuple     # e.g. ("phases", "noiseyoked", "yoke_phase") or ("conditions", "helpless", "yoked_to")
    message: str


class Task:
    """Base class: subclasses fill the class attributes and implement `run`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    default_role: ClassVar[str] = "training"
    params: ClassVar[tuple[Param, ...]]
    columns: ClassVar[tuple[Column, ...]]
    key_list_params: ClassVar[tuple[str, ...]] = ()   # "str" params holding space-separated key names
    fixed_role: ClassVar[bool] = False    # the phase's role is always default_role (consent, demographics)
    takes_instructions: ClassVar[bool] = True   # the phase may show `instructions` pages before the task

    def check(self, params: dict, base_dir: Path) -> list[Problem]:
        """Cross-field and file checks, after every single field has passed its own check."""
        return []

    def check_keys(self, params: dict, keys: dict) -> list[Problem]:
        """Checks of the task's keys against the protocol's keys (withdraw, abort, continue),
        beyond the rule every task obeys (no task key is the withdraw or abort key)."""
        return []

    def check_conditions(self, conditions: dict, phases: dict) -> list[FileProblem]:
        """Rules across phases and conditions (e.g. what a yoked phase replays), once per
        protocol, over the conditions and the phases that passed their own checks."""
        return []

    def condition_exposure(self, phase, condition, conditions: dict, phases: dict) -> list[tuple[float, float]]:
        """Worst-case noise of `phase` when `condition` runs it: its own exposure() unless the
        phase depends on another phase (a yoked replay); for the lab dose limit per condition."""
        return self.exposure(phase.params)

    def check_row(self, row: dict, params: dict) -> list[str]:
        """Problems of one written trial row ([] if consistent): the rules every row of this
        task obeys, whoever answered (person or simulation). `row` maps every column to its
        value as written ('n/a' text) or as read by the analysis (numbers, NaN); `params` are
        the phase's protocol parameters, or {} when unknown (then only the row's own rules).
        The rules common to every task are here; a task adds its own in `row_rules`."""
        problems = _common_row_problems(self, row)
        if not problems or not problems[0].startswith(MISSING_COLUMNS):
            self.row_rules(RowValues(row, problems), params)
        return problems

    def row_rules(self, v: "RowValues", params: dict) -> None:
        """The task's own rules for check_row: report with v.bad(column, message)."""

    def exposure(self, params: dict) -> list[tuple[float, float]]:
        """Worst-case noise the phase plays: [(level dB(A), seconds)]; [] for silent tasks."""
        return []

    def plan(self, params: dict, rng, base_dir: Path) -> list[dict]:
        """The trial-by-trial schedule, drawn from `rng` (one dict per trial)."""
        raise NotImplementedError

    def expected_duration(self, params: dict, schedule: list[dict]) -> float:
        """Upper estimate of the phase's duration in seconds, for `lhlab plan`."""
        raise NotImplementedError

    def run(self, ctx: "PhaseContext", schedule: list[dict]) -> None:
        raise NotImplementedError


@dataclass
class PhaseContext:
    """Everything a running task may use; passed in, never imported (STYLE.md, 4)."""

    phase_id: str
    role: str
    params: dict
    clock: Any
    screen: Any
    keyboard: Any
    speaker: Any
    texts: dict                     # protocol-wide texts (footer hint, continue hint, ...)
    keys: dict                      # protocol-wide keys (continue, ...)
    write_row: Callable[[dict], None]
    progress: Callable[..., None]
    base_dir: Path
    state: dict = field(default_factory=dict)   # per-session facts shared between phases
    frames_lost: Callable[[float, float, str], int | None] | None = None   # the session's Screen.frames_lost

    def timing_ok(self, start: float, end: float, window: str) -> int | None:
        """The `timing_ok` cell of a trial whose stimulus (`window`: "letters", "noise", "cards") was
        on from session time `start` to `end`: 1, 0 when frames were dropped, None without frames."""
        lost = None if self.frames_lost is None else self.frames_lost(start, end, window)
        return None if lost is None else int(lost == 0)


def check_value(p: Param, value: Any, base_dir: Path) -> str | None:
    """One parameter's own check; returns a message or None."""
    k = p.kind
    if k in ("int",):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be a whole number (got {value!r})"
        if abs(value) > MAX_COUNT:
            return f"must be at most {MAX_COUNT} (got {value!r}); no session runs that many"
    elif k == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number (got {value!r})"
        if (isinstance(value, int) and abs(value) > MAX_SECONDS) or not math.isfinite(value) \
                or abs(value) > MAX_SECONDS:     # a 400-digit integer is not converted to float
            return f"must be a finite number up to {MAX_SECONDS:g} (got {value!r})"
    elif k == "bool":
        if not isinstance(value, bool):
            return f"must be true or false (got {value!r})"
    elif k in ("str", "text", "key", "file", "choice"):
        if not isinstance(value, str):
            return f"must be text (got {value!r})"
        if k == "text" and not value.strip():
            return "must not be empty"
        if k == "key" and check_key(value):
            return check_key(value)
        if k == "choice" and value not in p.choices:
            return f"must be one of {', '.join(p.choices)} (got {value!r})"
        if k == "file":
            if len(value) > 1024 or "\x00" in value:
                return f"must be a file path of at most 1024 characters (got {len(value)} characters)"
            path = (base_dir / value)
            why = regular_file_problem(path, MAX_STIMULUS_BYTES)
            if why == "not found":
                return f"stimulus file not found: {path} (paths are relative to the protocol file)"
            if why:
                return f"stimulus file {path}: {why}"
    elif k == "pages":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            return "must be a text or a non-empty list of texts"
    elif k == "pattern":
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return f"must be a list of letter positions such as [3, 4, 2, 5, 1] (got {value!r})"
        if not value or sorted(value) != list(range(1, len(value) + 1)):
            return f"must be a permutation of 1..{len(value)} (got {value!r})"
    elif k == "questions":
        return None    # checked by the task, which knows the fields
    else:  # pragma: no cover - a declaration bug, not user input
        raise ValueError(f"unknown parameter kind {k}")
    if k in ("int", "number"):
        if p.low is not None and value < p.low:
            return f"must be >= {p.low:g} (got {value!r})"
        if p.above is not None and value <= p.above:
            return f"must be > {p.above:g} (got {value!r})"
        if p.high is not None and value > p.high:
            return f"must be <= {p.high:g} (got {value!r})"
    return None


# -- written rows ----------------------------------------------------------------------------

TIME_TOL = 1e-5         # s: times are written to the microsecond, so sums of written values agree to this
DEADLINE_SLACK = 0.1    # s: a key pressed during the frame that straddles a deadline is accepted after it
NA = "n/a"              # the missing value in trial files (experiment.datafile.NA)
MISSING_COLUMNS = "columns missing: "


class RowValues:
    """Typed access to one row's cells for check_row; an unreadable cell is a problem."""

    def __init__(self, row: dict, problems: list[str]):
        self.row, self.problems = row, problems

    def bad(self, column: str, message: str) -> None:
        self.problems.append(f"{column}: {message}")

    def is_na(self, column: str) -> bool:
        v = self.row.get(column)
        if type(v) is float:             # the analysis' numbers: the common case first
            return v != v
        return v is None or v == "" or v == NA

    def num(self, column: str) -> float | None:
        """The cell as a finite number (None when missing or not one; the latter is reported)."""
        v = self.row.get(column)
        if type(v) is float and v - v == 0:     # finite (NaN and infinity fail v - v == 0)
            return v
        if v is None or v == "" or v == NA:
            return None
        try:
            f = float(v)
        except (TypeError, ValueError):
            self.bad(column, f"not a number (got {v!r})")
            return None
        if f != f:
            return None                  # NaN: a missing value as the analysis reads it
        if not math.isfinite(f):
            self.bad(column, f"not a finite number (got {v!r})")
            return None
        return f

    def whole(self, column: str, low: int | None = 0) -> int | None:
        """The cell as a whole number >= low (None when missing or not one; the latter is reported)."""
        f = self.num(column)
        if f is None:
            return None
        if not f.is_integer() or (low is not None and f < low):
            self.bad(column, f"must be a whole number{'' if low is None else f' >= {low}'} "
                             f"(got {self.row.get(column)!r})")
            return None
        return int(f)

    def text(self, column: str) -> str | None:
        """The cell as written (a number the analysis parsed is shown as the file has it)."""
        v = self.row.get(column)
        if type(v) is float:
            return None if v != v else f"{v:.6f}".rstrip("0").rstrip(".")     # as experiment.datafile writes it
        return None if self.is_na(column) else str(v)


def _row_rules(task: Task) -> tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, frozenset], ...]]:
    """(column names, time columns, (column, allowed levels)) from the task's declaration."""
    rules = _ROW_RULES.get(task.name)
    if rules is None:
        rules = _ROW_RULES[task.name] = (
            tuple(c.name for c in task.columns),
            tuple(c.name for c in task.columns if c.units == "s"),
            tuple((c.name, frozenset(c.levels)) for c in task.columns if c.levels))
    return rules


_ROW_RULES: dict[str, tuple] = {}


def _common_row_problems(task: Task, row: dict) -> list[str]:
    names, times, levels = _row_rules(task)
    absent = [c for c in names if c not in row]
    if absent:
        return [f"{MISSING_COLUMNS}{', '.join(absent)}"]
    problems: list[str] = []
    v = RowValues(row, problems)
    pid = v.text("participant_id")
    if pid is None or not pid.startswith("sub-") or not LABEL_RE.fullmatch(pid[4:]):
        v.bad("participant_id", f"must be sub-<letters and digits> (got {row['participant_id']!r})")
    for c in ("session", "trial"):
        if v.whole(c, low=1) is None and v.is_na(c):
            v.bad(c, "is missing")
    if v.text("task") != task.name:
        v.bad("task", f"must be {task.name!r} (got {row['task']!r})")
    for c in ("condition", "phase", "role"):
        if v.is_na(c):
            v.bad(c, "is missing")
    for c in times:                       # every time (units "s") is a finite number >= 0
        t = row[c]
        if type(t) is float and 0 <= t < math.inf:
            continue                      # the common case without a call (the analysis checks every row)
        t = v.num(c)
        if t is not None and t < 0:
            v.bad(c, f"a time must not be negative (got {row[c]!r})")
    if "timing_ok" in names and v.whole("timing_ok") not in (0, 1, None):
        v.bad("timing_ok", f"must be 0, 1 or n/a (got {row['timing_ok']!r})")
    for c, allowed in levels:            # every coded column holds one of its declared levels
        if row[c] in allowed:
            continue
        value = v.text(c)
        if value is not None and value not in allowed:
            v.bad(c, f"must be one of {', '.join(sorted(allowed))} (got {row[c]!r})")
    return problems
