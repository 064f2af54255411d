"""`lhlab launch [--data-dir D] [--protocols DIR]`: the launcher window's entry point."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

SETTINGS_ENV = "LHLAB_LAUNCHER_SETTINGS"     # an .ini file instead of the user's settings (tests, kiosks)


def no_display_reason(env: dict | None = None) -> str | None:
    """Why Qt could not open a window here, or None."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux") or env.get("QT_QPA_PLATFORM"):
        return None
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return ("no display: neither DISPLAY nor WAYLAND_DISPLAY is set; start the launcher from the lab PC's desktop "
            "(or under xvfb-run for a test)")


def build(data_dir: Path | None = None, protocols_dir: Path | None = None, argv: list[str] | None = None,
          dialogs=None):
    """(QApplication, LauncherWindow) without showing or running them."""
    from PyQt6.QtCore import QSettings
    from PyQt6.QtWidgets import QApplication

    from gui.launcher import SETTINGS_APP, SETTINGS_ORG, LauncherWindow
    app = QApplication.instance() or QApplication(argv or ["lhlab launch"])
    app.setOrganizationName(SETTINGS_ORG)
    app.setApplicationName(SETTINGS_APP)
    ini = os.environ.get(SETTINGS_ENV)
    settings = QSettings(ini, QSettings.Format.IniFormat) if ini else QSettings(SETTINGS_ORG, SETTINGS_APP)
    window = LauncherWindow(settings=settings, dialogs=dialogs, data_dir=data_dir, protocols_dir=protocols_dir)
    _install_excepthook(window)
    return app, window


def _install_excepthook(window) -> None:
    """A bug in a slot is shown and logged instead of aborting the launcher (PyQt6 aborts by
    default); a running session is a separate process and is not affected either way."""
    def hook(kind, value, tb):
        text = "".join(traceback.format_exception(kind, value, tb))
        sys.stderr.write(text)
        try:
            window.log.add(f"internal error: {kind.__name__}: {value}")
            window.statusBar().showMessage(f"Internal error: {kind.__name__}: {value} (see the log)", 0)
        except Exception:  # noqa: BLE001 - the window may be half-built
            pass
    sys.excepthook = hook


def main(data_dir: Path | None = None, protocols_dir: Path | None = None) -> int:
    reason = no_display_reason()
    if reason:
        print(f"lhlab launch: {reason}", file=sys.stderr)
        return 2
    if protocols_dir is not None and not Path(protocols_dir).is_dir():
        print(f"lhlab launch: --protocols {protocols_dir} is not a folder; give the folder with the protocol files",
              file=sys.stderr)
        return 2
    app, window = build(data_dir, protocols_dir, sys.argv[:1])
    # one prewarmed session runner waits between sessions (gui.session_runner): Start -> first frame ~0.3 s
    window.runner.enable_prewarm(lambda: (window.options.screen, window.options.windowed))
    window.options.screen_combo.currentIndexChanged.connect(lambda _: window.runner.prewarm_options_changed())
    window.options.windowed_check.toggled.connect(lambda _: window.runner.prewarm_options_changed())
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
