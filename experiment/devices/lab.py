"""Open the real devices of a session: the participant window and, for noise protocols, the
calibrated audio output (imports PsychoPy through experiment.devices.window/audio)."""

from __future__ import annotations

from experiment.devices.virtual import NoSpeaker
from experiment.devices.window import (Display, RealClock, RealKeyboard, RealScreen, SimulatedInput,
                                       SimulatedScreen)


def open_devices(keys: dict, stop_flag, windowed: bool = False, screen: int = 0, participant=None,
                 speed: float = 1.0, audio: dict | None = None, prewarmed: Display | None = None):
    """Open the window, keyboard and (for noise protocols) the calibrated audio output;
    returns ((clock, screen, keyboard, speaker), info, close). `prewarmed`: a hidden window a
    prewarmed runner opened before the request (experiment.runner), shown now if it is on the
    requested screen with the requested mode, else closed and a new one opened."""
    if prewarmed is not None and prewarmed.matches(windowed, screen):
        d = prewarmed
        try:
            d.start(keys, stop_flag, speed)
        except BaseException:
            d.close()
            raise
    else:
        if prewarmed is not None:
            prewarmed.close()
            prewarmed = None
        d = Display(keys, stop_flag, windowed, screen, speed)
    speaker = NoSpeaker()
    if audio and audio.get("device"):
        try:
            from experiment.devices.audio import open_speaker    # PsychoPy sound: noise protocols only
            speaker = open_speaker(audio["device"], audio["limits"], audio["calibration"],
                                   audio.get("latency_class", 1), d)
        except BaseException:
            d.close()
            raise
    if participant is None:
        devices = (RealClock(d), RealScreen(d), RealKeyboard(d), speaker)
    else:
        devices = (RealClock(d), SimulatedScreen(d, participant), SimulatedInput(d, participant), speaker)

    def close():
        speaker.close()
        d.close()
    return devices, {"participant_window": {"windowed": windowed, "screen": screen,
                                            "prewarmed": prewarmed is not None}}, close
