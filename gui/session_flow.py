"""The session flow of the launcher: add a participant, start a session or a pilot (after the
preflight), follow it live, abort it, and settle what happened when it ends.

Which study a session belongs to is always the StudyModel object itself (the window's `study`
or `pilot`), carried in the runner's `meta["model"]`: no string names a model. Every session
is a child `lhlab run` (gui.session_runner); the checks are experiment.preflight's, through
gui.preflight (which adds the display check).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from PyQt6.QtCore import QObject, QTimer

from experiment.errors import BadInput, LhlabError
from gui import commands, preflight
from gui.models import StudyModel
from gui.progress import describe

if TYPE_CHECKING:
    from gui.launcher import LauncherWindow

ENDED_NORMALLY = ("complete", "aborted", "withdrawn", "declined")
NO_EXPERIMENTER = ("no experimenter id: type yours in the Experimenter box of the toolbar (it is recorded with "
                   "the session); only pilots run without one")


class SessionFlow(QObject):
    """Start/pilot/abort/finish for `window`. What it uses of the window: `protocol`,
    `protocol_path`, the models `study` and `pilot`, `runner`, `analysis`, `options`
    (gui.panels.SessionOptions), `tables`, `notes`, `session_panel`, `log`, `dialogs`, the
    status bar, and `update_actions`, `load_study`, `selected_label`, `refuse_while_running`."""

    def __init__(self, window: LauncherWindow):
        super().__init__(window)
        self.w = window
        self.runner = window.runner
        self.close_when_idle = False      # the window closes once the running session has ended
        self.last_result: dict | None = None
        self.ticker = QTimer(self)
        self.ticker.setInterval(250)
        self.ticker.timeout.connect(self._tick)
        self.runner.lineEvent.connect(self.on_event)
        self.runner.output.connect(lambda line: self.w.log.add(line, "run"))
        self.runner.warning.connect(self._on_runner_warning)
        self.runner.finished.connect(self._on_finished)

    # ================================================================ before a session
    def new_participant(self) -> None:
        """Ask for the participant (with a typed reason if the study is full), register them; a
        refusal reopens the dialog with what was typed and why it was refused."""
        w = self.w
        if w.protocol is None:
            return w.dialogs.error(w, "No study selected", "Pick a valid protocol in the Study list first.")
        hints = []
        for name, cond in w.protocol.conditions.items():
            if cond.yoked_to:
                partner = w.study.registry.free_partner(name) if w.study.registry else None
                hints.append(f"{name} is yoked to {cond.yoked_to}: "
                             + (f"next partner {partner}." if partner else "no partner has finished training yet, "
                                "so the registry will assign another condition now and keep the yoked slot waiting."))
        full = w.study.is_full()
        request, problem = None, ""
        while True:
            request = w.dialogs.new_participant(w, list(w.protocol.conditions), "\n".join(hints),
                                                initial=request, problem=problem, full=full)
            if request is None:
                return
            if full and not (request.override_full or "").strip():
                problem = "The study is full: type why this participant is added anyway."
                continue
            try:
                p = w.study.add_participant(request.external_id, request.condition, request.reason,
                                            override_full=request.override_full if full else None)
                break
            except (BadInput, LhlabError) as e:
                problem = f"Not added: {e}"
                w.log.add(f"participant not added: {e}")
                full = w.study.is_full()          # another station may have filled the study meanwhile
        w.tables.show_model(w.study)
        w.tables.select(w.study, p.label)
        how = f"by hand ({request.reason})" if request.condition else "by the registry"
        replaced = w.study.replaced_by(p.label)
        if replaced:
            how += f" (the block slot of {replaced}, who declined consent)"
        w.log.add(f"added {p.label}: condition {p.condition}{' yoked to ' + p.yoked_to if p.yoked_to else ''}, "
                  f"assigned {how}" + (f"; study full, added because: {request.override_full}" if full else ""))
        w.statusBar().showMessage(f"{p.label} added: {p.condition}. Press Ctrl+R to start the session.", 10000)

    def start_session(self) -> None:
        """Preflight, confirm, then `lhlab run` for the participant selected in the Participants tab."""
        w = self.w
        if self.runner.is_running():
            return w.refuse_while_running("start another session")
        if w.analysis.is_running():
            return w.dialogs.warning(w, "Analysis running", "The analysis is still running.",
                                     "Wait for it to finish (it would slow down the participant's screen).")
        label = w.tables.selected_label(w.study)
        if not label:
            w.tables.show_model(w.study)
            return w.dialogs.info(w, "No participant selected",
                                  "Select a participant in the Participants table first, or press Ctrl+N to add one.")
        w.study.refresh()
        p = w.study.participant(label)
        if p is None:
            return w.dialogs.error(w, "Participant not found", f"{label} is no longer in the registry; press F5.")
        pf = self._preflight(w.study, label, p.condition, p.yoked_to)
        if pf is None:
            return
        opts = w.options
        text = (f"Start session {pf.session} of {label}?\n\nCondition: {p.condition}"
                + (f" (yoked to {p.yoked_to})" if p.yoked_to else "")
                + f"\nParticipant screen: {opts.screen}, {'windowed' if opts.windowed else 'full screen'}"
                + f"\nExperimenter: {opts.experimenter}\nData: {w.study.study_dir}"
                + f"\n\nChecks:\n{pf.report()}")
        if not w.dialogs.confirm(w, "Start session", text, yes="Start"):
            return
        argv = commands.run_argv(w.protocol_path, label, p.condition, w.study.run_data_dir, screen=opts.screen,
                                 windowed=opts.windowed, experimenter=opts.experimenter, yoked_to=p.yoked_to)
        self._launch(w.study, argv, label, pf.session, p.condition)

    def run_pilot(self) -> None:
        """A simulated participant (`--simulate default --mode visual`) in the real participant window.
        Pilot participants live in DATA/_pilot/<study>/ with their own registry."""
        w = self.w
        if self.runner.is_running():
            return w.refuse_while_running("start a pilot")
        if w.protocol is None:
            return w.dialogs.error(w, "No study selected", "Pick a valid protocol in the Study list first.")
        if self._preflight(w.pilot, None, None, None) is None:
            return
        try:       # pilot sessions never count toward the planned n (the registry's rule)
            p = w.pilot.add_participant()
        except (BadInput, LhlabError) as e:
            return w.dialogs.error(w, "Pilot not started", str(e),
                                   f"The pilot folder is {w.pilot.study_dir}; delete it to start pilots afresh.")
        if self._preflight(w.pilot, p.label, p.condition, p.yoked_to) is None:    # now with its label and yoke
            return
        opts = w.options
        argv = commands.run_argv(w.protocol_path, p.label, p.condition, w.pilot.run_data_dir, screen=opts.screen,
                                 windowed=opts.windowed, experimenter=opts.experimenter, yoked_to=p.yoked_to,
                                 simulate=commands.PILOT_PROFILE, speed=opts.speed)
        w.tables.show_model(w.pilot)
        w.tables.select(w.pilot, p.label)
        self._launch(w.pilot, argv, p.label, 1, p.condition)

    def _preflight(self, model: StudyModel, label: str | None, condition: str | None,
                   yoked_to: str | None) -> preflight.Preflight | None:
        """Run the checks for a session of `model`; on failure show what to fix and return None.
        A real session (not a pilot) also needs the experimenter's id."""
        w, opts = self.w, self.w.options
        pf = preflight.preflight(w.protocol_path, model.run_data_dir, label, condition, yoked_to=yoked_to,
                                 experimenter=opts.experimenter,
                                 simulate=commands.PILOT_PROFILE if model.pilot else None,
                                 screens=opts.screens_known(), screen=opts.screen)
        if not model.pilot:
            pf.checks.insert(1, preflight.Check("experimenter", bool(opts.experimenter),
                                                opts.experimenter or NO_EXPERIMENTER))
        for note in pf.notes:
            w.log.add(f"preflight note: {note}")
        if pf.protocol is not None and w.protocol is not None and pf.protocol.sha256 != w.protocol.sha256:
            w.log.add(f"{w.protocol_path.name} changed on disk; reloading the study")
            keep = w.selected_label()
            w.load_study()
            if keep:
                w.tables.select(w.study, keep)
            if model.error:
                pf.checks.append(preflight.Check("registry", False, model.error))
        if not pf.ok:
            problems = "\n\n".join(f"• {c.name}: {c.message}" for c in pf.problems)
            w.log.add("preflight failed: " + " | ".join(f"{c.name}: {c.message}" for c in pf.problems))
            w.statusBar().showMessage(f"Cannot start: {pf.problems[0].name} — {pf.problems[0].message}", 15000)
            w.dialogs.error(w, "Cannot start the session", f"Fix this first:\n\n{problems}\n\nChecks:\n{pf.report()}")
            if any(c.name == "experimenter" for c in pf.problems):
                opts.experimenter_edit.setFocus()
            return None
        return pf

    def _launch(self, model: StudyModel, argv: list[str], label: str, session: int | None, condition: str) -> None:
        kind = "pilot" if model.pilot else "session"
        self.last_result = None
        self.runner.start(argv, kind, {"model": model, "label": label, "session": session, "condition": condition})
        self.ticker.start()
        self.w.session_panel.show_starting(kind, label, session, condition)
        self.w.log.add(f"start {kind} {label} ses-{session}: " + " ".join(argv[1:]))
        self.w.statusBar().showMessage(f"Starting {kind} {label}…", 5000)
        self.w.update_actions()

    # ================================================================ while it runs
    def abort_session(self) -> None:
        w = self.w
        if not self.runner.is_running():
            return
        meta = self.runner.meta
        if not w.dialogs.confirm(w, "Abort session", f"Abort {meta.get('label')}'s session now?\n\n"
                                 "The trials done so far stay on disk and the session is marked aborted.",
                                 yes="Abort session", no="Keep running"):
            return
        w.log.add(f"abort requested (SIGTERM to pid {self.runner.pid()})")
        w.session_panel.show_state("stopping…")
        self.runner.abort()
        w.update_actions()

    def on_event(self, ev: dict) -> None:
        """One progress line of the running `lhlab run`."""
        p = self.runner.progress
        kind = ev.get("event")
        if kind not in ("trial_start",):
            self.w.log.add(f"{ev.get('participant', '?')} ses-{ev.get('session', '?')}  {describe(ev)}", "run")
        if kind == "session_start":
            self.runner.meta["session"] = ev.get("session", self.runner.meta.get("session"))
            self.w.session_panel.show_state("running" + (f" (pid {self.runner.pid()})" if self.runner.pid() else ""))
            self.runner.meta["model"].refresh()          # shows 'running' in the table
        self.w.session_panel.show_progress(p)
        self._tick()
        self.w.update_actions()

    def _tick(self) -> None:
        p = self.runner.progress
        if p is None or not self.runner.is_running():
            self.ticker.stop()
            return
        self.w.session_panel.show_elapsed(p, time.monotonic())

    def _on_runner_warning(self, text: str) -> None:
        self.w.log.add(f"WARNING: {text}", "run")
        self.w.dialogs.warning(self.w, "Session killed", f"The session did not stop gracefully: {text}.",
                               "Finished trials are on disk; the session is recorded as crashed. "
                               "Check the log for its last output.")

    # ================================================================ when it has ended
    def _on_finished(self, result: dict) -> None:
        w = self.w
        self.ticker.stop()
        self.last_result = result
        meta, p = result["meta"], result["progress"]
        model: StudyModel = meta["model"]
        label = p.participant if p and p.participant else meta.get("label")
        session = p.session if p and p.session else meta.get("session")
        status, code = result["status"], result["code"]
        w.notes.autosave()         # a note typed during the session is kept before the panel moves on
        if status == "crashed" and p and p.participant:
            try:      # the file itself says it crashed, now rather than at the next run
                model.record_crash(p.participant, p.session)
            except (OSError, ValueError) as e:
                w.log.add(f"could not mark the session crashed on disk: {e}")
        model.refresh()
        how = f"exit code {code}" if code is not None else "did not start"
        if result["by_signal"]:
            how = "killed by a signal" + (" after the stop timeout" if result["killed"] else "")
        tail = result["stderr_tail"]
        summary = f"{'Pilot ' if model.pilot else ''}{label} ses-{session} ended: {status} ({how})"
        if tail and status not in ENDED_NORMALLY:
            summary += f" — {tail[-1]}"
        w.session_panel.show_finished(status, how, p)
        w.statusBar().showMessage(summary, 0)
        w.log.add(summary)
        for line in tail[-15:] if status not in ENDED_NORMALLY else []:
            w.log.add(f"stderr: {line}", "run")
        w.update_actions()
        if status == "refused":
            w.dialogs.error(w, "Session refused", f"lhlab run refused to start {label}'s session; nothing "
                            f"was written.\n\n{chr(10).join(tail[-5:]) or '(no message)'}",
                            "Fix what the message says (then F5) and start the session again.")
        elif status in ("crashed", "failed to start"):
            w.dialogs.error(w, "Session crashed",
                            f"{label}'s session ended unexpectedly ({how}).\n\nThe trials finished before the "
                            f"crash are on disk and the session is recorded as crashed. The participant can be "
                            f"run again as a new session (Ctrl+R).",
                            "Last output of the session process:\n" + "\n".join(tail[-20:]))
        if label and session and status != "refused":
            w.tables.show_model(model)
            w.tables.select(model, label)
            w.notes.show_notes(model, w.tables.selected_label(model))
            w.notes.pick_session(session)
        if self.close_when_idle:
            w.close()
