"""Shuttle escape-avoidance test on a keyboard (the "finger shuttlebox", Hiroto 1974).

A marker sits on the left or the right of the screen. Each trial: a warning signal (a
light), then noise. The shuttle response is the key on the side opposite to the marker,
which moves the marker across. Shuttling during the warning avoids the noise; during the
noise it escapes (the noise stops at once); no shuttle within the window is a failure and
the noise stops at the window's end. Pressing the key on the marker's own side does
nothing (counted as a wrong press).

Measures per trial: `outcome` (avoid / escape / fail) and `latency` (warning onset to the
shuttle; failures scored at the window's end, warning + noise window), the columns the
analysis reads for task "shuttle".
"""

from __future__ import annotations

from experiment.tasks.noise_common import KEY_RE, ResponseMatcher
from experiment.devices import View
from experiment.noise import intervals
from experiment.noise import MAX_BURST_S, MAX_LEVEL_DBA, LabLimits
from experiment.tasks.base import COMMON_COLUMNS, TIME_TOL, TIMING_OK, Column, Param, Problem, Task
from experiment.tasks.noise_escape import START_LEAD, check_noise, noise_params, require_noise_devices


class Shuttle(Task):
    name = "shuttle"
    summary = "Escape-avoidance test: warning light, then noise; shuttle the marker to avoid or escape."
    default_role = "test"
    params = (
        Param("n_trials", "int", "number of test trials", 20, low=1),
        Param("warning", "number", "warning signal before the noise (s); shuttling now avoids the noise", 5.0,
              above=0),
        Param("noise_window", "number", "noise time; shuttling now escapes, none is a failure (s)", 5.0, above=0),
        *noise_params(),
        Param("left_key", "key", "key that moves the marker to the left", "left"),
        Param("right_key", "key", "key that moves the marker to the right", "right"),
        Param("start_side", "choice", "marker side at the first trial", "left", choices=("left", "right")),
        Param("feedback_duration", "number", "outcome message after each trial (s; 0: none); part of the interval",
              1.0, low=0),
        Param("prompt", "text", "shown during the whole test",
              "Move the marker to the other side with the arrow keys."),
        Param("text_warning", "text", "shown with the warning light", "WARNING"),
        Param("text_avoid", "text", "after an avoidance", "Noise avoided."),
        Param("text_escape", "text", "after an escape", "Noise stopped."),
        Param("text_fail", "text", "after a failure", "The noise was not stopped."),
        Param("criterion_run", "int", "consecutive avoidances that reach criterion (0: none)", 3, low=0),
    )
    columns = COMMON_COLUMNS + (
        Column("iti", "Interval from the previous trial's end to this warning onset.", "s"),
        Column("side_before", "Marker side at the warning onset."),
        Column("shuttle_key", "The key that shuttles on this trial (the side opposite the marker)."),
        Column("warning_onset", "Session time the warning signal appeared.", "s"),
        Column("noise_onset", "Session time the noise started (n/a after an avoidance).", "s"),
        Column("noise_offset", "Session time the noise ended (n/a after an avoidance).", "s"),
        Column("noise_duration", "How long the noise played (0 after an avoidance).", "s"),
        Column("noise_level", "Noise level at the ear (calibrated).", "dB(A)"),
        Column("outcome", "Result of the trial.",
               levels={"avoid": "shuttled during the warning: no noise", "escape": "shuttled during the noise",
                       "fail": "no shuttle within the window"}),
        Column("latency", "Warning onset to the shuttle; failures scored at the window's end "
                          "(warning + noise window).", "s"),
        Column("escape_latency", "Noise onset to the shuttle (escapes only).", "s"),
        Column("stop_command", "Session time the stop was issued after an escape.", "s"),
        Column("wrong_presses", "Presses of the key on the marker's own side during the trial."),
        Column("avoid_run", "Consecutive avoidances up to this trial."),
        Column("criterion_reached", "1 from the trial where criterion was reached on."),
        Column("dose_percent", "Session noise dose after this trial, % of the NIOSH daily dose.", "%"),
        Column("audio_xruns", "Output underruns during the trial (gaps in the noise; should be 0)."),
        Column("noise_seed", "Seed of this trial's noise samples."),
        TIMING_OK,
    )

    def check(self, params, base_dir):
        problems = check_noise(params, ("noise_window",))
        if params["left_key"] == params["right_key"]:
            problems.append(Problem("right_key", "must differ from left_key"))
        if params["criterion_run"] > params["n_trials"]:
            problems.append(Problem("criterion_run", f"longer than the test ({params['n_trials']} trials)"))
        for f in ("left_key", "right_key"):
            if not KEY_RE.match(params[f]):
                problems.append(Problem(f, "must be a key name"))
        return problems

    def exposure(self, params) -> list[tuple[float, float]]:
        return [(params["noise_level"], params["noise_window"] * params["n_trials"])]

    def row_rules(self, v, params):
        outcome, warn, latency = v.text("outcome"), v.num("warning_onset"), v.num("latency")
        on, off, length = v.num("noise_onset"), v.num("noise_offset"), v.num("noise_duration")
        if warn is None or latency is None or length is None:
            v.bad("latency", "warning_onset, latency and noise_duration are written on every trial")
            return
        if on is None:
            if outcome != "avoid" or length != 0 or off is not None:
                v.bad("noise_onset", f"only an avoided trial has no noise (outcome {outcome}, "
                                     f"noise_duration {length:g})")
        elif off is None or off < on - TIME_TOL or abs(length - (off - on)) > 2 * TIME_TOL or on < warn - TIME_TOL:
            v.bad("noise_duration", f"must be noise_offset - noise_onset >= 0, after the warning (warning {warn:g}, "
                                    f"noise {on:g}-{off}, noise_duration {length:g})")
        if LabLimits().too_long(length):
            v.bad("noise_duration", f"a {length:g} s burst exceeds the maximum of {MAX_BURST_S:g} s")
        level = v.num("noise_level")
        if level is not None and LabLimits().too_loud(level):
            v.bad("noise_level", f"{level:g} dB(A) exceeds the maximum of {MAX_LEVEL_DBA:g} dB(A)")
        escaped = outcome == "escape"
        if v.is_na("escape_latency") == escaped or v.is_na("stop_command") == escaped:
            v.bad("escape_latency", "escape_latency and stop_command are written exactly when the noise was escaped")
        elif escaped and on is not None and abs(latency - (on - warn + v.num("escape_latency"))) > TIME_TOL:
            v.bad("latency", f"an escape's latency is the warning (noise_onset - warning_onset) plus the "
                             f"escape_latency (got {latency:g})")
        if params:
            if level != params["noise_level"]:
                v.bad("noise_level", f"{level} dB(A) is not the phase's {params['noise_level']:g} dB(A)")
            if length > params["noise_window"] + TIME_TOL:
                v.bad("noise_duration", f"{length:g} s is longer than the noise window ({params['noise_window']:g} s)")
            if outcome == "avoid" and latency > params["warning"] + TIME_TOL:
                v.bad("latency", f"an avoidance comes within the warning ({params['warning']:g} s) (got {latency:g})")
            if outcome == "fail" and abs(latency - params["warning"] - params["noise_window"]) > TIME_TOL:
                v.bad("latency", "a failure is scored at the end of the window (warning + noise_window)")
            side = v.text("side_before")
            opposite = {"left": params["right_key"], "right": params["left_key"]}
            if side in opposite and v.text("shuttle_key") != opposite[side]:
                v.bad("shuttle_key", f"the shuttle key is the key of the side opposite the marker ({side})")
        if v.text("side_before") not in ("left", "right"):
            v.bad("side_before", f"must be left or right (got {v.text('side_before')!r})")
        run = v.whole("avoid_run")
        if run is not None and (run >= 1) != (outcome == "avoid"):
            v.bad("avoid_run", f"counts consecutive avoidances up to this trial (outcome {outcome}, run {run})")
        if v.whole("criterion_reached") not in (0, 1, None):
            v.bad("criterion_reached", "must be 0 or 1")
        v.whole("wrong_presses")
        v.num("dose_percent")
        v.whole("audio_xruns")

    def plan(self, params, rng, base_dir):
        itis = intervals(params["n_trials"], params["iti_min"], params["iti_max"], params["iti_mean"], rng)
        return [{"iti": iti, "noise_seed": rng.randrange(2**31)} for iti in itis]

    def expected_duration(self, params, schedule):
        return sum(t["iti"] + params["warning"] + params["noise_window"] for t in schedule)

    def run(self, ctx, schedule):
        require_noise_devices(ctx)
        p, spk = ctx.params, ctx.speaker
        keys = {"left": p["left_key"], "right": p["right_key"]}
        side = p["start_side"]
        hint = ctx.texts["withdraw_hint"]
        run, reached = 0, False
        prev_end = ctx.clock.now()
        try:
            for n, trial in enumerate(schedule, 1):
                other = "right" if side == "left" else "left"
                matcher = ResponseMatcher([keys[other]])
                base = {"trial": n, "of": len(schedule), "side": side, "shuttle_key": keys[other],
                        "keys": dict(keys), "warning": p["warning"], "window": p["noise_window"]}
                ctx.screen.show(View("shuttle", text=p["prompt"], footer=hint, marker=0 if side == "left" else 1,
                                     data={**base, "state": "waiting"}))
                burst = spk.prepare(p["noise_level"], p["noise_window"], trial["noise_seed"], ramp=p["ramp"],
                                    sound=p["sound"], tone_hz=p["tone_hz"])
                ctx.clock.wait_until(prev_end + trial["iti"])
                xruns = spk.xruns()
                warn = ctx.screen.show(View("shuttle", text=p["text_warning"], footer=hint, light="warning",
                                            marker=0 if side == "left" else 1, data={**base, "state": "warning"}))
                ctx.progress("trial_start", trial=n, of=len(schedule))
                matcher.reset()
                wrong = 0
                resp = ctx.keyboard.wait_response(matcher, warn + p["warning"] - START_LEAD, since=warn)
                wrong += sum(1 for k in resp.presses if k.key == keys[side])
                noise_on = noise_off = stop_cmd = None
                shuttle = resp.done
                if shuttle is None:
                    noise_on = spk.start(burst, warn + p["warning"])
                    resp = ctx.keyboard.wait_response(matcher, noise_on + p["noise_window"],
                                                      on_complete=lambda press: spk.stop(), since=warn)
                    wrong += sum(1 for k in resp.presses if k.key == keys[side])
                    shuttle = resp.done
                    noise_on, noise_off, stop_cmd = spk.finish()
                if shuttle is None:
                    outcome = "fail"
                elif shuttle.t < warn + p["warning"]:
                    outcome = "avoid"       # also in the last START_LEAD of the warning: the start is cancelled
                else:
                    outcome = "escape"
                latency = (shuttle.t - warn) if shuttle else p["warning"] + p["noise_window"]
                if shuttle:
                    side = other
                run = run + 1 if outcome == "avoid" else 0
                if p["criterion_run"] and run >= p["criterion_run"]:
                    reached = True
                ctx.write_row({
                    "trial": n, "iti": trial["iti"], "side_before": base["side"], "shuttle_key": base["shuttle_key"],
                    "warning_onset": warn, "noise_onset": noise_on, "noise_offset": noise_off,
                    "noise_duration": (noise_off - noise_on) if noise_on is not None else 0.0,
                    "noise_level": p["noise_level"], "outcome": outcome, "latency": latency,
                    "escape_latency": (shuttle.t - noise_on) if outcome == "escape" else None,
                    "stop_command": stop_cmd if outcome == "escape" else None, "wrong_presses": wrong,
                    "avoid_run": run, "criterion_reached": int(reached),
                    "dose_percent": spk.dose_record()["dose_percent"], "noise_seed": trial["noise_seed"],
                    "audio_xruns": spk.xruns() - xruns,
                    "timing_ok": ctx.timing_ok(warn, ctx.clock.now(), "noise"),
                })
                ctx.progress("trial", trial=n, of=len(schedule), outcome=outcome, rt=round(latency, 4))
                prev_end = noise_off if noise_off is not None else (shuttle.t if shuttle else ctx.clock.now())
                text = {"avoid": p["text_avoid"], "escape": p["text_escape"], "fail": p["text_fail"]}[outcome]
                if p["feedback_duration"] > 0:
                    # a feedback screen, as after an anagram: large text where the eye is, not the
                    # prompt's small line under the light (the marker is back on the next screen)
                    t = ctx.screen.show(View("feedback", text=text, footer=hint, marker=0 if side == "left" else 1,
                                             data={**base, "side": side, "state": "feedback", "outcome": outcome}))
                    ctx.clock.wait_until(t + p["feedback_duration"])
        finally:
            spk.silence()
