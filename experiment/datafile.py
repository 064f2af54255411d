"""The one place that knows the study folder's layout and writes or reads its files.

DATA_DIR/<study-id>/
  dataset_description.json  participants.tsv  participants.json  .bidsignore  registry.sqlite
  sub-<label>/ses-<n>/beh/sub-<label>_ses-<n>_task-<phase>_beh.tsv (+ .json sidecar)
  sub-<label>/ses-<n>/sub-<label>_ses-<n>_session.json

Every trial row is written, flushed and fsynced when the trial ends; the session JSON is
replaced atomically (temp file, fsync, rename, fsync the folder). Nothing is overwritten:
files are created with O_EXCL.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

from experiment import os_specific

NA = "n/a"
BIDS_VERSION = "1.10.0"
SESSION_STATUSES = ("running", "complete", "aborted", "withdrawn", "crashed")

PARTICIPANT_COLUMNS = {
    "participant_id": "Pseudonymous label, sub-<label>.",
    "condition": "Condition assigned.",
    "yoked_to": "Participant whose noise schedule this one replayed (n/a if not yoked).",
    "status": "Status of the latest session.",
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


class TrialLog:
    """Append-only TSV of one phase; each `write` is on disk before it returns."""

    def __init__(self, path: Path, columns: list[str], durable: bool = True):
        self.path, self.columns, self.durable = path, columns, durable
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)   # never overwrite
        self._file = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._file, delimiter="\t", lineterminator="\n",
                                  quoting=csv.QUOTE_MINIMAL)
        self._writer.writerow(columns)
        self._sync()
        _fsync_dir(path.parent)
        self.rows = 0

    def write(self, row: dict) -> None:
        unknown = set(row) - set(self.columns)
        if unknown:
            raise ValueError(f"{self.path.name}: columns not declared by the task: {sorted(unknown)}")
        self._writer.writerow([_format(row.get(c)) for c in self.columns])
        self._sync()
        self.rows += 1

    def _sync(self) -> None:
        self._file.flush()
        if self.durable:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


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


def write_new_json(path: Path, data: dict) -> None:
    """Write a JSON file that must not exist yet (sidecars)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def read_trials(path: Path) -> tuple[list[dict], list[str]]:
    """Read a trial TSV; return (rows, problems). A torn last line (power cut mid-write) is
    reported, never silently used."""
    problems = []
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
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


def read_session(path: Path) -> dict:
    """Read a session JSON and fill in `effective_status`. Raises ValueError for a file that is
    not a session record (OSError if unreadable)."""
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(record, dict):
        raise ValueError(f"{path}: not a session record (a JSON object)")
    record["effective_status"] = effective_status(record)
    return record


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
    record.update(status="crashed", exit={
        "status": "crashed", "code": None,
        "reason": (f"the session process ended without closing the session (killed, crashed or power cut); "
                   f"{on_disk} finished trials are on disk (the record had counted {done} at its last update)")})
    write_json_atomic(Path(path), record)
    record["effective_status"] = "crashed"
    return record


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
        readme.write_text(f"{title}\n\nBehavioural data collected with lhlab (learned-helplessness experiments).\n"
                          "One folder per participant and session; trial logs are BIDS beh TSV files with JSON\n"
                          "sidecars. *_session.json files hold each session's provenance and status.\n",
                          encoding="utf-8")
    ignore = study / ".bidsignore"
    if not ignore.exists():
        ignore.write_text("registry.sqlite*\n*_session.json\n.lock*\nlhlab/\n", encoding="utf-8")
    pj = study / "participants.json"
    if not pj.exists():
        write_json_atomic(pj, {k: {"Description": v} for k, v in PARTICIPANT_COLUMNS.items()})


def _participant_row(record: dict, sessions: int) -> dict:
    return {"participant_id": f"sub-{record['participant']}", "condition": record.get("condition"),
            "yoked_to": record.get("yoked_to"), "status": record.get("effective_status", record.get("status")),
            "sessions": sessions}


def upsert_participant(study: Path, record: dict) -> None:
    """Put one participant's latest session into participants.tsv (locked read-modify-write,
    so concurrent sessions in one study folder do not lose each other's rows)."""
    with os_specific.exclusive_lock(study / ".lock-participants"):
        path = study / "participants.tsv"
        rows: dict[str, dict] = {}
        if path.exists():
            with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:   # a spreadsheet may add a BOM
                for r in csv.DictReader(f, delimiter="\t"):
                    if (r.get("participant_id") or "").startswith("sub-"):
                        rows[r["participant_id"]] = r
        sid = f"sub-{record['participant']}"
        sessions = max(int(record.get("session", 1)), int(rows.get(sid, {}).get("sessions", 0) or 0))
        rows[sid] = _participant_row(record, sessions)
        _write_participants(study, rows)


def _write_participants(study: Path, rows: dict[str, dict]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(list(PARTICIPANT_COLUMNS))
    for key in sorted(rows):
        w.writerow([_format(rows[key].get(c)) if rows[key].get(c) != NA else NA for c in PARTICIPANT_COLUMNS])
    path = study / "participants.tsv"
    fd, tmp = tempfile.mkstemp(prefix=".participants.", dir=study)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def update_participants_tsv(study: Path) -> None:
    """Rebuild participants.tsv from all session records (used by `lhlab status`)."""
    rows: dict[str, dict] = {}
    for rec in all_sessions(study):
        if not rec.get("participant"):
            continue
        sid = f"sub-{rec['participant']}"
        n = rows.get(sid, {}).get("sessions", 0) + 1
        rows[sid] = _participant_row(rec, n)
    with os_specific.exclusive_lock(study / ".lock-participants"):
        _write_participants(study, rows)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("lhlab")
    except PackageNotFoundError:
        return "0+unknown"
