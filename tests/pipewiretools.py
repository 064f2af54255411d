"""A private PipeWire with a null sink and a small quantum, for the audio tests and the latency
benchmark: the same interface as audiotools.PulseNullSink (server, dir, stop), so psychtoolbox
(through ALSA's `pulse`/`default` device), parec and pactl talk to it as to PulseAudio.

Set-up as in ../shared/RECIPES.md ("PipeWire headless with a null sink"): its own runtime dir,
a session D-Bus (WirePlumber needs one), `pipewire`, `wireplumber` and `pipewire -c
pipewire-pulse.conf` (the PulseAudio server of PipeWire); our drop-in configuration fixes
the graph at 48 kHz with a QUANTUM-frame quantum (64 = 1.33 ms) and lets PulseAudio clients ask
for buffers that small (pipewire-pulse's defaults are 256-frame requests and, in a VM, 1024).
Nothing of the machine's own sound set-up is used; stop() ends every process it started.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

NEEDED = ("pipewire", "wireplumber", "pw-metadata", "dbus-daemon", "pactl", "parec")


def missing() -> list[str]:
    """The programs a PipeWire null sink needs that are not installed (scripts/setup.sh installs them)."""
    have = [n for n in NEEDED if shutil.which(n)]
    conf = Path("/usr/share/pipewire/pipewire-pulse.conf").is_file()
    return [n for n in NEEDED if n not in have] + ([] if conf else ["pipewire-pulse"])


class PipeWireNullSink:
    """PipeWire + WirePlumber + pipewire-pulse with a null sink named `null` as the default sink."""

    def __init__(self, quantum: int = 64, rate: int = 48000, force: bool = True):
        """force: pin the graph at `quantum` (clock.force-quantum); else `quantum` is only the default and
        a client may ask for less (down to 32 frames), as on a desktop PC with PipeWire's defaults."""
        if missing():
            raise RuntimeError(f"PipeWire is not installed ({', '.join(missing())}); run scripts/setup.sh")
        self.quantum, self.rate = quantum, rate
        self.dir = Path(tempfile.mkdtemp(prefix="lhlab-pipewire-"))
        run, cfg = self.dir / "run", self.dir / "config"
        run.mkdir(mode=0o700)
        (cfg / "pipewire" / "pipewire.conf.d").mkdir(parents=True)
        (cfg / "pipewire" / "pipewire-pulse.conf.d").mkdir(parents=True)
        (cfg / "pipewire" / "pipewire.conf.d" / "lhlab.conf").write_text(
            "context.properties = {\n"
            f"    default.clock.rate = {rate}\n    default.clock.allowed-rates = [ {rate} ]\n"
            f"    default.clock.quantum = {quantum}\n    default.clock.min-quantum = {quantum if force else 32}\n"
            "    default.clock.max-quantum = 2048\n}\n")
        frac = f"{quantum}/{rate}"
        (cfg / "pipewire" / "pipewire-pulse.conf.d" / "lhlab.conf").write_text(
            "pulse.properties = {\n    server.address = [ \"unix:native\" ]\n"
            f"    pulse.min.req = {frac}\n    pulse.default.req = {frac}\n    pulse.min.frag = {frac}\n"
            f"    pulse.default.frag = {frac}\n    pulse.min.quantum = {frac}\n"
            f"    pulse.default.tlength = {2 * quantum}/{rate}\n"
            f"    vm.overrides = {{ pulse.min.quantum = {frac} }}\n}}\n")
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(run), "PIPEWIRE_RUNTIME_DIR": str(run),
                    "XDG_CONFIG_HOME": str(cfg), "DBUS_SESSION_BUS_ADDRESS": f"unix:path={run / 'bus'}",
                    "PULSE_RUNTIME_PATH": str(run / "pulse")}
        self.env.pop("PULSE_SERVER", None)
        self.procs: list[subprocess.Popen] = []
        log = open(self.dir / "pipewire.log", "wb")
        try:
            self._start(["dbus-daemon", "--session", "--nofork", f"--address=unix:path={run / 'bus'}"], log,
                        lambda: (run / "bus").exists())
            self._start(["pipewire"], log, lambda: (run / "pipewire-0").exists())
            self._start(["wireplumber"], log, lambda: self._metadata_ready())
            self._start(["pipewire", "-c", "pipewire-pulse.conf"], log, lambda: (run / "pulse" / "native").exists())
            self.server = f"unix:{run / 'pulse' / 'native'}"
            self.env_pulse = {**self.env, "PULSE_SERVER": self.server}
            # what a client process needs to find this server: pipewire-pulse, and PipeWire itself for the
            # JACK route (PipeWire's libjack) and pw-metadata
            self.client_env = {"PULSE_SERVER": self.server, "PIPEWIRE_RUNTIME_DIR": str(run)}
            self._pactl("load-module", "module-null-sink", "sink_name=null", f"rate={rate}", "channels=2")
            deadline = time.time() + 10
            while self._pactl("set-default-sink", "null", check=False).returncode != 0:
                if time.time() > deadline:
                    raise RuntimeError(f"the PipeWire null sink never became the default; log {self.dir}")
                time.sleep(0.1)
            if force:
                subprocess.run(["pw-metadata", "-n", "settings", "0", "clock.force-quantum", str(quantum)],
                               env=self.env, check=True, capture_output=True, timeout=10)
        except BaseException:
            self.stop()
            raise

    def _start(self, cmd: list[str], log, ready) -> None:
        self.procs.append(subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log, start_new_session=True))
        deadline = time.time() + 15
        while not ready():
            if self.procs[-1].poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{cmd[0]} did not come up; log: {self.dir / 'pipewire.log'}")
            time.sleep(0.05)

    def _metadata_ready(self) -> bool:
        out = subprocess.run(["pw-metadata", "-n", "settings"], env=self.env, capture_output=True, text=True,
                             timeout=10)
        return "clock.quantum" in out.stdout

    def _pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self.env_pulse, check=check, capture_output=True, timeout=10)

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        self.procs = []
        shutil.rmtree(self.dir, ignore_errors=True)
