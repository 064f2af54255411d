"""A frozen window shows as a long gap between ticks of a 10 ms Qt timer."""

from __future__ import annotations

import time

from PyQt6.QtCore import QTimer


class GapMeter:
    """The longest time the Qt event loop went without running a 10 ms timer."""

    def __init__(self):
        self.last, self.max_gap = time.monotonic(), 0.0
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self):
        now = time.monotonic()
        self.max_gap = max(self.max_gap, now - self.last)
        self.last = now
