"""`lhlab run` in a child process, followed through its JSON progress lines, as the launcher
does: shared by the window, audio and launcher tests."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time

from conftest import LHLAB, REPO


class LiveSession:
    """`lhlab run` in a child process; its JSON progress events read on a thread."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([*LHLAB, "run", *map(str, args)], cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.events: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("{"):
                ev = json.loads(line)
                ev["_received"] = time.time()
                self.events.put(ev)

    def wait_for(self, event: str, timeout: float = 30, **match) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                ev = self.events.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                break
            self.seen.append(ev)
            if ev["event"] == event and all(ev.get(k) == v for k, v in match.items()):
                return ev
        err = self.proc.stderr.read()[-3000:] if self.proc.poll() is not None else ""
        raise AssertionError(f"no {event} {match} within {timeout}s; seen {[e['event'] for e in self.seen][-8:]}; "
                             f"rc={self.proc.poll()} stderr={err}")

    def pass_debriefing(self, keys, settle: float = 0.1) -> None:
        """Press the continue key once the debriefing page is on screen. (The `debriefing` event
        comes before the page, and a press made before a page's onset is ignored by design.)"""
        self.wait_for("page", kind="debriefing")
        time.sleep(settle)
        keys.press("space")

    def finish(self, timeout: float = 60) -> int:
        rc = self.proc.wait(timeout)
        while not self.events.empty():
            self.seen.append(self.events.get())
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
