"""Regenerate the anagram stimulus sets in stimuli/anagrams/ (PARADIGMS.md).

    .venv/bin/python stimuli/make_anagrams.py [--out DIR]

Deterministic: one seeded RNG and sorted candidate lists, so a re-run with the
same english-words and wordfreq versions writes byte-identical files (the tests
check this). No network: both packages ship their data in the wheel.

Solvable item:   its letters spell exactly one word, the solution, and the
                 letters as shown are not a word.
Unsolvable item: its letters spell nothing.
"Spell" is checked twice: against the lexicon named in LEXICON.json (the
brief's definition), and more strictly against any_reading(), which also sees
regular inflections ('cares', 'trochees' are not in web2/gcide) and wordfreq's
list (names, slang), because the participant is not limited to our lexicon.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from importlib.metadata import version
from pathlib import Path

from wordfreq import zipf_frequency

if __package__:
    from . import lexicon as lx
else:  # run as a script: make `stimuli` importable the same way the tests do
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from stimuli import lexicon as lx

SEED = 34251
PATTERN = (3, 4, 2, 5, 1)
OUT_DIR = Path(__file__).resolve().parent / "anagrams"
HEADER = ("item_id", "letters", "solution", "solvable")

N_TRAINING = 30  # per half
N_PATTERNED = 30  # protocols use the first 20; the rest are spares
N_PRACTICE = 4
N_REPAIR = 6

# A rival reading must be at least this common to spoil a solvable item; rarer
# wordfreq entries are mostly noise ('thescore') nobody would type.
RIVAL_ZIPF = 2.0
# Unsolvable items must not match even the rarest wordfreq entry.
UNSOLVABLE_ZIPF = 1.0

# English letter frequencies in % (Lewand 2000), for matching the training halves.
LETTER_FREQ = {
    "a": 8.167, "b": 1.492, "c": 2.782, "d": 4.253, "e": 12.702, "f": 2.228,
    "g": 2.015, "h": 6.094, "i": 6.966, "j": 0.153, "k": 0.772, "l": 4.025,
    "m": 2.406, "n": 6.749, "o": 7.507, "p": 1.929, "q": 0.095, "r": 5.987,
    "s": 6.327, "t": 9.056, "u": 2.758, "v": 0.978, "w": 2.360, "x": 0.150,
    "y": 1.974, "z": 0.074,
}
VOWELS = frozenset("aeiou")

# Solutions a participant should not be asked to produce under stress.
BLOCKLIST = frozenset("""
    kill dead death dying die died murder suicide corpse grave tomb coffin funeral
    widow lynch slain drown fatal siege sword venom toxic blood knife gun rifle bomb
    shoot shot stab war nazi riot jail theft thief bribe liar evil hate curse
    drug drugs dope weed crack coke booze drunk vodka beer heroin opium pill
    sex sexy nude naked porn penis cock dick balls boobs breast sperm rape whore slut
    babe bitch fuck shit piss crap damn hell ass arse butt suck jerk screw prick
    homo queer dyke fag negro nigga pussy cunt tits slave whip abuse
    cancer tumor covid virus fetus urine bowel vomit obese sick pain hurt
    fat ugly dumb idiot moron stupid loser satan demon devil jesus allah god pope
    """.split())
# Not answers a participant would accept: contractions, slang, and proper nouns
# that web2 also lists in lower case (the capitalisation filter misses them).
NOT_ANSWERS = frozenset("""
    dont cant wont isnt aint didnt doesnt wasnt arent ill wed hes shes
    dunno gonna gotta wanna nope yeah stats
    bowie brock burke chevy chile china clint clive costa hanna hogan honda jenna
    kylie malik monte porto ryder silva singh tibet walsh trump hong khan york corp
    prof ford
    """.split())
# Substrings that must not appear in the letters shown.
OBSCENE_BITS = ("fuck", "shit", "cunt", "cock", "dick", "piss", "fag", "nig",
                "sex", "tit", "ass", "rape", "kill", "porn", "slut", "cum")


# ---------- word properties ----------

def zipf(word: str) -> float:
    return zipf_frequency(word, "en")


def vowel_count(s: str) -> int:
    return sum(c in VOWELS for c in s)


def mean_letter_freq(s: str) -> float:
    return sum(LETTER_FREQ[c] for c in s) / len(s)


def surface_stats(strings) -> tuple[float, float]:
    """(mean vowels per item, mean English frequency per letter) of a set."""
    strings = list(strings)
    return (sum(map(vowel_count, strings)) / len(strings),
            mean_letter_freq("".join(strings)))


def apply_pattern(word: str, pattern=PATTERN) -> str:
    """letters[i] = word[pattern[i] - 1]; 'chair' -> 'aihrc' for 3-4-2-5-1."""
    return "".join(word[p - 1] for p in pattern)


def cased_words() -> tuple[frozenset[str], frozenset[str]]:
    """(web2 with case kept, gcide with case kept): web2 capitalises proper nouns."""
    from english_words import get_english_words_set
    return (frozenset(get_english_words_set(["web2"], lower=False, alpha=True)),
            frozenset(get_english_words_set(["gcide"], lower=False, alpha=True)))


def is_common_noun_form(word: str, web2: frozenset, gcide: frozenset) -> bool:
    # Lower-case somewhere, and no capitalised twin in web2 ('betty', 'carl' have one).
    return (word in web2 or word in gcide) and word.capitalize() not in web2


def is_inflection(word: str) -> bool:
    """True if `word` is a regular inflection of some lexicon word ('ashes', 'baked');
    base forms make better solutions: fewer rival endings to find."""
    return word in lx.solutions(word, lx.inflection_index(len(word)))


def clean(letters: str) -> bool:
    return not any(bit in letters for bit in OBSCENE_BITS)


# ---------- candidate pools ----------

def common_words(length: int, min_zipf: float) -> list[str]:
    """Sorted, frequent, lower-case base forms of the lexicon with a given length."""
    words, _ = lx.load_lexicon()
    web2, gcide = cased_words()
    return [w for w in sorted(words)
            if len(w) == length and w.isascii()
            and w not in BLOCKLIST and w not in NOT_ANSWERS
            and zipf(w) >= min_zipf
            and is_common_noun_form(w, web2, gcide)
            and not is_inflection(w)]


def has_unique_solution(word: str) -> bool:
    """The brief's test (lexicon) and the stricter one (inflections, wordfreq)."""
    return (lx.solutions(word) == [word]
            and lx.any_reading(word, RIVAL_ZIPF) == {word})


