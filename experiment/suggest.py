""""Did you mean ...?" for a name the user typed that lhlab does not know (a subcommand, a
condition, a simulated-participant profile): the end of a one-line error message."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def hint(word: str, choices: Iterable[str]) -> str:
    """"did you mean 'x'? (choose one of: a, b, x)", or "choose one of: a, b, x" when nothing is close."""
    choices = list(choices)
    listed = ", ".join(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:       # 'Solvable' for 'solvable': case is a typo too
        lowered = {c.lower(): c for c in choices}
        close = [lowered[m] for m in difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)]
    return f"did you mean {close[0]!r}? (choose one of: {listed})" if close else f"choose one of: {listed}"
