"""Load a study folder into tidy tables: one row per trial, one row per session and participant.

Every file is read through the layout `experiment.datafile` defines. Anything truncated,
corrupt or unexpected is reported in `Study.problems` (one row per problem, saying what was
done about it) and skipped: nothing is used or dropped silently.

Tables (`Study`):

trials
    One row per trial of every readable phase file. Columns: ``participant_id`` (sub-<label>),
    ``session``, ``condition``, ``phase``, ``role``, ``task``, ``trial``, then every column the
    tasks wrote (the union over tasks; missing values are NaN; 'n/a' in the files is NaN), then
    ``condition_kind`` (helpless/controllable/control), ``yoked_to`` (sub-<label> or NaN),
    ``session_status`` (effective status of the session) and ``pilot`` (bool). A task column
    with one of these four names is kept as ``task_<name>`` (noise_escape writes ``yoked_to``).
sessions
    One row per session: ``participant_id``, ``session``, ``condition``, ``condition_kind``,
    ``yoked_to``, ``status`` (as recorded), ``session_status`` (effective: a dead ``running``
    session is ``crashed``), ``pilot``, ``simulated`` (profile or NaN), ``seed``,
    ``protocol_sha256``, ``protocol_file``, ``experimenter``, ``started``, ``ended``,
    ``debriefing_shown``, ``lhlab_version``, ``python_version``, ``phases`` (ids, ``;``-separated),
    ``phases_completed``, ``calibration_id``, ``noise_dose_percent`` (NIOSH daily dose),
    ``stimuli`` (stimulus files with their SHA-256 and lexicon, ``;``-separated).
participants
    One row per participant: the analysed session's columns above (``session`` is the session
    the measures come from, see `load_study(session_rule=...)`), ``n_sessions``, and any extra
    columns of the study's participants.tsv.
problems
    ``path``, ``problem``, ``action`` (what the loader did: file skipped, row skipped, ...).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from analysis.timing import session_timing
from experiment import datafile
from experiment.errors import BadInput
from experiment.tasks import TASKS
from experiment.identifiers import LABEL_PATTERN, LABEL_RE, printable
from experiment.safeio import FileRefused, read_regular

COMMON = ["participant_id", "session", "condition", "phase", "role", "task", "trial"]
SES_RE = re.compile(r"ses-\d+")
BEH_RE = re.compile(rf"sub-(?P<label>{LABEL_PATTERN})_ses-(?P<ses>\d+)_task-(?P<phase>{LABEL_PATTERN})_beh\."
                    r"(?P<ext>tsv|json)\Z")     # \Z: a file name ending in a newline is not a trial file
SESSION_COLUMNS = ["participant_id", "session", "condition", "condition_kind", "yoked_to", "status",
                   "session_status", "pilot", "simulated", "seed", "protocol_sha256", "protocol_file",
                   "experimenter", "started", "ended", "debriefing_shown", "lhlab_version",
                   "python_version", "phases", "phases_completed", "calibration_id", "noise_dose_percent",
                   "stimuli"]
SESSION_RULES = ("first", "first-complete")

Progress = Callable[[str], None]


@dataclass
class Study:
    """Everything `load_study` read, plus what it could not use."""

    path: Path
    trials: pd.DataFrame
    sessions: pd.DataFrame
    participants: pd.DataFrame
    problems: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    # (participant_id, session) -> the session record's timing audit (analysis.timing.session_timing),
    # kept while the record is read once, so the timing table never reads it again
    timing: dict = field(default_factory=dict)


class _Problems:
    def __init__(self, study: Path):
        self.study = study
        self.rows: list[dict] = []

    def add(self, path: Path | str, problem: str, action: str) -> None:
        p = Path(path)
        try:
            shown = str(p.relative_to(self.study))
        except ValueError:
            shown = str(p)
        self.rows.append({"path": shown, "problem": problem, "action": action})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["path", "problem", "action"])


def check_study_dir(study: Path) -> Path:
    """Refuse (BadInput) anything that is not an lhlab study folder."""
    study = Path(study)
    if not study.is_dir():
        raise BadInput(f"{study} is not a folder; pass the study folder (DATA_DIR/<study-id>)")
    if not (study / "dataset_description.json").is_file():
        hint = ""
        subs = [d for d in sorted(study.iterdir()) if d.is_dir() and (d / "dataset_description.json").is_file()
                and any(d.glob("sub-*"))]
        if subs:
            hint = f" (did you mean {subs[0]}?)"
        raise BadInput(f"{study} is not an lhlab study folder (no dataset_description.json){hint}")
    return study


def load_study(study_dir: Path | str, session_rule: str = "first", progress: Progress | None = None) -> Study:
    """Read every session of `study_dir`.

    session_rule: which session of a participant the measures come from. ``first`` (default):
    the first session that got past its first phase (a declined consent does not), whatever
    its status (a participant whose first session broke off later is then excluded as
    incomplete rather than analysed on a repeat run); ``first-complete``: the first session
    whose status is complete (else the last one).
    Raises BadInput for a folder that is not a study or holds no sessions.
    """
    if session_rule not in SESSION_RULES:
        raise BadInput(f"session rule must be one of {', '.join(SESSION_RULES)} (got {session_rule!r})")
    study = check_study_dir(Path(study_dir))
    problems = _Problems(study)
    files = _Prefetch()
    reader = _TrialReader(problems, files)

    subs = [(name, is_dir) for name, is_dir in _entries(study) if name.startswith("sub-")]
    records, found, timing = [], 0, {}
    step = max(1, len(subs) // 10)
    for i, (name, is_dir) in enumerate(files.participants(study, subs), 1):
        sub = study / name
        if not is_dir:
            problems.add(sub, "unexpected file at the study root (participant folders are sub-<label>/)",
                         "ignored")
            continue
        label = name[4:]
        if not LABEL_RE.fullmatch(label):
            problems.add(sub, "participant folder name is not sub-<letters and digits>", "folder skipped")
            continue
        for entry, entry_is_dir in files.entries(sub):
            if entry_is_dir and SES_RE.fullmatch(entry):
                found += 1
                rec = _read_session_dir(study, label, int(entry[4:]), sub / entry, problems, reader, files,
                                        timing)
                if rec is not None:
                    records.append(rec)
            else:
                problems.add(sub / entry, "unexpected entry in a participant folder (expected ses-<n>/)", "ignored")
        if progress is not None and len(subs) >= 200 and (i % step == 0 or i == len(subs)):
            progress(f"loading participants: {i}/{len(subs)}")
    if not found:
        raise BadInput(f"{study} holds no sessions (no sub-<label>/ses-<n>/ folders); "
                       "run participants first or pass another study folder")

    sessions = pd.DataFrame(records, columns=SESSION_COLUMNS)
    sessions = sessions.sort_values(["participant_id", "session"], kind="stable").reset_index(drop=True)
    trials = reader.frame(sessions)
    participants, notes = _participants(study, sessions, session_rule, problems)
    return Study(study, trials, sessions, participants, problems.frame(), notes, timing)


# -- sessions ------------------------------------------------------------------------------------

def _read_session_dir(study: Path, label: str, n: int, sdir: Path, problems: _Problems,
                      reader: "_TrialReader", files: "_Prefetch", timing: dict) -> dict | None:
    json_path = datafile.session_json_path(study, label, n)
    names = dict(files.entries(sdir))
    if json_path.name not in names:
        problems.add(sdir, "session folder without a session JSON (provenance and status unknown)",
                     "session skipped")
        return None
    try:
        rec = datafile.parse_session(files.read(json_path, datafile.MAX_SESSION_BYTES, "session record"), json_path)
    except (OSError, ValueError) as e:
        problems.add(json_path, f"unreadable session JSON ({type(e).__name__}: {e})", "session skipped")
        return None
    if not isinstance(rec, dict) or rec.get("participant") != label or rec.get("session") != n \
            or not isinstance(rec.get("phases"), list) or not rec.get("condition"):
        problems.add(json_path, "session JSON does not describe this folder (participant, session, "
                                "condition or phases missing or different)", "session skipped")
        return None
    pid = f"sub-{label}"
    timing[(pid, n)] = session_timing(rec)
    phases = {}
    for ph in rec["phases"]:
        if isinstance(ph, dict) and isinstance(ph.get("id"), str):
            phases[ph["id"]] = ph
    order = {k: i for i, k in enumerate(phases)}
    for name in names:
        if name not in ("beh", json_path.name, datafile.frames_path(study, label, n).name):
            problems.add(sdir / name, "unexpected entry in a session folder", "ignored")
    seen = set()
    if names.get("beh"):
        beh = os.path.join(sdir, "beh")
        for name, _ in files.entries(beh):
            m = BEH_RE.match(name)
            f = os.path.join(beh, name)
            if not m or m["label"] != label or int(m["ses"]) != n:
                problems.add(f, "unexpected file in beh/ (not sub-<label>_ses-<n>_task-<phase>_beh.tsv of "
                                "this session)", "ignored")
                continue
            if m["ext"] == "json":
                continue
            phase = m["phase"]
            if phase not in phases:
                problems.add(f, f"phase {phase!r} is not in the session record's phase list", "file skipped")
                continue
            seen.add(phase)
            reader.read(f, pid, n, rec["condition"], phases[phase], order[phase])
    for pid_, ph in phases.items():
        if ph.get("file") and pid_ not in seen:
            problems.add(study / str(ph["file"]), f"phase {pid_!r}: the session record names a data file that is missing",
                         "phase has no data")
    versions = rec.get("versions") or {}
    proto = rec.get("protocol") or {}
    sim = rec.get("simulated")
    calib = rec.get("calibration") if isinstance(rec.get("calibration"), dict) else {}
    dose = rec.get("noise_dose") if isinstance(rec.get("noise_dose"), dict) else {}
    stimuli = rec.get("stimuli") if isinstance(rec.get("stimuli"), dict) else {}
    return {
        "participant_id": pid,
        "session": n,
        "condition": rec.get("condition"),
        "condition_kind": rec.get("condition_kind"),
        "yoked_to": f"sub-{rec['yoked_to']}" if rec.get("yoked_to") else None,
        "status": rec.get("status"),
        "session_status": rec.get("effective_status"),
        "pilot": bool(rec.get("pilot")),
        "simulated": (sim.get("profile") if isinstance(sim, dict) else None),
        "seed": rec.get("seed"),
        "protocol_sha256": proto.get("sha256"),
        "protocol_file": proto.get("file"),
        "experimenter": rec.get("experimenter"),
        "started": rec.get("started"),
        "ended": rec.get("ended"),
        "debriefing_shown": rec.get("debriefing_shown"),
        "lhlab_version": versions.get("lhlab"),
        "python_version": versions.get("python"),
        "phases": ";".join(phases),
        "phases_completed": ";".join(k for k, v in phases.items() if v.get("status") == "complete"),
        "calibration_id": calib.get("id") or ("simulated" if calib.get("simulated") else None),
        "noise_dose_percent": dose.get("dose_percent"),
        "stimuli": ";".join(_stimulus(k, v) for k, v in sorted(stimuli.items())) or None,
    }


def _stimulus(path: str, info) -> str:
    info = info if isinstance(info, dict) else {}
    lex = info.get("lexicon") if isinstance(info.get("lexicon"), dict) else {}
    out = f"{Path(path).name} sha256 {info.get('sha256', '?')}"
    if lex:
        out += f" (lexicon {lex.get('name')} {lex.get('version')}, {lex.get('size')} words)"
    return out


def _participants(study: Path, sessions: pd.DataFrame, rule: str, problems: _Problems
                  ) -> tuple[pd.DataFrame, list[str]]:
    notes = []
    if sessions.empty:
        return pd.DataFrame(columns=SESSION_COLUMNS + ["n_sessions"]), notes
    counts = sessions.groupby("participant_id", sort=False)["session"].transform("size")
    if rule == "first":
        # A session that ended before its first phase was done (e.g. stopped on the welcome
        # page) holds no data: the participant's first session is the next one. So does a
        # declined consent (its consent phase is complete, but nothing else was done).
        done_any = sessions["phases_completed"].fillna("").astype(str).str.len() > 0
        declined = sessions["session_status"] == "declined"
        started = sessions[(done_any & ~declined) | (sessions["session_status"] == "complete")]
        first = started.groupby("participant_id", sort=False).head(1)
        rest = sessions[~sessions["participant_id"].isin(first["participant_id"])]
        chosen = pd.concat([first, rest.groupby("participant_id", sort=False).head(1)])
    else:
        complete = sessions[sessions["session_status"] == "complete"].groupby("participant_id").head(1)
        rest = sessions[~sessions["participant_id"].isin(complete["participant_id"])]
        chosen = pd.concat([complete, rest.groupby("participant_id").tail(1)])
    part = chosen.assign(n_sessions=counts.loc[chosen.index]).sort_values("participant_id")
    part = part.reset_index(drop=True)
    multi = part[part["n_sessions"] > 1]
    for row in multi.itertuples():
        notes.append(f"{row.participant_id} has {row.n_sessions} sessions; measures come from "
                     f"ses-{row.session} (session rule '{rule}')")
    # Participants.tsv: cross-check, and keep any extra columns the lab added (age, notes...).
    ptsv = study / "participants.tsv"
    if ptsv.is_file():
        try:
            extra = pd.read_csv(ptsv, sep="\t", dtype=str, keep_default_na=False, na_values=[datafile.NA])
        except (ValueError, OSError, UnicodeDecodeError) as e:
            problems.add(ptsv, f"unreadable participants.tsv ({e})", "ignored")
            extra = None
        if extra is not None and "participant_id" in extra.columns:
            missing = sorted(set(extra["participant_id"]) - set(part["participant_id"]))
            if missing:
                problems.add(ptsv, f"{len(missing)} participant(s) listed without readable session data: "
                                   f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}",
                             "listed only")
            if "condition" in extra.columns:
                both = part.merge(extra[["participant_id", "condition"]], on="participant_id",
                                  suffixes=("", "_tsv"))
                bad = both[both["condition_tsv"].notna() & (both["condition"] != both["condition_tsv"])]
                for row in bad.itertuples():
                    problems.add(ptsv, f"{row.participant_id}: condition {row.condition_tsv!r} differs from the "
                                       f"session record ({row.condition!r}); the session record is used", "noted")
            keep = [c for c in extra.columns if c == "participant_id" or c not in part.columns
                    and c not in datafile.PARTICIPANT_COLUMNS]
            if len(keep) > 1:
                part = part.merge(extra[keep], on="participant_id", how="left")
    return part, notes


# -- trial files -----------------------------------------------------------------------------

class _TrialReader:
    """Collects trial files; well-formed files take a fast path (one pandas parse per header).

    A file is on the fast path when it is valid UTF-8, ends with a newline, has no quote
    characters and every line has the header's number of fields: then the csv module and a
    plain tab split read it identically. Any other file is read with
    `experiment.datafile.read_trials`, the reference reader (quoted text, torn last rows).
    """

    def __init__(self, problems: _Problems, files: "_Prefetch | None" = None):
        self.problems = problems
        self.source = files or _Prefetch()      # nothing read ahead: every file read when asked
        self.fast: dict[tuple, list] = {}       # header -> [(body text, n rows, file id)]
        self.slow: list[pd.DataFrame] = []
        self.files: list[dict] = []

    def read(self, path: str, pid: str, session: int, condition: str, phase_rec: dict, index: int) -> None:
        try:     # never a blocking open: a FIFO named like a trial file would hang the analysis
            raw = self.source.read(path, datafile.MAX_TRIAL_FILE_BYTES, "trial file")
        except FileRefused as e:
            self.problems.add(path, f"unreadable ({e.reason})", "file skipped")
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.problems.add(path, "not valid UTF-8 (corrupt file)", "file skipped")
            return
        if not text:
            self.problems.add(path, "empty file (no header)", "file skipped")
            return
        nl = text.find("\n")
        header = text[:nl if nl >= 0 else len(text)].split("\t")
        missing = [c for c in COMMON if c not in header]
        if missing:
            self.problems.add(path, f"not an lhlab trial file (columns missing: {', '.join(missing)})",
                              "file skipped")
            return
        entry = {"path": path, "participant_id": pid, "session": session, "phase": phase_rec["id"],
                 "task": phase_rec.get("task"), "recorded": phase_rec.get("trials"),
                 "phase_status": phase_rec.get("status"), "index": index}
        body = text[nl + 1:] if nl >= 0 else ""
        n_lines = body.count("\n")
        if ('"' not in text and text.endswith("\n")
                and body.count("\t") == n_lines * (len(header) - 1) and "\r" not in text):
            # the per-line check runs only when the totals agree (a missing and an extra tab could cancel)
            if n_lines == 0 or _lines_have(body, len(header) - 1):
                if header[:len(COMMON)] == COMMON and phase_rec.get("role") and phase_rec.get("task"):
                    # every row must start with this file's participant, session, condition, phase,
                    # role and task: checked on the text, before any parsing
                    prefix = "\t".join([pid, str(session), condition, phase_rec["id"], phase_rec["role"],
                                        phase_rec["task"]]) + "\t"
                    if n_lines and not (body.startswith(prefix) and body.count("\n" + prefix) == n_lines - 1):
                        self._foreign(path)
                        return
                    entry["checked"] = True
                self.fast.setdefault(tuple(header), []).append((body, n_lines, self._register(entry)))
                return
        rows, probs = datafile.read_trials(path)
        torn = [p for p in probs if "torn last row" in p]
        other = [p for p in probs if p not in torn]
        if other:
            self.problems.add(path, f"corrupt: {len(other)} row(s) with the wrong number of fields "
                                    f"(first: {other[0].split(': ', 1)[-1]})", "file skipped")
            return
        for p in torn:
            self.problems.add(path, p.split(": ", 1)[-1].replace("; skipped", ""), "row skipped")
        if rows and not torn and not text.endswith("\n"):
            # Every row is written with its line end: a last row without one was cut short even
            # when its field count happens to match (read_trials cannot tell).
            rows = rows[:-1]
            self.problems.add(path, f"torn last row (line {len(rows) + 2} has no line end; write interrupted)",
                              "row skipped")
        want = {"participant_id": pid, "session": str(session), "phase": phase_rec["id"]}
        if phase_rec.get("task"):
            want["task"] = phase_rec["task"]
        if any(r[k] != v for r in rows for k, v in want.items()):
            self._foreign(path)
            return
        entry["checked"] = True
        df = pd.DataFrame([list(r.values()) for r in rows], columns=header, dtype=object)
        df = df.replace(datafile.NA, np.nan)
        for c in df.columns:
            df[c] = _maybe_numeric(df[c])
        df["_file"] = self._register(entry)
        self.slow.append(df)

    def _foreign(self, path) -> None:
        self.problems.add(path, "rows that do not belong to this file (participant, session, condition, phase, "
                                "role or task differ from the session record)", "file skipped")

    def _register(self, entry: dict) -> int:
        self.files.append(entry)
        return len(self.files) - 1

    def frame(self, sessions: pd.DataFrame) -> pd.DataFrame:
        parts = []
        for header, chunks in self.fast.items():
            text = "\t".join(header) + "\n" + "".join(c[0] for c in chunks)
            df = pd.read_csv(io.StringIO(text), sep="\t", na_values=[datafile.NA], keep_default_na=False,
                             quoting=csv.QUOTE_NONE, low_memory=False)
            df["_file"] = np.repeat(np.array([c[2] for c in chunks]), [c[1] for c in chunks])
            parts.append(df)
        parts.extend(self.slow)
        if not parts:
            return _empty_trials()
        trials = pd.concat(parts, ignore_index=True, sort=False) if len(parts) > 1 else parts[0]
        for c in trials.columns:
            if trials[c].dtype == object:
                trials[c] = _maybe_numeric(trials[c])
        trials = self._consistency(trials)
        trials = self._row_rules(trials)
        _flag_duplicates(trials, self.problems)
        if trials.empty:
            return _empty_trials()
        # Session-level columns on every row; a task column of the same name becomes task_<name>.
        added = ["condition_kind", "yoked_to", "session_status", "pilot"]
        trials = trials.rename(columns={c: f"task_{c}" for c in added if c in trials.columns})
        info = sessions[["participant_id", "session"] + added]
        trials = trials.merge(info, on=["participant_id", "session"], how="left", validate="many_to_one")
        order = {pid: i for i, pid in enumerate(sessions["participant_id"].unique())}
        trials["_order"] = trials["participant_id"].map(order)
        trials["_index"] = np.array([f["index"] for f in self.files])[trials["_file"].to_numpy()]
        trials = trials.sort_values(["_order", "session", "_index", "trial"], kind="stable")
        trials = trials.drop(columns=["_order", "_index", "_file"]).reset_index(drop=True)
        first = COMMON + [c for c in trials.columns if c not in COMMON and c not in
                          ("condition_kind", "yoked_to", "session_status", "pilot")]
        return trials[first + ["condition_kind", "yoked_to", "session_status", "pilot"]]

    def _row_rules(self, trials: pd.DataFrame) -> pd.DataFrame:
        """Every row must obey its task's rules (Task.check_row, the check the tests run on
        simulated data): a row that does not is skipped and reported with what is wrong."""
        bad = []
        for task, group in trials.groupby("task", sort=False):
            if task not in TASKS:
                continue                  # rows of a task this lhlab does not know: nothing to check
            check = TASKS[task].check_row
            cols = [c.name for c in TASKS[task].columns]
            sub = group.reindex(columns=cols)
            for idx, f, values in zip(group.index, group["_file"], zip(*(sub[c].tolist() for c in cols))):
                row = dict(zip(cols, values))
                problems = check(row, {})
                if problems:
                    bad.append(idx)
                    self.problems.add(self.files[f]["path"], f"trial {row['trial']}: " + "; ".join(problems),
                                      "row skipped")
        return trials.drop(index=bad) if bad else trials

    def _consistency(self, trials: pd.DataFrame) -> pd.DataFrame:
        """Rows must belong to the file they are in (checked while reading, or here for files
        with an unusual column order); trial numbers must be whole numbers; row counts must match
        the session record."""
        fid = trials["_file"].to_numpy()
        bad = np.zeros(len(trials), bool)
        unchecked = np.array([not f.get("checked") for f in self.files])
        if unchecked.any():
            rows = unchecked[fid]
            sub = trials[rows]
            exp = pd.DataFrame(self.files).loc[sub["_file"].to_numpy()]
            bad[rows] = ((sub["participant_id"].astype(str).to_numpy() != exp["participant_id"].to_numpy())
                         | (pd.to_numeric(sub["session"], errors="coerce").to_numpy() != exp["session"].to_numpy())
                         | (sub["phase"].astype(str).to_numpy() != exp["phase"].to_numpy()))
        trial_num = pd.to_numeric(trials["trial"], errors="coerce").to_numpy(dtype=float)
        bad |= ~(np.isfinite(trial_num) & (trial_num % 1 == 0))
        bad |= pd.DataFrame({"f": fid, "t": trial_num}).duplicated().to_numpy()    # a trial number twice in a file
        skip = set(np.unique(fid[bad]).tolist())
        for k in sorted(skip):
            self.problems.add(self.files[k]["path"], "rows that do not belong to this file (participant, session "
                                                     "or phase wrong) or trial numbers that are not whole numbers "
                                                     "or repeat", "file skipped")
        counts = np.bincount(fid, minlength=len(self.files))
        for k, f in enumerate(self.files):
            rec = f["recorded"]
            if k in skip or not isinstance(rec, int) or f["phase_status"] not in ("complete", "interrupted"):
                continue
            n = int(counts[k])
            if n != rec:
                what = "fewer" if n < rec else "more"
                self.problems.add(f["path"], f"{n} trial rows but the session record counts {rec} ({what}; "
                                             "truncated or altered file)", "file skipped")
                skip.add(k)
        if skip:
            trials = trials[~np.isin(fid, list(skip))]
        return trials.assign(session=trials["session"].astype("int64"), trial=trials["trial"].astype("int64"))


def _flag_duplicates(trials: pd.DataFrame, problems: _Problems) -> None:
    """Sessions whose trial data are identical apart from the label (a content hash of every
    row) are suspected copies of one person under two labels: noted, not dropped."""
    if trials.empty:
        return
    cols = [c for c in trials.columns if c not in ("participant_id", "_file")]
    df = trials.sort_values(["participant_id", "session", "phase", "trial"], kind="stable")
    try:
        rows = pd.util.hash_pandas_object(df[cols], index=False)
    except TypeError:           # unhashable mixed cells: hash their text
        rows = pd.util.hash_pandas_object(df[cols].astype(str), index=False)
    digests = rows.groupby([df["participant_id"], df["session"]], sort=True).agg(
        lambda s: hashlib.sha256(s.to_numpy().tobytes()).hexdigest())
    first: dict[str, tuple] = {}
    for (pid, ses), digest in digests.items():
        if digest in first:
            other = first[digest]
            problems.add(f"{pid}/ses-{ses}", f"trial data identical to {other[0]} ses-{other[1]} (content hash): "
                                             "the same person copied under another label?", "suspected duplicate; kept")
        else:
            first[digest] = (pid, ses)


class _Prefetch:
    """The folder listings and file bytes the loader is about to use, read ahead by a few threads.

    Reading 100,000 small files one after another waits on the disk once per file (about 1 ms
    each from a cold cache on a virtual disk); threads keep several reads in flight. Only what
    the loader reads anyway is read ahead (the same checks, `read_regular` never opens a FIFO
    blocking), and the loader still decides what every entry means: an entry that was not read
    ahead, or an error met ahead, is read again or raised where the loader asks for it.
    """

    WORKERS = 4
    AHEAD = 64             # participant folders in flight: bounds the memory held ahead

    def __init__(self):
        self._lists: dict[str, object] = {}
        self._bytes: dict[str, object] = {}

    def participants(self, study: Path, subs: list[tuple[str, bool]]):
        """Yield the (name, is a folder) pairs of `subs` in order, each after its folder has been
        read ahead."""
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(self.WORKERS, thread_name_prefix="lhlab-read") as pool:
            pending: deque = deque()
            queue = iter(subs)

            def submit(sub: tuple[str, bool]) -> None:
                name, is_dir = sub
                work = pool.submit(_read_ahead, study, name) if is_dir and LABEL_RE.fullmatch(name[4:]) else None
                pending.append((sub, work))

            for sub in queue:
                submit(sub)
                if len(pending) >= self.AHEAD:
                    break
            while pending:
                sub, work = pending.popleft()
                if work is not None:
                    lists, raws = work.result()
                    self._lists.update(lists)
                    self._bytes.update(raws)
                nxt = next(queue, None)
                if nxt is not None:
                    submit(nxt)
                yield sub
                self._lists.clear()         # what the loader did not ask for is not kept
                self._bytes.clear()

    def entries(self, path) -> list[tuple[str, bool]]:
        got = self._lists.pop(str(path), None)
        if got is None:
            return _entries(path)
        if isinstance(got, BaseException):
            raise got
        return got

    def read(self, path, max_bytes: int, what: str) -> bytes:
        got = self._bytes.pop(str(path), None)
        if got is None:
            return read_regular(path, max_bytes, what)
        if isinstance(got, BaseException):
            raise got
        return got


def _read_ahead(study: Path, name: str) -> tuple[dict, dict]:
    """Listings and bytes of one participant folder, keyed by path; errors are kept, not raised."""
    lists: dict[str, object] = {}
    raws: dict[str, object] = {}

    def listing(path: str):
        try:
            lists[path] = got = _entries(path)
            return got
        except OSError as e:
            lists[path] = e
            return []

    def read(path: str, max_bytes: int, what: str) -> None:
        try:
            raws[path] = read_regular(path, max_bytes, what)
        except FileRefused as e:
            raws[path] = e

    sub, label = study / name, name[4:]
    for ses, is_dir in listing(str(sub)):
        if not (is_dir and SES_RE.fullmatch(ses)):
            continue
        sdir = os.path.join(sub, ses)
        names = dict(listing(sdir))
        json_path = datafile.session_json_path(study, label, int(ses[4:]))
        if json_path.name in names:
            read(str(json_path), datafile.MAX_SESSION_BYTES, "session record")
        if names.get("beh"):
            beh = os.path.join(sdir, "beh")
            for name, _ in listing(beh):
                if name.endswith("_beh.tsv") and BEH_RE.match(name):
                    read(os.path.join(beh, name), datafile.MAX_TRIAL_FILE_BYTES, "trial file")
    return lists, raws


def _entries(path) -> list[tuple[str, bool]]:
    """(name, is a folder) of every entry of `path`, sorted by name (one directory read, no stat)."""
    with os.scandir(path) as it:
        return sorted((e.name, e.is_dir()) for e in it)


def _lines_have(body: str, tabs: int) -> bool:
    return all(line.count("\t") == tabs for line in body[:-1].split("\n"))


def _maybe_numeric(col: pd.Series) -> pd.Series:
    """The column as numbers if every non-missing value is a number, else unchanged."""
    if not (col.dtype == object or pd.api.types.is_string_dtype(col.dtype)):
        return col
    conv = pd.to_numeric(col, errors="coerce")
    if conv.notna().sum() == col.notna().sum():
        return conv
    return col


def _empty_trials() -> pd.DataFrame:
    return pd.DataFrame(columns=COMMON + ["condition_kind", "yoked_to", "session_status", "pilot"])


def print_problems(problems: pd.DataFrame, out=None, limit: int = 50) -> None:
    """The load problems, one line each (the first `limit`; all of them are in the report)."""
    out = out if out is not None else sys.stderr
    for row in problems.head(limit).itertuples():
        print(printable(f"{row.path}: {row.problem} -> {row.action}"), file=out)   # no terminal escapes from data
    if len(problems) > limit:
        print(f"... and {len(problems) - limit} more (see load_problems.csv)", file=out)
