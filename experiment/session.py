"""Run one participant's session: phases in order, data on disk as it happens, progress out.

`prepare()` makes every check that can refuse a session (exit 2, nothing written);
`Session.run()` then owns the session folder until the end, whatever happens.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import secrets
import shutil
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from experiment import datafile
from experiment.errors import (EXIT_ABORTED, EXIT_COMPLETE, EXIT_ERROR, EXIT_WITHDRAWN, Aborted, BadInput,
                               SessionEnded, Withdrawn)
from experiment.identifiers import check_free_text, check_label, is_label
from experiment.protocol import Phase, Protocol, plan
from experiment.tasks import TASKS
from experiment.tasks.base import PhaseContext
from experiment.tasks.instructions import show_page

MIN_FREE_MB_DEFAULT = 200      # refuse to start below this much free space in the data folder
EXIT_FOR_STATUS = {"complete": EXIT_COMPLETE, "aborted": EXIT_ABORTED, "withdrawn": EXIT_WITHDRAWN,
                   "crashed": EXIT_ERROR}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class SessionRequest:
    protocol: Protocol
    participant: str
    condition: str
    data_dir: Path
    session: int | None = None
    seed: int | None = None
    experimenter: str = ""
    simulate: str | None = None      # profile spec, or None for a real participant
    mode: str = "data-only"
    speed: float = 1.0
    yoked_to: str | None = None
    pilot: bool = False


@dataclass
class Prepared:
    request: SessionRequest
    study: Path
    session: int
    seed: int
    schedule: list            # [(Phase, trials, expected_s)]
    previous: list = field(default_factory=list)
    calibration: dict | None = None   # the headphone calibration in force (noise protocols)
    audio: dict | None = None         # what the real speaker needs: device, calibration, limits
    yoke: dict | None = None          # the partner whose noise schedule is replayed


def prepare(req: SessionRequest) -> Prepared:
    """Every check that may refuse the session, before anything is written."""
    proto = req.protocol
    problem = check_label(req.participant, "--participant")
    if problem:
        raise BadInput(f"{problem}; it becomes the folder name sub-<label>")
    problem = check_free_text(req.experimenter or "", "--experimenter")
    if problem:
        raise BadInput(problem)
    if req.condition not in proto.conditions:
        raise BadInput(f"--condition: {req.condition!r} is not a condition of {proto.path}; "
                       f"choose one of: {', '.join(proto.conditions)}")
    if not (0 < req.speed < 1000):
        raise BadInput(f"--speed must be a number above 0 and below 1000 (got {req.speed})")
    if req.speed != 1 and not req.simulate:
        raise BadInput("--speed only applies to simulated participants (--simulate)")
    study = datafile.study_dir(req.data_dir, proto.study_id)
    _check_writable(Path(req.data_dir), study)

    previous = []
    for n, path in datafile.sessions_of(study, req.participant):
        try:
            rec = datafile.read_session(path)
        except (OSError, ValueError):
            rec = {"session": n, "effective_status": "crashed", "condition": None}
        previous.append(rec)
        if rec.get("effective_status") == "running":
            raise BadInput(f"sub-{req.participant} ses-{n} is still running (pid {rec.get('process', {}).get('pid')}); "
                           "wait for it to end or abort it first")
        if rec.get("condition") and rec["condition"] != req.condition:
            raise BadInput(f"sub-{req.participant} was run in condition {rec['condition']!r} (ses-{n}); "
                           f"--condition {req.condition!r} would mix conditions. Use a new participant label")
    used = {rec.get("session") for rec in previous} | {n for n, _ in datafile.sessions_of(study, req.participant)}
    if req.session is not None:
        if req.session < 1:
            raise BadInput(f"--session must be >= 1 (got {req.session})")
        if req.session in used:
            raise BadInput(f"sub-{req.participant} ses-{req.session} already has data in {study}; "
                           "nothing is overwritten: choose another session number or participant")
        session = req.session
    else:
        done = [r for r in previous if r.get("effective_status") in ("complete", "withdrawn")]
        if done:
            r = done[-1]
            raise BadInput(f"sub-{req.participant} already has a {r['effective_status']} session (ses-{r.get('session')}) "
                           f"in {study}; pass --session {max(used) + 1} to add a session on purpose")
        session = max(used, default=0) + 1
    seed = req.seed if req.seed is not None else secrets.randbelow(2**31)
    prepared = Prepared(req, study, session, seed, plan(proto, req.condition, seed), previous)
    _prepare_noise(prepared)
    return prepared


def _prepare_noise(prepared: Prepared) -> None:
    """Noise protocols: the calibration for this machine's output (refused without one) and,
    in a yoked condition, the partner's recorded schedule (refused when missing/incomplete)."""
    from experiment import calibration
    from experiment.devices import output
    from experiment.noise import lab_limits
    from experiment.tasks.noise_escape import apply_yoke, partner_phase_id, read_partner, yoked_phases
    req, proto = prepared.request, prepared.request.protocol
    cond = proto.conditions[req.condition]
    replays = yoked_phases(proto, req.condition)
    if req.yoked_to is not None:
        if cond.yoked_to is None:
            raise BadInput(f"--yoked-to: condition {req.condition!r} is not yoked in {proto.path}")
        if not is_label(req.yoked_to) or req.yoked_to == req.participant:
            raise BadInput(f"--yoked-to: {req.yoked_to!r} must be another participant's label")
    if replays:
        if req.yoked_to is None:
            raise BadInput(f"condition {req.condition!r} replays an escapable partner's noise: pass --yoked-to LABEL "
                           f"(a participant of condition {cond.yoked_to!r} whose training is complete)")
        yoke = {"partner": req.yoked_to, "phases": {}}
        for i, (phase, trials, expected) in enumerate(prepared.schedule):
            if phase not in replays:
                continue
            partner = read_partner(prepared.study, req.yoked_to, cond.yoked_to,
                                   partner_phase_id(proto, req.condition, phase), len(trials),
                                   pilot_ok=bool(req.simulate or req.pilot))
            new = apply_yoke(trials, partner)
            prepared.schedule[i] = (phase, new, sum(t["iti"] + t["noise_duration"] for t in new))
            yoke["phases"][phase.id] = {k: v for k, v in partner.items() if k != "trials"}
        prepared.yoke = yoke
    levels = proto.noise_levels(req.condition)
    if not levels:
        return
    limits = lab_limits()
    if req.simulate and req.mode == "data-only":
        prepared.calibration = {"id": None, "simulated": True,
                                "note": "data-only simulation: nothing played; levels are the protocol's dB(A)"}
        prepared.audio = {"limits": limits}
        return
    device = output.output_identity(output.configured_device())
    cal = calibration.current(device, limits, levels)
    prepared.calibration = cal
    prepared.audio = {"device": device, "calibration": cal, "limits": limits,
                      "latency_class": output.configured_latency_class()}