def letters_ok(letters: str, solution: str) -> bool:
    """Shown letters: a real scramble, not a word, nothing rude on screen."""
    return (letters != solution and clean(letters)
            and letters not in lx.load_lexicon()[0]
            and letters not in lx.any_reading(letters, UNSOLVABLE_ZIPF))


def derange(source: str, rng: random.Random, tries: int = 200) -> str | None:
    """Random scramble with no letter left where it was in `source`."""
    for _ in range(tries):
        letters = "".join(rng.sample(source, len(source)))
        if all(a != b for a, b in zip(letters, source)) and clean(letters) \
                and letters not in lx.any_reading(letters, UNSOLVABLE_ZIPF):
            return letters
    return None


def similar_letters(c: str) -> list[str]:
    """Letters of the same class (vowel/consonant) within 2 frequency ranks of c,
    so a substitution keeps the item's look and letter statistics."""
    same = sorted((x for x in LETTER_FREQ if (x in VOWELS) == (c in VOWELS)),
                  key=lambda x: -LETTER_FREQ[x])
    i = same.index(c)
    return [x for x in same[max(0, i - 2): i + 3] if x != c]


def unsolvable_variants(base: str) -> list[str]:
    """One-letter substitutions of `base` whose letters spell nothing at all."""
    out = []
    for i, c in enumerate(base):
        for r in similar_letters(c):
            cand = base[:i] + r + base[i + 1:]
            if not lx.solutions(cand) and not lx.any_reading(cand, UNSOLVABLE_ZIPF):
                out.append(cand)
    return sorted(set(out))


# ---------- the sets ----------

def pick_solvable(pool, n, rng, used, scramble, shuffle=True):
    """Take n items from pool (in random order unless shuffle is False);
    scramble(word) -> letters or None."""
    items = []
    for w in (rng.sample(pool, len(pool)) if shuffle else pool):
        if len(items) == n:
            break
        if w in used or not has_unique_solution(w):
            continue
        letters = scramble(w)
        if letters is None or not letters_ok(letters, w):
            continue
        used.add(w)
        items.append((letters, w))
    if len(items) < n:
        raise RuntimeError(f"only {len(items)} of {n} items found")
    return items


