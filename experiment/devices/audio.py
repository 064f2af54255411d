"""Calibrated noise through PsychoPy sound on the psychtoolbox backend.

One of the two modules that import PsychoPy (the other is experiment.devices.window); it
needs no window, so `lhlab calibrate` opens only this. RealSpeaker implements the Speaker of
experiment.devices.seam. Before any Sound exists, `_fix_ptb_audio` applies the two fixes a
PulseAudio/PipeWire-backed ALSA device needs (../shared/RECIPES.md): psychtoolbox's automatic
suspending of the desktop sound server is turned off, and the `pulse`/`default` devices
report at most 2 output channels.
"""

from __future__ import annotations

import os
import time

from experiment import os_specific

os_specific.preload_pipewire_jack()           # before PsychoPy loads psychtoolbox's PortAudio (audio_route jack)

from psychopy import logging, prefs           # noqa: E402

prefs.general["audioLib"] = ["ptb"]
logging.console.setLevel(logging.ERROR)       # stdout carries progress JSON only

from experiment.devices.seam import Burst                      # noqa: E402
from experiment.errors import BadInput, DeviceError             # noqa: E402
from experiment.noise import DoseMeter, HEADROOM_DBFS, check_level, level_dbfs, signal, sound_name  # noqa: E402

_PTB_FIXED = False
LOST_AFTER = 0.1              # s: a running stream calls back every few ms; none for this long after onset = lost
STREAM_START_TIMEOUT = 8.0     # s: a PulseAudio-backed ALSA stream may take ~2 s before it runs


def _fix_ptb_audio() -> None:
    """The RECIPES fix, once per process and before any Sound is created."""
    global _PTB_FIXED
    if _PTB_FIXED:
        return
    prefs.hardware["audioLib"] = ["ptb"]
    import psychtoolbox.audio as ptb_audio
    from psychtoolbox import PsychPortAudio
    PsychPortAudio("Verbosity", 1)
    PsychPortAudio("EngineTunables", None, None, None, 0)      # audioserver_autosuspend off
    original = ptb_audio.get_devices

    def get_devices(device_type=None, device_index=None):
        out = original(device_type, device_index)
        for dev in (out if isinstance(out, list) else [out]):
            if isinstance(dev, dict) and dev.get("DeviceName") in ("pulse", "default") \
                    and dev.get("NrOutputChannels", 0) > 2:
                dev["NrOutputChannels"] = 2
        return out
    ptb_audio.get_devices = get_devices
    _PTB_FIXED = True


