"""The one definition of every name lhlab accepts from a user, and its length limit.

Three kinds of name, each checked with a full match (``re.fullmatch``: a ``$`` in a pattern
would accept a trailing newline, and ``demo\\n`` would become a folder name):

label
    A participant's pseudonymous label (``sub-<label>`` in folder and file names), a phase id,
    a condition name, a rating question id: ASCII letters and digits, 1 to 64 characters.
study id
    ``study.id`` of a protocol, the study's folder name: lower-case letters, digits and ``-``,
    starting with a letter or digit, 1 to 64 characters.
key name
    A keyboard key as PsychoPy names it (``space``, ``f12``, ``num_enter``): lower-case letters,
    digits and ``_``, 1 to 32 characters.

Free text recorded with a session (the experimenter id) is checked by `check_free_text`:
printable, at most 200 characters, no control characters and no undecodable bytes.

Each ``check_*`` function returns an error message (what is wrong and what to do) or None.
"""

from __future__ import annotations

import re

LABEL_MAX = 64
STUDY_ID_MAX = 64
KEY_MAX = 32
FREE_TEXT_MAX = 200
SESSION_MAX = 999            # session numbers (ses-<n>)
SEED_MAX = 2**63 - 1         # seeds fit a signed 64-bit integer (pandas, R, Parquet)

LABEL_PATTERN = r"[A-Za-z0-9]+"
STUDY_ID_PATTERN = r"[a-z0-9][a-z0-9-]*"
KEY_PATTERN = r"[a-z0-9_]+"

# Anchored with \Z (the very end; `$` also matches before a final newline), so `.match` on
# these is as safe as `.fullmatch`.
LABEL_RE = re.compile(rf"(?:{LABEL_PATTERN})\Z")
STUDY_ID_RE = re.compile(rf"(?:{STUDY_ID_PATTERN})\Z")
KEY_RE = re.compile(rf"(?:{KEY_PATTERN})\Z")


def is_label(text: object) -> bool:
    return isinstance(text, str) and len(text) <= LABEL_MAX and LABEL_RE.fullmatch(text) is not None


def is_study_id(text: object) -> bool:
    return isinstance(text, str) and len(text) <= STUDY_ID_MAX and STUDY_ID_RE.fullmatch(text) is not None


def is_key(text: object) -> bool:
    return isinstance(text, str) and len(text) <= KEY_MAX and KEY_RE.fullmatch(text) is not None


def check_label(text: object, what: str = "label") -> str | None:
    """A participant label (or phase id, condition name, question id): None if fine."""
    if is_label(text):
        return None
    if isinstance(text, str) and len(text) > LABEL_MAX:
        return f"{what} must be at most {LABEL_MAX} characters (got {len(text)})"
    return f"{what} must be ASCII letters and digits only, 1 to {LABEL_MAX} characters (got {_shown(text)})"


def check_study_id(text: object) -> str | None:
    if is_study_id(text):
        return None
    if isinstance(text, str) and len(text) > STUDY_ID_MAX:
        return f"must be at most {STUDY_ID_MAX} characters (got {len(text)})"
    return f"must be lower-case letters, digits and '-' (got {_shown(text)})"


def check_key(text: object) -> str | None:
    if is_key(text):
        return None
    return f"must be a key name such as 'space', 'return' or 'f12' (got {_shown(text)})"


def check_free_text(text: object, what: str = "text") -> str | None:
    """Free text kept with a session (experimenter id): printable, bounded, valid Unicode."""
    if not isinstance(text, str):
        return f"{what} must be text (got {_shown(text)})"
    if len(text) > FREE_TEXT_MAX:
        return f"{what} must be at most {FREE_TEXT_MAX} characters (got {len(text)})"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return f"{what} holds bytes that are not valid UTF-8 ({_shown(text)}); retype it"
    if not text.isprintable():
        return f"{what} must not contain control characters such as a newline or tab (got {_shown(text)})"
    return None


def printable(text: object) -> str:
    """`text` for a terminal line: control characters (escape sequences, line breaks, tabs) and
    undecodable bytes shown as \\xNN, so data read from a study folder cannot recolour, retitle
    or clear the terminal, or fake extra lines."""
    s = str(text)
    return s if s.isprintable() else "".join(c if c.isprintable() else ascii(c)[1:-1] for c in s)


def _shown(value: object) -> str:
    """repr, shortened so a hostile value cannot flood the message; never fails on surrogates."""
    text = repr(value)      # escapes newlines, control characters and undecodable bytes
    return text if len(text) <= 80 else text[:77] + "..."
