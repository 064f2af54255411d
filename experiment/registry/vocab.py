"""The registry's words, shared by its modules: statuses, assignment rules, label form, timestamps."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timezone

PARTICIPANT_STATUSES = ("registered", "running", "complete", "aborted", "withdrawn", "declined", "crashed",
                        "erased")
RULES = ("block", "manual", "command-line")
LABEL_PREFIX = "P"
PILOT_FOLDER = "_pilot"        # DATA_DIR/_pilot/<study-id>/: pilots never mix with the study's data
PILOT_LABEL_PREFIX = "PILOT"   # sub-PILOT001: a pilot is never mistaken for a participant in a merged table


def label_prefix(study_dir) -> str:
    """The label prefix of a study folder: pilots (under `_pilot/`) get their own."""
    return PILOT_LABEL_PREFIX if study_dir.parent.name == PILOT_FOLDER else LABEL_PREFIX


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def station_name() -> str:
    """This PC and process, as recorded with each assignment (`host:pid`)."""
    return f"{socket.gethostname()}:{os.getpid()}"
