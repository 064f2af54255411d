"""Devices without hardware: a virtual clock that jumps to the next event, a screen that
records what would be drawn, a keyboard fed by a simulated participant, a speaker that plays
nothing but accounts onsets, offsets and dose exactly as the real one does, and the speaker of
sessions that play no noise. No PsychoPy here, so data-only simulation starts fast.

The participant (experiment.simulation.participant.SimulatedParticipant) is the policy; these
devices only deliver its answers at the times it chose.
"""

from __future__ import annotations

from experiment.devices.seam import Burst, KeyPress, Response, View
from experiment.errors import Aborted, DeviceError, Withdrawn
from experiment.noise import DoseMeter, check_level, lab_limits


class NoSpeaker:
    """The speaker of a session that plays no noise: every request to play is refused."""

    def info(self) -> dict:
        return {"backend": "none"}

    def prepare(self, level_dba, seconds, seed, ramp=0.005, sound="noise", tone_hz=None) -> Burst:
        raise DeviceError("this session opened no audio output (its protocol plays no noise)")

    def start(self, burst, at=None) -> float:
        raise DeviceError("this session opened no audio output (its protocol plays no noise)")

    def stop(self) -> float:
        return 0.0

    def finish(self):
        return None, None, None

    def silence(self) -> None:
        pass

    def dose_record(self) -> dict | None:
        return None

    def xruns(self) -> int:
        return 0

    def timing(self) -> dict:
        return {"audited": False, "backend": "none"}

    def close(self) -> None:
        pass


class VirtualClock:
    def __init__(self, stop_flag=None):
        self.t = 0.0
        self.stop_flag = stop_flag

    def now(self) -> float:
        return self.t

    def wait_until(self, t: float) -> None:
        _check_stop(self.stop_flag)
        self.t = max(self.t, t)


def _check_stop(stop_flag) -> None:
    if stop_flag is not None and stop_flag.is_set():
        raise Aborted("stop requested")


class RecordingScreen:
    def __init__(self, clock: VirtualClock, participant):
        self.clock, self.participant = clock, participant
        self.shown: list[tuple[float, View]] = []
        self.keep = False    # tests switch this on to inspect what was drawn

    def show(self, view: View) -> float:
        if self.keep:
            self.shown.append((self.clock.t, view))
        self.participant.see(view, self.clock.t)
        return self.clock.t

    def begin_phase(self, phase_id: str, role: str) -> None:
        self.participant.enter_phase(role)

    def info(self) -> dict:
        return {"backend": "simulated", "mode": "data-only"}

    def frames_lost(self, start: float, end: float, window: str) -> int | None:
        return None          # no frames: the rows say n/a, never a made-up "ok"

    def timing(self) -> dict:
        return {"audited": False, "reason": "data-only simulation: no window, no frames"}

    def frame_log(self) -> bytes | None:
        return None

    def frame_record(self, path) -> str | None:
        return None          # no frames, no file


class SimulatedKeyboard:
    def __init__(self, clock: VirtualClock, participant, keys: dict, stop_flag=None):
        self.clock, self.participant, self.keys, self.stop_flag = clock, participant, keys, stop_flag

    def _deliver(self, got, until):
        _check_stop(self.stop_flag)
        if got is None:
            if until is None:
                raise RuntimeError("simulated participant never answers an open-ended wait")
            self.clock.t = max(self.clock.t, until)
            return None
        self.clock.t = max(self.clock.t, got.t)
        if isinstance(got, KeyPress) and got.key == self.keys["withdraw"]:
            raise Withdrawn("withdraw key")
        return got

    def wait_key(self, keys, until=None, since=None):
        return self._deliver(self.participant.press(list(keys), self.clock.t, until), until)

    def read_text(self, until, view, extra_keys=(), since=None):
        return self._deliver(self.participant.answer_text(self.clock.t, until, list(extra_keys)), until)

    def wait_response(self, matcher, until, on_complete=None, since=None):
        """The participant's planned presses up to `until`, fed to `matcher` (see experiment.devices.seam.Keyboard)."""
        _check_stop(self.stop_flag)

        def advance(t: float) -> float:
            self.clock.t = max(self.clock.t, t)
            return self.clock.t
        return deliver_planned(self.participant, matcher, until, on_complete,
                               self.clock.t if since is None else since, advance, self.keys["withdraw"])


