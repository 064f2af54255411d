"""The launcher's data actions: open the study's data folder, run `lhlab analyze` on it as a
child process (gui.session_runner.ChildProcess) and offer the report when it is done."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import QObject

from gui import commands

if TYPE_CHECKING:
    from gui.launcher import LauncherWindow


class DataActions(QObject):
    def __init__(self, window: LauncherWindow):
        super().__init__(window)
        self.w = window
        self.analysis = window.analysis
        self.analysis.stderrLine.connect(lambda line: self.w.log.add(line, "analyze"))
        self.analysis.stdoutLine.connect(lambda line: self.w.log.add(line, "analyze"))
        self.analysis.finished.connect(self._on_analysis_finished)
        self.out: Path | None = None        # the folder of the analysis running now

    def open_data_folder(self) -> None:
        w = self.w
        model, _ = w.tables.current()
        folder = model.study_dir if model.study_dir and model.study_dir.exists() else w.data_dir
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            return w.dialogs.error(w, "Cannot open the data folder", f"{folder}: {e.strerror}",
                                   "Choose another data folder (Ctrl+Shift+O).")
        if not w.dialogs.open_path(folder):
            w.log.add(f"could not open {folder}: no file manager opened it")
            w.statusBar().showMessage(f"Could not open {folder}", 10000)
            return w.dialogs.error(w, "Cannot open the data folder",
                                   f"No file manager opened the data folder. Open it by hand:\n\n{folder}")
        w.log.add(f"opened {folder}")

    def analyze(self) -> None:
        w = self.w
        if w.runner.is_running():
            return w.refuse_while_running("run the analysis (it would slow down the participant's screen)")
        study = w.study.study_dir
        if study is None or not (study / "dataset_description.json").exists():
            return w.dialogs.info(w, "Nothing to analyze yet", f"{study} has no sessions yet.",
                                  "Run some sessions first (or `lhlab simulate` for a simulated study).")
        self.out = new_run_folder(study)
        w.log.add(f"analyze {study} into {self.out}")
        w.statusBar().showMessage(f"Analyzing {study}…")
        self.analysis.start(commands.analyze_argv(study, self.out, w.act_include_pilots.isChecked()))
        w.update_actions()

    def _on_analysis_finished(self, code, by_signal: bool) -> None:
        w = self.w
        w.update_actions()
        report = self.out / "report.html" if self.out else None
        if code == 0 and self.out is not None:
            try:
                link_latest(self.out)
            except OSError as e:
                w.log.add(f"could not point {self.out.parent / LATEST} at this run: {e}")
            w.statusBar().showMessage(f"Analysis done: {report}", 0)
            w.log.add(f"analysis done: {report}")
            if report and report.exists() and w.dialogs.confirm(w, "Analysis done", f"Report: {report}",
                                                                yes="Open report", no="Close"):
                w.dialogs.open_path(report)
        else:
            tail = list(self.analysis.stderr_tail)
            w.statusBar().showMessage(f"Analysis failed (exit {code})" + (f": {tail[-1]}" if tail else ""), 0)
            w.dialogs.error(w, "Analysis failed", f"lhlab analyze ended with exit code {code}.\n\n"
                            + "\n".join(tail[-5:]), "\n".join(tail))


ANALYSES = Path("derivatives") / "lhlab-analysis"     # inside the study folder
LATEST = "latest"


def new_run_folder(study: Path) -> Path:
    """A new dated folder for one analysis run: an earlier report is never overwritten."""
    base = study / ANALYSES / datetime.now().strftime("%Y-%m-%d_%H%M%S")
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def link_latest(out: Path) -> None:
    """Point `latest` beside the dated runs at `out` (replaced atomically)."""
    link = out.parent / LATEST
    tmp = out.parent / f".{LATEST}.{os.getpid()}"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(out.name, target_is_directory=True)
    os.replace(tmp, link)
