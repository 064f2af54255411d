"""Simulated participants and the devices they use in `data-only` mode.

A simulated participant is a policy: it sees every View the task shows and answers through
the Keyboard interface, at times drawn from its profile. In data-only mode a virtual clock
jumps from event to event, so a whole session takes milliseconds; in visual mode the same
participant answers through the real window (see psychopy_devices.SimulatedInput).

The helplessness model: during training the participant notes how often it tried and failed
(time-outs on anagrams it could not solve). Afterwards its helplessness h is
`helplessness_effect * failure_share`; in the test phase solving is slower by a factor
(1 + slowing * h) and the chance to notice the letter pattern drops by (1 - h). With
helplessness_effect = 0 the groups differ only by chance.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields, replace

from experiment.devices import KeyPress, TextEntry, View
from experiment.errors import Aborted, BadInput, Withdrawn


@dataclass(frozen=True)
class Profile:
    name: str = "default"
    solve_median: float = 22.0       # s, median time to find a known word
    solve_sigma: float = 0.8         # log-normal spread of solving times
    insight_prob: float = 0.35       # chance per consistent solution to notice the letter pattern
    insight_median: float = 4.5      # s, median solving time once the pattern is known
    typing_speed: float = 4.0        # characters per second
    typo_rate: float = 0.05          # chance to submit a wrong word before the right one
    reading_median: float = 5.0      # s per instruction page
    persistence: float = 40.0        # s, mean time before skipping (only where skipping is allowed)
    helplessness_effect: float = 0.6 # 0..1: how much uncontrollable training lowers performance
    slowing: float = 1.5             # solving time factor per unit of helplessness
    withdraw_rate: float = 0.0       # chance per trial to press the withdraw key


PROFILES = {
    "default": Profile(),
    "no-effect": Profile(name="no-effect", helplessness_effect=0.0),
    "strong": Profile(name="strong", helplessness_effect=0.95),
    "withdrawer": Profile(name="withdrawer", withdraw_rate=0.05),
}


def parse_profile(spec: str) -> Profile:
    """'default' or 'default,helplessness_effect=0.3,solve_median=15'."""
    name, *overrides = [s.strip() for s in spec.split(",")]
    if name not in PROFILES:
        raise BadInput(f"--simulate: unknown profile {name!r}; known: {', '.join(PROFILES)}")
    prof = PROFILES[name]
    types = {f.name: f.type for f in fields(Profile)}
    changes = {}
    for ov in overrides:
        key, _, value = ov.partition("=")
        if key not in types or key == "name" or not value:
            raise BadInput(f"--simulate: {ov!r} is not PARAM=VALUE with a profile parameter "
                           f"({', '.join(k for k in types if k != 'name')})")
        try:
            changes[key] = float(value)
        except ValueError:
            raise BadInput(f"--simulate: {key} must be a number (got {value!r})") from None
        if changes[key] < 0:
            raise BadInput(f"--simulate: {key} must be >= 0 (got {value})")
    if changes:
        prof = replace(prof, name=spec, **changes)
    return prof


class SimulatedParticipant:
    """The policy. Methods return when (session time) and what it answers."""

    def __init__(self, profile: Profile, rng: random.Random, vocabulary: set[str], keys: dict):
        self.p, self.rng, self.keys = profile, rng, keys
        self.lexicon = {"".join(sorted(w)): w for w in vocabulary}
        self.view: View | None = None
        self.role = "instructions"
        self.tried = self.failed = 0          # training experience
        self.helplessness = 0.0
        self.pattern: tuple[int, ...] | None = None   # noticed letter order
        self.last_perm: tuple[int, ...] | None = None
        self.trial_plan: dict = {}

    # -- what it sees -------------------------------------------------------------------
    def enter_phase(self, role: str) -> None:
        if self.role == "training" and role != "training":
            share = self.failed / self.tried if self.tried else 0.0
            self.helplessness = min(1.0, self.p.helplessness_effect * share)
        self.role = role

    def see(self, view: View, t: float) -> None:
        if view.kind == "anagram" and (self.view is None or self.view.letters != view.letters
                                        or self.view.kind != "anagram"):
            self.trial_plan = self._plan_anagram(view.letters.lower(), t)
        if view.kind == "feedback" and self.role == "training":
            self.tried += 1
            self.failed += view.data.get("outcome") != "solved"
        self.view = view

    # -- how it answers -----------------------------------------------------------------
    def _withdraws(self) -> bool:
        return self.p.withdraw_rate > 0 and self.rng.random() < self.p.withdraw_rate

    def _plan_anagram(self, letters: str, onset: float) -> dict:
        word = self.lexicon.get("".join(sorted(letters)))
        slow = 1 + self.p.slowing * self.helplessness if self.role == "test" else 1.0
        slow *= (len(letters) / 5) ** 2      # shorter words are found faster
        plan = {"word": word, "letters": letters, "onset": onset, "typo": self.rng.random() < self.p.typo_rate,
                "withdraw": self._withdraws()}
        if word and self.pattern and len(self.pattern) == len(letters):
            guess = "".join(letters[self.pattern.index(i + 1)] for i in range(len(letters)))
            if guess == word:
                plan["solve_at"] = onset + self.rng.lognormvariate(math.log(self.p.insight_median), 0.4)
                return plan
        if word:
            plan["solve_at"] = onset + self.rng.lognormvariate(math.log(self.p.solve_median * slow), self.p.solve_sigma)
        plan["give_up_at"] = onset + self.rng.expovariate(1 / max(0.1, self.p.persistence * (1 - self.helplessness)))
        return plan

    def answer_text(self, now: float, until: float, skip_keys: list[str]):
        """Next thing typed: TextEntry, KeyPress (skip/withdraw) or None if nothing before `until`."""
        plan = self.trial_plan
        if plan.get("withdraw"):
            t = plan["onset"] + self.rng.uniform(0.5, 5.0)
            if t < until:
                return KeyPress(self.keys["withdraw"], max(now, t))
        word = plan.get("word")
        solve_at = plan.get("solve_at")
        if word and solve_at is not None and plan.pop("typo", False):
            wrong = word[::-1] if word[::-1] != word else word + "s"
            t = max(now, solve_at - 2.0)
            if t < until:
                return TextEntry(wrong, t, t - len(wrong) / self.p.typing_speed)
        if solve_at is not None and solve_at < until:
            t = max(now, solve_at)
            self._learn(plan["letters"], word)
            return TextEntry(word, t, t - len(word) / self.p.typing_speed)
        if skip_keys and plan.get("give_up_at", math.inf) < until:
            return KeyPress(skip_keys[0], max(now, plan["give_up_at"]))
        return None

    def _learn(self, letters: str, word: str) -> None:
        """Notice a repeating letter order: two consecutive solutions with the same permutation."""
        if len(set(word)) != len(word):
            return
        perm = tuple(word.index(ch) + 1 for ch in letters)
        if perm == self.last_perm and self.pattern is None and self.rng.random() < self.p.insight_prob * (1 - self.helplessness):
            self.pattern = perm
        self.last_perm = perm

    def press(self, keys: list[str], now: float, until: float | None):
        """Answer a wait for one of `keys` (instructions, ratings)."""
        view = self.view
        if view is not None and view.kind == "rating":
            return self._rate(view, keys, now)
        t = now + self.rng.lognormvariate(math.log(self.p.reading_median), 0.5)
        if until is not None and t >= until:
            return None
        key = keys[0]
        return KeyPress(key, t)

    def _rate(self, view: View, keys: list[str], now: float) -> KeyPress:
        low, high = view.scale
        share = self.failed / self.tried if self.tried else 0.0
        target = round(low + (high - low) * (1 - share) * (1 - 0.5 * self.helplessness) + self.rng.gauss(0, 1))
        target = max(low, min(high, target))
        t = now + self.rng.uniform(0.3, 1.5)
        if view.marker < target and "right" in keys:
            return KeyPress("right", t)
        if view.marker > target and "left" in keys:
            return KeyPress("left", t)
        return KeyPress("return", t)


# -- data-only devices ------------------------------------------------------------------------

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
    def __init__(self, clock: VirtualClock, participant: SimulatedParticipant):
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


class SimulatedKeyboard:
    def __init__(self, clock: VirtualClock, participant: SimulatedParticipant, keys: dict, stop_flag=None):
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

    def wait_key(self, keys, until=None):
        return self._deliver(self.participant.press(list(keys), self.clock.t, until), until)

    def read_text(self, until, view, extra_keys=()):
        return self._deliver(self.participant.answer_text(self.clock.t, until, list(extra_keys)), until)


class SilentSpeaker:
    def info(self) -> dict:
        return {"backend": "simulated"}


def data_only_devices(participant: SimulatedParticipant, keys: dict, stop_flag=None):
    clock = VirtualClock(stop_flag)
    return clock, RecordingScreen(clock, participant), SimulatedKeyboard(clock, participant, keys, stop_flag), SilentSpeaker()
