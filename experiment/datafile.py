"""The one place that knows the study folder's layout and writes or reads its files.

DATA_DIR/<study-id>/
  dataset_description.json  participants.tsv  participants.json  .bidsignore  registry.sqlite
  sub-<label>/ses-<n>/beh/sub-<label>_ses-<n>_task-<phase>_beh.tsv (+ .json sidecar)
  sub-<label>/ses-<n>/sub-<label>_ses-<n>_session.json
  sub-<label>/ses-<n>/sub-<label>_ses-<n>_frames.tsv.gz   (sessions with a window: every frame
      interval, experiment.devices.frames; not a BIDS file, listed in .bidsignore)
  sub-<label>/ses-<n>/sub-<label>_ses-<n>_frames.tsv      (the same, plain, appended while the
      session runs; removed when the .gz is written, so left only by a session that was killed)

Every trial row is written, flushed and fsynced when the trial ends; the session JSON is
replaced atomically (temp file, fsync, rename, fsync the folder). Nothing is overwritten:
files are created with O_EXCL.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

from experiment import os_specific
from experiment.devices.frames import summarise_file as summarise_frames

NA = "n/a"
DEFAULT_DATA_DIR = Path("data")      # where studies live unless --data-dir says otherwise
BIDS_VERSION = "1.10.0"
SESSION_STATUSES = ("running", "complete", "aborted", "withdrawn", "declined", "crashed")

PARTICIPANT_COLUMNS = {
    "participant_id": "Pseudonymous label, sub-<label>.",
    "condition": "Condition assigned.",
    "yoked_to": "Participant whose noise schedule this one replayed (n/a if not yoked).",
    "status": "Status of the latest session: complete, withdrawn, declined (consent declined: nothing but the "
              "consent record was written), aborted, crashed or running.",
    "sessions": "Number of sessions started.",
}


def study_dir(data_dir: Path, study_id: str) -> Path:
    return Path(data_dir) / study_id


def session_dir(study: Path, label: str, session: int) -> Path:
    return study / f"sub-{label}" / f"ses-{session}"


def beh_path(study: Path, label: str, session: int, phase: str) -> Path:
    return session_dir(study, label, session) / "beh" / f"sub-{label}_ses-{session}_task-{phase}_beh.tsv"


def session_json_path(study: Path, label: str, session: int) -> Path:
    return session_dir(study, label, session) / f"sub-{label}_ses-{session}_session.json"


def frames_path(study: Path, label: str, session: int, partial: bool = False) -> Path:
    """The session's frames file; `partial`: the plain one appended while it runs."""
    return session_dir(study, label, session) / f"sub-{label}_ses-{session}_frames.tsv{'' if partial else '.gz'}"


BIDS_IGNORE = ("registry.sqlite*", "*_session.json", "*_frames.tsv.gz", "*_frames.tsv", ".lock*", "lhlab/")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _format(value) -> str:
    if value is None or value == "":
        return NA
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".") if value == value else NA
    return str(value).replace("\t", " ").replace("\r", " ").replace("\n", " ")


def escape_text(text: str) -> str:
    """Typed text for one trial-file cell: '%', '|', '/', '"', tabs, line breaks and other control
    characters become %XX, everything else is kept. So a typed 'n/a' reads 'n%2Fa' (never the
    missing value), answers joined with '|' split back unambiguously, and no cell needs csv quoting.
    `unescape_text` (urllib.parse.unquote; R: URLdecode) gives back exactly what was typed."""
    return "".join(f"%{ord(c):02X}" if c in '%|/"' or ord(c) < 32 or ord(c) == 127 else c for c in text)


def unescape_text(cell: str) -> str:
    from urllib.parse import unquote
    return unquote(cell)


def join_answers(answers: list[str]) -> str | None:
    """Several typed answers in one cell: each escaped, joined with '|' (None, i.e. n/a, if none)."""
    return "|".join(escape_text(a) for a in answers) or None


