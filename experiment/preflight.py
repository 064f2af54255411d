"""Every check that can refuse a session, in one place, before anything is written.

`preflight(request)` runs them all and returns each verdict (what was found, or what is
wrong and how to fix it); `prepare(request)` is the same checks for `lhlab run`, raising the
first problem. `lhlab run --check` prints the preflight, and the launcher shows it (adding
only what needs a display: which screens exist). So the launcher and `lhlab run` can never
disagree about a session, and a refusal reads the same in both.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from experiment import datafile
from experiment.errors import BadInput, LhlabError, ProtocolError
from experiment.identifiers import SEED_MAX, SESSION_MAX, check_free_text, check_label, is_label
from experiment.protocol import Protocol, load_protocol, plan
from experiment.safeio import describe_os_error
from experiment.suggest import hint

MIN_FREE_MB_DEFAULT = 200      # refuse to start below this much free space in the data folder


@dataclass
class SessionRequest:
    protocol: Protocol
    participant: str | None          # None: a pilot whose label is assigned when it starts
    condition: str | None            # None: not assigned yet (checked for every condition)
    data_dir: Path
    session: int | None = None
    seed: int | None = None
    experimenter: str = ""
    simulate: str | None = None      # profile spec, or None for a real participant
    mode: str = "data-only"
    speed: float = 1.0
    yoked_to: str | None = None
    pilot: bool = False
    override_full: str | None = None  # why a new participant is added although the study is full


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


@dataclass(frozen=True)
class Check:
    name: str          # 'protocol', 'request', 'data folder', 'participant', 'yoke', 'audio calibration', ...
    ok: bool
    message: str       # on failure: what is wrong and what to do; on success: what was found


@dataclass
class Preflight:
    checks: list[Check] = field(default_factory=list)
    protocol: Protocol | None = None
    prepared: Prepared | None = None     # set when every check passed and the session is fully known
    session: int | None = None           # the session number `lhlab run` will use
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def report(self) -> str:
        lines = [f"{'OK ' if c.ok else 'NO '} {c.name}: {c.message}" for c in self.checks]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def check_protocol_file(path: Path) -> tuple[Check, Protocol | None]:
    """Load and validate a protocol file; the message carries the validator's file:line lines."""
    try:
        proto = load_protocol(path)
    except ProtocolError as e:
        return Check("protocol", False, "\n".join(e.problems)), None
    except (BadInput, OSError) as e:
        return Check("protocol", False, f"{path}: cannot be read ({e}); restore the file or choose another"), None
    return Check("protocol", True, f"{Path(path).name} is valid ({proto.study_id}, sha256 {proto.sha256[:12]})"), proto


def prepare(req: SessionRequest) -> Prepared:
    """Every check that may refuse the session, before anything is written; raises BadInput
    with the first problem (the one an experimenter fixes first)."""
    pf = preflight(req)
    if not pf.ok:
        raise BadInput(pf.problems[0].message)
    assert pf.prepared is not None
    return pf.prepared


def preflight(req: SessionRequest) -> Preflight:
    """Run every check in the order an experimenter would fix them; nothing is written."""
    result = Preflight(protocol=req.protocol)
    proto = req.protocol
    result.checks.append(_verdict("request", lambda: _check_request(req)))
    consent = _verdict("consent text", lambda: _check_consent_text(req))
    if consent.message:
        result.checks.append(consent)
    study = datafile.study_dir(req.data_dir, proto.study_id)
    result.checks.append(_verdict("data folder", lambda: _check_data_folder(Path(req.data_dir), study)))
    previous: list = []
    if req.participant is not None and is_label(req.participant):
        def history() -> str:
            msg, previous[:], result.session = _check_history(req, study)
            return msg
        result.checks.append(_verdict("participant", history))
    if not result.ok:
        return result
    if proto.planned_n and req.participant is not None and not previous:
        full = _verdict("study", lambda: _check_study_full(req, study))
        if full.message:
            result.checks.append(full)
        if not result.ok:
            return result
    else:
        req.override_full = None          # no planned n, or not a new participant: nothing to override
    seed = req.seed if req.seed is not None else secrets.randbelow(2**31)
    conditions = [req.condition] if req.condition is not None else list(proto.conditions)
    prepared = Prepared(req, study, result.session or 0, seed,
                        plan(proto, req.condition, seed) if req.condition is not None else [], previous)
    if req.condition is not None:
        yoke = _verdict("yoke", lambda: _prepare_yoke(prepared))
        if yoke.message:
            result.checks.append(yoke)
    audio = _verdict("audio calibration", lambda: _prepare_audio(prepared, conditions))
    result.checks.append(audio)
    if result.ok and req.participant is not None and req.condition is not None:
        result.prepared = prepared
    return result


