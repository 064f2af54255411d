"""The in-memory fast path: simulated sessions and studies that write nothing.

`MemorySession` is `experiment.session.Session` with its storage hooks (`_create_folder`,
`_open_log`, `_write_sidecar`, `_save`, `_update_participants`) pointed at memory: no study
folder, no session JSON, no participants.tsv, no fsync, no registry. Everything else is the
code a lab session runs: the seeded schedule (`protocol.plan`), the virtual devices
(`devices.virtual.data_only_devices`), the simulated participant (`participant_for`), every
task's trial logic, and the rows each task writes, formatted cell by cell exactly as
`datafile.TrialLog` writes them (`RowSink`). So a study simulated here and the same study
written to disk by `lhlab simulate`-style sessions give the same trial table
(tests/test_power_fastpath.py).

A study is a pure function of (protocol, profile, n per group, seed): `study_plan` names its
participants (labels, conditions, session seeds, yoke partners) and `simulate_study` runs them;
`write_study` runs the same plan through the on-disk path (prepare + run_data_only), for
comparison. The tidy tables are built by the analysis side (analysis/power.py), because
`experiment` never imports `analysis`.

This module sits beside session.py rather than in experiment/simulation/: it builds on the
session, the preflight and the cohort seeds, which themselves use experiment.simulation (the
participant), and the import contracts forbid cycles between a package's modules.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

from experiment import datafile
from experiment.preflight import Prepared, SessionRequest
from experiment.protocol import Protocol, plan
from experiment.session import Session

MEMORY_ROOT = Path("<memory>")      # the study 'folder' of an in-memory session (never created)


class RowSink:
    """Stands in for `datafile.TrialLog`: the same column check and the same cell formatting,
    but the lines stay in memory (`lines`, each ending in a newline)."""

    def __init__(self, path: Path, columns: list[str], keep: bool = True):
        self.path, self.columns, self.keep = path, columns, keep
        self._known = frozenset(columns)
        self.lines: list[str] = []
        self.rows = 0

    def write(self, row: dict) -> None:
        if not self._known.issuperset(row):
            unknown = set(row) - self._known
            raise ValueError(f"{self.path.name}: columns not declared by the task: {sorted(unknown)}")
        self.rows += 1
        if not self.keep:       # a phase the caller does not analyse: counted, not formatted
            return
        cells = [datafile._format(row.get(c)) for c in self.columns]
        if any('"' in c for c in cells):        # the csv module would quote it: use the writer's own line
            self.lines.append(datafile._tsv_line(cells).decode("utf-8"))
        else:
            self.lines.append("\t".join(cells) + "\n")

    def close(self) -> None:
        pass


class MemorySession(Session):
    """A data-only simulated session whose record and trial rows stay in memory."""

    def __init__(self, prepared: Prepared, devices: tuple, stop_flag: threading.Event,
                 roles: frozenset | None = None):
        super().__init__(prepared, devices, stop_flag, progress_out=None)
        self.sinks: list[RowSink] = []
        self.roles = roles          # keep the rows of phases with these roles only (None: all)

    def run(self) -> int:
        return self._run()          # no disk: no space reserve, no disk-full handling

    def _create_folder(self) -> None:
        pass

    def _open_log(self, path: Path, columns: list[str]) -> RowSink:
        running = next(ph for ph in self.record["phases"] if ph["status"] == "running")
        sink = RowSink(path, columns, keep=self.roles is None or running["role"] in self.roles)
        self.sinks.append(sink)
        return sink

    def _write_sidecar(self, path: Path, sidecar: dict) -> None:
        pass

    def _save(self) -> None:
        self.record["noise_dose"] = self.speaker.dose_record()

    def _update_participants(self) -> None:
        pass


@dataclass(frozen=True)
class Planned:
    """One participant of a planned study."""

    label: str
    condition: str
    seed: int                     # the session seed
    yoked_to: str | None = None   # the partner's label (yoked conditions)


@dataclass
class SimulatedSession:
    """What a finished in-memory session left: its record (the session JSON's content, with
    `effective_status`) and its trial logs as (header columns, lines) per phase, in order."""

    label: str
    record: dict
    logs: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)


def session_seed(study_seed: int, label: str) -> int:
    """The session seed of `label` in a study seeded with `study_seed` (as `lhlab simulate`)."""
    from experiment.cohort import session_seed as seed_of
    return seed_of(study_seed, label)


def study_seed(seed: int, profile: str, n: int, index: int) -> int:
    """The seed of study `index` of a power-analysis cell: a pure function of the run's seed,
    the profile, the group size and the study's index (never of the worker that runs it)."""
    digest = hashlib.sha256(f"lhlab-power:{seed}:{profile}:{n}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 2**31


def study_plan(proto: Protocol, n_per_group: int, seed: int) -> list[Planned]:
    """`n_per_group` participants in each condition; labels p0001, p0002, ... (so they sort as
    the loader sorts them); a yoked condition's j-th participant replays the j-th participant
    of its partner condition, and runs after every unyoked participant."""
    conds = list(proto.conditions)
    width = max(4, len(str(n_per_group * len(conds))))
    labels: dict[str, list[str]] = {}
    out = []
    k = 0
    for c in conds:
        labels[c] = []
        for _ in range(n_per_group):
            k += 1
            labels[c].append(f"p{k:0{width}d}")
    for c in sorted(conds, key=lambda c: proto.conditions[c].yoked_to is not None):   # partners first
        partner = proto.conditions[c].yoked_to
        for j, label in enumerate(labels[c]):
            out.append(Planned(label, c, session_seed(seed, label), labels[partner][j] if partner else None))
    return out


def _request(proto: Protocol, p: Planned, profile: str, data_dir: Path) -> SessionRequest:
    return SessionRequest(protocol=proto, participant=p.label, condition=p.condition, data_dir=data_dir,
                          seed=p.seed, simulate=profile, mode="data-only", yoked_to=p.yoked_to, pilot=True)


def prepare_in_memory(proto: Protocol, p: Planned, profile: str, partner: SimulatedSession | None = None) -> Prepared:
    """The Prepared of a first session, as `preflight.prepare` makes it for a data-only
    simulation, without looking at any folder (the yoke partner's rows come from memory)."""
    from experiment.preflight import _prepare_audio
    req = _request(proto, p, profile, MEMORY_ROOT)
    prepared = Prepared(req, MEMORY_ROOT / proto.study_id, 1, p.seed, plan(proto, p.condition, p.seed), [])
    _prepare_audio(prepared, [p.condition])
    if p.yoked_to is not None:
        _yoke_in_memory(prepared, partner)
    return prepared


def _yoke_in_memory(prepared: Prepared, partner: SimulatedSession | None) -> None:
    """`preflight._prepare_yoke` with the partner's trial rows taken from memory."""
    from experiment.tasks.noise_escape import apply_yoke, partner_phase_id, yoked_phases
    req, proto = prepared.request, prepared.request.protocol
    replays = yoked_phases(proto, req.condition)
    if not replays:
        return
    if partner is None:
        raise ValueError(f"{req.participant}: yoked condition {req.condition!r} needs its partner's session")
    yoke = {"partner": req.yoked_to, "phases": {}}
    for i, (phase, trials, _) in enumerate(prepared.schedule):
        if phase not in replays:
            continue
        pid = partner_phase_id(proto, req.condition, phase)
        header, lines = partner.logs[pid]
        iti, dur = header.index("iti"), header.index("noise_duration")
        rows = [line.rstrip("\n").split("\t") for line in lines]
        ptrials = [{"iti": float(r[iti]), "duration": float(r[dur])} for r in rows]
        info = {"partner": req.yoked_to, "partner_session": 1, "partner_condition": partner.record["condition"],
                "partner_phase": pid, "partner_file": f"(memory) {pid}",
                "partner_protocol_sha256": proto.sha256, "partner_status": partner.record.get("effective_status"),
                "partner_total_noise_s": round(sum(t["duration"] for t in ptrials), 6), "trials": ptrials}
        new = apply_yoke(trials, info)
        prepared.schedule[i] = (phase, new, sum(t["iti"] + t["noise_duration"] for t in new))
        yoke["phases"][phase.id] = {k: v for k, v in info.items() if k != "trials"}
    prepared.yoke = yoke


def run_in_memory(prepared: Prepared, stop: threading.Event | None = None,
                  roles: frozenset | None = None) -> SimulatedSession:
    """One simulated session through Session and the task code, nothing written. With `roles`,
    only the rows of phases with those roles are kept (the others are run and counted)."""
    from experiment.devices.virtual import data_only_devices
    from experiment.simulation.participant import participant_for
    stop = stop or threading.Event()
    keys = prepared.request.protocol.keys
    session = MemorySession(prepared, data_only_devices(participant_for(prepared), keys, stop), stop, roles)
    session.run()
    record = session.record
    record["effective_status"] = datafile.effective_status(record)
    logs = {}
    for ph, sink in zip([ph for ph in record["phases"] if ph.get("file")], session.sinks):
        if sink.keep:
            logs[ph["id"]] = (sink.columns, sink.lines)
    return SimulatedSession(prepared.request.participant, record, logs)


def simulate_study(proto: Protocol, profile: str, n_per_group: int, seed: int,
                   stop: threading.Event | None = None, roles: frozenset | None = None) -> list[SimulatedSession]:
    """Every participant of `study_plan(proto, n_per_group, seed)`, in memory, in plan order.
    `roles`: keep only these phases' rows (a yoked condition's partners keep their training rows,
    which the yoke replays)."""
    done: dict[str, SimulatedSession] = {}
    out = []
    partners = {c.yoked_to for c in proto.conditions.values() if c.yoked_to}
    for p in study_plan(proto, n_per_group, seed):
        keep = roles if roles is None or p.condition not in partners else roles | {"training"}
        s = run_in_memory(prepare_in_memory(proto, p, profile, done.get(p.yoked_to)), stop, keep)
        done[p.label] = s
        out.append(s)
    return out


def write_study(proto: Protocol, profile: str, n_per_group: int, seed: int, data_dir: Path) -> Path:
    """The same study written to disk through the normal path (preflight.prepare +
    session.run_data_only, one session folder per participant); returns the study folder."""
    from experiment.preflight import prepare
    from experiment.session import run_data_only
    for p in study_plan(proto, n_per_group, seed):
        run_data_only(prepare(_request(proto, p, profile, Path(data_dir))))
    return datafile.study_dir(Path(data_dir), proto.study_id)