def _check_writable(data_dir: Path, study: Path) -> None:
    probe_dir = study if study.exists() else data_dir
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise BadInput(f"data folder {probe_dir} is not writable; choose another --data-dir or fix its permissions")
    try:
        import tempfile
        with tempfile.NamedTemporaryFile(dir=probe_dir, prefix=".lhlab-probe-"):
            pass
    except OSError as e:
        raise BadInput(f"data folder {probe_dir} is not writable ({e.strerror}); choose another --data-dir") from None
    need = float(os.environ.get("LHLAB_MIN_FREE_MB", MIN_FREE_MB_DEFAULT))
    free = shutil.disk_usage(probe_dir).free / 2**20
    if free < need:
        raise BadInput(f"data folder {probe_dir} has only {free:.0f} MB free (lhlab needs {need:.0f} MB); "
                       "free some space or choose another --data-dir")


@functools.lru_cache(maxsize=2)
def _versions(real_devices: bool) -> tuple:
    return tuple(versions_uncached(real_devices).items())


def versions(real_devices: bool) -> dict:
    """Package versions for provenance (looked up once per process)."""
    return dict(_versions(real_devices))


def versions_uncached(real_devices: bool) -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("lhlab", "numpy", "pyyaml") + (("psychopy-lib", "psychtoolbox", "pyglet") if real_devices else ()):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


class Progress:
    """One JSON object per line on `out`, for the launcher (and a human) to follow."""

    def __init__(self, out: TextIO | None, t0: float):
        self.out, self.t0 = out, t0
        self.context: dict = {}

    def __call__(self, event: str, **fields) -> None:
        if self.out is None:
            return
        msg = {"event": event, "time": round(time.time(), 4), "elapsed": round(time.monotonic() - self.t0, 3),
               **self.context, **fields}
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
            "status": "running",
            "started": now_iso(),
            "ended": None,
            "experimenter": req.experimenter or None,
            "pilot": bool(req.pilot or req.simulate),
            "simulated": ({"profile": req.simulate, "mode": req.mode, "speed": req.speed}
                          if req.simulate else None),
            "seed": self.p.seed,
            "protocol": {"file": str(proto.path.resolve()), "sha256": proto.sha256, "title": proto.title},
            "versions": versions(real_devices=self.req.mode == "visual" or not req.simulate),
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
        datafile.ensure_dataset_files(self.p.study, self.proto.title)
        os.makedirs(self.dir.parent, exist_ok=True)
        try:
            os.mkdir(self.dir)      # fails if a concurrent run took this number: never share a folder
        except FileExistsError:
            raise BadInput(f"sub-{self.label} ses-{self.p.session} was just started by another lhlab process; "
                           "nothing was written by this one") from None
        self._start_record()
        self._save()
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
        except Withdrawn:
            status, reason = "withdrawn", "participant pressed the withdraw key"
            show_goodbye = self._debrief_after_withdrawal()
        except Aborted as e:
            status, reason = "aborted", str(e) or "experimenter abort"
            show_goodbye = False
        except Exception as e:      # a bug or a device failure: keep what is on disk, say what happened
            status, reason = "crashed", f"{type(e).__name__}: {e}"
            self.record["traceback"] = traceback.format_exc()
            show_goodbye = False
        self._close_phase()
        self.record.update(status=status, ended=now_iso(),
                           exit={"status": status, "reason": reason, "code": EXIT_FOR_STATUS[status]})
        self._save()
        self._update_participants()
        self.progress("session_end", status=status, reason=reason)
        if show_goodbye:
            self._goodbye()
        return EXIT_FOR_STATUS[status]

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
        self._log = datafile.TrialLog(path, columns, durable=self.durable)
        datafile.write_new_json(path.with_suffix(".json"), self._sidecar(task, phase))
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
                           self.proto.base_dir, self.state)
        for page in phase.instructions:
            show_page(ctx, page)
        task.run(ctx, trials)
        self._close_phase()
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
        for page in self.proto.debriefing_pages:
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
