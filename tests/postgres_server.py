"""A private PostgreSQL for tests: its own cluster in a temp dir, on a free port, started and always stopped.

Debian's ``postgresql`` package provides the binaries; ``make test`` installs it when they are missing. The
machine's own PostgreSQL (if one runs, on 5432) is never touched. PostgreSQL refuses to run as root, so
as root the cluster belongs to the ``postgres`` user and its programs run as that user.
"""

import itertools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.servers import free_port

OPTIONS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off "
    "-c shared_buffers=32MB -c max_connections=60"
)
"""A throwaway cluster: no durability to pay for, small memory on a shared machine."""


def binaries() -> Path:
    """The newest installed PostgreSQL's ``bin`` folder."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError("Debian's postgresql is not installed: `make test` installs it")
    return found[-1].parent


@dataclass
class PostgresServer:
    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pulse-pg-")))
    """Under /tmp, not pytest's tmp dirs: those are private to root, and the server runs as postgres."""
    _names: "itertools.count[int]" = field(default_factory=itertools.count)

    @property
    def data(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*as_postgres, *args], capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}\n{self.log()}")

    def start(self) -> "PostgresServer":
        if not self.data.exists():
            if os.geteuid() == 0:
                shutil.chown(self.workdir, "postgres", "postgres")
            initdb = str(binaries() / "initdb")
            self._run(initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                      "--locale=C", "--no-sync", "--no-instructions")  # fmt: skip
        options = f"-p {self.port} -k {self.workdir} {OPTIONS}"
        self._run(str(binaries() / "pg_ctl"), "start", "-w", "-t", "30", "-D", str(self.data),
                  "-l", str(self.log_path), "-o", options)  # fmt: skip
        return self

    def stop(self) -> None:
        """Shut down now (``-m fast``: sessions are ended); ``start`` brings the same cluster back."""
        self._run(str(binaries() / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data))

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"test_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""
