"""Noise training (Hiroto & Seligman 1975): escapable, yoked inescapable, or passive noise.

Each trial: an interval (from the previous noise's end), then unsignaled noise. Escapable:
the escape response (one key, N presses, or a key sequence) stops the noise at once and a
success light shows; with no response the noise stops at the time-out and a failure light
shows. Inescapable: the noise lasts a fixed time or, when the condition is yoked
(`yoked_to` in the protocol and `lhlab run --yoked-to P`), exactly as long as partner P's
noise did on the same trial, after exactly P's interval; responses are recorded and change
nothing. Passive: the same noise, heard without any response asked for (the Song & Vilares
2021 control). The "no noise" control group simply has no noise phase.
"""

from __future__ import annotations

from pathlib import Path

from experiment import datafile
from experiment.tasks.noise_common import KEY_RE, ResponseMatcher, parse_keys
from experiment.devices import View
from experiment.errors import BadInput, DeviceError
from experiment.noise import MAX_BURST_S, MAX_LEVEL_DBA, LabLimits, intervals, lab_limits
from experiment.tasks.base import COMMON_COLUMNS, TIME_TOL, TIMING_OK, Column, FileProblem, Param, Problem, Task

START_LEAD = 0.05       # s: the burst is handed to the device this long before its onset


def noise_params(default_level: float = 90.0) -> tuple[Param, ...]:
    return (
        Param("noise_level", "number", "noise level at the ear, dB(A) (capped by the lab limits)", default_level,
              above=0),
        Param("iti_min", "number", "shortest interval between noises (s)", 10.0, low=0),
        Param("iti_max", "number", "longest interval between noises (s)", 25.0, low=0),
        Param("iti_mean", "number", "mean interval between noises (s); every participant gets exactly this mean",
              14.0, low=0),
        Param("ramp", "number", "onset/offset ramp of each burst (s)", 0.005, low=0, high=0.1),
        Param("sound", "choice", "the aversive sound: noise (white noise) or tone (a sine at tone_hz); each is "
                                 "calibrated on its own (lhlab calibrate --sound)", "noise", choices=("noise", "tone")),
        Param("tone_hz", "number", "frequency of the tone (Hz) when sound is tone", 1000.0, low=20, high=16000),
    )


def check_noise(params: dict, burst_fields: tuple[str, ...]) -> list[Problem]:
    """Lab limits (level, burst length) and a sane interval distribution."""
    limits = lab_limits()
    problems = []
    if limits.too_loud(params["noise_level"]):
        problems.append(Problem("noise_level", f"{params['noise_level']:g} dB(A) exceeds the lab maximum of "
                                               f"{limits.max_level_dba:g} dB(A) ({limits.source} limits); "
                                               "no protocol may exceed it"))
    for f in burst_fields:
        if params.get(f) is not None and limits.too_long(params[f]):
            problems.append(Problem(f, f"a {params[f]:g} s noise burst exceeds the lab maximum of "
                                       f"{limits.max_burst_s:g} s ({limits.source} limits); no protocol may exceed it"))
    lo, hi, mean = params["iti_min"], params["iti_max"], params["iti_mean"]
    if hi < lo:
        problems.append(Problem("iti_max", f"must be >= iti_min ({lo:g} s) (got {hi:g})"))
    elif not lo <= mean <= hi:
        problems.append(Problem("iti_mean", f"must lie within iti_min..iti_max ({lo:g}-{hi:g} s) (got {mean:g})"))
    return problems


def require_noise_devices(ctx) -> None:
    """Say which phase needs the audio output before the first trial, not at its first burst."""
    if ctx.speaker.info().get("backend") == "none":
        raise DeviceError(f"phase {ctx.phase_id} plays noise but no audio output is open; "
                          "check the sound device and calibration")


OUTCOMES = {"escapable": ("escaped", "timeout"), "inescapable": ("yoked", "fixed"), "passive": ("passive",)}
LIGHTS = {"escaped": "success", "timeout": "failure"}      # escapable trials with lights on


