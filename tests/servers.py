"""Real servers the cluster tests start themselves, once per test session: a PostgreSQL 15 server
(Debian's `postgresql`) and a Ray head, each in a temporary folder, on a free port of 127.0.0.1,
behind a password or token. Nothing of the machine's own PostgreSQL or Ray is touched."""

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.browser import free_port

from helpers import wait_until

PG_BIN = Path("/usr/lib/postgresql/15/bin")


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
        # fsync off: a test server; a clean restart (the fault tests) still keeps every commit. Each store a
        # test opens keeps its pool's idle connections until it is collected: the suite's many stores on
        # one server need more than PostgreSQL's default 100 connections.
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.folder} -c fsync=off "
                   "-c max_connections=400")
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


class RayHead:
    """`ray start --head` on 127.0.0.1 with token authentication and a temporary folder of its own
    (never Ray's default /tmp/ray, which another Ray on the machine may use). restart() stops it and
    starts it again on the same ports and folder: a head that comes back without its jobs."""

    def __init__(self, num_cpus: int = 2, num_gpus: int = 0):
        self.folder = Path(tempfile.mkdtemp(prefix="fmnist-ray-"))
        self.port, self.dashboard_port = free_port(), free_port()
        self.token = secrets.token_hex(32)
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}
        # Ray's health checks find a dead node in ~3 s here rather than its default ~15 s (a check
        # every 3 s, five failures): the same detection, so that the fault tests wait less.
        self.head_env = {**self.env, "RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}
        self.ray = str(Path(sys.executable).with_name("ray"))
        self.client_port = free_port()
        self.options = [
            "--head", f"--num-cpus={num_cpus}", f"--num-gpus={num_gpus}", "--disable-usage-stats",
            "--node-ip-address=127.0.0.1", f"--port={self.port}", "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}", f"--temp-dir={self.folder}", "--include-dashboard=true",
            f"--ray-client-server-port={self.client_port}", f"--dashboard-agent-listen-port={free_port()}",
            f"--metrics-export-port={free_port()}"]
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        self.start()

    def start(self) -> None:
        subprocess.run([self.ray, "start", *self.options], check=True, capture_output=True, text=True, env=self.head_env, timeout=120)
        wait_until(self.answers, timeout=60, every=0.5, message="the Ray dashboard to answer")

    def restart(self) -> None:
        self.stop()
        self.start()

    def answers(self) -> bool:
        import urllib.request

        request = urllib.request.Request(f"{self.address}/api/version", headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def ray_cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([self.ray, *args], capture_output=True, text=True, env=self.env, timeout=timeout)

    def stop(self) -> None:
        """Ends this head's processes only (`ray stop` would end every Ray on the machine)."""
        end_processes_naming(self.folder, f"--port={self.client_port}")

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def processes_naming(folder: Path, *arguments: str) -> list:
    """A Ray node's processes: those whose command line names its own temporary folder or has one of
    `arguments` (the head's client server names only its port), and what they started (its workers,
    the dashboard's modules)."""
    import psutil

    found = {}
    for process in psutil.process_iter(["cmdline"]):
        try:
            command = process.info["cmdline"] or ()
            if any(str(folder) in part or part in arguments for part in command):
                found |= {p.pid: p for p in [process, *process.children(recursive=True)]}
        except psutil.Error:
            pass
    return list(found.values())


def end_processes_naming(folder: Path, *arguments: str, kill: bool = False) -> None:
    """Terminate (or kill at once, as a node that dies) a Ray node's processes, and wait for them to end."""
    import psutil

    processes = processes_naming(folder, *arguments)
    for process in processes:
        try:
            process.kill() if kill else process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=5)
    for process in alive:
        process.kill()
    psutil.wait_procs(alive, timeout=5)


class RayWorkerNode:
    """A second Ray node on this machine (`ray start --address` to a RayHead), in a temporary folder of its
    own, offering a custom resource so that a run asking for it (FMNIST_RAY_RESOURCES) lands there."""

    def __init__(self, head: RayHead, resource: str, num_cpus: int = 1):
        self.folder = Path(tempfile.mkdtemp(prefix="fmnist-raynode-"))
        subprocess.run(
            [head.ray, "start", f"--address=127.0.0.1:{head.port}", f"--num-cpus={num_cpus}", f'--resources={{"{resource}": 1}}',
             "--node-ip-address=127.0.0.1", f"--temp-dir={self.folder}", "--disable-usage-stats",
             f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={free_port()}"],
            check=True, capture_output=True, text=True, env=head.env, timeout=120,
        )

    def kill(self) -> None:
        """The node dies: its raylet, its workers and the jobs' drivers they started, all at once."""
        end_processes_naming(self.folder, kill=True)

    def close(self) -> None:
        end_processes_naming(self.folder)
        shutil.rmtree(self.folder, ignore_errors=True)
