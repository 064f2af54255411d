"""Where a study's registry lives: the SQLite file in the study folder, or a PostgreSQL server.

The registry is chosen by, in this order: `--registry URL` (commands that take it), the
environment variable LHLAB_REGISTRY, `"registry": URL` in `~/.config/lhlab/lab.json`
(XDG_CONFIG_HOME is honoured), else SQLite in the study folder. URL forms:

    sqlite                                     the default: <study>/registry.sqlite
    postgresql://USER@HOST[:PORT]/DATABASE      a lab server (postgres:// works too)
    postgresql://USER@/DATABASE?host=/run/postgresql&port=5432   a unix socket

A password never needs to be in the URL: libpq reads ~/.pgpass, PGPASSWORD, PGSERVICE and
the other libpq environment variables. Every message lhlab prints shows the URL through
`mask()`, so a password written into a URL anyway is never echoed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from experiment.errors import BadInput
from experiment.labconfig import lab_config, lab_config_path

ENV_VAR = "LHLAB_REGISTRY"
SQLITE = "sqlite"
_PG_SCHEMES = ("postgresql", "postgres")
_PASSWORD_PARAM = re.compile(r"(?i)(password=)[^&\s]*")


def mask(text: str) -> str:
    """`text` with every password in a PostgreSQL URL or conninfo replaced by ***."""
    text = re.sub(r"(?i)(postgres(?:ql)?://[^:@/\s]*):[^/\s]*@", r"\1:***@", text)    # up to the last @
    return _PASSWORD_PARAM.sub(r"\1***", text)


@dataclass(frozen=True)
class Location:
    """A parsed registry URL. `url` may hold a password: show `shown`, never `url`."""

    kind: str            # 'sqlite' | 'postgresql'
    url: str
    source: str          # where it came from, for messages: '--registry', 'LHLAB_REGISTRY', lab.json path

    @property
    def shown(self) -> str:
        return mask(self.url)


def parse(url: str, source: str = "--registry") -> Location:
    """Check the form of `url` (no connection is made); BadInput names what is wrong."""
    url = (url or "").strip()
    if url.lower() in (SQLITE, "sqlite:", "sqlite://"):
        return Location(SQLITE, SQLITE, source)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in _PG_SCHEMES:
        raise BadInput(f"{source}: {mask(url)!r} is not a registry URL lhlab knows; use 'sqlite' (the default, "
                       "a file in the study folder) or postgresql://USER@HOST/DATABASE (password in ~/.pgpass)")
    try:
        parts = urlsplit(url)
        parts.port                                  # raises ValueError for a port that is not a number
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as e:
        raise BadInput(f"{source}: {mask(url)!r} is not a valid PostgreSQL URL ({mask(str(e))}); "
                       "expected postgresql://USER@HOST[:PORT]/DATABASE") from None
    if not parts.path.strip("/"):
        raise BadInput(f"{source}: {mask(url)!r} names no database; expected postgresql://USER@HOST[:PORT]/DATABASE")
    if not parts.hostname and not any(k == "host" for k, _ in query):
        raise BadInput(f"{source}: {mask(url)!r} names no server; add the host (postgresql://USER@HOST/DATABASE) "
                       "or ?host=/path/to/socket-folder")
    return Location("postgresql", url, source)


def resolve(url: str | None = None) -> Location:
    """The registry to use: `url` if given, else LHLAB_REGISTRY, else lab.json, else SQLite."""
    if url:
        return parse(url, "--registry")
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return parse(env, ENV_VAR)
    path = lab_config_path()
    value = lab_config().get("registry")
    if value is not None:
        if not isinstance(value, str):
            raise BadInput(f"{path}: \"registry\" must be a URL string (got {type(value).__name__})")
        return parse(value, str(path))
    return Location(SQLITE, SQLITE, "default")
