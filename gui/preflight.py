"""Checks made before a session starts, each saying exactly what is wrong and what to do.

No Qt here (the window passes in what only Qt knows, such as the number of screens), so the
checks are tested without a display. `lhlab run` repeats the checks that protect the data
(protocol, data folder, earlier sessions) when it starts; the launcher checks first so the
experimenter learns about a problem before the participant sits down, not after.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from experiment import datafile
from experiment.errors import BadInput, LhlabError, ProtocolError

NOISE_TASKS = ("noise_escape", "shuttle")
MIN_FREE_MB_FALLBACK = 200


@dataclass(frozen=True)
class Check:
    name: str          # 'protocol', 'data folder', 'display', 'audio calibration', 'participant', ...
    ok: bool
    message: str       # on failure: what is wrong and what to do; on success: what was found


@dataclass
class Preflight:
    checks: list[Check] = field(default_factory=list)
    protocol: object | None = None      # the protocol as loaded now (experiment.protocol.Protocol)
    session: int | None = None          # the session number `lhlab run` will use
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def report(self) -> str:
        lines = [f"{'OK ' if c.ok else 'NO '} {c.name}: {c.message}" for c in self.checks]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def has_noise(protocol) -> bool:
    return any(ph.task in NOISE_TASKS for ph in protocol.phases.values())


def check_protocol(path: Path) -> tuple[Check, object | None]:
    from experiment.protocol import load_protocol
    try:
        proto = load_protocol(path)
    except ProtocolError as e:
        shown = e.problems[:8] + ([f"... and {len(e.problems) - 8} more"] if len(e.problems) > 8 else [])
        return Check("protocol", False, f"{path} does not validate; fix these lines and press F5:\n  "
                     + "\n  ".join(shown)), None
    except (BadInput, OSError) as e:
        return Check("protocol", False, f"{path} cannot be read ({e}); restore the file or pick another study"), None
    return Check("protocol", True, f"{Path(path).name} is valid ({proto.study_id}, sha256 {proto.sha256[:12]})"), proto


def min_free_mb() -> float:
    try:
        from experiment.session import MIN_FREE_MB_DEFAULT
    except ImportError:
        MIN_FREE_MB_DEFAULT = MIN_FREE_MB_FALLBACK
    try:
        return float(os.environ.get("LHLAB_MIN_FREE_MB", MIN_FREE_MB_DEFAULT))
    except ValueError:
        return float(MIN_FREE_MB_DEFAULT)


def check_data_folder(data_dir: Path, study_dir: Path) -> Check:
    probe = study_dir if study_dir.exists() else Path(data_dir)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return Check("data folder", False, f"{probe} is not a folder; choose another data folder (toolbar)")
    if not os.access(probe, os.W_OK | os.X_OK):
        return Check("data folder", False, f"{probe} is not writable for this user; fix its permissions or "
                     "choose another data folder (toolbar)")
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".lhlab-probe-"):
            pass
    except OSError as e:
        return Check("data folder", False, f"{probe} is not writable ({e.strerror}); choose another data folder")
    free = shutil.disk_usage(probe).free / 2**20
    need = min_free_mb()
    if free < need:
        return Check("data folder", False, f"{probe} has only {free:.0f} MB free, lhlab needs {need:.0f} MB; "
                     "free some space or choose another data folder")
    return Check("data folder", True, f"{study_dir} is writable, {free / 1024:.1f} GB free")


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


def check_audio(protocol, notes: list[str]) -> Check:
    """Audio calibration, for protocols with noise. Uses experiment.calibration when present."""
    if not has_noise(protocol):
        return Check("audio calibration", True, "not needed (no noise phase)")
    try:
        cal = importlib.import_module("experiment.calibration")
    except ImportError as e:
        notes.append(f"audio calibration not checked: experiment.calibration cannot be imported ({e})")
        return Check("audio calibration", True, "not checked (this lhlab has no calibration module yet)")
    for name in ("check_protocol", "preflight", "check"):      # a protocol-level check, if it exists
        fn = getattr(cal, name, None)
        if callable(fn):
            try:
                result = fn(protocol)
            except (BadInput, LhlabError) as e:
                return Check("audio calibration", False, str(e))
            except Exception as e:  # noqa: BLE001 - their API may still move; say so instead of crashing
                notes.append(f"audio calibration check experiment.calibration.{name} failed: {type(e).__name__}: {e}")
                return Check("audio calibration", True, "not checked (the calibration check failed; see note)")
            if isinstance(result, str) and result:
                return Check("audio calibration", False, result)
            return Check("audio calibration", True, "calibrated" + (f" ({result.get('id')})"
                                                                    if isinstance(result, dict) else ""))
    load_all = getattr(cal, "load_all", None)
    if callable(load_all):
        try:
            records = load_all()
        except (BadInput, LhlabError) as e:
            return Check("audio calibration", False, str(e))
        except Exception as e:  # noqa: BLE001
            notes.append(f"audio calibrations could not be read: {type(e).__name__}: {e}")
            return Check("audio calibration", True, "not checked (see note)")
        if not records:
            where = getattr(cal, "calibrations_path", lambda: "the calibrations file")()
            return Check("audio calibration", False, f"this PC has no headphone calibration ({where}); the noise "
                         "phases cannot start: put the headphones on the sound-level meter and run "
                         "`lhlab calibrate --headphone MODEL`")
        notes.append("the launcher found a calibration file; `lhlab run` checks the one for this audio output "
                     "(age, volume, headroom) when the session starts")
        return Check("audio calibration", True, f"{len(records)} calibration(s) on this PC, latest "
                     f"{records[-1].get('id')}")
    notes.append("audio calibration not checked: experiment.calibration has no check the launcher knows")
    return Check("audio calibration", True, "not checked")


def check_participant(study_dir: Path, label: str, condition: str) -> tuple[Check, int | None]:
    """The participant's earlier sessions on disk (the truth): not running, not complete or
    withdrawn, same condition. Returns the check and the session number that will be used."""
    previous = []
    for n, path in datafile.sessions_of(study_dir, label):
        try:
            rec = datafile.read_session(path)
        except (OSError, ValueError):
            rec = {"session": n, "effective_status": "crashed"}
        previous.append((n, rec))
    for n, rec in previous:
        status = rec.get("effective_status")
        if status == "running":
            pid = (rec.get("process") or {}).get("pid")
            return Check("participant", False, f"{label} ses-{n} is still running (pid {pid}); wait for it to end "
                         "or abort it first"), None
        if status in ("complete", "withdrawn"):
            what = "completed" if status == "complete" else "withdrew in"
            return Check("participant", False, f"{label} already {what} session {n} ({rec.get('ended') or ''}); "
                         "a person takes part once. Add a new participant (Ctrl+N) if this is someone else"), None
        if rec.get("condition") and rec["condition"] != condition:
            return Check("participant", False, f"{label} ses-{n} ran condition {rec['condition']!r}, the registry "
                         f"says {condition!r}; check this participant's data before running them"), None
    session = max((n for n, _ in previous), default=0) + 1
    if previous:
        last_n, last = previous[-1]
        return Check("participant", True, f"{label}: ses-{last_n} ended {last.get('effective_status')}; this will be "
                     f"session {session}"), session
    return Check("participant", True, f"{label}: first session"), session


def check_yoke(protocol, condition: str, yoked_to: str | None, run_supports_yoke: bool) -> Check | None:
    cond = protocol.conditions.get(condition)
    if cond is None:
        return Check("condition", False, f"condition {condition!r} is not in {protocol.path} any more; restore the "
                     "protocol (the registry assigned it)")
    if not cond.yoked_to:
        return None
    if not yoked_to:
        return Check("yoke", False, f"condition {condition!r} is yoked to {cond.yoked_to!r} but this participant has "
                     "no partner; add the participant again once a partner has finished training")
    if not run_supports_yoke:
        return Check("yoke", False, "this lhlab's `lhlab run` has no --yoked-to option, so the partner's schedule "
                     "cannot be replayed; update lhlab before running yoked participants")
    return Check("yoke", True, f"yoked to {yoked_to}")


def preflight(protocol_path: Path, data_dir: Path, label: str | None, condition: str | None, *,
              yoked_to: str | None = None,
              screens: int | None = None, screen: int = 0, run_supports_yoke: bool = True,
              env: dict | None = None) -> Preflight:
    """Every check, in the order an experimenter would fix them. Without `label` (a pilot whose
    participant is not registered yet) the participant and yoke checks are left out."""
    result = Preflight()
    check, proto = check_protocol(Path(protocol_path))
    result.checks.append(check)
    result.protocol = proto
    study = datafile.study_dir(Path(data_dir), proto.study_id) if proto else Path(data_dir)
    result.checks.append(check_data_folder(Path(data_dir), study))
    result.checks.append(check_display(screens, screen, env))
    if proto is not None:
        result.checks.append(check_audio(proto, result.notes))
    if proto is not None and label is not None:
        yoke = check_yoke(proto, condition, yoked_to, run_supports_yoke)
        if yoke is not None:
            result.checks.append(yoke)
        part, result.session = check_participant(study, label, condition)
        result.checks.append(part)
    return result