def split_answers(cell) -> list[str]:
    """The answers `join_answers` wrote, exactly as typed; [] for n/a."""
    if cell is None or cell == NA or cell == "" or (isinstance(cell, float) and cell != cell):
        return []
    return [unescape_text(a) for a in str(cell).split("|")]


class TrialLog:
    """Append-only TSV of one phase; each `write` is on disk before it returns, whole or not at
    all: a row that cannot be written (disk full, I/O error) is cut off again before the error
    is raised, so the file never ends in half a row written by us."""

    def __init__(self, path: Path, columns: list[str], durable: bool = True):
        self.path, self.columns, self.durable = path, columns, durable
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)   # never overwrite
        self._size = 0
        try:
            self._append(_tsv_line(columns))
            _fsync_dir(path.parent)
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            path.unlink(missing_ok=True)     # no header-less debris
            raise
        self.rows = 0

    def write(self, row: dict) -> None:
        unknown = set(row) - set(self.columns)
        if unknown:
            raise ValueError(f"{self.path.name}: columns not declared by the task: {sorted(unknown)}")
        self._append(_tsv_line([_format(row.get(c)) for c in self.columns]))
        self.rows += 1

    def _append(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            if self.durable:
                os.fsync(self._fd)
        except OSError as e:
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass        # the reader reports a torn last row
            if e.filename is None:
                e.filename = str(self.path)
            raise
        self._size += len(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _tsv_line(fields: list[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL).writerow(fields)
    return buf.getvalue().encode("utf-8")


RESERVE_BYTES = 1 << 20     # room for a session's final record (and participants.tsv) on a full disk


class Reserve:
    """Space a running session keeps for its last words: a file of RESERVE_BYTES in the study
    folder (.lhlab-reserve-sub-<label>_ses-<n>, hidden, ignored by BIDS and the analysis),
    deleted when the disk fills up so the final record can say "crashed: disk full", and at the
    end of every session."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def create(cls, study: Path, name: str) -> "Reserve":
        """Raises BadInput when even the reserve does not fit (nothing of the session is written)."""
        from experiment.errors import BadInput
        path = Path(study) / f".lhlab-reserve-{name}"
        created = None          # the first folder this call makes, removed again on failure
        if not Path(study).exists():
            created = Path(study)
            while not created.parent.exists():
                created = created.parent
        try:
            Path(study).mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                try:
                    os.posix_fallocate(fd, 0, RESERVE_BYTES)
                except OSError as e:
                    if is_disk_full(e):
                        raise
                    os.write(fd, bytes(RESERVE_BYTES))      # a file system without fallocate
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            path.unlink(missing_ok=True)
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)
            if is_disk_full(e):
                raise BadInput(f"data folder {study} is full (not even {RESERVE_BYTES >> 20} MB free); free some "
                               "space or choose another --data-dir") from None
            raise
        return cls(path)

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full_reason(error: OSError) -> str:
    where = f" while writing {Path(error.filename).name}" if getattr(error, "filename", None) else ""
    return (f"disk full{where}: the finished trials are on disk; free space in the data folder before the "
            "next session")


def write_json_atomic(path: Path, data: dict) -> None:
    """Replace `path` with `data` so a reader sees the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_new_bytes(path: Path, data: bytes) -> None:
    """Write a file that must not exist yet (the frame log), fsynced; on failure nothing is left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(path).unlink(missing_ok=True)
        raise


def write_new_json(path: Path, data: dict) -> None:
    """Write a JSON file that must not exist yet (sidecars); on failure nothing is left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(path).unlink(missing_ok=True)
        raise


def read_trials(path: Path) -> tuple[list[dict], list[str]]:
    """Read a trial TSV; return (rows, problems). A torn last line (power cut mid-write) is
    reported, never silently used."""
    from experiment.safeio import FileRefused, read_regular
    problems = []
    try:
        text = read_regular(path, MAX_TRIAL_FILE_BYTES, "trial file").decode("utf-8", errors="replace")
        rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    except FileRefused as e:        # a FIFO, a device, a huge file: never read, never used
        return [], [f"{path}: {e.reason}; file not read"]
    except csv.Error as e:          # e.g. a field beyond the csv module's size limit
        return [], [f"{path}: not a readable TSV ({e}); file not read"]
    if not rows:
        return [], [f"{path}: empty file (no header)"]
    header, body = rows[0], rows[1:]
    out = []
    for i, r in enumerate(body, 2):
        torn = i == len(rows) and not text.endswith("\n")   # every row the writer finishes ends with \n
        if torn or len(r) != len(header):
            problems.append(f"{path}:{i}: {'torn last row (write interrupted)' if torn else 'wrong number of fields'}; skipped")
            continue
        out.append(dict(zip(header, r)))
    return out, problems


# -- session state -------------------------------------------------------------------------

def effective_status(record: dict) -> str:
    """The status as it really is: a `running` session whose process is gone (killed, crashed,
    power cut) is `crashed`."""
    status = record.get("status", "crashed")
    if status != "running":
        return status
    alive = os_specific.same_process_alive(record.get("process") or {})
    if alive is None:
        return "running"          # cannot tell from here; another machine owns it
    return "running" if alive else "crashed"


def process_identity() -> dict:
    return os_specific.process_identity()


MAX_SESSION_BYTES = 16 * 2**20      # a session record is a few kB
MAX_TRIAL_FILE_BYTES = 256 * 2**20  # a phase's trial log is a few kB to a few MB
PHASE_STATUSES = ("pending", "running", "complete", "interrupted")


def read_session(path: Path) -> dict:
    """Read a session JSON and fill in `effective_status`. Raises ValueError for a file that is
    not a session record: not a regular file (a FIFO is never opened for a blocking read), too
    large, not UTF-8 JSON, nested absurdly deep, or with a field of the wrong type
    (`session_record_problems`); OSError if unreadable."""
    from experiment.safeio import read_regular
    return parse_session(read_regular(path, MAX_SESSION_BYTES, "session record"), path)


def parse_session(raw: bytes, path) -> dict:
    """`read_session` on bytes already read from `path` (named in the errors)."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise ValueError(f"{path}: nested too deeply to be a session record") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: not a session record (a JSON object)")
    problems = session_record_problems(record)
    if problems:
        raise ValueError(f"{path}: damaged session record: {'; '.join(problems[:3])}")
    record["effective_status"] = effective_status(record)
    return record


def session_record_problems(record: dict) -> list[str]:
    """Fields of a session record with the wrong type or value (fields that are absent are not
    judged here; the readers say what they miss). A damaged record is never half used."""
    out = []

    def want(obj: dict, key: str, ok, what: str, where: str = "") -> None:
        if key in obj and not ok(obj[key]):
            out.append(f"{where}{key} must be {what} (got {_short(obj[key])})")

    def whole(v) -> bool:
        return type(v) is int

    want(record, "lhlab_session_schema", lambda v: v == 1 and whole(v), "1")
    want(record, "participant", lambda v: isinstance(v, str) and bool(v), "a label")
    want(record, "session", lambda v: whole(v) and v >= 1, "a whole number >= 1")
    want(record, "condition", lambda v: isinstance(v, str) and bool(v), "a condition name")
    want(record, "status", lambda v: v in SESSION_STATUSES, f"one of {', '.join(SESSION_STATUSES)}")
    want(record, "pilot", lambda v: isinstance(v, bool), "true or false")
    want(record, "seed", lambda v: v is None or whole(v), "a whole number")
    for key in ("condition_kind", "yoked_to", "started", "ended", "experimenter", "debriefing_shown"):
        want(record, key, lambda v: v is None or isinstance(v, str), "text or null")
    for key in ("simulated", "exit", "calibration", "noise_dose", "yoke", "stimuli", "versions"):
        want(record, key, lambda v: v is None or isinstance(v, dict), "an object or null")
    for key in ("protocol", "process"):
        want(record, key, lambda v: v is None or isinstance(v, dict), "an object or null")
    want(record, "phases", lambda v: isinstance(v, list), "a list")
    proc = record.get("process") if isinstance(record.get("process"), dict) else {}
    want(proc, "pid", lambda v: v is None or (whole(v) and v > 0), "a process id", "process.")
    want(proc, "start_ticks", lambda v: v is None or whole(v), "a whole number", "process.")
    want(proc, "start_time", lambda v: v is None or (type(v) in (int, float) and v == v), "a number", "process.")
    for key in ("host", "boot_id"):
        want(proc, key, lambda v: v is None or isinstance(v, str), "text", "process.")
    for i, ph in enumerate(record.get("phases") if isinstance(record.get("phases"), list) else []):
        where = f"phases[{i}]."
        if not isinstance(ph, dict):
            out.append(f"phases[{i}] must be an object (got {_short(ph)})")
            continue
        want(ph, "id", lambda v: isinstance(v, str) and bool(v), "a phase id", where)
        want(ph, "task", lambda v: isinstance(v, str), "a task name", where)
        want(ph, "role", lambda v: isinstance(v, str), "a role", where)
        want(ph, "status", lambda v: v in PHASE_STATUSES, f"one of {', '.join(PHASE_STATUSES)}", where)
        for key in ("trials", "planned_trials"):
            want(ph, key, lambda v: whole(v) and v >= 0, "a whole number >= 0", where)
        want(ph, "file", lambda v: v is None or isinstance(v, str), "a path or null", where)
    return out


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def settle_crashed(path: Path) -> dict | None:
    """If the session at `path` was left `running` by a process that is gone, write down that it
    crashed (with what is on disk) so the file itself says what happened. Returns the new record."""
    try:
        record = read_session(path)
    except (OSError, ValueError):
        return None          # unreadable: reported as crashed by all_sessions, left as it is
    if record.get("status") != "running" or record["effective_status"] != "crashed":
        return None
    done = sum(p.get("trials", 0) for p in record.get("phases", []))
    study = Path(path).parent.parent.parent
    on_disk = 0
    for phase in record.get("phases", []):
        if phase.get("file") and (study / phase["file"]).exists():
            rows, _ = read_trials(study / phase["file"])
            on_disk += len(rows)
            if phase.get("status") == "running":
                phase["status"] = "interrupted"
    record.pop("effective_status", None)
    frames = _frames_on_disk(study, record)
    record.update(status="crashed", exit={
        "status": "crashed", "code": None,
        "reason": (f"the session process ended without closing the session (killed, crashed or power cut); "
                   f"{on_disk} finished trials are on disk (the record had counted {done} at its last update)"
                   + (f"; {frames}" if frames else ""))})
    write_json_atomic(Path(path), record)
    record["effective_status"] = "crashed"
    (study / f".lhlab-reserve-sub-{record.get('participant')}_ses-{record.get('session')}").unlink(missing_ok=True)
    return record


def _frames_on_disk(study: Path, record: dict) -> str | None:
    """The timing of a killed session from the plain frames file it was appending to
    (experiment.devices.frames): kept in the record's `timing.frames_on_disk`, told in one phrase."""
    label, session = record.get("participant"), record.get("session")
    if not isinstance(label, str) or not isinstance(session, int):
        return None
    path = frames_path(study, label, session, partial=True)
    if not path.is_file() or frames_path(study, label, session).exists():
        return None
    try:
        summary = summarise_frames(path)
    except (OSError, ValueError) as e:
        return f"frames file {path.name} unreadable ({e})"
    timing = record.setdefault("timing", {})
    if isinstance(timing, dict):
        timing["frames_on_disk"] = summary
        timing["frames_file"] = str(path.relative_to(study))
    worst = summary["worst_frame_ms"]
    return (f"{summary['frames']} frames on disk until the end ({summary['dropped_frames']} dropped"
            + (f", worst {worst:.1f} ms" if worst is not None else "") + f") in {path.name}")


def sessions_of(study: Path, label: str) -> list[tuple[int, Path]]:
    """Existing session numbers of a participant (any folder counts, even without JSON)."""
    sub = study / f"sub-{label}"
    out = []
    if sub.is_dir():
        for d in sub.iterdir():
            if d.is_dir() and d.name.startswith("ses-") and d.name[4:].isdigit():
                out.append((int(d.name[4:]), session_json_path(study, label, int(d.name[4:]))))
    return sorted(out)


def all_sessions(study: Path, skip: set[tuple[str, int]] = frozenset()) -> list[dict]:
    """Every session record in the study with its effective status (unreadable ones flagged).
    Sessions in `skip` ((label, number) pairs, e.g. already known to be finished) are not read."""
    out = []
    for sub in sorted(study.glob("sub-*")):
        if not sub.is_dir():
            continue
        label = sub.name[4:]
        for n, path in sessions_of(study, label):
            if (label, n) in skip:
                continue
            try:
                rec = read_session(path)
            except (OSError, ValueError) as e:
                rec = {"participant": label, "session": n, "status": "crashed",
                       "effective_status": "crashed", "problem": f"{path}: {e}"}
            out.append(rec)
    return out


# -- BIDS dataset files --------------------------------------------------------------------

def _create_once(path: Path, text: str) -> None:
    """Create a small text file whole or not at all (a full disk leaves no half README); a
    concurrent session that made it first is fine."""
    try:
        write_new_bytes(path, text.encode("utf-8"))
    except FileExistsError:
        pass


def ensure_dataset_files(study: Path, title: str, protocol_sha: str | None = None) -> None:
    """dataset_description.json, .bidsignore, participants.json: created once, kept."""
    study.mkdir(parents=True, exist_ok=True)
    desc = study / "dataset_description.json"
    if not desc.exists():
        write_json_atomic(desc, {
            "Name": title,
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "raw",
            "GeneratedBy": [{"Name": "lhlab", "Version": _version(),
                             "Description": "learned-helplessness experiment runner"}],
        })
    readme = study / "README"
    if not readme.exists():
        _create_once(readme, f"{title}\n\nBehavioural data collected with lhlab (learned-helplessness experiments).\n"
                             "One folder per participant and session; trial logs are BIDS beh TSV files with JSON\n"
                             "sidecars. *_session.json files hold each session's provenance and status.\n")
    ignore = study / ".bidsignore"
    if not ignore.exists():
        _create_once(ignore, "".join(f"{line}\n" for line in BIDS_IGNORE))
    else:       # a study begun by an older lhlab: add the lines it lacks, keep the lab's own
        have = ignore.read_text(encoding="utf-8", errors="replace")
        lacking = [line for line in BIDS_IGNORE if line not in have.splitlines()]
        if lacking:
            with open(ignore, "a", encoding="utf-8") as f:
                f.write(("" if not have or have.endswith("\n") else "\n") + "".join(f"{x}\n" for x in lacking))
    pj = study / "participants.json"
    if not pj.exists():
        write_json_atomic(pj, {k: {"Description": v} for k, v in PARTICIPANT_COLUMNS.items()})


def _participant_row(record: dict, sessions: int) -> dict:
    row = {"participant_id": f"sub-{record['participant']}", "condition": record.get("condition"),
           "yoked_to": record.get("yoked_to"), "status": record.get("effective_status", record.get("status")),
           "sessions": sessions}
    row.update(demographic_values(record))
    return row


def demographic_values(record: dict) -> dict:
    """The participants.tsv cells a session's demographics phase answered ({} without one);
    a question answered 'prefer not to say' is None (n/a)."""
    demo = record.get("demographics")
    answers = demo.get("answers") if isinstance(demo, dict) else None
    if not isinstance(answers, dict):
        return {}
    return {k: v for k, v in answers.items() if isinstance(k, str) and k not in PARTICIPANT_COLUMNS}


def demographic_columns(record: dict) -> dict:
    """participants.json entries ({column: {Description, Levels | Units}}) of a session's demographics."""
    demo = record.get("demographics")
    cols = demo.get("columns") if isinstance(demo, dict) else None
    if not isinstance(cols, dict):
        return {}
    return {k: v for k, v in cols.items() if isinstance(k, str) and isinstance(v, dict) and k not in PARTICIPANT_COLUMNS}


def _read_participants(study: Path) -> tuple[list[str], dict[str, dict]]:
    """(header, rows by participant_id) of participants.tsv as it is ([], {} without one)."""
    path = study / "participants.tsv"
    if not path.exists():
        return [], {}
    rows: dict[str, dict] = {}
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:   # a spreadsheet may add a BOM
        reader = csv.DictReader(f, delimiter="\t")
        header = [c for c in (reader.fieldnames or []) if isinstance(c, str) and c]
        for r in reader:
            if (r.get("participant_id") or "").startswith("sub-"):
                rows[r["participant_id"]] = r
    return header, rows


def upsert_participant(study: Path, record: dict) -> None:
    """Put one participant's latest session into participants.tsv (locked read-modify-write,
    so concurrent sessions in one study folder do not lose each other's rows). Demographic
    answers become columns (described in participants.json); columns a lab added are kept."""
    with os_specific.exclusive_lock(study / ".lock-participants"):
        header, rows = _read_participants(study)
        sid = f"sub-{record['participant']}"
        sessions = max(int(record.get("session", 1)), int(rows.get(sid, {}).get("sessions", 0) or 0))
        new = _participant_row(record, sessions)
        rows[sid] = {**{k: v for k, v in rows.get(sid, {}).items() if k not in PARTICIPANT_COLUMNS}, **new}
        _describe_columns(study, demographic_columns(record))
        _write_participants(study, rows, _columns(header, [new]))


def _columns(header: list[str], rows) -> list[str]:
    """participants.tsv's columns: lhlab's own first, then the file's others, then new demographic ones."""
    out = list(PARTICIPANT_COLUMNS)
    for c in [*header, *(k for r in rows for k in r)]:
        if c not in out:
            out.append(c)
    return out


def _describe_columns(study: Path, columns: dict) -> None:
    """Add the descriptions of new participants.tsv columns to participants.json (existing
    entries, e.g. a lab's own, are kept); called under the participants lock."""
    if not columns:
        return
    pj = study / "participants.json"
    try:
        current = json.loads(pj.read_text(encoding="utf-8")) if pj.exists() else {}
    except (OSError, ValueError):
        current = None
    if not isinstance(current, dict):       # unreadable: lhlab's own descriptions, then the new ones
        current = {k: {"Description": v} for k, v in PARTICIPANT_COLUMNS.items()}
    missing = {k: v for k, v in columns.items() if k not in current}
    if missing:
        write_json_atomic(pj, {**current, **missing})


def _write_participants(study: Path, rows: dict[str, dict], columns: list[str] | None = None) -> None:
    columns = columns or list(PARTICIPANT_COLUMNS)
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(columns)
    for key in sorted(rows):
        w.writerow([_format(rows[key].get(c)) if rows[key].get(c) != NA else NA for c in columns])
    path = study / "participants.tsv"
    fd, tmp = tempfile.mkstemp(prefix=".participants.", dir=study)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)     # a full disk leaves no temp file behind
        raise


def update_participants_tsv(study: Path) -> None:
    """Rebuild participants.tsv from all session records (used by `lhlab status`); the columns a
    lab added to the file keep their values."""
    rows: dict[str, dict] = {}
    described: dict = {}
    for rec in all_sessions(study):
        if not rec.get("participant"):
            continue
        sid = f"sub-{rec['participant']}"
        n = rows.get(sid, {}).get("sessions", 0) + 1
        answers = {k: v for k, v in rows.get(sid, {}).items() if k not in PARTICIPANT_COLUMNS}
        rows[sid] = {**answers, **_participant_row(rec, n)}     # a later session's answers win
        described.update(demographic_columns(rec))
    with os_specific.exclusive_lock(study / ".lock-participants"):
        header, old = _read_participants(study)
        for sid, row in rows.items():
            kept = {k: v for k, v in old.get(sid, {}).items() if k not in PARTICIPANT_COLUMNS and k not in row}
            row.update(kept)
        _describe_columns(study, described)
        _write_participants(study, rows, _columns(header, rows.values()))


def _version() -> str:
    from experiment.versions import package_version
    return package_version("lhlab") or "0+unknown"
