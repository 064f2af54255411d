"""`lhlab sync STUDY [--to CENTRAL]`: copy this station's finished sessions to the central folder.

A session never depends on the network: it writes into the station's own study folder. Its
finished folder (`sub-<label>/ses-<n>/`, any status but `running`) is then copied to
`CENTRAL/<study folder name>/sub-<label>/ses-<n>/` (CENTRAL: `--to`, else LHLAB_CENTRAL, else
`"central"` in lab.json), e.g. a mounted share:
- checksummed: every file's SHA-256 is compared after the copy; the session's checksum (the
  SHA-256 of its sorted `path sha256 size` lines) goes into the registry with where it went;
- atomic and resumable: the copy is made in `.ses-<n>.partial` beside its place and renamed
  when verified; a partial copy left by an interruption (full share, network gone, killed) is
  removed and redone on the next sync;
- idempotent and never overwriting: a session already there with the same checksum is
  skipped; one there with different content is reported and left alone.
The study's dataset files are copied once if missing, and the central participants.tsv is
rebuilt from the session records there. Problems are one line each; nothing half-copied stays.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from experiment import datafile
from experiment.errors import BadInput, LhlabError
from experiment.registry.core import Registry
from experiment.labconfig import lab_config, lab_config_path
from experiment.registry.vocab import now_iso

ENV_VAR = "LHLAB_CENTRAL"
DATASET_FILES = ("dataset_description.json", "participants.json", "README", ".bidsignore")


@dataclass
class SyncReport:
    copied: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    registry_down: str = ""        # why the registry was not told (the copies were made all the same)


def central_folder(to: str | Path | None) -> Path:
    if to:
        return Path(to)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    value = lab_config().get("central")
    if isinstance(value, str) and value.strip():
        return Path(value)
    raise BadInput(f"no central folder: pass --to DIR, set {ENV_VAR}, or add \"central\": DIR to {lab_config_path()}")


def synced_sessions(study: Path) -> set[tuple[str, int]] | None:
    """(label, number) of the sessions in the central folder (the registry's record, else the
    share itself); None when no central folder is configured. Never raises for a share or a
    server that is down: what cannot be confirmed counts as not synced."""
    try:
        root = central_folder(None)
    except BadInput:
        return None
    done: set[tuple[str, int]] = set()
    try:
        if Registry.exists(study):
            with Registry.open(study) as reg:
                done = {(s.label, s.number) for s in reg.sessions() if s.central}
    except BadInput:
        pass
    central = Path(root) / Path(study).name
    try:
        for ses in central.glob("sub-*/ses-*"):
            if ses.name[4:].isdigit():
                done.add((ses.parent.name[4:], int(ses.name[4:])))
    except OSError:
        pass
    return done


def manifest(folder: Path) -> tuple[str, dict[str, str]]:
    """(checksum of the folder, {relative path: sha256}) over every file, in path order."""
    files = {}
    lines = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        rel = path.relative_to(folder).as_posix()
        files[rel] = digest.hexdigest()
        lines.append(f"{rel} {files[rel]} {path.stat().st_size}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest(), files


def _copy_verified(source: Path, target: Path, want: dict[str, str]) -> None:
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        shutil.copytree(source, partial, copy_function=shutil.copy2)
        for path in partial.rglob("*"):
            if path.is_file():
                with open(path, "rb") as f:
                    os.fsync(f.fileno())
        _, got = manifest(partial)
        if got != want:
            bad = sorted(set(got.items()) ^ set(want.items()))[0][0]
            raise OSError(f"the copy of {bad} does not match the original (checksum)")
        os.rename(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _registry(study: Path, report: SyncReport) -> Registry | None:
    """The study's registry, synced from disk; None (and one problem line) when it cannot be
    reached: the copies are still made, and the next sync records them (a copy already there
    with the same checksum is recorded as such)."""
    try:
        reg = Registry.open(study)
    except LhlabError as e:
        report.registry_down = " ".join(str(e).split())
        return None
    try:
        reg.sync_sessions()
    except LhlabError:
        reg.close()
        raise
    return reg


def sync(study: Path, to: str | Path | None = None, only: set[tuple[str, int]] | None = None) -> SyncReport:
    """Copy every finished session of `study` (or those in `only`: (label, number)) that is not
    yet in the central folder."""
    study = Path(study)
    if not (study / "dataset_description.json").is_file():
        raise BadInput(f"{study} is not an lhlab study folder (no dataset_description.json)")
    root = central_folder(to)
    if not root.is_dir():
        raise BadInput(f"central folder {root} does not exist or is not mounted; mount the share (or fix --to) and "
                       "run lhlab sync again; the sessions stay safe on this PC")
    central = root / study.name
    report = SyncReport()
    reg = _registry(study, report)
    with reg if reg is not None else nullcontext():
        try:
            central.mkdir(exist_ok=True)
            for name in DATASET_FILES:
                if (study / name).is_file() and not (central / name).exists():
                    shutil.copy2(study / name, central / name)
            for rec in datafile.all_sessions(study):
                label, number = rec.get("participant"), rec.get("session")
                if not isinstance(label, str) or not isinstance(number, int):
                    continue
                if only is not None and (label, number) not in only:
                    continue
                where = f"sub-{label}/ses-{number}"
                if rec.get("effective_status") == "running":
                    report.running.append(where)
                    continue
                source = datafile.session_dir(study, label, number)
                checksum, files = manifest(source)
                target = datafile.session_dir(central, label, number)
                if target.exists():
                    if manifest(target)[0] != checksum:
                        report.problems.append(f"{target} differs from this PC's {where}; left alone (compare the "
                                               "two and keep the right one by hand)")
                        continue
                    report.already.append(where)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _copy_verified(source, target, files)
                    report.copied.append(where)
                if reg is not None:
                    reg.record_central(label, number, str(target), checksum, now_iso())
            datafile.update_participants_tsv(central)
        except OSError as e:
            why = e.strerror or str(e)
            raise BadInput(f"cannot copy to {central} ({why}); nothing half-copied was left there: free space or fix "
                           f"the share, then run lhlab sync again ({len(report.copied)} sessions were copied)") \
                from None
    return report