class NoiseEscape(Task):
    name = "noise_escape"
    summary = "Aversive noise training: escapable, yoked/fixed inescapable, or passive noise."
    default_role = "training"
    yokable = True
    key_list_params = ("escape_keys",)
    params = (
        Param("mode", "choice", "escapable (a response ends the noise), inescapable (it does not; yoked when the "
                                "condition is), passive (no response asked for)", "escapable",
              choices=("escapable", "inescapable", "passive")),
        Param("n_trials", "int", "number of noise trials", 45, low=1),
        Param("timeout", "number", "escapable: the noise stops by itself after this long (s)", 5.0, above=0),
        Param("fixed_duration", "number", "inescapable/passive without a yoked partner: noise length (s) "
                                          "(default: timeout)", None, above=0),
        *noise_params(),
        Param("escape_keys", "str", "the escape response: one key, or several separated by spaces to be "
                                    "pressed in that order (e.g. 'left right left')", "space"),
        Param("escape_presses", "int", "with one escape key: how many presses end the noise", 1, low=1, high=20),
        Param("lights", "bool", "escapable: success light after an escape, failure light at the time-out", True),
        Param("light_duration", "number", "how long a light stays on (s); part of the interval", 1.0, low=0),
        Param("prompt", "text", "shown during the whole phase", "Noise trials are in progress."),
        Param("text_success", "text", "under the success light", "You stopped the noise."),
        Param("text_failure", "text", "under the failure light", "The noise was not stopped."),
        Param("yoke_phase", "str", "yoked conditions: the partner's noise phase to replay (default: the one "
                                   "escapable noise_escape phase of the partner's condition)", ""),
    )
    columns = COMMON_COLUMNS + (
        Column("mode", "Noise contingency of the phase.",
               levels={"escapable": "the response ends the noise", "inescapable": "responses change nothing",
                       "passive": "no response asked for"}),
        Column("iti", "Interval from the previous noise's end (or the phase start) to this onset.", "s"),
        Column("onset", "Session time the noise started (scheduled device start).", "s"),
        Column("offset", "Session time the noise ended (device estimate after a stop, or onset + length).", "s"),
        Column("noise_duration", "offset - onset: how long the noise played.", "s"),
        Column("planned_duration", "Length of the burst (time-out, fixed or the partner's duration).", "s"),
        Column("noise_level", "Noise level at the ear (calibrated).", "dB(A)"),
        Column("outcome", "How the noise ended.",
               levels={"escaped": "the escape response stopped it", "timeout": "time-out (not escaped)",
                       "yoked": "ended as the partner's did", "fixed": "ended after its fixed length",
                       "passive": "heard passively"}),
        Column("escape_latency", "Onset to the completing escape response (n/a if none).", "s"),
        Column("stop_command", "Session time the stop was issued after the escape response (n/a if none).", "s"),
        Column("first_press", "Onset to the first press of an escape key during the noise (n/a if none).", "s"),
        Column("presses", "Presses of escape keys during the noise."),
        Column("responses_completed", "Complete escape responses during the noise (inescapable: had no effect)."),
        Column("light", "Light shown after the noise.", levels={"success": "success", "failure": "failure",
                                                                 "none": "no light"}),
        Column("yoked_to", "Partner whose durations and intervals were replayed (n/a if not yoked)."),
        Column("partner_trial_duration", "The partner's noise duration on this trial (n/a if not yoked).", "s"),
        Column("dose_percent", "Session noise dose after this trial, % of the NIOSH daily dose.", "%"),
        Column("audio_xruns", "Output underruns during the trial (gaps in the noise; should be 0)."),
        Column("noise_seed", "Seed of this trial's noise samples."),
        TIMING_OK,
    )

    # -- validation ---------------------------------------------------------------------------
    def check(self, params, base_dir):
        problems = check_noise(params, ("timeout", "fixed_duration"))
        keys = parse_keys(params["escape_keys"])
        if not keys:
            problems.append(Problem("escape_keys", "must name at least one key"))
        for k in keys:
            if not KEY_RE.match(k):
                problems.append(Problem("escape_keys", f"{k!r} is not a key name such as 'space' or 'left'"))
        if len(keys) > 1 and params["escape_presses"] != 1:
            problems.append(Problem("escape_presses", "applies to a single escape key; with a key sequence use 1"))
        return problems

    def exposure(self, params) -> list[tuple[float, float]]:
        """Worst case: every burst to its full length."""
        length = params["timeout"] if params["mode"] == "escapable" else (params["fixed_duration"] or params["timeout"])
        return [(params["noise_level"], length * params["n_trials"])]

    def check_conditions(self, conditions, phases):
        """Every phase that replays a partner has exactly one escapable phase to replay."""
        problems = []
        for name, cond in conditions.items():
            if cond.yoked_to not in conditions:     # not yoked (or the partner is broken and reported)
                continue
            for pid in cond.phases:
                if replays(phases.get(pid)):
                    problem = replay_target(conditions, phases, name, pid)[1]
                    if problem:
                        problems.append(problem)
        return problems

    def condition_exposure(self, phase, condition, conditions, phases):
        """A replay may be as long as the partner's longest bursts: the larger of the two."""
        own = self.exposure(phase.params)
        if condition.yoked_to not in conditions or not replays(phase):
            return own
        target, problem = replay_target(conditions, phases, condition.name, phase.id)
        if problem:
            return own
        extra = sum(s for _, s in self.exposure(phases[target].params)) - sum(s for _, s in own)
        return own + [(phase.params["noise_level"], extra)] if extra > 0 else own

    def row_rules(self, v, params):
        onset, offset, length = v.num("onset"), v.num("offset"), v.num("noise_duration")
        planned = v.num("planned_duration")
        if onset is None or offset is None or length is None or planned is None:
            v.bad("noise_duration", "onset, offset, noise_duration and planned_duration are written on every trial")
            return
        if offset < onset - TIME_TOL or abs(length - (offset - onset)) > 2 * TIME_TOL:
            v.bad("noise_duration", f"must be offset - onset >= 0 (onset {onset:g}, offset {offset:g}, "
                                    f"noise_duration {length:g})")
        if length > planned + TIME_TOL:
            v.bad("noise_duration", f"{length:g} s is longer than the burst ({planned:g} s)")
        if LabLimits().too_long(planned):
            v.bad("planned_duration", f"a {planned:g} s burst exceeds the maximum of {MAX_BURST_S:g} s")
        level = v.num("noise_level")
        if level is not None and LabLimits().too_loud(level):
            v.bad("noise_level", f"{level:g} dB(A) exceeds the maximum of {MAX_LEVEL_DBA:g} dB(A)")
        mode, outcome, light = v.text("mode"), v.text("outcome"), v.text("light")
        if params and (mode != params["mode"] or level != params["noise_level"]):
            v.bad("mode", f"mode {mode} at {level} dB(A) is not the phase's {params['mode']} at "
                          f"{params['noise_level']:g} dB(A)")
        if mode in OUTCOMES and outcome not in OUTCOMES[mode]:
            v.bad("outcome", f"{mode} trials end {' or '.join(OUTCOMES[mode])} (got {outcome!r})")
        escaped = outcome == "escaped"
        if v.is_na("escape_latency") == escaped or v.is_na("stop_command") == escaped:
            v.bad("escape_latency", "escape_latency and stop_command are written exactly when the noise was escaped")
        shown = LIGHTS.get(outcome, "none") if mode == "escapable" and params.get("lights", True) else "none"
        if light != shown and (params or light != "none"):      # without params the lights may be off
            v.bad("light", f"{mode} trials that end {outcome} show the light {shown!r} (got {light!r})")
        yoked = outcome == "yoked"
        if v.is_na("yoked_to") == yoked or v.is_na("partner_trial_duration") == yoked:
            v.bad("yoked_to", "yoked_to and partner_trial_duration are written exactly on yoked trials")
        elif yoked and abs(planned - v.num("partner_trial_duration")) > TIME_TOL:
            v.bad("planned_duration", "a yoked burst is as long as the partner's noise on that trial")
        presses, completed = v.whole("presses"), v.whole("responses_completed")
        if presses is not None and completed is not None and completed > presses:
            v.bad("responses_completed", f"{completed} complete responses from {presses} presses")
        if escaped and not completed:
            v.bad("responses_completed", "an escaped trial has a complete response")
        first, latency = v.num("first_press"), v.num("escape_latency")
        if first is not None and latency is not None and first > latency + TIME_TOL:
            v.bad("first_press", f"the first press ({first:g} s) comes after the escape ({latency:g} s)")
        v.num("dose_percent")
        v.whole("audio_xruns")

    # -- schedule -----------------------------------------------------------------------------
    def plan(self, params, rng, base_dir):
        n = params["n_trials"]
        itis = intervals(n, params["iti_min"], params["iti_max"], params["iti_mean"], rng)
        length = params["timeout"] if params["mode"] == "escapable" else (params["fixed_duration"] or params["timeout"])
        return [{"iti": iti, "noise_duration": length, "noise_seed": rng.randrange(2**31)} for iti in itis]

    def expected_duration(self, params, schedule):
        return sum(t["iti"] + t["noise_duration"] for t in schedule)

    # -- running ------------------------------------------------------------------------------
    def run(self, ctx, schedule):
        require_noise_devices(ctx)
        p, spk = ctx.params, ctx.speaker
        mode = p["mode"]
        matcher = ResponseMatcher.from_params(p)
        hint = ctx.texts["withdraw_hint"]
        prev_end = ctx.clock.now()
        try:
            for n, trial in enumerate(schedule, 1):
                yoked = trial.get("yoked_to")
                length = trial["noise_duration"]
                waiting = View("noise", text=p["prompt"], footer=hint,
                               data={"trial": n, "of": len(schedule), "mode": mode, "state": "waiting",
                                     "response": matcher.spec(), "length": length})
                ctx.screen.show(waiting)
                burst = spk.prepare(p["noise_level"], length, trial["noise_seed"], ramp=p["ramp"], sound=p["sound"],
                                    tone_hz=p["tone_hz"])
                xruns = spk.xruns()
                onset_at = prev_end + trial["iti"]
                ctx.clock.wait_until(onset_at - START_LEAD)
                onset = spk.start(burst, onset_at)
                ctx.progress("trial_start", trial=n, of=len(schedule))
                deadline = onset + length
                matcher.reset()
                presses, completed, done = [], 0, None
                first = None
                while True:
                    resp = ctx.keyboard.wait_response(
                        matcher, deadline, on_complete=(lambda press: spk.stop()) if mode == "escapable" else None,
                        since=onset)
                    presses += [k for k in resp.presses if k.key in matcher.key_set and k.t >= onset]
                    first = first or resp.first
                    if resp.done is None:
                        break
                    completed += 1
                    if mode == "escapable":
                        done = resp.done
                        break
                    if ctx.clock.now() >= deadline:
                        break
                onset, offset, stop_cmd = spk.finish()
                if mode == "escapable":
                    outcome = "escaped" if done else "timeout"
                else:
                    outcome = "passive" if mode == "passive" else ("yoked" if yoked else "fixed")
                light = "none"
                if mode == "escapable" and p["lights"]:
                    light = "success" if done else "failure"
                ctx.write_row({
                    "trial": n, "mode": mode, "iti": trial["iti"], "onset": onset, "offset": offset,
                    "noise_duration": offset - onset, "planned_duration": length, "noise_level": p["noise_level"],
                    "outcome": outcome, "escape_latency": (done.t - onset) if done else None,
                    "stop_command": stop_cmd if done else None,
                    "first_press": (first.t - onset) if first is not None and first.t >= onset else None,
                    "presses": len(presses), "responses_completed": completed, "light": light,
                    "yoked_to": yoked, "partner_trial_duration": trial.get("partner_duration"),
                    "dose_percent": spk.dose_record()["dose_percent"], "noise_seed": trial["noise_seed"],
                    "audio_xruns": spk.xruns() - xruns,
                    "timing_ok": ctx.timing_ok(onset, offset, "noise"),
                })
                ctx.progress("trial", trial=n, of=len(schedule), outcome=outcome,
                             rt=round(done.t - onset, 4) if done else None)
                prev_end = offset
                if light != "none" and p["light_duration"] > 0:
                    t = ctx.screen.show(View("noise", text=p["text_success" if done else "text_failure"], light=light,
                                             footer=hint, data={"trial": n, "mode": mode, "state": "light",
                                                                "outcome": outcome}))
                    ctx.clock.wait_until(t + p["light_duration"])
        finally:
            spk.silence()