def _verdict(name: str, check) -> Check:
    """Run one check: its return value is what it found; a BadInput is its refusal."""
    try:
        return Check(name, True, check() or "")
    except (BadInput, LhlabError) as e:
        return Check(name, False, str(e))
    except OSError as e:        # e.g. a --data-dir whose name is too long for the file system
        return Check(name, False, f"{e.filename or name}: {describe_os_error(e)}")


def _check_request(req: SessionRequest) -> str:
    proto = req.protocol
    if req.participant is not None:
        problem = check_label(req.participant, "--participant")
        if problem:
            raise BadInput(f"{problem}; it becomes the folder name sub-<label>")
    problem = check_free_text(req.experimenter or "", "--experimenter")
    if problem:
        raise BadInput(problem)
    if req.condition is not None and req.condition not in proto.conditions:
        raise BadInput(f"--condition: {req.condition!r} is not a condition of {proto.path}; "
                       f"{hint(req.condition, proto.conditions)}")
    if not (0 < req.speed < 1000):
        raise BadInput(f"--speed must be a number above 0 and below 1000 (got {req.speed})")
    if req.speed != 1 and not req.simulate:
        raise BadInput("--speed only applies to simulated participants (--simulate)")
    if req.simulate is None and req.mode != "data-only":
        raise BadInput("--mode applies to simulated participants only (add --simulate PROFILE)")
    if req.session is not None and not 1 <= req.session <= SESSION_MAX:
        raise BadInput(f"--session must be a whole number from 1 to {SESSION_MAX} (got {str(req.session)[:20]})")
    if req.seed is not None and not 0 <= req.seed <= SEED_MAX:
        raise BadInput(f"--seed must be a whole number from 0 to {SEED_MAX} (got {str(req.seed)[:20]})")
    if req.simulate is not None:
        from experiment.simulation.participant import parse_profile
        parse_profile(req.simulate)
    who = f"participant {req.participant}" if req.participant else "participant assigned at start"
    return f"{who}, condition {req.condition or '(assigned at start)'}" + (
        f", simulated ({req.simulate}, {req.mode})" if req.simulate else "")


PLACEHOLDER_RE = re.compile(r"\[[A-Z][A-Z -]{3,}\]")     # [LAB NAME]; not a key hint such as [Y] or [F1]


def _check_consent_text(req: SessionRequest) -> str:
    """A consent text must name who to ask before a real participant reads it: the shipped
    protocols say [LAB NAME], [E-MAIL ADDRESS] until a lab fills them in. Pilots and simulated
    participants run with the placeholders (and are told)."""
    for phase in req.protocol.phases.values():
        texts = [phase.params.get("contact") or "", *(phase.params.get("pages") or [])] \
            if phase.task == "consent" else []
        names = sorted({m for t in texts if isinstance(t, str) for m in PLACEHOLDER_RE.findall(t)})
        if not names:
            continue
        where = f"{req.protocol.path}:{phase.line}: phases.{phase.id}: the consent text still says {', '.join(names)}"
        if req.pilot or req.simulate is not None:
            return f"{where} (fine for a pilot; write your lab's contact in before real participants)"
        raise BadInput(f"{where}: write your lab's contact (lab, responsible researcher, e-mail) into `contact` "
                       "in your copy of the protocol before real participants read it; pilots (--pilot) run as is")
    return ""


def min_free_mb() -> float:
    try:
        return float(os.environ.get("LHLAB_MIN_FREE_MB", MIN_FREE_MB_DEFAULT))
    except ValueError:
        return float(MIN_FREE_MB_DEFAULT)


