"""Drive a real X display from the outside, as a person would: XTEST key events from another
process than the one under test, window focus, and screenshots. Used by tests and benchmarks."""

from __future__ import annotations

import os
import struct
import subprocess
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from Xlib import X, XK, display as xdisplay
from Xlib.ext import xtest

KEYSYMS = {"return": "Return", "space": "space", "escape": "Escape", "f12": "F12", "f2": "F2",
           "left": "Left", "right": "Right", "up": "Up", "down": "Down", "backspace": "BackSpace"}


class Xvfb:
    """A private X server on a free display number; stopped with `stop()`."""

    def __init__(self, size: str = "1280x1024x24"):
        for n in range(90, 200):
            if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
                break
        self.display = f":{n}"
        self.proc = subprocess.Popen(["Xvfb", self.display, "-screen", "0", size, "-nolisten", "tcp"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 15
        while not Path(f"/tmp/.X11-unix/X{n}").exists():
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"Xvfb {self.display} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Keys:
    """Inject key events through XTEST (the same path a USB keyboard's events take in X)."""

    def __init__(self, display_name: str | None = None):
        self.d = xdisplay.Display(display_name or os.environ["DISPLAY"])

    def map_chars(self, chars: str) -> None:
        """Give each character of `chars` a spare keycode of its own (unshifted), before the window
        under test starts, so its X client reads the mapping at connection: XTEST can then type
        accents, quotes and other characters the server's keymap lacks (tools that remap a key
        just before typing it, like xdotool type, are not seen by a client that cached the map)."""
        first, last = self.d.display.info.min_keycode, self.d.display.info.max_keycode
        mapping = self.d.get_keyboard_mapping(first, last - first + 1)
        spare = [first + i for i, syms in enumerate(mapping) if not any(syms)]
        self._extra = getattr(self, "_extra", {})
        for ch in dict.fromkeys(chars):
            if ch in self._extra:
                continue
            code = spare.pop(0)
            sym = ord(ch) if ord(ch) < 0x100 else 0x01000000 + ord(ch)
            self.d.change_keyboard_mapping(code, [(sym, sym, sym, sym)])
            self._extra[ch] = code
        self.d.sync()

    def _code(self, key: str) -> int:
        if key in getattr(self, "_extra", {}):
            return self._extra[key]
        sym = XK.string_to_keysym(KEYSYMS.get(key, key))
        code = self.d.keysym_to_keycode(sym)
        if not code:
            raise ValueError(f"no keycode for {key!r}")
        return code

    def press(self, key: str, hold: float = 0.03) -> float:
        """Press and release `key`; returns the Unix time the press was sent."""
        code = self._code(key)
        xtest.fake_input(self.d, X.KeyPress, code)
        self.d.sync()
        t = time.time()
        time.sleep(hold)
        xtest.fake_input(self.d, X.KeyRelease, code)
        self.d.sync()
        return t

    def burst(self, keys: list[str], gap: float = 0.01, hold: float = 0.003) -> list[float]:
        """Press and release each key, one every `gap` seconds (5-15 ms: faster than a frame, so
        one poll sees several); returns the Unix times the presses were sent."""
        sent = []
        for key in keys:
            t0 = time.time()
            code = self._code(key)
            xtest.fake_input(self.d, X.KeyPress, code)
            self.d.sync()
            sent.append(time.time())
            time.sleep(hold)
            xtest.fake_input(self.d, X.KeyRelease, code)
            self.d.sync()
            time.sleep(max(0.0, gap - (time.time() - t0)))
        return sent

    def type(self, text: str, gap: float = 0.04) -> None:
        for ch in text:
            self.press(ch)
            time.sleep(gap)

    def focus_window(self, title_part: str = "", timeout: float = 10.0) -> bool:
        """Give keyboard focus to the first top-level window (there is no window manager)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            root = self.d.screen().root
            for w in root.query_tree().children:
                try:
                    attrs = w.get_attributes()
                    if attrs.map_state != X.IsViewable:
                        continue
                    name = w.get_wm_name() or ""
                except Exception:  # noqa: BLE001 - windows come and go
                    continue
                if title_part in name:
                    w.set_input_focus(X.RevertToParent, X.CurrentTime)
                    self.d.sync()
                    return True
            time.sleep(0.1)
        return False

    def screenshot(self) -> np.ndarray:
        """The whole screen as an (h, w, 3) uint8 RGB array."""
        root = self.d.screen().root
        geom = root.get_geometry()
        raw = root.get_image(0, 0, geom.width, geom.height, X.ZPixmap, 0xFFFFFFFF)
        arr = np.frombuffer(raw.data, dtype=np.uint8).reshape(geom.height, geom.width, 4)
        return arr[:, :, 2::-1].copy()   # BGRX -> RGB

    def close(self) -> None:
        self.d.close()


def save_png(rgb: np.ndarray, path: Path) -> None:
    """Minimal PNG writer (no imaging library needed)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mktemp(dir=path.parent, suffix=".png"))
    tmp.write_bytes(png)
    tmp.replace(path)
