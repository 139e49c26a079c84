"""Real servers the tests start themselves, once per test session: a PostgreSQL 15 server (Debian's
`postgresql`) in a temporary folder, on a free port of 127.0.0.1, behind a password. Nothing of the
machine's own PostgreSQL is touched."""

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(*command: str, **kwargs) -> subprocess.CompletedProcess:
    """PostgreSQL's programs refuse to run as root: as root, run them as the postgres user."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *command], check=True, capture_output=True, text=True, **kwargs)


class PostgresServer:
    """initdb in a temporary folder, then pg_ctl start on a free port; a fresh database per test."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="fmnist-pg-"))
        self.data = self.folder / "data"
        self.user, self.password, self.port = "fmnist", secrets.token_urlsafe(12), free_port()
        self.count = 0
        password_file = self.folder / "password"
        password_file.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            shutil.chown(password_file, "postgres")
        as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", self.user, f"--pwfile={password_file}",
                    "--auth=scram-sha-256", "-E", "UTF8", "--no-sync")
        password_file.unlink()
        self.start()

    def start(self) -> None:
        # fsync off: a test server; a clean restart (the fault tests) still keeps every commit.
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.folder} -c fsync=off"
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def url(self, database: str = "postgres") -> str:
        """As people write it (fmnist.database turns it into SQLAlchemy's psycopg URL)."""
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """An empty database of its own for one test; its plain URL."""
        import psycopg

        self.count += 1
        name = f"test_{self.count}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={self.user} password={self.password} dbname=postgres",
                             autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
