"""A throwaway PostgreSQL server for the tests (Debian's `postgresql` package).

initdb/pg_ctl refuse to run as root, so when the tests run as root the server runs as the
unprivileged `postgres` user, in a temp folder that user owns; data, unix socket and log
all live there, and the server listens on no TCP address (private to this machine). The
port number only names the socket (`.s.PGSQL.<port>`); a free one is picked anyway so the
server could be given TCP with one flag.

Authentication: `trust` for everyone over the socket except the role `lhlab_pw`, which needs
its password (scram-sha-256): the wrong-password tests use it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PASSWORD_ROLE = "lhlab_pw"
PASSWORD = "s3cret-Pw"


def pg_bin() -> Path | None:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """Start with PgServer(); `url(db)` for a database; `stop()`/`start()` to restart; `destroy()`."""

    def __init__(self):
        self.bin = pg_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql; scripts/setup.sh does it)")
        self.as_root = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="lhlab-pg-"))
        os.chmod(self.root, 0o755)
        self.dir = self.root / "pg"
        self.dir.mkdir()
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        self._run("initdb", "-D", str(self.dir), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        with open(self.dir / "pg_hba.conf", "w") as f:
            f.write(f"local all {PASSWORD_ROLE} scram-sha-256\nlocal all all trust\n")
        with open(self.dir / "postgresql.conf", "a") as f:
            f.write(f"listen_addresses = ''\nunix_socket_directories = '{self.dir}'\nport = {self.port}\n"
                    "max_connections = 60\n"
                    # a restart (pg_ctl stop -m fast) writes everything out whatever these say; they only
                    # skip waiting for the disk, which the tests (no power cuts) do not need
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
        self.start()
        self.psql("postgres", f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=60, cwd=self.root)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir), "-w", "-l", str(self.dir / "log"), "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.dir), "-w", "-m", mode, "stop")

    def psql(self, db: str, command: str) -> str:
        out = self._run("psql", "-h", str(self.dir), "-p", str(self.port), "-U", "postgres", "-d", db,
                        "-v", "ON_ERROR_STOP=1", "-Atc", command)
        return out.stdout

    def create_database(self, name: str, owner: str = "postgres") -> str:
        self.psql("postgres", f'CREATE DATABASE "{name}" OWNER {owner}')
        return self.url(name)

    def url(self, db: str, user: str = "postgres", password: str | None = None) -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@/{db}?host={self.dir}&port={self.port}"

    def reset(self, db: str) -> None:
        """Drop every lhlab study and the lab schema from `db` (cheaper than a new database)."""
        self.psql(db, "DO $$ DECLARE s text; BEGIN FOR s IN SELECT nspname FROM pg_namespace WHERE nspname = 'lhlab' "
                      "OR starts_with(nspname, 'lhlab/') LOOP EXECUTE format('DROP SCHEMA %I CASCADE', s); END LOOP; "
                      "END $$")

    def destroy(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)
