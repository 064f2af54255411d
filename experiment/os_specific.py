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


def pipewire_version() -> str | None:
    """The PipeWire version behind the PulseAudio-compatible server ("0.3.65"), None when the server is
    PulseAudio itself or there is none (`pactl info`: "Server Name: PulseAudio (on PipeWire 0.3.65)")."""
    import re
    m = re.search(r"Server Name:.*PipeWire ([0-9][^)\s]*)", pactl("info") or "")
    return m.group(1) if m else None


def pipewire_jack_library() -> str | None:
    """PipeWire's own libjack (Debian/Ubuntu package pipewire-jack, Fedora pipewire-jack-audio-connection-kit),
    which lets a JACK client (psychtoolbox's PortAudio) join the PipeWire graph directly, as `pw-jack` does."""
    import glob
    for pattern in ("/usr/lib/*/pipewire-0.3/jack/libjack.so.0", "/usr/lib64/pipewire-0.3/jack/libjack.so.0",
                    "/usr/lib/pipewire-0.3/jack/libjack.so.0"):
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def pipewire_socket() -> Path | None:
    """The PipeWire server's socket this process would connect to (as libpipewire finds it), None if none runs."""
    base = os.environ.get("PIPEWIRE_RUNTIME_DIR") or os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    path = Path(base) / (os.environ.get("PIPEWIRE_REMOTE") or "pipewire-0")
    return path if path.exists() else None


def loaded_libjack() -> str | None:
    """The libjack this process has loaded (path), None if none."""
    try:
        with open("/proc/self/maps") as f:
            return next((line.split()[-1] for line in f if "libjack.so" in line), None)
    except OSError:
        return None


def preload_pipewire_jack() -> str | None:
    """Load PipeWire's libjack before anything loads psychtoolbox's PortAudio (which links libjack.so.0 and
    is loaded by `import psychopy`), so that PortAudio's JACK outputs are PipeWire's sinks, as `pw-jack`
    arranges with LD_LIBRARY_PATH. Only where lhlab may take the JACK route: audio_route auto/jack, a PipeWire
    server running, pipewire-jack installed. Returns the library loaded (None: not needed or not possible;
    experiment.devices.audio then says why and uses the PulseAudio route)."""
    from experiment.labconfig import audio_route
    try:
        cfg = audio_route()
    except LhlabError:
        return None        # a bad lab.json: opening the output reports it
    if cfg["route"] == "pulse":
        return None
    lib = pipewire_jack_library()
    if lib is None or pipewire_socket() is None or not sys.platform.startswith("linux"):
        return None
    if cfg["quantum"]:          # read by PipeWire's libjack when the client connects: the graph quantum it asks for
        os.environ["PIPEWIRE_LATENCY"] = f"{cfg['quantum']}/48000"
    if loaded_libjack():
        return loaded_libjack() if "pipewire" in loaded_libjack() else None
    import ctypes
    try:
        ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return None
    return lib


def pipewire_quantum(requested: int | None = None) -> int | None:
    """The PipeWire graph's buffer in frames, from the settings metadata (pw-metadata): clock.force-quantum
    when set; else, for a client that asked for `requested` frames, that request within clock.min-quantum ..
    clock.max-quantum (another client asking for less would make it smaller); else clock.quantum."""
    if not shutil.which("pw-metadata"):
        return None
    try:
        out = subprocess.run(["pw-metadata", "-n", "settings"], capture_output=True, text=True, timeout=3).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    import re
    v = {k: int(x) for k, x in re.findall(r"key:'clock\.([a-z-]+)' value:'(\d+)'", out)}
    if v.get("force-quantum"):
        return v["force-quantum"]
    if requested and v.get("min-quantum") and v.get("max-quantum"):
        return max(v["min-quantum"], min(v["max-quantum"], requested))
    return v.get("quantum") or None


def _threads() -> list[tuple[int, str]]:
    """(thread id, name) of every thread of this process (Linux)."""
    out = []
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            out.append((int(tid), Path(f"/proc/self/task/{tid}/comm").read_text().strip()))
        except (OSError, ValueError):
            pass
    return out


def _is_realtime(tid: int) -> bool:
    try:     # the policy may carry SCHED_RESET_ON_FORK (0x40000000), as psychtoolbox's threads do
        return (os.sched_getscheduler(tid) & ~0x40000000) in (os.SCHED_FIFO, os.SCHED_RR)
    except (OSError, AttributeError):
        return False


def realtime_threads() -> int:
    """How many threads of this process run with real-time scheduling (SCHED_FIFO/RR); 0 means no
    real-time permission (rtkit or limits.d)."""
    return sum(1 for tid, _ in _threads() if _is_realtime(tid))


def pipewire_threads_realtime() -> bool | None:
    """Whether PipeWire's audio threads in this process (named "pw-...", e.g. the JACK client's data thread
    "pw-PortAudio") run real-time: PipeWire's module-rt makes them so through rtkit or RLIMIT_RTPRIO (a
    process with CAP_SYS_NICE but a zero limit, root in a container, gets neither). None: no such thread.
    Not changed here: forcing that thread to SCHED_FIFO ourselves made the measured timing erratic (README)."""
    threads = [tid for tid, name in _threads() if name.startswith("pw-")]
    return None if not threads else all(_is_realtime(tid) for tid in threads)


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
