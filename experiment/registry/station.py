"""What a station does around one `lhlab run` session, besides running it (cli.cmd_run):

- during the session: heartbeats to the registry from a background thread (live.py), fed by
  the session's progress events;
- when it has ended (any status): the final heartbeat, the session's training schedules for
  yoked partners on other stations (partner.py), the registry's session rows (sync), and a
  copy to the central data folder when one is configured (central.py).

Only a study that has a registry gets heartbeats and registry rows (a session never creates
one). None of it can change the session or its exit code: every failure (server down, share not
mounted) is one line on stderr and, where the session record can still take it without
making a copy on the share differ, a line in the record's `warnings`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from experiment import datafile
from experiment.registry.live import HEARTBEAT_S, HeartbeatWriter

ENV_HEARTBEAT = "LHLAB_HEARTBEAT_S"      # the beat interval (tests use a short one)


def _interval() -> float:
    try:
        value = float(os.environ.get(ENV_HEARTBEAT, HEARTBEAT_S))
    except ValueError:
        return HEARTBEAT_S
    return value if 0.01 <= value <= 60 else HEARTBEAT_S


def _open(study: Path):
    """The study's registry, or None if it has none: a session never creates a registry (one
    PC without the launcher needs none, and on a nearly full disk its files would compete with
    the session's)."""
    from experiment.registry.core import Registry
    if not Registry.exists(study):
        return None
    return Registry.open(study)


def heartbeat(prepared, say: Callable[[str], None]) -> HeartbeatWriter:
    """The heartbeat writer of `prepared`'s session (add `.event` to the session's progress
    listeners)."""
    import socket

    from experiment.labconfig import station
    try:
        name = station()
    except Exception as e:  # noqa: BLE001 - a bad lab.json "station" costs its name, never the session
        name = socket.gethostname()
        say(f"the lab monitor shows this station as {name!r}: {e}")
    req = prepared.request

    def training_done(reg) -> None:
        """The partner side of a yoke, as soon as training is over: its noise schedules and its
        registry row (training complete), so another station can yoke to it while this session
        goes on with its test phase."""
        from experiment.registry import partner
        record = datafile.read_session(datafile.session_json_path(prepared.study, req.participant, prepared.session))
        partner.store(reg, prepared.study, record, name)
        reg.sync_sessions()
    return HeartbeatWriter(lambda: _open(prepared.study), req.participant, prepared.session, req.condition, name,
                           interval=_interval(), log=say,     # starts beating at the session_start event
                           after_training=training_done)


def _name() -> str:
    """This station's name, or the host name when lab.json's is unusable (heartbeat() said so)."""
    import socket

    from experiment.labconfig import station
    try:
        return station()
    except Exception:  # noqa: BLE001
        return socket.gethostname()


def after_session(prepared, record: dict, writer: HeartbeatWriter | None, say: Callable[[str], None]) -> None:
    """Everything a station does once the session has ended; never raises."""
    notes = []
    if writer is not None:
        problem = writer.finish(record.get("status"))
        if problem:
            notes.append(f"registry heartbeats: {problem}")
    try:
        from experiment.registry import partner
        reg = _open(prepared.study)
        if reg is not None:
            with reg:
                partner.store(reg, prepared.study, record, _name())
                reg.sync_sessions()
    except Exception as e:  # noqa: BLE001 - the registry learns it at the next sync (lhlab sync, the launcher)
        line = f"the registry was not updated with this session ({' '.join(str(e).split())}); lhlab sync or the " \
               "launcher does it later"
        say(line)
        notes.append(line)
    _log(prepared, record, notes)
    _central(prepared, record, say)


def _log(prepared, record: dict, notes: list[str]) -> None:
    if not notes or not record:
        return
    record.setdefault("warnings", []).extend(notes)
    try:
        datafile.write_json_atomic(datafile.session_json_path(prepared.study, prepared.request.participant,
                                                              prepared.session), record)
    except OSError:
        pass                        # the stderr line stands


def _central(prepared, record: dict, say: Callable[[str], None]) -> None:
    from experiment.registry import central
    try:
        root = central.central_folder(None)
    except Exception:  # noqa: BLE001 - no central folder configured: nothing to copy
        return
    label, number = prepared.request.participant, prepared.session
    try:
        report = central.sync(prepared.study, root, only={(label, number)})
        problems = report.problems
    except Exception as e:  # noqa: BLE001 - the share is down: the session stays here, lhlab sync copies it later
        problems, report = [" ".join(str(e).split())], None
    if not problems:
        if report is not None and report.registry_down:    # copied; the next sync tells the registry
            say(f"sub-{label} ses-{number} copied to the central folder, but the registry was not told "
                f"({report.registry_down}); lhlab sync records it later")
        return
    line = f"sub-{label} ses-{number} not copied to the central folder: {problems[0]}"
    say(line)
    if not datafile.session_dir(Path(root) / prepared.study.name, label, number).exists():
        _log(prepared, record, [line])      # only while no copy exists that this change would make differ
