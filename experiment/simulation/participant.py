"""Simulated participants: the policy that answers the tasks like a person would.

A simulated participant is a policy: it sees every View the task shows and answers through
the Keyboard interface, at times drawn from its profile. In data-only mode a virtual clock
jumps from event to event, so a whole session takes milliseconds; in visual mode the same
participant answers through the real window (see experiment.devices.window.SimulatedInput);
the devices it uses in data-only mode are in experiment.devices.virtual.

The helplessness model: during training the participant notes how often it tried and failed
(time-outs on anagrams it could not solve). Afterwards its helplessness h is
`helplessness_effect * failure_share`; in the test phase solving is slower by a factor
(1 + slowing * h) and the chance to notice the letter pattern drops by (1 - h). With
helplessness_effect = 0 the groups differ only by chance.

The same tally covers the other trainings: a noise trial counts as a failure when the
participant's response did not stop the noise (every trial of yoked inescapable noise, and
escapable trials that timed out), a discrimination problem when its feedback led to no
consistent answer (insoluble problems). Passive noise and no-feedback cards count nothing.
In the shuttle test the chance to respond at all drops by (1 - h), escape latencies grow by
(1 + slowing * h), and avoidance (responding to the warning) is learned more slowly.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass, fields, replace
from pathlib import Path

from experiment.devices import KeyPress, TextEntry, View
from experiment.errors import BadInput


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
    decline_consent: float = 0.0     # chance to decline consent (1: always; the session ends declined)
    prefer_not_rate: float = 0.03    # chance per demographic question to answer 'prefer not to say'
    escape_prob: float = 0.95        # chance to try the escape/shuttle response on a noise trial
    escape_median: float = 1.6       # s, median escape latency from noise onset (first trials)
    escape_learning: float = 0.5     # share of the latency that practice removes (over ~10 trials)
    press_interval: float = 0.18     # s between presses of a multi-press or sequence response
    giveup: float = 0.06             # drop in the chance to try after each ineffective response (training)
    avoid_learning: float = 0.2      # chance gained per escape to respond already to the warning
    wrong_key_rate: float = 0.08     # chance to press the key on the marker's own side first
    choice_median: float = 2.2       # s, median time to choose a pattern in discrimination problems
    ability_sd: float = 0.0          # between-person spread: log-SD of each person's solving-time factor
    insight_sd: float = 0.0          # between-person spread of the chance to notice the letter pattern (logit SD)
    respond_sd: float = 0.0          # between-person spread of the chance to respond on a noise/shuttle trial (logit SD)
    latency_sd: float = 0.0          # between-person spread of escape latency and avoidance learning (log-SD)
    susceptibility_sd: float = 0.0   # between-person spread of how helpless the same training makes a person (log-SD)
    escape_drop: float = 0.5         # share of the chance to respond in the shuttle test that full helplessness removes


# The between-person spreads of the calibrated profiles (and of no-effect): solving speed
# (log-SD 0.4), insight (logit SD 1.0), the chance to respond in noise/shuttle trials (logit SD
# 1.5), escape latency (log-SD 0.4) and susceptibility to helplessness (log-SD 0.6).
PEOPLE = dict(ability_sd=0.4, insight_sd=1.0, respond_sd=1.5, latency_sd=0.4, susceptibility_sd=0.6)

PROFILES = {
    "default": Profile(),
    "strong": Profile(name="strong", helplessness_effect=0.95),
    "withdrawer": Profile(name="withdrawer", withdraw_rate=0.05),
    # Calibrated targets (docs/simulation.md, checked by tests/test_power_calibration.py): the
    # Hedges g of the primary outcome, helpless vs the other groups, on the anagram test's mean
    # latency (helplessness_effect) and the shuttle test's failures to escape (escape_drop, with
    # the slowing that helplessness_effect already gives). The targets are placeholders until
    # someone reads the papers' group means and SDs: see docs/simulation.md. Every one of these
    # profiles has individual differences (PEOPLE), so within-group SDs come from people
    # differing, not only from trial-to-trial noise; no-effect has the same people and no effect.
    "classic": Profile(name="classic", helplessness_effect=0.48, escape_drop=0.2, **PEOPLE),
    "replication": Profile(name="replication", helplessness_effect=0.14, escape_drop=0.22, **PEOPLE),
    "no-effect": Profile(name="no-effect", helplessness_effect=0.0, **PEOPLE),
}


def insight_chance(p: float, shift: float) -> float:
    """A person's chance to notice the letter pattern: the profile's `p` moved by `shift` on the logit scale."""
    if p <= 0 or p >= 1:
        return p
    return 1 / (1 + math.exp(-(math.log(p / (1 - p)) + shift)))


def parse_profile(spec: str) -> Profile:
    """'default' or 'default,helplessness_effect=0.3,solve_median=15'."""
    name, *overrides = [s.strip() for s in spec.split(",")]
    if name not in PROFILES:
        from experiment.suggest import hint
        raise BadInput(f"--simulate: unknown profile {name!r}; {hint(name, PROFILES)}")
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

    def __init__(self, profile: Profile, rng: random.Random, vocabulary: set[str], keys: dict,
                 form_rng: random.Random | None = None):
        self.p, self.rng, self.keys = profile, rng, keys
        # Consent and demographics draw from their own stream, so adding them to a protocol
        # leaves every task's simulated answers as they were.
        self.form_rng = form_rng if form_rng is not None else random.Random(0)
        self.form_plan: dict = {}
        # Individual differences, drawn once per person (only when the profile asks: the streams
        # of profiles without them stay as they were): a solving-time factor and an insight factor.
        self.speed = math.exp(rng.gauss(0, profile.ability_sd)) if profile.ability_sd > 0 else 1.0
        self.insight = insight_chance(profile.insight_prob, rng.gauss(0, profile.insight_sd)) \
            if profile.insight_sd > 0 else profile.insight_prob
        # ... and, for the noise and shuttle tasks, a chance to respond at all, a latency factor
        # (slower people also learn to respond to the warning more slowly) and a susceptibility
        # factor scaling the helplessness the same training produces.
        self.escape_prob = insight_chance(profile.escape_prob, rng.gauss(0, profile.respond_sd)) \
            if profile.respond_sd > 0 else profile.escape_prob
        self.latency = math.exp(rng.gauss(0, profile.latency_sd)) if profile.latency_sd > 0 else 1.0
        self.susceptibility = math.exp(rng.gauss(0, profile.susceptibility_sd)) \
            if profile.susceptibility_sd > 0 else 1.0
        self.lexicon = {"".join(sorted(w)): w for w in vocabulary}
        self.view: View | None = None
        self.role = "instructions"
        self.tried = self.failed = 0          # training experience
        self.helplessness = 0.0
        self.pattern: tuple[int, ...] | None = None   # noticed letter order
        self.last_perm: tuple[int, ...] | None = None
        self.trial_plan: dict = {}
        self.pending: list[KeyPress] = []     # planned presses of the current noise/shuttle trial
        self._plan_since: float | None = None
        self.ineffective = 0                  # ineffective responses in the current phase
        self.escapes = 0                      # escapes in the current phase (shuttle: avoidance learning)
        self.noise_trials = 0
        self.hypotheses: set | None = None    # discrimination: values still consistent
        self.current: tuple | None = None

    # -- what it sees -------------------------------------------------------------------
    def enter_phase(self, role: str) -> None:
        if self.role == "training" and role != "training":
            share = self.failed / self.tried if self.tried else 0.0
            self.helplessness = min(1.0, self.p.helplessness_effect * share * self.susceptibility)
        self.role = role
        self.pattern = self.last_perm = None     # a letter order belongs to one set of items
        self.ineffective = self.escapes = self.noise_trials = 0
        self.hypotheses = None

    def see(self, view: View, t: float) -> None:
        if view.kind == "form" and (self.view is None or self.view.kind != "form"
                                    or self.view.data.get("field") != view.data.get("field")):
            self.form_plan = self._plan_form(view)
        if view.kind == "anagram" and (self.view is None or self.view.letters != view.letters
                                        or self.view.kind != "anagram"):
            self.trial_plan = self._plan_anagram(view.letters.lower(), t)
        if view.kind == "feedback" and self.role == "training":
            self.tried += 1
            self.failed += view.data.get("outcome") != "solved"
        if view.kind == "card_feedback":
            self._learn_card(view)
        if view.kind == "text" and view.data.get("state") == "problem_start":
            self.hypotheses = None
        self.view = view

    # -- noise, shuttle and discrimination --------------------------------------------------
    def presses(self, matcher, since: float, until: float) -> list[KeyPress]:
        """The planned presses of the current noise/shuttle trial (the keyboard pops them)."""
        if since != self._plan_since:
            self._plan_since = since
            view = self.view
            if view is not None and view.kind == "shuttle":
                self.pending = self._plan_shuttle(view, since)
            elif view is not None and view.kind == "noise":
                self.pending = self._plan_noise(view, matcher, since)
            else:
                self.pending = []
        return self.pending

    def _sequence(self, keys: list[str], start: float) -> list[KeyPress]:
        return [KeyPress(k, start + i * self.p.press_interval * self.rng.uniform(0.7, 1.3))
                for i, k in enumerate(keys)]

    def _plan_noise(self, view: View, matcher, onset: float) -> list[KeyPress]:
        self.noise_trials += 1
        if view.data.get("mode") == "passive":
            return []
        if self._withdraws():
            return [KeyPress(self.keys["withdraw"], onset + self.rng.uniform(0.2, 2.0))]
        p_try = self.escape_prob * (1 - self.p.giveup) ** self.ineffective
        if self.rng.random() >= p_try:
            return []
        practice = 1 - self.p.escape_learning * (1 - math.exp(-(self.noise_trials - 1) / 10))
        slow = 1 + self.p.slowing * self.helplessness
        t = onset + self.rng.lognormvariate(math.log(self.p.escape_median * self.latency * practice * slow), 0.45)
        return self._sequence(list(matcher.sequence), t)

    def _plan_shuttle(self, view: View, warn: float) -> list[KeyPress]:
        h = self.helplessness
        data = view.data
        if self._withdraws():
            return [KeyPress(self.keys["withdraw"], warn + self.rng.uniform(0.2, 2.0))]
        if self.rng.random() >= self.escape_prob * (1 - self.p.escape_drop * h):
            return []
        out = []
        p_avoid = min(0.9, self.p.avoid_learning * self.escapes / self.latency) * (1 - h)
        if self.rng.random() < p_avoid:
            t = warn + self.rng.uniform(0.3, 0.8) * data.get("warning", 5.0)
        else:
            slow = 1 + self.p.slowing * h
            t = warn + data.get("warning", 5.0) + self.rng.lognormvariate(
                math.log(self.p.escape_median * self.latency * slow), 0.5)
        if self.rng.random() < self.p.wrong_key_rate:
            own = data["keys"][data["side"]]
            out.append(KeyPress(own, max(warn, t - self.p.press_interval)))
        out.append(KeyPress(data["shuttle_key"], t))
        return out

    def response_result(self, completed: bool, effective: bool) -> None:
        """Told by the keyboard after a noise/shuttle trial's wait: did a response stop the noise?"""
        if effective or (self.view is not None and self.view.kind == "shuttle"):
            self.escapes += 1
        elif completed:
            self.ineffective += 1

    def noise_trial_end(self, view_mode: str, stopped_by_response: bool) -> None:
        """Training tally: a noise trial the participant could not control counts as a failure."""
        if self.role != "training" or view_mode == "passive":
            return
        self.tried += 1
        self.failed += not stopped_by_response

    def _choose_card(self, view: View, keys: list[str], now: float) -> KeyPress:
        values = [(d, v) for side in ("left", "right") for d, v in view.data[side].items()]
        if self.hypotheses is None or not self.hypotheses:
            self.hypotheses = set(values)
        if self.current not in self.hypotheses:
            self.current = self.rng.choice(sorted(self.hypotheses))
        dim, val = self.current
        side = "left" if view.data["left"][dim] == val else "right"
        slow = 1 + self.p.slowing * self.helplessness if self.role == "test" else 1.0
        t = now + self.rng.lognormvariate(math.log(self.p.choice_median * slow), 0.4)
        return KeyPress(view.data["keys"][side], t)

    def _learn_card(self, view: View) -> None:
        fb, chosen = view.data.get("feedback"), view.data.get("chosen")
        if chosen and self.hypotheses is not None and fb in ("correct", "wrong"):
            vals = set(chosen.items())
            self.hypotheses = self.hypotheses & vals if fb == "correct" else self.hypotheses - vals
        if view.data.get("last") and view.data.get("mode") != "control" and self.role == "training":
            self.tried += 1
            self.failed += not (self.hypotheses is not None and len(self.hypotheses) == 1)

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
                plan["solve_at"] = onset + self.rng.lognormvariate(math.log(self.p.insight_median * self.speed), 0.4)
                return plan
            self.pattern = None           # the rule did not work here: drop it and keep looking
        if word:
            plan["solve_at"] = onset + self.rng.lognormvariate(math.log(self.p.solve_median * self.speed * slow),
                                                               self.p.solve_sigma)
        plan["give_up_at"] = onset + self.rng.expovariate(1 / max(0.1, self.p.persistence * (1 - self.helplessness)))
        return plan

    def answer_text(self, now: float, until: float, skip_keys: list[str]):
        """Next thing typed: TextEntry, KeyPress (skip/withdraw) or None if nothing before `until`."""
        if self.view is not None and self.view.kind == "form":
            return self._type_form(now, until)
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
                return TextEntry(wrong, t, max(now, t - len(wrong) / self.p.typing_speed))   # typed after onset
        if solve_at is not None and solve_at < until:
            t = max(now, solve_at)
            self._learn(plan["letters"], word)
            return TextEntry(word, t, max(now, t - len(word) / self.p.typing_speed))
        if skip_keys and plan.get("give_up_at", math.inf) < until:
            return KeyPress(skip_keys[0], max(now, plan["give_up_at"]))
        return None

    def _learn(self, letters: str, word: str) -> None:
        """Notice a repeating letter order: two consecutive solutions with the same permutation."""
        if len(set(word)) != len(word):
            return
        perm = tuple(word.index(ch) + 1 for ch in letters)
        if perm == self.last_perm and self.pattern is None and self.rng.random() < self.insight * (1 - self.helplessness):
            self.pattern = perm
        self.last_perm = perm

    def press(self, keys: list[str], now: float, until: float | None):
        """Answer a wait for one of `keys` (instructions, ratings)."""
        view = self.view
        if view is not None and view.kind == "rating":
            return self._rate(view, keys, now)
        if view is not None and view.kind == "card":
            press = self._choose_card(view, keys, now)
            return press if until is None or press.t < until else None
        if view is not None and view.kind in ("consent", "form"):
            press = self._consent(view, keys, now) if view.kind == "consent" else self._choose_form(view, now)
            return press if until is None or press.t < until else None
        rng = self.form_rng if self.role in FORM_ROLES else self.rng
        t = now + rng.lognormvariate(math.log(self.p.reading_median), 0.5)
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
        if view.data.get("must_move"):      # require_movement: the untouched start is no answer
            return KeyPress("right" if view.marker < high else "left", t)
        return KeyPress("return", t)

    # -- consent and demographics (their own random stream: self.form_rng) -----------------
    def _consent(self, view: View, keys: list[str], now: float) -> KeyPress:
        """Read the page (consent text is read more slowly than instructions); on the last page
        agree, or decline with the profile's decline_consent chance."""
        rng = self.form_rng
        t = now + rng.lognormvariate(math.log(2 * self.p.reading_median), 0.5)
        if not view.data.get("decide"):
            return KeyPress(keys[0], t)
        declines = rng.random() < self.p.decline_consent
        return KeyPress(view.data["decline"] if declines else view.data["agree"], t)

    def _plan_form(self, view: View) -> dict:
        """The answer to one demographic question, drawn when it appears."""
        rng, d = self.form_rng, view.data
        plan = {"prefer": rng.random() < self.p.prefer_not_rate, "key": d["prefer_not_key"]}
        if d["type"] == "choice":
            levels = d["levels"]
            weights = PLAUSIBLE.get(d["field"], {})
            plan["index"] = rng.choices(range(len(levels)), [weights.get(c, 1.0) for c in levels])[0]
            if plan["prefer"]:
                plan["index"] = len(levels)
        elif d["type"] == "number":
            low, high = d["low"], d["high"]
            if d["field"] == "age":     # a student sample: mostly early twenties
                value = min(high, max(low, round(rng.lognormvariate(math.log(max(low, 23)), 0.15))))
            else:
                value = rng.uniform(low, high)
                value = round(value) if d.get("whole") else round(value, 1)
            plan["text"] = str(value)
            if rng.random() < self.p.typo_rate:
                plan["typo"] = str(int(high) * 10 + 1)        # out of range: refused and asked again
        else:
            words = sorted(self.lexicon.values()) or ["answer"]
            plan["text"] = rng.choice(words)[:d.get("max_length", 60)]
        return plan

    def _choose_form(self, view: View, now: float) -> KeyPress:
        """Mark the planned option (a number key, or the prefer-not key), then ENTER."""
        plan, rng = self.form_plan, self.form_rng
        index = plan.get("index", 0)
        if view.selected != index:
            key = plan["key"] if index == len(view.data["levels"]) else str(index + 1)
            return KeyPress(key, now + rng.lognormvariate(math.log(2.0), 0.4))
        return KeyPress("return", now + rng.uniform(0.3, 1.0))

    def _type_form(self, now: float, until: float):
        plan, rng = self.form_plan, self.form_rng
        t = now + rng.lognormvariate(math.log(3.0), 0.4)
        if t >= until:
            return None
        if plan["prefer"]:
            return KeyPress(plan["key"], t)
        text = plan.pop("typo", None) or plan["text"]
        return TextEntry(text, t, max(now, t - len(text) / self.p.typing_speed))


