"""Runs on a Ray cluster: submitting a run as a Ray job, telling from Ray whether it still lives,
stopping it, and what the cluster holds.

FMNIST_RAY_ADDRESS unset: nothing here is used, and Ray need not be installed (runs are local
processes, fmnist.worker). Set to the head's dashboard address (`http://head:8265`): every run,
cross-validation or seed job and search trial is a Ray job (Ray's Jobs SDK) whose entrypoint is
the same `python -m fmnist.jobs RUN_ID` a local run has, with the project's code (Ray's
`working_dir`, uploaded once and cached by the cluster) and the FMNIST_* settings in its runtime
environment. Ray queues what does not fit; a run waits as "queued on the cluster" meanwhile.
With token authentication on (RAY_AUTH_MODE=token), Ray's SDK sends the token from RAY_AUTH_TOKEN,
RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token itself. FMNIST_RAY_ADDRESS wins over Ray's own
RAY_API_SERVER_ADDRESS and RAY_ADDRESS (see sdk_address_variables_set_aside).

The run store must be reachable from every node (FMNIST_DB on PostgreSQL) and FMNIST_HOME a
folder every node mounts: that is where runs write their models and logs.
"""

import contextlib
import functools
import json
import logging
import os
import re
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

ADDRESS_ENV = "FMNIST_RAY_ADDRESS"
CPUS_ENV = "FMNIST_RAY_CPUS"  # CPUs each run asks for (default 1)
GPUS_ENV = "FMNIST_RAY_GPUS"  # GPUs each run asks for (default: 1 when the cluster has a GPU, else 0)
# Custom resources each run asks for, as JSON ({"big_memory": 1}): runs go only to the nodes that offer them.
RESOURCES_ENV = "FMNIST_RAY_RESOURCES"
# While the cluster cannot be reached, a run that has written nothing for this long is taken for lost.
LOST_ENV = "FMNIST_RAY_LOST_S"
LOST_S = 600.0
JOB_ENV = "FMNIST_RAY_JOB"  # set in a Ray job's environment: the submission id it runs as
# The project's folder, uploaded as each job's working directory; what a run does not need stays out.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXCLUDES = [".git", ".venv", "venv", "runs", "docs", "tests", "test-output", ".benchmarks", ".ruff_cache", "__pycache__",
            "*.sqlite", "*.sqlite-*", "*.journal"]
# Ray's job states (ray.job_submission.JobStatus), as text.
ALIVE = ("PENDING", "RUNNING")


# Ray's SDK takes these over the address it is given (ray.dashboard.utils.get_address_for_submission_client).
SDK_ADDRESS_VARIABLES = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
environment_lock = threading.Lock()


class ClusterError(RuntimeError):
    """The Ray cluster cannot be used; the message names FMNIST_RAY_ADDRESS and what to do."""


def address() -> str | None:
    """The Ray head's dashboard address, or None: runs are local processes."""
    text = os.environ.get(ADDRESS_ENV, "").strip()
    return text or None


def in_cluster_job() -> bool:
    """Whether this process is a run's Ray job (its run claims no local training slot)."""
    return bool(os.environ.get(JOB_ENV))


@contextlib.contextmanager
def sdk_address_variables_set_aside():
    """Ray's job and state clients take RAY_API_SERVER_ADDRESS, else RAY_ADDRESS, from the environment
    over the address they are given. FMNIST_RAY_ADDRESS must win: Ray sets RAY_ADDRESS in every job's
    environment (its GCS address, for ray.init), so a run's own job would otherwise reach whatever that
    names, and a RAY_ADDRESS that someone exported for `ray job submit` would send the app's runs to
    another cluster than the one its sidebar names. They are set aside only while the clients are
    made (the clients keep the address they resolved) and put back at once."""
    with environment_lock:
        saved = {name: os.environ.pop(name) for name in SDK_ADDRESS_VARIABLES if name in os.environ}
        try:
            yield
        finally:
            os.environ.update(saved)