# -- yoking: replay a partner's recorded schedule ---------------------------------------------------

def replays(phase) -> bool:
    """Inescapable and passive noise phases replay the partner's noise when their condition is yoked."""
    return phase is not None and phase.task == NoiseEscape.name and phase.params["mode"] != "escapable"


def _escapable(phase) -> bool:
    return phase is not None and phase.task == NoiseEscape.name and phase.params["mode"] == "escapable"


def replay_target(conditions: dict, phases: dict, condition: str, pid: str) -> tuple[str, FileProblem | None]:
    """The partner's phase that phase `pid` of the yoked `condition` replays ("" and the reason
    when there is none): its yoke_phase, else the partner condition's one escapable noise phase."""
    partner = conditions[conditions[condition].yoked_to]
    ph = phases[pid]
    target = ph.params["yoke_phase"]
    if target:
        if target not in partner.phases:
            return "", FileProblem(("phases", pid, "yoke_phase"),
                                   f"{target!r} is not a phase of the partner condition {partner.name!r}")
    else:
        cands = [q for q in partner.phases if _escapable(phases.get(q))]
        if len(cands) != 1:
            return "", FileProblem(("conditions", condition, "yoked_to"),
                                   f"phase {pid!r} replays a partner's noise, but condition {partner.name!r} has "
                                   f"{len(cands)} escapable noise_escape phases; name one with {pid}.yoke_phase")
        target = cands[0]
    src = phases.get(target)
    if not _escapable(src):
        return "", FileProblem(("phases", pid, "yoke_phase"), f"{target!r} must be an escapable noise_escape phase")
    if src.params["n_trials"] != ph.params["n_trials"]:
        return "", FileProblem(("phases", pid, "n_trials"),
                               f"must equal the replayed phase {target!r} ({src.params['n_trials']} trials) "
                               f"(got {ph.params['n_trials']})")
    return target, None


