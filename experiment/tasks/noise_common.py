"""What the noise tasks (noise_escape, shuttle) share: response keys and the escape matcher.

The escape response is one key, the same key N times, or a key sequence. The keyboard device
feeds it every press (Keyboard.wait_response) and the task decides what a press means.
"""

from __future__ import annotations

from experiment.devices import KeyPress
from experiment.identifiers import KEY_RE  # noqa: F401 - the one key-name pattern, used by the noise tasks


def parse_keys(text: str) -> list[str]:
    return [k for k in str(text).split() if k]


class ResponseMatcher:
    """One key, the same key N times, or a sequence of keys, pressed after `reset()`.

    Keys outside the response are recorded but change nothing; within a sequence a wrong
    response key restarts it (counting itself if it is the first key)."""

    def __init__(self, keys: list[str], presses: int = 1):
        if not keys:
            raise ValueError("an escape response needs at least one key")
        self.keys = list(keys)
        self.presses = presses if len(keys) == 1 else 1
        self.sequence = self.keys * self.presses
        self.reset()

    @classmethod
    def from_params(cls, params: dict) -> "ResponseMatcher":
        return cls(parse_keys(params["escape_keys"]), params.get("escape_presses", 1))

    def reset(self) -> None:
        self.progress = 0

    @property
    def key_set(self) -> set[str]:
        return set(self.keys)

    def feed(self, press: KeyPress) -> bool:
        """True when this press completes the response."""
        if press.key not in self.key_set:
            return False
        if press.key == self.sequence[self.progress]:
            self.progress += 1
        else:
            self.progress = 1 if press.key == self.sequence[0] else 0
        if self.progress >= len(self.sequence):
            self.progress = 0
            return True
        return False

    def describe(self) -> str:
        if len(self.keys) > 1:
            return " then ".join(k.upper() for k in self.keys)
        return self.keys[0].upper() + (f" {self.presses} times" if self.presses > 1 else "")

    def spec(self) -> dict:
        return {"keys": list(self.keys), "presses": self.presses}
