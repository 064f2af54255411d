"""The one error hierarchy of lhlab. Every message says what is wrong and what to do next."""

from __future__ import annotations

# Exit codes of `lhlab run` (and the other subcommands where they apply).
EXIT_COMPLETE = 0
EXIT_ERROR = 1        # a bug or a device failure: the session is marked `crashed`
EXIT_BAD_INPUT = 2    # refused before anything was written
EXIT_ABORTED = 3      # experimenter abort key, SIGINT or SIGTERM
EXIT_WITHDRAWN = 4    # the participant used the withdraw key
EXIT_DECLINED = 5     # the participant declined consent: nothing but the consent record was written

# A session's final status and `lhlab run`'s exit code, both ways (the launcher reads the code).
EXIT_FOR_STATUS = {"complete": EXIT_COMPLETE, "aborted": EXIT_ABORTED, "withdrawn": EXIT_WITHDRAWN,
                   "declined": EXIT_DECLINED, "crashed": EXIT_ERROR}
STATUS_FOR_EXIT = {**{code: status for status, code in EXIT_FOR_STATUS.items()}, EXIT_BAD_INPUT: "refused"}


class LhlabError(Exception):
    """Base class for errors lhlab reports as one line."""


class BadInput(LhlabError):
    """Input the user must fix (protocol, arguments, data folder). Reported with exit code 2."""


class ProtocolError(BadInput):
    """A protocol file that does not validate; carries every problem, one per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class DeviceError(LhlabError):
    """A device (screen, keyboard, audio) could not be opened or failed."""


class SessionEnded(Exception):
    """Raised inside a running task to leave it at once; carries the reason."""

    status = "aborted"


class Aborted(SessionEnded):
    """Experimenter abort key or SIGINT/SIGTERM."""

    status = "aborted"


class Withdrawn(SessionEnded):
    """The participant pressed the withdraw key."""

    status = "withdrawn"


class Declined(SessionEnded):
    """The participant declined consent (the decline key, or the withdraw key on the consent
    screen): the session ends before any other data, without a debriefing."""

    status = "declined"
