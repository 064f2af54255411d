"""Aversive noise without hardware: safety limits, NIOSH dose, seeded white noise, intervals.

Pure Python + numpy; the real device (experiment.devices.audio.RealSpeaker) and the
simulated one (experiment.devices.virtual.SilentSpeaker) both use it, so the dose in a simulated
session is computed exactly as in the lab.

Levels are dB(A) at the ear, as measured with a sound-level meter during `lhlab calibrate`.
Digital levels are RMS dBFS per channel (0 dBFS = a full-scale square wave).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from experiment.errors import BadInput
from experiment.labconfig import lab_config, lab_config_path

# -- lab-wide safety limits ---------------------------------------------------------------------
# Built-in ceilings. A lab may LOWER them in lab.json (see `lab_config_path`), never raise them:
# raising means editing this file, which shows up in the version recorded with every session.
MAX_LEVEL_DBA = 90.0           # loudest noise any protocol may ask for
MAX_BURST_S = 10.0             # longest single noise burst
MAX_SESSION_DOSE = 0.25        # worst-case planned NIOSH dose of one session (share of a daily dose)
CALIBRATION_MAX_AGE_DAYS = 30  # older calibrations are refused: recalibrate
HEADROOM_DBFS = -12.0          # loudest RMS the noise may have digitally (Gaussian peaks clip above)

NIOSH_CRITERION_DBA = 85.0     # 100 % dose = 8 h at 85 dB(A)
NIOSH_CRITERION_S = 8 * 3600.0
NIOSH_EXCHANGE_DB = 3.0        # +3 dB halves the allowed time


@dataclass(frozen=True)
class LabLimits:
    max_level_dba: float = MAX_LEVEL_DBA
    max_burst_s: float = MAX_BURST_S
    max_session_dose: float = MAX_SESSION_DOSE
    calibration_max_age_days: float = CALIBRATION_MAX_AGE_DAYS
    source: str = "built-in"

    def record(self) -> dict:
        return asdict(self)

    # The level and burst-length rules, in one place for the protocol check, the devices and
    # the written rows (1e-9: a value read back from a file is not refused for a rounding bit).
    def too_loud(self, level_dba: float) -> bool:
        return level_dba > self.max_level_dba + 1e-9

    def too_long(self, seconds: float) -> bool:
        return seconds > self.max_burst_s + 1e-9


def lab_limits() -> LabLimits:
    """The limits in force on this machine: the built-in ceilings, lowered by lab.json."""
    data = lab_config().get("limits", {})
    if not data:
        return LabLimits()
    if not isinstance(data, dict):
        raise BadInput(f"{lab_config_path()}: limits must be an object such as {{\"max_level_dba\": 85}}")
    path = lab_config_path()
    ceilings = LabLimits()
    values = {}
    for key, value in data.items():
        if key not in ("max_level_dba", "max_burst_s", "max_session_dose", "calibration_max_age_days"):
            raise BadInput(f"{path}: limits.{key}: unknown limit")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise BadInput(f"{path}: limits.{key}: must be a number > 0 (got {value!r})")
        ceiling = getattr(ceilings, key)
        if value > ceiling:
            raise BadInput(f"{path}: limits.{key}: {value:g} is above the built-in ceiling {ceiling:g}; "
                           "a lab may lower the limits, never raise them")
        values[key] = float(value)
    return LabLimits(**values, source=str(path))


# -- dose -----------------------------------------------------------------------------------------

def allowed_seconds(level_dba: float) -> float:
    """NIOSH REL: time allowed per day at `level_dba` (8 h at 85 dB(A), halved per +3 dB)."""
    return NIOSH_CRITERION_S / 2 ** ((level_dba - NIOSH_CRITERION_DBA) / NIOSH_EXCHANGE_DB)


def dose(exposures) -> float:
    """Share of a daily NIOSH dose for [(level_dba, seconds), ...] (1.0 = 100 %)."""
    return sum(seconds / allowed_seconds(level) for level, seconds in exposures)


class DoseMeter:
    """Running noise exposure of one session (what was played, not what was planned)."""

    def __init__(self):
        self.seconds_by_level: dict[float, float] = {}
        self.bursts = 0

    def add(self, level_dba: float, seconds: float) -> None:
        if seconds <= 0:
            return
        level = round(float(level_dba), 2)
        self.seconds_by_level[level] = self.seconds_by_level.get(level, 0.0) + float(seconds)
        self.bursts += 1

    @property
    def fraction(self) -> float:
        return dose(self.seconds_by_level.items())

    def record(self) -> dict:
        return {
            "standard": "NIOSH REL: 85 dB(A) for 8 h, 3 dB exchange rate",
            "dose_percent": round(100 * self.fraction, 4),
            "bursts": self.bursts,
            "seconds_by_level_dba": {f"{k:g}": round(v, 4) for k, v in sorted(self.seconds_by_level.items())},
            "total_seconds": round(sum(self.seconds_by_level.values()), 4),
        }


# -- levels -----------------------------------------------------------------------------------------

def level_dbfs(level_dba: float, calibration: dict) -> float:
    """RMS dBFS that gives `level_dba` with `calibration` ({reference_dbfs, reading_dba})."""
    return calibration["reference_dbfs"] + (level_dba - calibration["reading_dba"])


def check_level(level_dba: float, seconds: float, limits: LabLimits) -> None:
    """Last line of defence in the devices: refuse anything over the lab limits."""
    if limits.too_loud(level_dba):
        raise BadInput(f"noise level {level_dba:g} dB(A) exceeds the lab maximum {limits.max_level_dba:g} dB(A)")
    if limits.too_long(seconds):
        raise BadInput(f"noise burst of {seconds:g} s exceeds the lab maximum {limits.max_burst_s:g} s")


# -- signals ----------------------------------------------------------------------------------------

def white_noise(seconds: float, rate: int, rms_dbfs: float, seed: int, channels: int = 2,
                ramp_s: float = 0.005) -> np.ndarray:
    """Gaussian white noise, the same in every channel, as float32 (frames x channels).

    Seeded (numpy PCG64), so a trial's noise can be re-created from its seed. Raised-cosine
    ramps of `ramp_s` at both ends; samples beyond +-1 are clipped (at -12 dBFS RMS that is
    1 sample in 16 000).
    """
    n = int(round(seconds * rate))
    rms = 10 ** (rms_dbfs / 20)
    x = np.random.default_rng(seed).standard_normal(n).astype(np.float32) * np.float32(rms)
    k = min(n // 2, int(round(ramp_s * rate)))
    if k > 0:
        ramp = (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, k, endpoint=False))).astype(np.float32)
        x[:k] *= ramp
        x[n - k:] *= ramp[::-1]
    np.clip(x, -1.0, 1.0, out=x)
    return np.repeat(x[:, None], channels, axis=1) if channels > 1 else x[:, None]


def tone(seconds: float, rate: int, rms_dbfs: float, hz: float, channels: int = 2,
         ramp_s: float = 0.005) -> np.ndarray:
    """A sine tone of `hz` whose RMS is `rms_dbfs` (its peak is 3 dB higher), with the same
    raised-cosine ramps as the noise, as float32 (frames x channels)."""
    n = int(round(seconds * rate))
    x = (np.sqrt(2.0) * 10 ** (rms_dbfs / 20) * np.sin(2 * np.pi * hz * np.arange(n) / rate)).astype(np.float32)
    k = min(n // 2, int(round(ramp_s * rate)))
    if k > 0:
        ramp = (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, k, endpoint=False))).astype(np.float32)
        x[:k] *= ramp
        x[n - k:] *= ramp[::-1]
    return np.repeat(x[:, None], channels, axis=1) if channels > 1 else x[:, None]


def sound_name(sound: str = "noise", tone_hz: float | None = None) -> str:
    """The aversive sound as a calibration knows it: 'noise', or 'tone <Hz> Hz' (a tone's level
    at the ear depends on its frequency, so each tone is calibrated on its own)."""
    return "noise" if sound == "noise" else f"tone {float(tone_hz):g} Hz"


def signal(sound: str, tone_hz: float | None, seconds: float, rate: int, rms_dbfs: float, seed: int,
           channels: int = 2, ramp_s: float = 0.005) -> np.ndarray:
    """The samples of one burst of `sound` ('noise': seeded white noise; 'tone': a sine)."""
    if sound == "tone":
        return tone(seconds, rate, rms_dbfs, tone_hz, channels, ramp_s)
    return white_noise(seconds, rate, rms_dbfs, seed, channels, ramp_s)


def rms_dbfs(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return 20 * math.log10(max(1e-12, float(np.sqrt(np.mean(x * x)))))


# -- inter-trial intervals --------------------------------------------------------------------------

def intervals(n: int, low: float, high: float, mean: float, rng) -> list[float]:
    """`n` intervals within [low, high] whose mean is exactly `mean` (to 1 ms).

    Drawn from a beta distribution scaled to the range with the requested mean (skewed
    towards short intervals when the mean is below the middle, as in 10-25 s, mean 14 s),
    then shifted and re-clipped until the sample mean is the requested one, so every
    participant gets the protocol's mean, not only the average participant.
    """
    if n <= 0:
        return []
    if high == low:
        return [float(low)] * n
    m = (mean - low) / (high - low)
    concentration = 4.0
    a, b = max(0.05, m * concentration), max(0.05, (1 - m) * concentration)
    xs = [low + (high - low) * rng.betavariate(a, b) for _ in range(n)]
    for _ in range(200):
        shift = mean - sum(xs) / n
        if abs(shift) < 1e-6:
            break
        xs = [min(high, max(low, x + shift)) for x in xs]
    return [round(x, 3) for x in xs]
