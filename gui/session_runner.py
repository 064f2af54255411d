"""`lhlab run` (and other lhlab commands) as child processes that Qt follows without blocking.

`ChildProcess` wraps QProcess: output arrives line by line through signals, the child is
stopped with SIGTERM (`terminate()`, which `lhlab run` turns into a graceful abort) and killed
only if it has not ended `stop_timeout_s` later, with a warning. `SessionRunner` adds the
session's live progress (gui.progress.LiveProgress) and its final status.

Nothing here waits: the launcher's event loop keeps running while a session runs, and a child
that crashes only ends up as a `finished` signal with its exit status and stderr tail.

Prewarmed start (`SessionRunner.enable_prewarm`): between sessions one spare child waits,
`python -m experiment.runner` with PsychoPy imported and the participant window open but
hidden. Start sends it the `lhlab run` arguments on stdin and follows it like a fresh child
(same events, same exit codes, the same session code inside); Start -> first frame then skips
the ~2 s of imports and window set-up. The spare holds no participant and writes nothing
until that request. After each session a new spare is started; if the spare has died, Start
runs a fresh `lhlab run` and says so in the log.
"""

from __future__ import annotations

import collections
import json
import sys
import time
from pathlib import Path
from typing import Callable

from PyQt6.QtCore import QCoreApplication, QObject, QProcess, QProcessEnvironment, QTimer, pyqtSignal

from gui.commands import lhlab_argv
from gui.progress import LiveProgress, describe, parse_line, status_for_exit

STOP_TIMEOUT_S = 10.0        # SIGTERM -> this long -> SIGKILL (lhlab run stops in ~0.35 s)
STDERR_TAIL_LINES = 40


def runner_argv(screen: int, windowed: bool) -> list[str]:
    """The prewarmed runner (experiment.runner) for a participant window on `screen`."""
    argv = [sys.executable, "-m", "experiment.runner", "--screen", str(int(screen))]
    return argv + ["--windowed"] if windowed else argv