def _check_data_folder(data_dir: Path, study: Path) -> str:
    probe = study if study.exists() else data_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise BadInput(f"data folder {probe} is not a folder; choose another --data-dir")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise BadInput(f"data folder {probe} is not writable; choose another --data-dir or fix its permissions")
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".lhlab-probe-"):
            pass
    except OSError as e:
        raise BadInput(f"data folder {probe} is not writable ({e.strerror}); choose another --data-dir") from None
    need = min_free_mb()
    free = shutil.disk_usage(probe).free / 2**20
    if free < need:
        raise BadInput(f"data folder {probe} has only {free:.0f} MB free (lhlab needs {need:.0f} MB); "
                       "free some space or choose another --data-dir")
    return f"{study} is writable, {free / 1024:.1f} GB free"


def _check_history(req: SessionRequest, study: Path) -> tuple[str, list, int]:
    """The participant's earlier sessions on disk (the truth): none running, none complete,
    withdrawn or declined, same condition. Returns (what was found, the records, the session number)."""
    previous = []
    label = req.participant
    for n, path in datafile.sessions_of(study, label):
        try:
            rec = datafile.read_session(path)
        except (OSError, ValueError):
            rec = {"session": n, "effective_status": "crashed", "condition": None}
        previous.append(rec)
        if rec.get("effective_status") == "running":
            raise BadInput(f"sub-{label} ses-{n} is still running (pid {(rec.get('process') or {}).get('pid')}); "
                           "wait for it to end or abort it first")
        if req.condition and rec.get("condition") and rec["condition"] != req.condition:
            raise BadInput(f"sub-{label} was run in condition {rec['condition']!r} (ses-{n}); "
                           f"--condition {req.condition!r} would mix conditions. Use a new participant label")
    used = {rec.get("session") for rec in previous} | {n for n, _ in datafile.sessions_of(study, label)}
    used.discard(None)
    if req.session is not None:
        if req.session in used:
            raise BadInput(f"sub-{label} ses-{req.session} already has data in {study}; "
                           "nothing is overwritten: choose another session number or participant")
        session = req.session
    else:
        done = [r for r in previous if r.get("effective_status") in ("complete", "withdrawn", "declined")]
        if done:
            r = done[-1]
            raise BadInput(f"sub-{label} already has a {r['effective_status']} session (ses-{r.get('session')}) "
                           f"in {study}; a person takes part once: use a new participant label, or pass "
                           f"--session {max(used) + 1} to add a session on purpose")
        session = max(used, default=0) + 1
    if previous:
        last = previous[-1]
        return (f"sub-{label}: ses-{last.get('session')} ended {last.get('effective_status')}; "
                f"this will be session {session}", previous, session)
    return f"sub-{label}: first session (ses-{session})", previous, session


def _check_study_full(req: SessionRequest, study: Path) -> str:
    """A new participant of a study whose every condition reached its planned n (study.planned_n)
    is refused unless --override-full gives a reason (logged). Counts are the registry's."""
    from experiment.registry import Registry
    from experiment.registry.live import full_message, is_full
    if req.override_full is not None:
        problem = check_free_text(req.override_full, "--override-full") or \
            (None if req.override_full.strip() else "--override-full needs a reason, e.g. 'replaces P004'")
        if problem:
            raise BadInput(problem)
    try:
        if not Registry.exists(study):
            req.override_full = None      # nothing to override: nothing to log
            return ""
        with Registry.open(study) as reg:
            known = {p.label for p in reg.participants()}
            progress = reg.progress_by_condition()
    except BadInput as e:         # the server is down: a session never waits for it
        return f"planned n not checked ({e})"
    planned = {c: (progress.get(c, (0, None))[0], n) for c, n in req.protocol.planned_n.items()}
    planned.update({c: (done, None) for c, (done, _) in progress.items() if c not in planned})
    if req.participant in known or not is_full(planned):
        req.override_full = None  # registered before the study filled up, or not full: nothing overridden
        return ""
    if req.override_full is None:
        raise BadInput(full_message(req.protocol.study_id, planned, "pass --override-full REASON"))
    return f"study full; sub-{req.participant} added anyway: {req.override_full.strip()}"


