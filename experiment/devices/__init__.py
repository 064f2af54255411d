"""The device seam (experiment.devices.seam) and its implementations.

Importing this package imports no PsychoPy: only `experiment.devices.window` and
`experiment.devices.audio` do, and only code that opens real devices imports them.
"""

from experiment.devices.seam import (Burst, Clock, KeyPress, Keyboard, Matcher, Response, Screen, Speaker,
                                     TextEntry, View)

__all__ = ["Burst", "Clock", "KeyPress", "Keyboard", "Matcher", "Response", "Screen", "Speaker", "TextEntry", "View"]
