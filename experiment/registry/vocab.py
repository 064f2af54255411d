"""The registry's words, shared by its modules: statuses, assignment rules, label form, timestamps."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timezone

PARTICIPANT_STATUSES = ("registered", "running", "complete", "aborted", "withdrawn", "declined", "crashed",
                        "erased")
RULES = ("block", "manual", "command-line")
LABEL_PREFIX = "P"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def station_name() -> str:
    """This PC and process, as recorded with each assignment (`host:pid`)."""
    return f"{socket.gethostname()}:{os.getpid()}"
