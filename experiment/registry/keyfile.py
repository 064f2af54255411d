"""The identity key of a SQLite study: external ids (e.g. SONA ids) -> labels, outside the study.

The study folder is what people zip and share, so the key that re-identifies participants is
never in it. A SQLite study keeps it in its own small SQLite file in

    $LHLAB_KEYS, else $XDG_DATA_HOME/lhlab/keys, else ~/.local/share/lhlab/keys

folder mode 0700, file mode 0600 (the experimenter's account only). The registry's meta row
`key_file` names the file (`<study folder>-<random>.sqlite`), so a copied study folder never
finds another study's key. The file is ATTACHed to the registry connection as `keys`, so an
id and its registration are written in the same transaction. A server registry keeps external
ids in its own participants table, which is on the server and in no study folder.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from experiment.errors import BadInput

ENV_VAR = "LHLAB_KEYS"
SCHEMA = ("CREATE TABLE IF NOT EXISTS keys.identities (label TEXT PRIMARY KEY, external_id TEXT NOT NULL UNIQUE, "
          "created TEXT NOT NULL)")


def keys_dir() -> Path:
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "lhlab" / "keys"


def new_name(study_dir: Path) -> str:
    return f"{Path(study_dir).name}-{secrets.token_hex(8)}.sqlite"


def create(path: Path) -> None:
    """Create the (empty) key file with owner-only permissions, whatever the umask."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)
    except OSError as e:
        raise BadInput(f"cannot create the identity key file {path} ({e.strerror}); set {ENV_VAR} to a private "
                       "folder outside the study folder") from None
