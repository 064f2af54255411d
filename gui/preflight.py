"""The launcher's preflight: `lhlab run`'s own checks (experiment.preflight), plus the one
thing only the launcher can know: whether the participant screen it will open on exists.

No Qt here (the window passes in the number of screens), so this is tested without a
display. Every other verdict and its wording come from experiment.preflight, the same
function `lhlab run` and `lhlab run --check` use, so the launcher cannot pass a session that
`lhlab run` then refuses.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from experiment.preflight import Check, Preflight, SessionRequest, check_protocol_file
from experiment.preflight import preflight as session_preflight

__all__ = ["Check", "Preflight", "check_display", "preflight"]


def check_display(screens: int | None, screen: int, env: dict | None = None) -> Check:
    """Is there a screen the child's PsychoPy window can open on?

    `screens` is how many monitors the launcher sees (None when it cannot tell, e.g. Qt's
    offscreen platform in tests); `screen` is the monitor chosen for the participant.
    """
    env = os.environ if env is None else env
    if sys.platform.startswith("linux"):
        display = env.get("DISPLAY", "")
        if not display:
            why = " (only WAYLAND_DISPLAY is set; PsychoPy needs XWayland)" if env.get("WAYLAND_DISPLAY") else ""
            return Check("display", False, f"no X display: DISPLAY is not set{why}; start the launcher from the "
                         "lab PC's desktop session (or under xvfb-run for a test)")
        if display.startswith(":"):
            number = display[1:].split(".")[0]
            if number.isdigit() and not Path(f"/tmp/.X11-unix/X{number}").exists():
                return Check("display", False, f"X display {display} is not running (no /tmp/.X11-unix/X{number}); "
                             "log in to the desktop again or set DISPLAY to the running display")
    if screens is not None and not 0 <= screen < screens:
        return Check("display", False, f"participant screen {screen} does not exist (this PC has {screens}); "
                     "pick the participant screen in the toolbar")
    where = f"screen {screen}" + (f" of {screens}" if screens is not None else "")
    return Check("display", True, f"{env.get('DISPLAY', 'display')} {where}")


def preflight(protocol_path: Path, data_dir: Path, label: str | None, condition: str | None, *,
              yoked_to: str | None = None, experimenter: str = "", simulate: str | None = None,
              screens: int | None = None, screen: int = 0, env: dict | None = None) -> Preflight:
    """Every check, in the order an experimenter would fix them. A pilot (`simulate`) whose
    participant is not registered yet passes label=None: the history checks wait for its label."""
    check, proto = check_protocol_file(Path(protocol_path))
    if proto is None:
        result = Preflight(checks=[check])
    else:
        req = SessionRequest(protocol=proto, participant=label, condition=condition, data_dir=Path(data_dir),
                             experimenter=experimenter, yoked_to=yoked_to, simulate=simulate,
                             mode="visual" if simulate else "data-only", pilot=simulate is not None)
        result = session_preflight(req)
        result.checks.insert(0, check)
    result.checks.insert(2 if proto is not None else 1, check_display(screens, screen, env))
    return result
