"""`lhlab export STUDY OUT` (a shareable copy) and `lhlab erase STUDY LABEL --reason` (withdrawn consent).

Export copies the study folder without what must not leave the lab: the registry file(s)
(registry.sqlite*, with external ids of old studies, notes and the assignment log), lhlab's
private folder (`lhlab/`: which server holds the registry) and lock/temp files. Notes and the
identity key never reach the dataset files in the first place (they live in the registry and
the key file); as a last check every copied file is searched for every external id the
registry knows, and the export is refused (and removed) if one turns up.

Erase, for a participant who withdraws consent after their session: the registry keeps the
label and its assignment log rows (so balance and the log stay auditable: the slot stays used,
as "erased") but loses the external id, the notes and the key-file entry; the participant's
sub-<label>/ folder goes, per-participant derivatives go, their rows leave the derived
tables (re-run `lhlab analyze` for the statistics), participants.tsv is rebuilt, and the audit
table records who erased whom, when and why. With a server registry only this station's
study folder is cleaned: run erase on every station that holds the participant's data.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

from experiment import datafile
from experiment.errors import BadInput
from experiment.identifiers import LABEL_RE
from experiment.registry.core import Registry

_PRIVATE_NAMES = ("lhlab",)
_PRIVATE_PREFIXES = ("registry.sqlite", ".lock")
_TEMP_SUFFIXES = (".tmp", ".partial")


def _private(name: str) -> bool:
    return name in _PRIVATE_NAMES or name.startswith(_PRIVATE_PREFIXES) or name.endswith(_TEMP_SUFFIXES)


def _study(study: Path) -> Path:
    study = Path(study)
    if not (study / "dataset_description.json").is_file():
        raise BadInput(f"{study} is not an lhlab study folder (no dataset_description.json)")
    return study


def export_study(study: Path, out: Path) -> tuple[int, int]:
    """Copy the shareable part of `study` to `out` (new); return (files, bytes)."""
    study = _study(study)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(f"{out} already exists and is not empty; export into a new folder")
    if out.resolve().is_relative_to(study.resolve()):
        raise BadInput(f"{out} is inside the study folder; export to a folder outside {study}")
    with Registry.open(study) as reg:
        ids = {p.external_id: p.label for p in reg.participants() if p.external_id and len(p.external_id) >= 3}
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    files = size = 0
    try:
        # symbolic links are left out: lhlab makes none, and one could pull a file from outside into the copy
        shutil.copytree(study, tmp, ignore=lambda folder, names: [n for n in names if _private(n) or
                                                                  (Path(folder) / n).is_symlink()])
        for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
            data = path.read_bytes()
            for external_id, label in ids.items():
                if external_id.encode() in data:
                    raise BadInput(f"{path.relative_to(tmp)} contains the external id of {label}; remove it from "
                                     f"{study} before sharing (nothing was exported)")
            files, size = files + 1, size + len(data)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except OSError as e:
        raise BadInput(f"cannot export to {out} ({e.strerror or e}); check the space and permissions there") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return files, size


def erase(study: Path, label: str, reason: str) -> list[str]:
    """Erase one participant's data everywhere this PC can reach; return what was done, one line each."""
    study = _study(study)
    if not LABEL_RE.match(label or ""):
        raise BadInput(f"{label!r} is not a participant label (letters and digits, e.g. P007)")
    if not (reason or "").strip():
        raise BadInput("--reason is required: say why (e.g. 'consent withdrawn by e-mail 2026-12-01'); it is kept "
                       "in the registry's audit table")
    running = [r for r in datafile.all_sessions(study) if r.get("participant") == label
               and r.get("effective_status") == "running"]
    if running:
        raise BadInput(f"sub-{label} ses-{running[0].get('session')} is running now; end the session first, then erase")
    done = []
    with Registry.open(study) as reg:
        reg.participant(label)                  # BadInput if unknown
        reg.erase(label, reason.strip())
        done.append(f"registry: {label} marked erased (external id and notes removed; its assignment stays logged)")
    sub = study / f"sub-{label}"
    if sub.exists():
        shutil.rmtree(sub)
        done.append(f"removed {sub}")
    done.extend(_erase_derivatives(study / "derivatives", label))
    datafile.update_participants_tsv(study)
    done.append("participants.tsv rebuilt")
    return done


def _erase_derivatives(folder: Path, label: str) -> list[str]:
    if not folder.is_dir():
        return []
    done = []
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if f"sub-{label}" in path.name:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            done.append(f"removed {path}")
        elif path.is_file() and path.suffix in (".csv", ".tsv"):
            delimiter = "\t" if path.suffix == ".tsv" else ","
            with open(path, newline="", encoding="utf-8", errors="replace") as f:
                rows = list(csv.reader(f, delimiter=delimiter))
            kept = [r for r in rows if label not in r and f"sub-{label}" not in r]
            if len(kept) < len(rows):
                tmp = path.with_name(path.name + ".tmp")
                with open(tmp, "w", newline="", encoding="utf-8") as f:
                    csv.writer(f, delimiter=delimiter, lineterminator="\n").writerows(kept)
                os.replace(tmp, path)
                done.append(f"{path}: {len(rows) - len(kept)} rows removed (re-run lhlab analyze for the statistics)")
    return done
