"""Every operating-system-specific call lhlab makes, in one place.

Porting lhlab to another OS is this module's work: the rest of the code asks here for a file
lock, a process's identity or the system mixer's state. Where a maintained library does the
job portably it is used (filelock, psutil); what only Linux offers says so elsewhere.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from experiment.errors import LhlabError

# psutil and filelock are imported where used: every `lhlab` command loads this module, few need them.


class NotSupportedHere(LhlabError):
    """A feature this OS does not offer yet (lhlab is developed and tested on Linux)."""


@contextmanager
def exclusive_lock(path: Path):
    """An exclusive advisory lock on `path` (created if missing) across processes."""
    from filelock import FileLock
    with FileLock(str(path)):
        yield


# -- process identity: is the process that wrote a `running` record still alive? ---------------

def boot_id() -> str:
    """An identifier of this boot: a process recorded before a reboot is certainly gone."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        import psutil
        return f"boot-{psutil.boot_time():.0f}"


def process_start(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), None if there is no such process.
    Recorded with the pid so that a reused pid is not mistaken for the original process."""
    import psutil
    try:
        return round(psutil.Process(pid).create_time(), 2)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return -1.0      # exists, but we may not look: treat as alive with unknown start


def linux_start_ticks(pid: int) -> int | None:
    """The start time in clock ticks that lhlab 0.1 recorded (`start_ticks`); Linux only."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def process_identity() -> dict:
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "boot_id": boot_id(), "start_time": process_start(pid)}


def same_process_alive(proc: dict) -> bool | None:
    """True/False for a process recorded by `process_identity()` on this host; None when the
    record belongs to another machine (cannot tell from here)."""
    if proc.get("host") != socket.gethostname():
        return None
    if proc.get("boot_id") and proc["boot_id"] != boot_id():
        return False
    import psutil
    pid = proc.get("pid")
    if not pid or not psutil.pid_exists(pid):
        return False
    if proc.get("start_time") is not None:
        now = process_start(pid)
        return now is not None and (now == -1.0 or abs(now - proc["start_time"]) < 0.05)
    if proc.get("start_ticks") is not None:        # a record written by lhlab 0.1
        return linux_start_ticks(pid) == proc["start_ticks"]
    return True


# -- the system mixer (PulseAudio / PipeWire's pulse interface) --------------------------------

def pactl(*args: str) -> str | None:
    """Output of `pactl ARGS`, or None where there is no PulseAudio-compatible server."""
    if not sys.platform.startswith("linux") or not shutil.which("pactl"):
        return None
    try:
        out = subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=3)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def record_monitor(rate: int, channels: int = 1) -> subprocess.Popen:
    """`parec` on the default sink's monitor (PulseAudio or pipewire-pulse): raw s16le on stdout.
    NotSupportedHere without parec (pulseaudio-utils)."""
    if not sys.platform.startswith("linux") or not shutil.which("parec"):
        raise NotSupportedHere("recording the output needs parec (Debian: pulseaudio-utils) and a "
                               "PulseAudio or PipeWire server")
    return subprocess.Popen(["parec", "-d", "@DEFAULT_MONITOR@", "--raw", "--format=s16le", f"--rate={rate}",
                             f"--channels={channels}", "--latency-msec=10"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, bufsize=0)


def require_linux(feature: str) -> None:
    if not sys.platform.startswith("linux"):
        raise NotSupportedHere(f"{feature} is not supported on {sys.platform} yet (lhlab runs on Linux)")