class ChildProcess(QObject):
    """One child process with line-based output and a graceful stop."""

    stdoutLine = pyqtSignal(str)
    stderrLine = pyqtSignal(str)
    started = pyqtSignal(int)                 # pid
    finished = pyqtSignal(object, bool)       # exit code (None if it never ran), ended by a signal
    warning = pyqtSignal(str)                 # e.g. "killed after the timeout"

    def __init__(self, parent: QObject | None = None, stop_timeout_s: float = STOP_TIMEOUT_S):
        super().__init__(parent)
        self.stop_timeout_s = stop_timeout_s
        self.proc: QProcess | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.stop_requested = False
        self.killed = False
        self.start_error: str | None = None
        self.argv: list[str] = []
        self._buffers = {"out": b"", "err": b""}
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill_after_timeout)

    # -- control ------------------------------------------------------------------------------
    def start(self, argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        if self.is_running():
            raise RuntimeError("a child process is already running")
        self.argv = list(argv)        # what runs now (shown in the log; tests read it)
        self.stderr_tail.clear()
        self.stop_requested = self.killed = False
        self.start_error = None
        self._buffers = {"out": b"", "err": b""}
        proc = QProcess(self)
        environment = QProcessEnvironment.systemEnvironment()
        environment.insert("PYTHONUNBUFFERED", "1")
        for key, value in (env or {}).items():
            environment.insert(key, value)
        proc.setProcessEnvironment(environment)
        if cwd:
            proc.setWorkingDirectory(cwd)
        proc.readyReadStandardOutput.connect(self._read_out)
        proc.readyReadStandardError.connect(self._read_err)
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._error)
        proc.started.connect(lambda: self.started.emit(int(proc.processId())))
        self.proc = proc
        proc.start(argv[0], argv[1:])

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.state() != QProcess.ProcessState.NotRunning

    def is_alive(self) -> bool:
        """Running, and not a process that has died without Qt having noticed yet (a zombie)."""
        if not self.is_running():
            return False
        try:
            state = Path(f"/proc/{self.proc.processId()}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True           # no /proc (not Linux): trust Qt
        return state not in ("Z", "X")

    def send(self, line: str) -> None:
        """Write one line to the child's stdin and close it (the prewarmed runner reads one request)."""
        self.proc.write((line.rstrip("\n") + "\n").encode("utf-8"))
        self.proc.closeWriteChannel()

    def pid(self) -> int | None:
        return int(self.proc.processId()) if self.is_running() else None

    def stop(self) -> bool:
        """Ask the child to end (SIGTERM); kill it if it is still there after the timeout."""
        if not self.is_running():
            return False
        self.stop_requested = True
        self.proc.terminate()
        if not self._kill_timer.isActive():
            self._kill_timer.start(int(self.stop_timeout_s * 1000))
        return True

    def _kill_after_timeout(self) -> None:
        if self.is_running():
            self.killed = True
            self.warning.emit(f"the process (pid {self.proc.processId()}) did not stop within "
                              f"{self.stop_timeout_s:g} s of the stop request and was killed (SIGKILL)")
            self.proc.kill()

    # -- output ---------------------------------------------------------------------------------
    def _read_out(self) -> None:
        self._drain("out", bytes(self.proc.readAllStandardOutput()))

    def _read_err(self) -> None:
        self._drain("err", bytes(self.proc.readAllStandardError()))

    def _drain(self, which: str, data: bytes, final: bool = False) -> None:
        buf = self._buffers[which] + data
        *lines, rest = buf.split(b"\n")
        if final and rest:
            lines.append(rest)
            rest = b""
        self._buffers[which] = rest
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").rstrip("\r")
            if which == "out":
                self.stdoutLine.emit(line)
            elif line.strip():
                self.stderr_tail.append(line)
                self.stderrLine.emit(line)

    def _flush(self) -> None:
        if self.proc is not None:
            self._drain("out", bytes(self.proc.readAllStandardOutput()), final=True)
            self._drain("err", bytes(self.proc.readAllStandardError()), final=True)

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._kill_timer.stop()
        self._flush()
        self.finished.emit(code, status == QProcess.ExitStatus.CrashExit)

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._kill_timer.stop()
            self.start_error = self.proc.errorString()
            self.stderr_tail.append(f"could not start {self.proc.program()}: {self.start_error}")
            self.finished.emit(None, False)


class SessionRunner(QObject):
    """One `lhlab run` at a time, with its live progress.

    Signals: `lineEvent(dict)` for every progress line, `progressChanged()` after each one,
    `output(str)` for other output lines (stderr included), `warning(str)`, and
    `finished(dict)` with {status, code, by_signal, killed, stopped, stderr_tail, progress, kind, meta,
    prewarmed}.
    """

    lineEvent = pyqtSignal(dict)
    progressChanged = pyqtSignal()
    output = pyqtSignal(str)
    warning = pyqtSignal(str)
    stateChanged = pyqtSignal(str)        # 'idle' | 'starting' | 'running' | 'stopping'
    finished = pyqtSignal(dict)

    def __init__(self, parent: QObject | None = None, stop_timeout_s: float = STOP_TIMEOUT_S):
        super().__init__(parent)
        # Two children that swap roles: `child` runs the session, `spare` is the prewarmed runner.
        self.child = self._new_child(stop_timeout_s)
        self.spare = self._new_child(stop_timeout_s)
        self.spare_ready = False              # the spare said runner_ready
        self.spare_lost: str | None = None    # why the last spare ended on its own, until the next Start
        self.prewarm_options: Callable[[], tuple[int, bool]] | None = None    # () -> (screen, windowed)
        self.spare_options: tuple | None = None    # what the spare's hidden window was opened with
        self.prewarmed_start = False          # whether the running session went to a prewarmed runner
        self.progress: LiveProgress | None = None
        self.state = "idle"
        self.kind = "session"
        self.meta: dict = {}
        self.argv: list[str] = []

    def _new_child(self, stop_timeout_s: float) -> ChildProcess:
        c = ChildProcess(self, stop_timeout_s)
        c.stdoutLine.connect(lambda line: self._line(line) if c is self.child else self._spare_line(line))
        c.stderrLine.connect(lambda line: self.output.emit(f"stderr: {line}" if c is self.child
                                                           else f"prewarmed runner stderr: {line}"))
        c.warning.connect(lambda text: self.warning.emit(text) if c is self.child else self.output.emit(text))
        c.finished.connect(lambda code, sig: self._finished(code, sig) if c is self.child
                           else self._spare_finished(code, sig))
        c.started.connect(lambda pid: self.output.emit(f"started pid {pid}") if c is self.child else None)
        return c

    @property
    def stop_timeout_s(self) -> float:
        return self.child.stop_timeout_s

    @stop_timeout_s.setter
    def stop_timeout_s(self, value: float) -> None:
        self.child.stop_timeout_s = self.spare.stop_timeout_s = value

    # -- the prewarmed runner -----------------------------------------------------------------
    def enable_prewarm(self, options: Callable[[], tuple[int, bool]]) -> None:
        """Keep one prewarmed runner waiting between sessions; `options()` gives the participant
        screen and windowed flag it opens its hidden window with (a request for another screen
        still runs, on a window the runner opens then). The spare is stopped when the app quits."""
        self.prewarm_options = options
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.close_spare)
        QTimer.singleShot(0, self.start_spare)

    def start_spare(self) -> None:
        """Start a prewarmed runner unless one is there, a session runs, or prewarming is off."""
        if self.prewarm_options is None or self.spare.is_running() or self.is_running():
            return
        self.spare_options = tuple(self.prewarm_options())
        self.spare_ready = False
        self.spare.start(runner_argv(*self.spare_options))

    def prewarm_options_changed(self) -> None:
        """The participant screen or the windowed option changed: a waiting runner whose hidden
        window is elsewhere is replaced (a session it got would reopen the window, ~0.3 s slower)."""
        if self.prewarm_options is None or not self.spare.is_running() \
                or tuple(self.prewarm_options()) == self.spare_options:
            return
        keep, self.prewarm_options = self.prewarm_options, None      # its end is no loss to report
        self.spare.proc.terminate()
        self.spare.proc.waitForFinished(3000)
        if self.spare.is_running():
            self.spare.proc.kill()
            self.spare.proc.waitForFinished(3000)
        self.prewarm_options = keep
        self.output.emit("participant screen options changed: prewarming a new runner for them")
        self.start_spare()

    def close_spare(self) -> None:
        """Stop the waiting runner (it holds nothing: SIGTERM ends it at once)."""
        self.prewarm_options = None
        if self.spare.is_running():
            self.spare.proc.terminate()
            if not self.spare.proc.waitForFinished(3000):
                self.spare.proc.kill()
                self.spare.proc.waitForFinished(3000)

    def spare_pid(self) -> int | None:
        return self.spare.pid()

    def _spare_line(self, line: str) -> None:
        ev = parse_line(line)
        if ev is not None and ev.get("event") == "runner_ready":
            self.spare_ready = True
            self.output.emit(f"prewarmed runner ready (pid {ev.get('pid')}, {ev.get('prepare_s')} s): the next "
                             "session starts in it")
        elif line.strip():
            self.output.emit(f"prewarmed runner: {line}")

    def _spare_finished(self, code, by_signal: bool) -> None:
        if self.prewarm_options is None:
            return                      # closed on purpose
        how = "was killed by a signal" if by_signal else f"ended with exit code {code}"
        tail = f" ({self.spare.stderr_tail[-1]})" if self.spare.stderr_tail else ""
        self.spare_lost = f"the prewarmed runner (pid {self.spare.proc.processId() or '?'}) {how}{tail}"
        self.output.emit(f"{self.spare_lost}; the next session starts in a fresh lhlab run")

    def _start_prewarmed(self, argv: list[str]) -> bool:
        """Hand `lhlab run` argv to the waiting runner; False (and a log line) if there is none."""
        run_prefix = lhlab_argv("run")
        if self.prewarm_options is None or argv[:len(run_prefix)] != run_prefix:
            return False
        if not self.spare.is_alive():
            why = self.spare_lost or ("the prewarmed runner is not running" if not self.spare.is_running()
                                      else f"the prewarmed runner (pid {self.spare.pid()}) has died")
            self.output.emit(f"{why}: starting the session in a fresh lhlab run instead (slower start)")
            self.spare_lost = None
            return False
        self.child, self.spare = self.spare, self.child
        self.child.argv = list(argv)
        self.child.send(json.dumps({"run": argv[len(run_prefix):]}))
        self.output.emit(f"session sent to the prewarmed runner, pid {self.child.pid()}"
                         + ("" if self.spare_ready else " (still starting up)"))
        return True

    def is_running(self) -> bool:
        return self.state != "idle"

    def pid(self) -> int | None:
        return self.child.pid()

    def start(self, argv: list[str], kind: str = "session", meta: dict | None = None) -> None:
        """Start `lhlab run ...` (argv from gui.commands.run_argv); `meta` travels to `finished`."""
        if self.is_running():
            raise RuntimeError("a session is already running; abort it first")
        self.kind, self.meta, self.argv = kind, dict(meta or {}), list(argv)
        self.progress = LiveProgress(started_at=time.monotonic())
        self._set_state("starting")
        self.prewarmed_start = self._start_prewarmed(argv)
        if not self.prewarmed_start:
            self.child.start(argv)

    def abort(self) -> bool:
        """Graceful stop (SIGTERM); the session ends `aborted`. False if nothing runs."""
        if not self.child.is_running():
            return False
        self._set_state("stopping")
        self.child.stop()
        return True

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.stateChanged.emit(state)

    def _line(self, line: str) -> None:
        ev = parse_line(line)
        if ev is None:
            if line.strip():
                self.output.emit(f"stdout: {line}")
            return
        if ev.get("event") == "runner_ready":      # a runner that got the request before it was ready
            self.output.emit(f"prewarmed runner ready (pid {ev.get('pid')}, {ev.get('prepare_s')} s)")
            return
        self.progress.apply(ev, time.monotonic())
        if self.state == "starting":
            self._set_state("running")
        self.lineEvent.emit(ev)
        self.progressChanged.emit()

    def _finished(self, code, by_signal: bool) -> None:
        progress = self.progress
        status = status_for_exit(code, by_signal, progress.end_status if progress else None)
        if code is None:
            status = "failed to start"
        result = {"status": status, "code": code, "by_signal": by_signal, "killed": self.child.killed,
                  "stopped": self.child.stop_requested, "stderr_tail": list(self.child.stderr_tail),
                  "progress": progress, "kind": self.kind, "meta": self.meta,
                  "reason": progress.end_reason if progress else None}
        result["prewarmed"] = self.prewarmed_start
        self._set_state("idle")
        self.finished.emit(result)
        QTimer.singleShot(0, self.start_spare)        # the next session's prewarmed runner


__all__ = ["ChildProcess", "SessionRunner", "describe"]
