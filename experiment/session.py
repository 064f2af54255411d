"""Run one participant's session: phases in order, data on disk as it happens, progress out.

`experiment.preflight.prepare()` makes every check that can refuse a session (exit 2,
nothing written); `Session.run()` then owns the session folder until the end, whatever
happens.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import threading
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from experiment import datafile
from experiment.errors import EXIT_ERROR, EXIT_FOR_STATUS, Aborted, BadInput, Declined, SessionEnded, Withdrawn
from experiment.preflight import Prepared
from experiment.protocol import Phase, Protocol
from experiment.tasks import TASKS
from experiment.tasks.base import PhaseContext
from experiment.tasks.instructions import show_page
from experiment.versions import session_versions



def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Progress:
    """One JSON object per line on `out`, for the launcher (and a human) to follow."""

    def __init__(self, out: TextIO | None, t0: float):
        self.out, self.t0 = out, t0
        self.context: dict = {}
        self.listeners: list = []      # called with each event (e.g. the registry heartbeat); never raise into us

    def __call__(self, event: str, **fields) -> None:
        if self.out is None and not self.listeners:
            return
        msg = {"event": event, "time": round(time.time(), 4), "elapsed": round(time.monotonic() - self.t0, 3),
               **self.context, **fields}
        for listener in self.listeners:
            try:
                listener(msg)
            except Exception:  # noqa: BLE001 - a listener's problem is its own, never the session's
                pass
        if self.out is None:
            return
        try:
            self.out.write(json.dumps(msg) + "\n")
            self.out.flush()
        except (BrokenPipeError, ValueError):
            self.out = None      # nobody listens any more; the data files are what matters


class Session:
    def __init__(self, prepared: Prepared, devices: tuple, stop_flag: threading.Event,
                 progress_out: TextIO | None = sys.stdout, device_info: dict | None = None):
        self.p = prepared
        self.req = prepared.request
        self.proto = prepared.request.protocol
        self.clock, self.screen, self.keyboard, self.speaker = devices
        self.stop_flag = stop_flag
        self.progress = Progress(progress_out, time.monotonic())
        self.label = self.req.participant
        self.dir = datafile.session_dir(prepared.study, self.label, prepared.session)
        self.json_path = datafile.session_json_path(prepared.study, self.label, prepared.session)
        self.state: dict = {}
        self.record: dict = {}
        self.device_info = device_info or {}
        self._log: datafile.TrialLog | None = None      # the trial log of the phase running now
        # A data-only simulation is re-created bit for bit from its seed, so its rows skip the
        # per-row fsync; every session with a person or a window syncs each row.
        self.durable = not (self.req.simulate and self.req.mode == "data-only")

    # -- the session record ------------------------------------------------------------------
    def _save(self) -> None:
        self.record["updated"] = now_iso()
        self.record["noise_dose"] = self.speaker.dose_record()
        self.record["timing"] = {**self.record.get("timing", {}), "screen": self.screen.timing(),
                                 "audio": self.speaker.timing()}
        datafile.write_json_atomic(self.json_path, self.record)

    def _start_record(self) -> None:
        req, proto = self.req, self.proto
        self.record = {
            "lhlab_session_schema": 1,
            "study": proto.study_id,
            "participant": self.label,
            "session": self.p.session,
            "condition": req.condition,
            "condition_kind": proto.conditions[req.condition].kind,
            "yoked_to": req.yoked_to,
            **({"override_full": req.override_full} if req.override_full else {}),
            "status": "running",
            "started": now_iso(),
            "ended": None,
            "experimenter": req.experimenter or None,
            "pilot": bool(req.pilot or req.simulate),
            "simulated": ({"profile": req.simulate, "mode": req.mode, "speed": req.speed}
                          if req.simulate else None),
            "seed": self.p.seed,
            "protocol": {"file": str(proto.path.resolve()), "sha256": proto.sha256, "title": proto.title},
            "versions": session_versions(real_devices=self.req.mode == "visual" or not req.simulate),
            "devices": {"screen": self.screen.info(), "audio": self.speaker.info(), **self.device_info},
            "calibration": self.p.calibration,
            "noise_dose": None,
            "safety_limits": self.p.audio["limits"].record() if self.p.audio else None,
            "yoke": self.p.yoke,
            "stimuli": stimulus_provenance(proto),
            "phases": [{"id": ph.id, "task": ph.task, "role": ph.role, "status": "pending", "trials": 0,
                        "planned_trials": len(trials), "file": None}
                       for ph, trials, _ in self.p.schedule],
            "debriefing_shown": None,
            "process": datafile.process_identity(),
            "exit": None,
        }

    # -- running -----------------------------------------------------------------------------
    def run(self) -> int:
        """Run the session to its end and return the exit code. A full disk ends it `crashed`
        with reason "disk full ...": the space reserved at the start (datafile.Reserve) is
        released so the final record can still be written."""
        self._reserve = datafile.Reserve.create(self.p.study, f"sub-{self.label}_ses-{self.p.session}")
        try:
            return self._run()
        except OSError as e:
            if not datafile.is_disk_full(e):
                raise
            return self._end_disk_full(e)
        finally:
            self._reserve.release()

    def _end_disk_full(self, error: OSError) -> int:
        """The disk filled up outside a phase (start-up or the final save): record it if at all possible."""
        self._reserve.release()
        self._close_phase()
        reason = datafile.disk_full_reason(error)
        if self.record:
            self.record.update(status="crashed", ended=now_iso(),
                               exit={"status": "crashed", "reason": reason, "code": EXIT_ERROR})
            try:
                self._save()
            except OSError:
                pass            # still no room: the record says running, which reads as crashed once we exit
        if self.dir.is_dir() and not self.json_path.exists():
            shutil.rmtree(self.dir, ignore_errors=True)     # nothing of this session is on disk: leave no folder
        self.record.setdefault("exit", {"status": "crashed", "reason": reason, "code": EXIT_ERROR})
        self.progress("session_end", status="crashed", reason=reason)
        return EXIT_ERROR

    def _run(self) -> int:
        self._create_folder()
        self._start_record()
        self._save()
        self._start_frame_record()
        self._update_participants()
        self.progress.context = {"participant": self.label, "session": self.p.session}
        status, reason = "complete", "all phases done"
        try:
            self.progress("session_start", condition=self.req.condition, study=self.proto.study_id,
                          data=str(self.dir), phases=[ph.id for ph, _, _ in self.p.schedule],
                          expected_s=round(sum(e for _, _, e in self.p.schedule)))
            main = [s for s in self.p.schedule if s[0].id != self.proto.repair_phase]
            for index, (phase, trials, _) in enumerate(main):
                self._run_phase(index, phase, trials)
            self._debrief()
            if self.proto.repair_phase:
                index = len(self.p.schedule) - 1
                phase, trials, _ = self.p.schedule[index]
                self._run_phase(index, phase, trials)
            show_goodbye = True
        except Declined as e:       # consent declined: no debriefing (nothing happened), no other data
            status, reason = "declined", str(e) or "participant declined consent"
            show_goodbye = False
            for rec in self.record["phases"]:
                if rec["status"] == "running":       # the consent phase: its decision is on disk
                    rec.update(status="complete", ended=now_iso())
        except Withdrawn:
            status, reason = "withdrawn", "participant pressed the withdraw key"
            show_goodbye = self._debrief_after_withdrawal()
        except Aborted as e:
            status, reason = "aborted", str(e) or "experimenter abort"
            show_goodbye = False
        except Exception as e:      # a bug or a device failure: keep what is on disk, say what happened
            status, reason = "crashed", f"{type(e).__name__}: {e}"
            if isinstance(e, OSError) and datafile.is_disk_full(e):
                self._reserve.release()         # room for the final record
                reason = datafile.disk_full_reason(e)
            else:
                self.record["traceback"] = traceback.format_exc()
            show_goodbye = False
        self._close_phase()
        self._write_frame_log()
        self._take_answers()
        self.record.update(status=status, ended=now_iso(),
                           exit={"status": status, "reason": reason, "code": EXIT_FOR_STATUS[status]})
        self._save()
        self._update_participants()
        self.progress("session_end", status=status, reason=reason)
        if show_goodbye:
            self._goodbye()
        elif status == "declined":
            self._declined_page()
        return EXIT_FOR_STATUS[status]

    # -- where the data go (experiment.simstudy.MemorySession keeps them in memory) --
    def _create_folder(self) -> None:
        datafile.ensure_dataset_files(self.p.study, self.proto.title)
        os.makedirs(self.dir.parent, exist_ok=True)
        try:
            os.mkdir(self.dir)      # fails if a concurrent run took this number: never share a folder
        except FileExistsError:
            raise BadInput(f"sub-{self.label} ses-{self.p.session} was just started by another lhlab process; "
                           "nothing was written by this one") from None

    def _open_log(self, path: Path, columns: list[str]) -> datafile.TrialLog:
        return datafile.TrialLog(path, columns, durable=self.durable)

    def _write_sidecar(self, path: Path, sidecar: dict) -> None:
        datafile.write_new_json(path, sidecar)

    def _start_frame_record(self) -> None:
        """Frames go to a plain *_frames.tsv as they happen (Screen.frame_record), so a killed
        session keeps them; a failure to start it is recorded, never allowed to stop the session."""
        try:
            self.screen.frame_record(datafile.frames_path(self.p.study, self.label, self.p.session, partial=True))
        except OSError as e:
            self.record.setdefault("warnings", []).append(f"frames not written as they happen ({e})")

    def _write_frame_log(self) -> None:
        """Every frame interval of the session (Screen.frame_log) beside the session record, as
        *_frames.tsv.gz; the plain *_frames.tsv written during the session is removed once it is
        there. A failure to write it is recorded, never allowed to change the session's status."""
        problem = self.screen.frame_record(None)
        if problem:
            self.record.setdefault("warnings", []).append(f"frames not written as they happen ({problem})")
        log = self.screen.frame_log()
        if not log:
            return
        path = datafile.frames_path(self.p.study, self.label, self.p.session)
        try:
            datafile.write_new_bytes(path, log)
            self.record.setdefault("timing", {})["frames_file"] = str(path.relative_to(self.p.study))
            datafile.frames_path(self.p.study, self.label, self.p.session, partial=True).unlink(missing_ok=True)
        except OSError as e:
            self.record.setdefault("warnings", []).append(f"frame log not written ({e})")

    def _update_participants(self) -> None:
        """participants.tsv is a summary that `lhlab status` can rebuild at any time: a problem
        with it (e.g. a copy edited in a spreadsheet) is recorded, never allowed to stop a session."""
        try:
            datafile.upsert_participant(self.p.study, self.record)
        except Exception as e:  # noqa: BLE001 - see docstring
            self.record.setdefault("warnings", []).append(
                f"participants.tsv not updated ({type(e).__name__}: {e}); run `lhlab status` to rebuild it")
            self._save()

    def _phase_record(self, index: int) -> dict:
        return self.record["phases"][index]

    def _run_phase(self, index: int, phase: Phase, trials: list) -> None:
        task = TASKS[phase.task]
        rec = self._phase_record(index)
        rec.update(status="running", started=now_iso())
        path = datafile.beh_path(self.p.study, self.label, self.p.session, phase.id)
        columns = [c.name for c in task.columns]
        self._log = self._open_log(path, columns)
        self._write_sidecar(path.with_suffix(".json"), self._sidecar(task, phase))
        rec["file"] = str(path.relative_to(self.p.study))
        self._save()
        self.progress.context.update(phase=phase.id, role=phase.role)
        self.progress("phase_start", task=phase.task, trials=len(trials))
        self.screen.begin_phase(phase.id, phase.role)
        common = {"participant_id": f"sub-{self.label}", "session": self.p.session,
                  "condition": self.req.condition, "phase": phase.id, "role": phase.role, "task": phase.task}

        def write_row(row: dict) -> None:
            self._log.write({**common, **row})
            rec["trials"] = self._log.rows

        ctx = PhaseContext(phase.id, phase.role, phase.params, self.clock, self.screen, self.keyboard,
                           self.speaker, self.proto.texts, self.proto.keys, write_row, self.progress,
                           self.proto.base_dir, self.state, self.screen.frames_lost)
        for page in phase.instructions:
            show_page(ctx, page)
        task.run(ctx, trials)
        self._close_phase()
        if self._take_answers() and "demographics" in self.state:
            self._save()
            self._update_participants()      # the answers are in participants.tsv from now on
        rec.update(status="complete", ended=now_iso())   # saved with the next boundary
        self.progress("phase_end", trials_done=rec["trials"])

    def _close_phase(self) -> None:
        log = self._log
        if log is not None:
            log.close()
            for rec in self.record.get("phases", []):
                if rec["status"] == "running":
                    rec.update(status="interrupted", ended=now_iso())
            self._log = None

    def _sidecar(self, task, phase: Phase) -> dict:
        out = {c.name: c.sidecar() for c in task.columns}
        out["TaskName"] = phase.id
        out["TaskDescription"] = f"{task.summary} (lhlab task '{task.name}', role '{phase.role}')"
        return out

    def _debrief(self) -> None:
        ctx = PhaseContext("debriefing", "debriefing", {}, self.clock, self.screen, self.keyboard, self.speaker,
                           self.proto.texts, self.proto.keys, lambda row: None, self.progress,
                           self.proto.base_dir, self.state)
        self.screen.begin_phase("debriefing", "debriefing")
        self.progress.context.update(phase="debriefing", role="debriefing")
        self.record["debriefing_shown"] = now_iso()
        self._save()
        self.progress("debriefing")
        for page in self.proto.debriefing_for(self.req.condition):
            show_page(ctx, page, kind="debriefing")

    def _debrief_after_withdrawal(self) -> bool:
        """A participant who withdraws still reads the debriefing; pressing withdraw again ends it."""
        self._close_phase()
        self.record["withdrawn_at"] = now_iso()
        self._save()
        ctx = PhaseContext("debriefing", "debriefing", {}, self.clock, self.screen, self.keyboard, self.speaker,
                           self.proto.texts, self.proto.keys, lambda row: None, self.progress,
                           self.proto.base_dir, self.state)
        try:
            show_page(ctx, self.proto.texts["withdrawn"])
            self._debrief()
            return True
        except SessionEnded:
            return False
        except Exception as e:  # noqa: BLE001 - the withdrawal stands; say why the debriefing stopped
            self.record["debriefing_problem"] = f"{type(e).__name__}: {e}"
            return False

    def _take_answers(self) -> bool:
        """Copy the consent decision and the demographic answers the phases left in the session
        state into the record (True if anything changed)."""
        changed = False
        for key in ("consent", "demographics"):
            if key in self.state and self.record.get(key) != self.state[key]:
                self.record[key] = json.loads(json.dumps(self.state[key]))     # a copy, as it is now
                changed = True
        return changed

    def _declined_page(self) -> None:
        """After a declined consent: one page saying so (no F12 offered), ended with the continue key."""
        ctx = PhaseContext("declined", "debriefing", {}, self.clock, self.screen, self.keyboard, self.speaker,
                           self.proto.texts, self.proto.keys, lambda row: None, lambda *a, **k: None,
                           self.proto.base_dir, self.state)     # after session_end: no more events
        try:
            show_page(ctx, self.proto.texts["declined"])
        except SessionEnded:
            pass

    def _goodbye(self) -> None:
        from experiment.devices import View
        try:
            t = self.screen.show(View("text", text=self.proto.texts["goodbye"]))
            self.clock.wait_until(t + 2.0)
        except SessionEnded:
            pass


