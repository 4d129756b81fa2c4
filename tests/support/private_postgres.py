"""A PostgreSQL server of a test's own (Debian's binaries, a data folder in /tmp, a free
loopback port), so the test can stop and start it: the shared test server must never go down."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.service_process import free_port


class NoPrivatePostgres(RuntimeError):
    pass


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres account."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser is None:
        raise NoPrivatePostgres("running as root without runuser")
    return [runuser, "-u", "postgres", "--", *cmd]


class PrivatePostgres:
    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise NoPrivatePostgres("no PostgreSQL binaries (Debian package postgresql)")
        self.bin = Path(found[-1]).parent
        self.folder = Path(tempfile.mkdtemp(prefix="ggop-pg-", dir="/tmp"))
        os.chmod(self.folder, 0o755)
        self.data = self.folder / "data"
        self.port = free_port()
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "adapter", "--no-sync"],
                  mkdir=True)

    @property
    def url(self) -> str:
        return f"postgresql://adapter@127.0.0.1:{self.port}/postgres"

    def _run(self, cmd: list[str], mkdir: bool = False) -> None:
        if mkdir:
            self.data.mkdir()
            if os.geteuid() == 0:
                shutil.chown(self.data, "postgres", "postgres")
        done = subprocess.run(_as_postgres(cmd), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise NoPrivatePostgres(f"{Path(cmd[0]).name} failed: {done.stderr.strip()[-300:]}")

    def start(self) -> PrivatePostgres:
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.data / "log"), "-o",
                   f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off", "start"])
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-m", mode, "stop"])

    def remove(self) -> None:
        with contextlib.suppress(NoPrivatePostgres):
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


def drop_database(admin, name: str, attempts: int = 20) -> None:
    """``DROP DATABASE … WITH (FORCE)`` on an AUTOCOMMIT engine. FORCE ends the sessions of our
    own role, but not an autovacuum worker that has just started on a freshly filled database
    (PostgreSQL refuses with InsufficientPrivilege); such a worker ends within moments, so the
    drop is tried again."""
    import time

    from sqlalchemy import text
    from sqlalchemy.exc import ProgrammingError

    for attempt in range(attempts):
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except ProgrammingError as exc:
            if "InsufficientPrivilege" not in type(exc.orig).__name__ or attempt == attempts - 1:
                raise
            time.sleep(0.25)