def pick_unsolvable(solvable_letters, bases, rng, used):
    """For each solvable item, the unsolvable candidate with the same vowel count
    and the closest mean letter frequency: matched pairs make matched halves."""
    pool = []
    for base in bases:
        if base in used:
            continue
        variants = unsolvable_variants(base)
        if variants:
            pool.append(rng.choice(variants))
    items = []
    for target in solvable_letters:
        fits = [s for s in pool if vowel_count(s) == vowel_count(target)]
        if not fits:
            raise RuntimeError(f"no unsolvable match for {target}")
        best = min(fits, key=lambda s: (abs(mean_letter_freq(s) - mean_letter_freq(target)), s))
        pool.remove(best)
        letters = derange(best, rng)
        if letters is None:
            raise RuntimeError(f"cannot scramble {best}")
        items.append((letters, ""))
    return items


def build_sets(seed: int = SEED) -> dict[str, list[tuple[str, str, str, str]]]:
    """All sets as rows (item_id, letters, solution, solvable)."""
    rng = random.Random(seed)
    used: set[str] = set()
    five = common_words(5, 3.5)

    # Hardest constraints first: the patterned set needs distinct letters.
    distinct = [w for w in five if len(set(w)) == 5]
    patterned = pick_solvable(distinct, N_PATTERNED, rng, used, apply_pattern)
    train_yes = pick_solvable(five, N_TRAINING, rng, used, lambda w: derange(w, rng))
    four = common_words(4, 4.0)
    practice = pick_solvable(four, N_PRACTICE, rng, used, lambda w: derange(w, rng))
    # Repair must feel easy: the most frequent eligible words.
    easiest = sorted((w for w in four if zipf(w) >= 4.5), key=lambda w: (-zipf(w), w))
    repair = pick_solvable(easiest, N_REPAIR, rng, used, lambda w: derange(w, rng),
                           shuffle=False)
    # Unsolvable items start from the same kind of common word as the solvable ones.
    train_no = pick_unsolvable([l for l, _ in train_yes], five, rng, used)

    def rows(prefix, items, solvable):
        return [(f"{prefix}{i:02d}", l, s, "1" if solvable else "0")
                for i, (l, s) in enumerate(items, 1)]

    training = rows("tr", train_yes, True)
    training += [(f"tr{i + N_TRAINING:02d}", *r[1:]) for i, r in
                 enumerate(rows("tr", train_no, False), 1)]
    return {
        "training": training,
        f"patterned-{''.join(map(str, PATTERN))}": rows("pt", patterned, True),
        "practice": rows("pr", practice, True),
        "repair": rows("rp", repair, True),
    }


# ---------- output ----------

def write_tsv(path: Path, rows) -> None:
    lines = ["\t".join(HEADER)] + ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8", newline="\n")


def lexicon_record(seed: int) -> dict:
    _, info = lx.load_lexicon()
    return {**info, "generated_by": "stimuli/make_anagrams.py", "seed": seed,
            # The stricter checks depend on these too; a change may change the sets.
            "wordfreq_version": version("wordfreq"),
            "rival_zipf": RIVAL_ZIPF, "unsolvable_zipf": UNSOLVABLE_ZIPF}


def report(sets) -> str:
    lines = [f"{name}: {len(rows)} items ({sum(r[3] == '1' for r in rows)} solvable)"
             for name, rows in sets.items()]
    for label, flag in (("solvable", "1"), ("unsolvable", "0")):
        v, f = surface_stats(r[1] for r in sets["training"] if r[3] == flag)
        lines.append(f"training {label}: mean vowels {v:.3f}, mean letter freq {f:.3f}%")
    _, info = lx.load_lexicon()
    lines.append(f"lexicon: {info['name']} {info['version']}, {info['size']} words")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    sets = build_sets(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in sets.items():
        write_tsv(args.out / f"{name}.tsv", rows)
    write_json(args.out / f"patterned-{''.join(map(str, PATTERN))}.json",
               {"pattern": list(PATTERN)})
    write_json(args.out / "LEXICON.json", lexicon_record(args.seed))
    print(report(sets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