def partner_phase_id(proto, condition: str, phase) -> str:
    """The partner condition's phase whose trials `phase` replays."""
    return replay_target(proto.conditions, proto.phases, condition, phase.id)[0]


def yoked_phases(proto, condition: str) -> list:
    """Phases of `condition` that replay a partner (inescapable/passive noise in a yoked condition)."""
    if proto.conditions[condition].yoked_to is None:
        return []
    return [proto.phases[pid] for pid in proto.conditions[condition].phases if replays(proto.phases[pid])]


def read_partner(study: Path, partner: str, partner_condition: str, phase_id: str, n_trials: int,
                 pilot_ok: bool = True) -> dict:
    """The partner's recorded intervals and durations; BadInput when missing or incomplete.
    With pilot_ok False (a real participant) a pilot or simulated partner session is refused."""
    sessions = datafile.sessions_of(study, partner)
    if not sessions:
        raise BadInput(f"--yoked-to {partner}: sub-{partner} has no session in {study}; run the partner "
                       "(an escapable participant) first")
    reasons = []
    for n, path in reversed(sessions):
        try:
            rec = datafile.read_session(path)
        except (OSError, ValueError) as e:
            reasons.append(f"ses-{n}: unreadable session record ({e})")
            continue
        if not pilot_ok and (rec.get("pilot") or rec.get("simulated")):
            reasons.append(f"ses-{n} is pilot/simulated data; a real participant is yoked to real data only")
            continue
        if rec.get("condition") != partner_condition:
            reasons.append(f"ses-{n} was condition {rec.get('condition')!r}, not {partner_condition!r}")
            continue
        phase = next((ph for ph in rec.get("phases", []) if ph.get("id") == phase_id), None)
        if phase is None or phase.get("status") != "complete":
            reasons.append(f"ses-{n}: training phase {phase_id!r} is "
                           f"{'missing' if phase is None else phase.get('status')} "
                           f"(session {rec.get('effective_status')})")
            continue
        rows, problems = datafile.read_trials(study / phase["file"])
        if problems or len(rows) != n_trials:
            reasons.append(f"ses-{n}: {phase['file']} has {len(rows)} complete trials, the replay needs {n_trials}")
            continue
        try:
            trials = [{"iti": float(r["iti"]), "duration": float(r["noise_duration"])} for r in rows]
        except (KeyError, ValueError):
            reasons.append(f"ses-{n}: {phase['file']} has no usable iti/noise_duration columns")
            continue
        return {"partner": partner, "partner_session": n, "partner_condition": partner_condition,
                "partner_phase": phase_id, "partner_file": phase["file"],
                "partner_protocol_sha256": (rec.get("protocol") or {}).get("sha256"),
                "partner_status": rec.get("effective_status"),
                "partner_total_noise_s": round(sum(t["duration"] for t in trials), 6), "trials": trials}
    raise BadInput(f"--yoked-to {partner}: no complete {phase_id!r} training to replay ("
                   + "; ".join(reasons) + ")")


def apply_yoke(schedule_trials: list[dict], partner: dict) -> list[dict]:
    out = []
    for trial, ptrial in zip(schedule_trials, partner["trials"]):
        out.append({**trial, "iti": ptrial["iti"], "noise_duration": ptrial["duration"],
                    "partner_duration": ptrial["duration"], "yoked_to": partner["partner"]})
    return out