def deliver_planned(participant, matcher, until, on_complete, since, advance, withdraw_key):
    """Shared by the data-only and the visual simulation: deliver the participant's planned
    presses in time order (`advance(t)` waits until t and returns the time it is now)."""
    pending = participant.presses(matcher, since, until)
    resp = Response(None)
    while pending and pending[0].t < until:
        planned = pending.pop(0)
        press = KeyPress(planned.key, advance(planned.t))
        if press.key == withdraw_key:
            raise Withdrawn("withdraw key (simulated)")
        if press.t < since:
            continue
        resp.presses.append(press)
        if press.key in matcher.key_set and resp.first is None:
            resp.first = press
        if matcher.feed(press):
            resp.done = press
            if on_complete is not None:
                on_complete(press)
            participant.response_result(True, on_complete is not None)
            view = participant.view
            if view is not None and view.kind == "noise" and on_complete is not None:
                participant.noise_trial_end(view.data.get("mode", ""), True)
            return resp
    now = advance(until)
    view = participant.view
    if view is not None and view.kind == "noise" and now >= until:
        participant.noise_trial_end(view.data.get("mode", ""), False)    # the noise ran to its end
    return resp


class SilentSpeaker:
    """Data-only noise: nothing is played; onsets, offsets and the dose are computed from the
    protocol's levels and the virtual clock, exactly as the real speaker accounts them."""

    def __init__(self, clock: VirtualClock | None = None, limits=None):
        self.clock = clock
        self.limits = limits or lab_limits()
        self.meter = DoseMeter()
        self.bursts: list[dict] = []      # what would have played (tests inspect it)
        self._burst = self._onset = self._stop = None

    def info(self) -> dict:
        return {"backend": "simulated"}

    def prepare(self, level_dba, seconds, seed, ramp=0.005, sound="noise", tone_hz=None) -> Burst:
        check_level(level_dba, seconds, self.limits)
        return Burst(level_dba, seconds, seed, sound=sound, tone_hz=tone_hz)

    def start(self, burst: Burst, at: float) -> float:
        self.silence()
        self.clock.t = max(self.clock.t, at)
        self._burst, self._onset, self._stop = burst, self.clock.t, None
        return self._onset

    def stop(self) -> float:
        if self._burst is not None and self._stop is None:
            self._stop = min(self.clock.t, self._onset + self._burst.seconds)
        return self.clock.t

    def finish(self):
        """(onset, offset, stop command) of the last burst; accounts its dose once."""
        if self._burst is None:
            return None, None, None
        offset = self._stop if self._stop is not None else self._onset + self._burst.seconds
        offset = max(self._onset, offset)
        self.meter.add(self._burst.level_dba, offset - self._onset)
        self.bursts.append({"onset": self._onset, "offset": offset, "level_dba": self._burst.level_dba,
                            "seed": self._burst.seed})
        out = (self._onset, offset, self._stop)
        self._burst = None
        return out

    def silence(self) -> None:
        if self._burst is not None:
            self.stop()
            self.finish()

    def dose_record(self) -> dict:
        return self.meter.record()

    def xruns(self) -> int:
        return 0

    def timing(self) -> dict:
        return {"audited": False, "backend": "simulated", "bursts": len(self.bursts)}

    def close(self) -> None:
        self.silence()


def data_only_devices(participant, keys: dict, stop_flag=None):
    clock = VirtualClock(stop_flag)
    return (clock, RecordingScreen(clock, participant), SimulatedKeyboard(clock, participant, keys, stop_flag),
            SilentSpeaker(clock))