FORM_ROLES = ("consent", "demographics")
# How often each value of a standard demographic question is chosen (others: equally often).
PLAUSIBLE = {"sex": {"female": 0.6, "male": 0.38, "other": 0.02},
             "handedness": {"right": 0.88, "left": 0.1, "ambidextrous": 0.02}}


def protocol_vocabulary(proto) -> set[str]:
    """The words a simulated participant 'knows': every solution in the protocol's stimulus files
    (read once per process for the same files, unchanged: power analyses run thousands of sessions)."""
    files = [proto.base_dir / ph.params["items"] for ph in proto.phases.values() if ph.task == "anagram"]
    try:
        stamps = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    except OSError:
        return set(_vocabulary_uncached(tuple(files)))      # read_items says what is wrong
    return set(_vocabulary(stamps))


@functools.lru_cache(maxsize=16)
def _vocabulary(stamps: tuple) -> frozenset:
    return _vocabulary_uncached(tuple(Path(s[0]) for s in stamps))


def _vocabulary_uncached(files: tuple) -> frozenset:
    from experiment.tasks.anagram import read_items
    words = set()
    for f in files:
        items, _ = read_items(f)
        words.update(i["solution"] for i in items if i["solvable"])
    return frozenset(words)


def participant_for(prepared) -> SimulatedParticipant:
    """The simulated participant of a prepared session (`--simulate PROFILE`), with its own
    random stream derived from the session seed."""
    req = prepared.request
    rng = random.Random(prepared.seed * 7919 + 17)   # separate from the schedule's stream
    form_rng = random.Random(prepared.seed * 7919 + 29)     # consent and demographics
    return SimulatedParticipant(parse_profile(req.simulate), rng, protocol_vocabulary(req.protocol),
                                req.protocol.keys, form_rng)
