"""Lexicon look-ups for anagram stimuli: one word list, indexed by sorted letters.

An anagram's solutions are exactly the words whose sorted letters equal the sorted
letters shown, so one dict keyed that way answers "how many solutions?" in O(1).
That is the check that would have caught OCHERSTE = TROCHEES (PARADIGMS.md).
"""
from __future__ import annotations

import math
from collections import defaultdict
from functools import lru_cache
from importlib.metadata import version

LEXICON_NAME = "english-words web2+gcide (lower, alpha)"


@lru_cache(maxsize=None)
def load_lexicon() -> tuple[frozenset[str], dict]:
    """The lexicon and the facts a session record needs to name it.

    english-words' `alpha` option strips non-alphanumerics ('co-op' -> 'coop'),
    so 126 entries keep digits ('1st'); their keys never match a string of
    letters, so they are harmless and kept to match the documented call and size.
    """
    # Imported here so that importing this module stays cheap.
    from english_words import get_english_words_set

    words = frozenset(get_english_words_set(["web2", "gcide"], lower=True, alpha=True))
    info = {"name": LEXICON_NAME, "version": version("english-words"), "size": len(words)}
    return words, info


def sorted_key(s: str) -> str:
    """Anagrams of each other share this key."""
    return "".join(sorted(s.lower()))


def _index(words) -> dict[str, tuple[str, ...]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for w in words:
        groups[sorted_key(w)].append(w)
    # Sorted tuples: deterministic order whatever the set's hash order was.
    return {k: tuple(sorted(v)) for k, v in groups.items()}


@lru_cache(maxsize=None)
def lexicon_index() -> dict[str, tuple[str, ...]]:
    """Sorted-letters key -> lexicon words; built once per process."""
    return _index(load_lexicon()[0])


@lru_cache(maxsize=None)
def wordfreq_index(min_zipf: float) -> dict[str, tuple[str, ...]]:
    """Same index over wordfreq's English list (alphabetic words, zipf >= min_zipf).

    web2/gcide hold base forms only (no 'cares', 'races', 'trochees'), so a
    second, inflection-aware list is needed to be sure a participant cannot
    find a word we did not count.
    """
    from wordfreq import get_frequency_dict

    words = [
        w
        for w, f in get_frequency_dict("en").items()
        if w.isascii() and w.isalpha() and math.log10(f * 1e9) >= min_zipf
    ]
    return _index(words)


def solutions(letters: str, index: dict | None = None) -> list[str]:
    """Every word in `index` (default: the lexicon) spelled by exactly these letters."""
    if index is None:
        index = lexicon_index()
    return list(index.get(sorted_key(letters), ()))


# Regular endings a participant may add to a base form. web2/gcide list base forms
# only, so 'trochees', 'cares' or 'hated' are invisible to the lexicon index.
def inflections(word: str) -> set[str]:
    """Regular inflected forms of `word` (a superset of the real ones)."""
    forms = {word + "s", word + "es", word + "ly", word + "y"}
    if word.endswith("e"):
        stem = word[:-1]
        forms |= {word + "d", word + "r", word + "st", stem + "ing", stem + "y"}
    else:
        forms |= {word + "ed", word + "er", word + "est", word + "ing"}
    if word.endswith("y"):
        forms |= {word[:-1] + s for s in ("ies", "ied", "ier", "iest", "ily")}
    if len(word) >= 2 and word[-1] not in "aeiouwxy":
        # stop -> stopped, big -> bigger
        forms |= {word + word[-1] + s for s in ("ed", "er", "est", "ing", "y")}
    return forms


@lru_cache(maxsize=None)
def inflection_index(max_len: int) -> dict[str, tuple[str, ...]]:
    """Key -> regular inflections (up to max_len letters) of lexicon words."""
    words = load_lexicon()[0]
    forms = {f for w in words if len(w) < max_len for f in inflections(w) if len(f) <= max_len}
    return _index(forms)


def any_reading(letters: str, min_zipf: float = 1.0) -> set[str]:
    """Every word a participant could plausibly produce from these letters:
    lexicon words, their regular inflections, and wordfreq words (incl. names)."""
    found = set(solutions(letters))
    found |= set(solutions(letters, inflection_index(len(letters))))
    found |= set(solutions(letters, wordfreq_index(min_zipf)))
    return found
