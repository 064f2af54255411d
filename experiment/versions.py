"""Installed package versions, for provenance and `lhlab --version` (from the distributions'
metadata: nothing is imported to learn a version)."""

from __future__ import annotations

import functools
import platform
from importlib.metadata import PackageNotFoundError, version

NOT_INSTALLED = None     # how a missing package is recorded (JSON null; tables print "not installed")


def package_version(dist: str) -> str | None:
    """The installed version of distribution `dist`, or None when it is not installed."""
    try:
        return version(dist)
    except PackageNotFoundError:
        return NOT_INSTALLED


@functools.lru_cache(maxsize=2)
def _versions(real_devices: bool) -> tuple:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("lhlab", "numpy", "pyyaml") + (("psychopy-lib", "psychtoolbox", "pyglet") if real_devices else ()):
        out[dist] = package_version(dist)
    return tuple(out.items())


def session_versions(real_devices: bool) -> dict:
    """Versions recorded with every session (looked up once per process)."""
    return dict(_versions(real_devices))