def resource_setting(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ClusterError(f"{name}={text!r}: a number of at least 0, e.g. 1")
    return value


def custom_resources() -> dict[str, float]:
    """FMNIST_RAY_RESOURCES: the custom resources each run asks for ({} when unset)."""
    text = os.environ.get(RESOURCES_ENV, "").strip()
    if not text:
        return {}
    try:
        asked = json.loads(text)
    except ValueError:
        asked = None
    valid = isinstance(asked, dict) and all(
        isinstance(name, str) and name and isinstance(amount, (int, float)) and not isinstance(amount, bool) and amount >= 0
        for name, amount in asked.items())
    if not valid or {"CPU", "GPU"} & set(asked):
        raise ClusterError(f"{RESOURCES_ENV}={text!r}: a JSON object of custom resource names and amounts, e.g. "
                           f'{{"big_memory": 1}} (CPUs and GPUs are {CPUS_ENV} and {GPUS_ENV})')
    return {name: float(amount) for name, amount in asked.items()}


def lost_after_s() -> float:
    """FMNIST_RAY_LOST_S (default 600): how long a run may write nothing while the cluster cannot be
    reached before it is taken for lost."""
    return resource_setting(LOST_ENV, LOST_S)


@dataclass(frozen=True)
class ClusterSummary:
    address: str
    nodes: int
    cpus: float
    gpus: float
    jobs_running: int

    def describe(self) -> str:
        return (f"Ray cluster at {self.address}: {self.nodes} node{'s' * (self.nodes != 1)}, {self.cpus:g} CPUs, "
                f"{self.gpus:g} GPU{'s' * (self.gpus != 1)}, {self.jobs_running} job{'s' * (self.jobs_running != 1)} running")


def quiet_submissions() -> None:
    """Ray's SDK logs every upload of the working directory and each file it leaves out, on every
    submission, to the app's or the terminal's stderr: only its errors, please."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("ray.") and ("runtime_env" in name or "dashboard_sdk" in name or name.endswith("job.sdk")):
            logging.getLogger(name).setLevel(logging.ERROR)


class Cluster:
    """The Ray head at FMNIST_RAY_ADDRESS, through its Jobs SDK."""

    def __init__(self, head: str):
        self.address = head
        try:
            from ray.job_submission import JobSubmissionClient
        except ImportError as e:
            raise ClusterError(f"{ADDRESS_ENV}={head} asks for a Ray cluster, but Ray is not installed here: "
                               f"./setup.sh --cluster installs it ({e}).") from e
        from ray.util.state.api import StateApiClient

        quiet_submissions()
        try:
            with sdk_address_variables_set_aside():
                self.client = JobSubmissionClient(head)
                self.state = StateApiClient(head)
        except Exception as e:  # ConnectionError, an authentication refusal, a bad address
            raise self.problem(e) from e

    def problem(self, error: Exception) -> ClusterError:
        text = " ".join(str(error).split()) or type(error).__name__
        return ClusterError(f"The Ray cluster at {ADDRESS_ENV}={self.address} cannot be reached ({text[:400]}). Check that "
                            f"its head runs and that the address is its dashboard's (http://head:8265); with token "
                            f"authentication, set RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN) here too. "
                            f"Unset {ADDRESS_ENV} to train on this machine.")

    # --- what the cluster holds ---

    def nodes(self) -> list[dict]:
        """The alive nodes with their total resources (the dashboard's own summary)."""
        from ray.util.state.common import ListApiOptions, StateResource

        try:
            alive = ListApiOptions(filters=[("state", "=", "ALIVE")])
            return [{"id": node.node_id, "resources": dict(node.resources_total or {})}
                    for node in self.state.list(StateResource.NODES, options=alive, raise_on_missing_output=False)]
        except Exception as e:
            raise self.problem(e) from e

    def summary(self) -> ClusterSummary:
        nodes = self.nodes()
        try:
            running = sum(status_text(job.status) == "RUNNING" for job in self.client.list_jobs())
        except Exception as e:
            raise self.problem(e) from e
        return ClusterSummary(self.address, len(nodes), sum(n["resources"].get("CPU", 0.0) for n in nodes),
                              sum(n["resources"].get("GPU", 0.0) for n in nodes), running)

    def resources_per_run(self) -> tuple[float, float]:
        """(CPUs, GPUs) each run asks for: FMNIST_RAY_CPUS (default 1) and FMNIST_RAY_GPUS (default: one
        GPU when the cluster has any, else none)."""
        cpus = resource_setting(CPUS_ENV, 1.0)
        if os.environ.get(GPUS_ENV, "").strip():
            gpus = resource_setting(GPUS_ENV, 0.0)
        else:
            gpus = 1.0 if any(n["resources"].get("GPU", 0.0) > 0 for n in self.nodes()) else 0.0
        return cpus, gpus

    def runs_at_once(self) -> int:
        """How many runs the cluster trains at once with each run's CPUs and custom resources (at least
        one): a search's trials in flight."""
        cpus, _ = self.resources_per_run()
        nodes = self.nodes()
        fits = [sum(n["resources"].get(name, 0.0) for n in nodes) // amount
                for name, amount in {"CPU": cpus, **custom_resources()}.items() if amount > 0]
        return max(1, int(min(fits, default=1)))

    # --- jobs ---

    def submit(self, run_id: int, home: Path, submission_id: str, cpus: float, gpus: float, resources: dict | None = None) -> None:
        """`python -m fmnist.jobs RUN_ID` as a Ray job, with the project's code and settings, asking
        for `cpus`, `gpus` and the custom `resources` (FMNIST_RAY_RESOURCES)."""
        settings = {name: value for name, value in os.environ.items() if name.startswith("FMNIST_")}
        settings |= {"FMNIST_HOME": str(home), JOB_ENV: submission_id, GPUS_ENV: f"{gpus:g}", "TF_CPP_MIN_LOG_LEVEL": "2"}
        try:
            self.client.submit_job(
                entrypoint=f"python -m fmnist.jobs {run_id}", submission_id=submission_id,
                runtime_env={"working_dir": str(PROJECT_ROOT), "excludes": EXCLUDES, "env_vars": settings},
                entrypoint_num_cpus=cpus, entrypoint_num_gpus=gpus, entrypoint_resources=resources or None,
                metadata={"fmnist_run": str(run_id)},
            )
        except Exception as e:
            raise self.problem(e) from e

    def job_state(self, submission_id: str) -> tuple[str, str]:
        """(Ray's status as text, its message); ("UNKNOWN", why) for a job the cluster does not know
        (a head restarted without its job table). ClusterError when the cluster cannot be reached."""
        try:
            info = self.client.get_job_info(submission_id)
        except RuntimeError as e:  # the SDK's answer for a job it does not have
            if "does not exist" in str(e) or "404" in str(e):
                return "UNKNOWN", self.unknown_job()
            raise self.problem(e) from e
        except Exception as e:
            raise self.problem(e) from e
        return status_text(info.status), info.message or ""

    def job_states(self, submission_ids: list[str]) -> dict[str, tuple[str, str]]:
        """job_state of several jobs: one request each for a few, one listing of all jobs for many
        (a class's runs, read by every tab's sidebar)."""
        if len(submission_ids) <= 5:
            return {submission_id: self.job_state(submission_id) for submission_id in submission_ids}
        try:
            jobs = {job.submission_id: (status_text(job.status), job.message or "") for job in self.client.list_jobs()}
        except Exception as e:
            raise self.problem(e) from e
        unknown = ("UNKNOWN", self.unknown_job())
        return {submission_id: jobs.get(submission_id, unknown) for submission_id in submission_ids}

    def unknown_job(self) -> str:
        return (f"the cluster at {self.address} has no such job: its head restarted since (without GCS fault tolerance "
                f"Ray keeps no jobs across a restart, and the jobs on the head's own node end with it), or the job was deleted")

    def stop(self, submission_id: str) -> None:
        try:
            self.client.stop_job(submission_id)
        except Exception as e:  # an unknown job has nothing left to stop
            if "does not exist" not in str(e):
                raise self.problem(e) from e


def why_ended(submission_id: str, state: str, message: str) -> str:
    """A run's error when its Ray job ended without ending it, from Ray's status and message (Ray's
    messages span lines: a dead node's names the node and why it died)."""
    said = " ".join(message.split())
    died = re.search(r"The actor died because (.*)", said)
    if said.startswith("Job supervisor actor died") and died:  # the rest is the actor's ids: the cause, and where
        node_ip = re.search(r"\bip: (\S+)", said)
        said = f"Ray's job supervisor{f' on {node_ip.group(1)}' if node_ip else ''} died because {died.group(1)}"
    said = said if len(said) <= 800 else said[:800] + "…"
    what = "ended without ending its run" if state == "SUCCEEDED" else ("is unknown" if state == "UNKNOWN" else state.lower())
    return f"its Ray job {submission_id} {what}" + (f": {said}" if said else "")


def status_text(status) -> str:
    """Ray's JobStatus (a str enum) as its plain value, e.g. RUNNING."""
    return str(getattr(status, "value", status))


def local_cores() -> int:
    """The cores this process may use (a container's or a task set's limit, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def where_runs_train() -> str:
    """'local, 2 cores', or 'Ray cluster at …: N nodes, C CPUs, G GPUs, J jobs running' (ClusterError
    when the cluster cannot be reached)."""
    head = current()
    if head is None:
        return f"local, {local_cores()} core{'s' * (local_cores() != 1)}"
    return head.summary().describe()


def new_submission_id(run_id: int) -> str:
    """Unique on the cluster, which several stores may share; names the run for people reading Ray's dashboard."""
    return f"fmnist-run-{run_id}-{uuid.uuid4().hex[:8]}"


@functools.cache
def cluster_at(head: str) -> Cluster:
    return Cluster(head)


def ready_for_runs() -> Cluster | None:
    """current(), with the resources each run's job will ask for checked too: a cluster that cannot be
    reached or a setting that is wrong refuses (ClusterError) before a run is written."""
    head = current()
    if head is not None:
        resource_setting(CPUS_ENV, 1.0)
        resource_setting(GPUS_ENV, 0.0)
        custom_resources()
    return head


def current() -> Cluster | None:
    """The configured cluster (one client per address and process), or None for local runs. ClusterError
    when it is configured and cannot be reached (not cached: it may come up)."""
    head = address()
    return cluster_at(head) if head else None