class RealSpeaker:
    """Calibrated noise through PsychoPy sound (psychtoolbox backend). One Sound (one track
    on the device's master stream) is refilled for every burst; a burst is exactly as long as
    its trial allows, so it ends by itself if nothing stops it."""

    def __init__(self, device: dict, limits, calibration: dict | None, latency_class: int = 1,
                 display=None):
        self.device, self.limits, self.calibration = device, limits, calibration
        self.display = display
        self.speed = display.speed if display else 1.0
        self.meter = DoseMeter()
        self._burst: Burst | None = None
        self._loaded: Burst | None = None
        self._ref_end = 0.0
        self._onset = self._stop_cmd = self._offset = None
        self.bursts: list[dict] = []        # the timing audit of every burst (timing())
        self._xruns0 = 0
        self._open(device["device"], latency_class)

    # -- opening ----------------------------------------------------------------------------
    def _open(self, name: str, latency_class: int) -> None:
        from experiment import os_specific
        from experiment.devices.output import configured_pulse_latency_msec
        from experiment.labconfig import audio_route
        cfg = audio_route()
        self.server = audio_server()
        self.route, self.route_note = _choose_route(cfg["route"], name, self.server)
        self.suggested_latency_ms = cfg["suggested_latency_ms"]
        self.requested_buffer = cfg["buffer_frames"]
        self.requested_quantum = cfg["quantum"] if self.route == "jack" else None
        self.pulse_latency_msec = configured_pulse_latency_msec() if self.route == "pulse" else None
        if self.pulse_latency_msec:          # libpulse reads it when the stream connects (PipeWire/PulseAudio)
            os.environ["PULSE_LATENCY_MSEC"] = f"{self.pulse_latency_msec:g}"
        _fix_ptb_audio()
        import numpy as np
        import psychtoolbox as ptb
        from psychopy import sound
        from psychopy.hardware.speaker import SpeakerDevice
        self._ptb = ptb
        if self.route == "jack":
            jack_name = _jack_output()
            if jack_name is None:
                self.route, self.route_note = "pulse", "no JACK output of PipeWire found; using the PulseAudio route"
                self.requested_quantum, self.pulse_latency_msec = None, configured_pulse_latency_msec()
                if self.pulse_latency_msec:
                    os.environ["PULSE_LATENCY_MSEC"] = f"{self.pulse_latency_msec:g}"
            else:
                name = jack_name
        errors = []
        self.speaker = None
        with _stream_options(self.requested_buffer, self.suggested_latency_ms):
            for lc in dict.fromkeys((latency_class, 1)):
                try:
                    self.speaker = SpeakerDevice(name=name, latencyClass=lc)
                    self.latency_class = lc
                    break
                except Exception as e:  # noqa: BLE001 - report every attempt
                    errors.append(f"latency class {lc}: {e}")
        if self.speaker is None:
            try:
                import psychtoolbox.audio as ptb_audio
                names = [d["DeviceName"] for d in ptb_audio.get_devices() if d.get("NrOutputChannels", 0) > 0]
            except Exception:  # noqa: BLE001
                names = []
            raise DeviceError(f"cannot open the audio output {name!r} with PsychoPy/psychtoolbox "
                              f"({'; '.join(str(e).splitlines()[0] for e in errors)}). Outputs found: "
                              f"{', '.join(map(repr, names)) or 'none'}. Choose one with LHLAB_AUDIO_DEVICE or "
                              "audio_device in lab.json (audio_route \"pulse\" to avoid JACK); on PulseAudio check "
                              "`pactl info`") from None
        stream = self.speaker.stream
        calls0 = stream.status["TotalCalls"]
        deadline = time.time() + STREAM_START_TIMEOUT
        while stream.status["TotalCalls"] < calls0 + 20:        # wait until the stream really runs
            if time.time() > deadline:
                raise DeviceError(f"the audio output {name!r} opened but its stream does not run "
                                  f"(a suspended PulseAudio sink? try `pactl suspend-sink @DEFAULT_SINK@ 0`)")
            time.sleep(0.01)
        self.quantum = os_specific.pipewire_quantum(self.requested_quantum) if self.server == "pipewire" else None
        self.audio_thread_realtime = os_specific.pipewire_threads_realtime() if self.route == "jack" else None
        self.rt_threads = os_specific.realtime_threads()
        self.sample_rate = int(self.speaker.sampleRateHz)
        self.channels = int(self.speaker.channels)
        time.sleep(0.05)
        self.predicted_latency = max(0.0, float(stream.status.get("PredictedLatency", 0.0)))
        self.buffer_size = int(stream.status.get("BufferSize", 0)) or (self.quantum if self.route == "jack" else None)
        silence = np.zeros((int(self.sample_rate * 0.05), self.channels), dtype=np.float32)
        self.sound = sound.Sound(value=silence, sampleRate=self.sample_rate, stereo=self.channels > 1,
                                 hamming=False, speaker=self.speaker, name="noise", autoLog=False)

    def info(self) -> dict:
        return {"backend": "psychopy-ptb", "device": self.device, "name": self.speaker.name,
                "index": self.speaker.index, "sample_rate": self.sample_rate, "channels": self.channels,
                "latency_class": self.latency_class, "predicted_latency_s": round(self.predicted_latency, 6),
                "buffer_size": self.buffer_size, "server": self.server, **self._route_info(),
                "pulse_latency_msec": self.pulse_latency_msec, "calibration": (self.calibration or {}).get("id")}

    def _route_info(self) -> dict:
        """The route to the sound server (audio_route in lab.json) and what decides its latency."""
        return {"route": self.route, "route_note": self.route_note, "pipewire_quantum": self.quantum,
                "requested_quantum": self.requested_quantum,
                "requested_buffer_frames": self.requested_buffer, "suggested_latency_ms": self.suggested_latency_ms,
                "realtime_threads": self.rt_threads, "audio_thread_realtime": self.audio_thread_realtime}

    def timing(self) -> dict:
        """Device settings and every burst's scheduled vs reported onset/offset and underruns
        (ms figures: reported - scheduled onset; reported offset - stop command)."""
        def ms(values):
            v = sorted(x for x in values if x is not None)
            return None if not v else {"median": round(v[len(v) // 2], 3), "max": round(v[-1], 3)}
        return {"audited": True, "backend": "psychopy-ptb", "server": self.server, **self._route_info(),
                "latency_class": self.latency_class, "buffer_size": self.buffer_size,
                "pulse_latency_msec": self.pulse_latency_msec, "sample_rate": self.sample_rate, "predicted_latency_ms": round(self.predicted_latency * 1000, 3),
                "xruns_total": self.xruns(), "bursts_n": len(self.bursts),
                "onset_error_ms": ms(b["onset_error_ms"] for b in self.bursts),
                "stop_to_offset_ms": ms(b["stop_to_offset_ms"] for b in self.bursts),
                "bursts_with_xruns": sum(1 for b in self.bursts if b["xruns"]),
                "bursts": self.bursts}

    # -- time -------------------------------------------------------------------------------
    def _unix(self, t: float) -> float:
        return self.display.to_unix(t) if self.display else t

    def _session(self, t_unix: float) -> float:
        return self.display.unix_to_session(t_unix) if self.display else t_unix

    # -- noise ------------------------------------------------------------------------------
    def prepare(self, level_dba: float, seconds: float, seed: int, ramp: float = 0.005,
                sound: str = "noise", tone_hz: float | None = None) -> Burst:
        if self.calibration is None:
            raise DeviceError("noise refused: no calibration for this output (run `lhlab calibrate`)")
        wanted, calibrated = sound_name(sound, tone_hz), self.calibration.get("sound", "noise")
        if wanted != calibrated:      # a tone's level at the ear is not the noise's: never guess it
            raise DeviceError(f"{wanted} refused: the calibration in force is for {calibrated}; "
                              "run `lhlab calibrate` with --sound (and --tone-hz) for it")
        try:
            check_level(level_dba, seconds, self.limits)
        except BadInput as e:
            raise DeviceError(f"noise refused: {e}") from None
        return self._load(Burst(level_dba, seconds, seed, level_dbfs(level_dba, self.calibration), sound, tone_hz),
                          ramp)

    def _load(self, burst: Burst, ramp: float) -> Burst:
        if burst.level_dbfs > HEADROOM_DBFS + 1e-9:
            raise DeviceError(f"noise refused: {burst.level_dbfs:.1f} dBFS is above the {HEADROOM_DBFS:g} dBFS headroom")
        self.silence()
        samples = signal(burst.sound, burst.tone_hz, burst.seconds / self.speed, self.sample_rate,
                         burst.level_dbfs, burst.seed, self.channels, ramp)
        self.sound.setSound(samples, hamming=False, log=False)
        self._loaded = burst
        return burst

    def start(self, burst: Burst, at: float | None = None) -> float:
        """Start the loaded burst at session time `at` (as soon as possible if None or past)."""
        if self._loaded is not burst:
            raise DeviceError("internal error: start() of a burst that is not loaded")
        earliest = self._ptb.GetSecs() + max(0.01, 2 * self.predicted_latency)
        when = earliest if at is None else max(earliest, self._unix(at))
        self._xruns0 = self.xruns()
        self._calls0 = self._stream_calls()
        self.sound.play(when=when, log=False)
        self._burst, self._onset, self._stop_cmd, self._offset = burst, when, None, None
        self._reported_offset = None
        self._loaded = None
        return self._session(when)

    def stop(self) -> float:
        """Stop now; returns the session time the stop command was issued."""
        t = self._ptb.GetSecs()
        if self._burst is not None and self._stop_cmd is None:
            self._stop_cmd = t
            self.sound.stop(log=False)
            est = self._estimated_stop(t)
            self._reported_offset = est
            end = self._onset + self._burst.seconds / self.speed
            self._offset = min(end, max(self._onset, est))
        return self._session(t)

    def _estimated_stop(self, t_cmd: float) -> float:
        try:
            est = float(self.sound.track.status["EstimatedStopTime"])
        except Exception:  # noqa: BLE001
            est = 0.0
        return est if t_cmd - 0.5 < est < t_cmd + 0.5 else t_cmd + self.predicted_latency

    def finish(self):
        """(onset, offset, stop command) of the last burst in session time; accounts its dose."""
        if self._burst is None:
            return None, None, None
        offset = self._offset if self._offset is not None else self._onset + self._burst.seconds / self.speed
        self.meter.add(self._burst.level_dba, (offset - self._onset))
        out = (self._session(self._onset), self._session(offset),
               self._session(self._stop_cmd) if self._stop_cmd is not None else None)
        self._audit_burst(offset)
        self._burst = None
        lost = self._stream_calls() == self._calls0 and self._ptb.GetSecs() > self._onset + LOST_AFTER
        if lost:        # the output stream stopped calling back during the burst: nothing was heard
            raise DeviceError("audio device lost: the output stream stopped running during a noise burst (did the "
                              "PulseAudio/PipeWire server stop or the device disappear?); the trials so far are on disk")
        return out

    def _stream_calls(self) -> int:
        """Callbacks of the device stream so far (-1 when it cannot be asked: a closed stream)."""
        try:
            return int(self.speaker.stream.status["TotalCalls"])
        except Exception:  # noqa: BLE001
            return -1

    def _audit_burst(self, offset: float) -> None:
        """One burst of the timing audit: scheduled onset (the `when` given to psychtoolbox) vs the
        onset the driver reported, the stop command vs the offset it estimated, underruns."""
        try:
            status = self.sound.track.status
            reported = float(status.get("StartTime", 0.0)) or None
        except Exception:  # noqa: BLE001 - a closed track reports nothing
            reported = None
        if reported is not None and abs(reported - self._onset) > 1.0:
            reported = None         # not this burst's start (e.g. it never started)
        stop_ms = None
        if self._stop_cmd is not None and self._reported_offset is not None:
            stop_ms = round((self._reported_offset - self._stop_cmd) * 1000, 3)
        self.bursts.append({
            "onset_scheduled": round(self._session(self._onset), 6),
            "onset_reported": None if reported is None else round(self._session(reported), 6),
            "onset_error_ms": None if reported is None else round((reported - self._onset) * 1000, 3),
            "offset": round(self._session(offset), 6),
            "stop_command": None if self._stop_cmd is None else round(self._session(self._stop_cmd), 6),
            "stop_to_offset_ms": stop_ms,
            "xruns": max(0, self.xruns() - self._xruns0),
        })

    def silence(self) -> None:
        """Stop whatever plays (withdrawal, abort, crash, end of phase)."""
        if self._burst is not None:
            self.stop()
            self.finish()
        try:
            self.sound.stop(log=False)
        except Exception:  # noqa: BLE001 - best effort
            pass

    def dose_record(self) -> dict:
        return self.meter.record()

    def xruns(self) -> int:
        """Output underruns of the device stream so far (each one is a gap in the sound)."""
        try:
            return int(self.speaker.stream.status["XRuns"])
        except Exception:  # noqa: BLE001
            return 0

    # -- calibration ------------------------------------------------------------------------
    def play_reference(self, dbfs: float, seconds: float, seed: int = 20240601, sound: str = "noise",
                       tone_hz: float | None = None) -> None:
        """`lhlab calibrate`: the reference noise (or tone) at `dbfs` RMS (not a participant burst)."""
        self._load(Burst(0.0, seconds, seed, dbfs, sound, tone_hz), ramp=0.05)
        self._ref_end = self._ptb.GetSecs() + seconds
        self.sound.play(log=False)

    def play_probe(self, dbfs: float, seconds: float, seed: int) -> float:
        """`lhlab calibrate --latency`: noise at `dbfs` scheduled 50 ms ahead; returns its
        scheduled onset (psychtoolbox time = Unix time on Linux)."""
        self._load(Burst(0.0, seconds, seed, dbfs), ramp=0.0)
        when = self._ptb.GetSecs() + 0.05
        self.sound.play(when=when, log=False)
        return when

    def stop_probe(self) -> float:
        """Stop the probe now; returns the time of the stop command (Unix time)."""
        t = self._ptb.GetSecs()
        self.sound.stop(log=False)
        return t

    def wait_reference(self) -> None:
        while self._ptb.GetSecs() < self._ref_end + 0.05:
            time.sleep(0.01)
        self.silence()

    def close(self) -> None:
        self.silence()
        try:
            track = self.sound.track
            if track is not None:
                track.close()       # the track before its master stream (else psychtoolbox complains at exit)
            self.speaker.close()
        except Exception:  # noqa: BLE001 - closing is best effort at exit
            pass


def audio_server() -> str:
    """Which sound server the ALSA `default`/`pulse` device goes through: "pipewire",
    "pulseaudio" or "unknown" (from `pactl info`, the same question a lab asks by hand)."""
    from experiment import os_specific
    out = os_specific.pactl("info") or ""
    if "PipeWire" in out:
        return "pipewire"
    return "pulseaudio" if "Server Name" in out else "unknown"


def _choose_route(route: str, device: str, server: str) -> tuple[str, str | None]:
    """("jack" | "pulse", note). "auto" picks JACK into PipeWire for the system default output when the
    server is PipeWire and its libjack is installed: key -> silence at a 64-frame null sink ~0.5 ms median,
    p95 < 1.5 ms, against ~12 ms through pipewire-pulse, whose smaller buffers drop out
    (benchmarks/bench_escape_latency.py, README)."""
    from experiment import os_specific
    if route == "pulse" or (route == "auto" and (server != "pipewire" or device not in ("default", "pipewire"))):
        return "pulse", None
    lib = os_specific.pipewire_jack_library()
    if lib is None:
        note = "PipeWire's libjack is not installed (package pipewire-jack); using the PulseAudio route"
        return "pulse", note if route == "jack" or server == "pipewire" else None
    problem = _load_pipewire_jack(lib)
    return ("pulse", problem + "; using the PulseAudio route") if problem else ("jack", None)


def _load_pipewire_jack(lib: str) -> str | None:
    """PipeWire's libjack must be in the process before psychtoolbox's PortAudio; None when it is."""
    import sys
    loaded = os_specific.loaded_libjack()
    if loaded:
        return None if "pipewire" in loaded else (f"another libjack was loaded first ({loaded}; is a JACK server "
                                                  "meant to be used? else check PIPEWIRE_RUNTIME_DIR)")
    if "psychtoolbox.PsychPortAudio" in sys.modules:
        return "psychtoolbox's audio was loaded before PipeWire's libjack"
    return None if os_specific.preload_pipewire_jack() else f"cannot load {lib}"


def _jack_output() -> str | None:
    """The JACK output device (PortAudio's JACK host API) of the default sink: PipeWire names it after the
    sink's description ("Built-in Audio Analog Stereo"); else the first JACK output, None if there is none."""
    import psychtoolbox.audio as ptb_audio
    from experiment import os_specific
    outs = [d for d in ptb_audio.get_devices() if isinstance(d, dict) and d.get("NrOutputChannels", 0) > 0
            and str(d.get("HostAudioAPIName", "")).startswith("JACK")]
    if not outs:
        return None
    default, desc = os_specific.pactl("get-default-sink"), None
    block = None
    for line in (os_specific.pactl("list", "sinks") or "").splitlines():
        line = line.strip()
        if line.startswith("Name:"):
            block = line.split(":", 1)[1].strip()
        elif line.startswith("Description:") and block == default:
            desc = line.split(":", 1)[1].strip()
    for d in outs:
        if desc and str(d["DeviceName"]).startswith(desc):
            return d["DeviceName"]
    return outs[0]["DeviceName"]


class _stream_options:
    """psychtoolbox buffersize / suggestedLatency for the output PsychoPy opens (PsychoPy passes neither)."""

    def __init__(self, buffer_frames: int | None, suggested_ms: float | None):
        self.extra = {k: v for k, v in (("buffer_size", buffer_frames),
                                        ("suggested_latency", suggested_ms and suggested_ms / 1000)) if v}

    def __enter__(self):
        import psychtoolbox.audio as ptb_audio
        self.module, self.original = ptb_audio, ptb_audio.Stream
        if self.extra:
            extra, original = self.extra, self.original

            def stream(*args, **kwargs):
                kwargs.update({k: v for k, v in extra.items() if kwargs.get(k) in (None, [])})
                return original(*args, **kwargs)
            ptb_audio.Stream = stream
        return self

    def __exit__(self, *exc):
        self.module.Stream = self.original
        return False


def open_speaker(device: dict, limits, calibration: dict | None, latency_class: int = 1,
                 display=None) -> RealSpeaker:
    return RealSpeaker(device, limits, calibration, latency_class, display)