def stimulus_provenance(proto: Protocol) -> dict:
    """SHA-256 of every stimulus file the protocol uses, with the lexicon that verified it
    (LEXICON.json beside the files), so the data say exactly which items were shown."""
    out: dict = {}
    for phase in proto.phases.values():
        for prm in TASKS[phase.task].params:
            if prm.kind != "file" or not phase.params.get(prm.name):
                continue
            path = (proto.base_dir / phase.params[prm.name]).resolve()
            if str(path) in out or not path.is_file():
                continue
            out[str(path)] = json.loads(_file_provenance(str(path), path.stat().st_mtime_ns))
    return out


@functools.lru_cache(maxsize=64)
def _file_provenance(path: str, mtime_ns: int) -> str:
    import hashlib
    entry: dict = {"sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()}
    lexicon = Path(path).parent / "LEXICON.json"
    if lexicon.is_file():
        try:
            entry["lexicon"] = json.loads(lexicon.read_text(encoding="utf-8"))
        except ValueError:
            entry["lexicon"] = "unreadable LEXICON.json"
    return json.dumps(entry)


def run_data_only(prepared: Prepared, stop: threading.Event | None = None,
                  progress_out: TextIO | None = None) -> int:
    """A prepared simulated session (`--simulate`, data-only) on the virtual clock, through the
    same Session and task code as a person's; returns the exit code."""
    from experiment.devices.virtual import data_only_devices
    from experiment.simulation.participant import participant_for
    stop = stop or threading.Event()
    keys = prepared.request.protocol.keys
    return Session(prepared, data_only_devices(participant_for(prepared), keys, stop), stop, progress_out).run()