def _prepare_yoke(prepared: Prepared) -> str:
    """A yoked condition: the partner's recorded noise schedule replaces the drawn one (refused
    when the partner is missing or incomplete). Returns '' where nothing is yoked."""
    from experiment.tasks.noise_escape import apply_yoke, partner_phase_id, read_partner, yoked_phases
    req, proto = prepared.request, prepared.request.protocol
    cond = proto.conditions[req.condition]
    replays = yoked_phases(proto, req.condition)
    if req.yoked_to is not None:
        if cond.yoked_to is None:
            raise BadInput(f"--yoked-to: condition {req.condition!r} is not yoked in {proto.path}")
        if not is_label(req.yoked_to) or req.yoked_to == req.participant:
            raise BadInput(f"--yoked-to: {req.yoked_to!r} must be another participant's label")
    if not replays:
        return ""
    if req.yoked_to is None:
        raise BadInput(f"condition {req.condition!r} replays an escapable partner's noise: pass --yoked-to LABEL "
                       f"(a participant of condition {cond.yoked_to!r} whose training is complete)")
    yoke = {"partner": req.yoked_to, "phases": {}}
    for i, (phase, trials, expected) in enumerate(prepared.schedule):
        if phase not in replays:
            continue
        args = (req.yoked_to, cond.yoked_to, partner_phase_id(proto, req.condition, phase), len(trials))
        if datafile.sessions_of(prepared.study, req.yoked_to):
            partner = read_partner(prepared.study, *args, pilot_ok=bool(req.simulate or req.pilot))
        else:                    # the partner ran on another station: their schedule is in the registry
            partner = _partner_from_registry(prepared.study, *args, pilot_ok=bool(req.simulate or req.pilot))
        new = apply_yoke(trials, partner)
        prepared.schedule[i] = (phase, new, sum(t["iti"] + t["noise_duration"] for t in new))
        yoke["phases"][phase.id] = {k: v for k, v in partner.items() if k != "trials"}
    prepared.yoke = yoke
    elsewhere = {p.get("partner_station") for p in yoke["phases"].values() if p.get("source") == "registry"}
    return f"yoked to sub-{req.yoked_to} (training complete" + (
        f", schedule from the registry, run on {', '.join(sorted(map(str, elsewhere)))})" if elsewhere else ")")


def _partner_from_registry(study: Path, partner: str, partner_condition: str, phase_id: str, n_trials: int,
                           pilot_ok: bool) -> dict:
    from experiment.registry import Registry, partner as partners
    if not Registry.exists(study):
        raise BadInput(f"--yoked-to {partner}: sub-{partner} has no session in {study} and this study has no "
                       "registry to look them up in; run the partner (an escapable participant) first")
    with Registry.open(study) as reg:
        return partners.read(reg, partner, partner_condition, phase_id, n_trials, pilot_ok)


def _prepare_audio(prepared: Prepared, conditions: list[str]) -> str:
    """Noise protocols: the calibration in force for this PC's configured output, valid for
    every level the session plays (refused without one, too old, or with too little headroom)."""
    from experiment import calibration
    from experiment.devices import output
    from experiment.noise import lab_limits
    req, proto = prepared.request, prepared.request.protocol
    levels = sorted({lv for c in conditions for lv in proto.noise_levels(c)})
    if not levels:
        return "not needed (no noise in this session)"
    limits = lab_limits()
    if req.simulate and req.mode == "data-only":
        prepared.calibration = {"id": None, "simulated": True,
                                "note": "data-only simulation: nothing played; levels are the protocol's dB(A)"}
        prepared.audio = {"limits": limits}
        return "not needed (data-only simulation plays nothing)"
    device = output.output_identity(output.configured_device())
    cal = calibration.current(device, limits, levels, sound=proto.noise_sound() or "noise")
    prepared.calibration = cal
    prepared.audio = {"device": device, "calibration": cal, "limits": limits,
                      "latency_class": output.configured_latency_class()}
    return f"calibration {cal.get('id')} for {device.get('pulse_sink') or device.get('device')}"
