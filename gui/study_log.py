"""The launcher's log, saved with the study: DATA_DIR/<study>/lhlab/logs/launcher-<date>.log.

Appended to, never overwritten (several launcher runs in one day share the day's file, each
starting with a header line). `lhlab/` is lhlab's private folder of the study: listed in the
study's .bidsignore (experiment.datafile.BIDS_IGNORE) and left out of `lhlab export`, so the
log never reaches a shared dataset. Lines logged before the study folder exists (looking at
a study never creates it) wait and are written once it does. No Qt here.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

LOG_FOLDER = Path("lhlab") / "logs"


def log_path(study_dir: Path, when: datetime | None = None) -> Path:
    return Path(study_dir) / LOG_FOLDER / f"launcher-{(when or datetime.now()):%Y-%m-%d}.log"


class StudyLog:
    """Where the launcher's log lines go on disk. `problem` is set (once) when the file cannot be written."""

    def __init__(self, on_problem=None):
        self.on_problem = on_problem      # called once with the line saying why the log cannot be saved
        self.study_dir: Path | None = None
        self.pending: list[str] = []
        self.problem: str | None = None
        self.path: Path | None = None

    def set_study(self, study_dir: Path | None, header: str) -> None:
        self.study_dir = Path(study_dir) if study_dir else None
        self.pending = [header] if study_dir else []
        self.problem = None
        self.path = None
        self.flush()

    def write(self, line: str) -> None:
        if self.study_dir is None:
            return
        self.pending.append(line)
        self.flush()

    def flush(self) -> None:
        if self.study_dir is None or not self.pending or self.problem or not self.study_dir.is_dir():
            return
        path = log_path(self.study_dir)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write("".join(f"{line}\n" for line in self.pending))
        except OSError as e:
            self.problem = f"The launcher's log cannot be saved in {path.parent} ({e.strerror or e}); it is only shown here"
            if self.on_problem:
                self.on_problem(self.problem)
            return
        self.path = path
        self.pending = []
