"""Feedback after a shuttle trial is drawn like the feedback after an anagram (issue 10).

The window draws a view by its kind: a `feedback` view gets the large text where the eye is
(experiment.devices.window.BIG_TEXT), any other view the small text line. So the shuttle's
outcome message must come as the same kind of view as the anagram's 'Correct!', not as the
shuttle screen's small prompt line under the light.
"""

from __future__ import annotations

from conftest import REPO
from experiment.devices.virtual import SilentSpeaker
from experiment.protocol import load_protocol
from test_key_queue import burst
from test_screens import _run as screen_views


def _views(task: str, params: dict, events, proto, speaker=None):
    return screen_views(task, params, events, proto, role="test", speaker=speaker)


def test_shuttle_feedback_is_a_feedback_screen_like_the_anagrams():
    noise = load_protocol(REPO / "protocols" / "hiroto-seligman-noise-shuttle.yaml")
    problems = load_protocol(REPO / "protocols" / "hiroto-seligman-problems-anagrams.yaml")
    shuttle = _views("shuttle", {**noise.phases["shuttle"].params, "n_trials": 1}, burst(31.0, ["right"]), noise,
                     speaker=SilentSpeaker())
    anagram = _views("anagram", {**problems.phases["anagrams"].params, "n_trials": 1},
                     burst(2.0, list("brick")) + burst(3.0, ["return"]), problems)
    said = [v for v in shuttle if v.data.get("state") == "feedback"]
    assert len(said) == 1 and said[0].text in ("Noise avoided.", "Noise stopped.", "The noise was not stopped.")
    correct = [v for v in anagram if v.text == "Correct!"]
    assert correct and said[0].kind == correct[0].kind == "feedback"
    # while the trial runs the shuttle screen (marker, boxes, light) is still its own kind
    assert {v.kind for v in shuttle if v.data.get("state") in ("waiting", "warning")} == {"shuttle"}
