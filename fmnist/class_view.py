"""A teacher's view of the class, as tables: who is signed in, what is queued and running and whose, and
the class leaderboard as CSV. Pure: fmnist.services hands the CSV to a teacher only; the Class page
(pages/class_view.py) draws the rest.
"""

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime

from fmnist.access import LOCAL_ADMIN
from fmnist.dataset import FASHION_MNIST
from fmnist.models import stack_name
from fmnist.runs import Run, RunKind, RunStatus

# The class leaderboard's columns, in order (the CSV a teacher downloads).
LEADERBOARD_COLUMNS = ("person", "run", "name", "stack", "parameters", "epochs", "images", "test accuracy",
                       "validation accuracy", "status", "started")
# A spreadsheet reads a cell that starts with one of these as a formula: a name typed by a student must stay text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class SignedIn:
    """A person signed in now: in how many tabs (sign-ins), and since their first."""
    person_id: str
    name: str
    teacher: bool
    since: float
    tabs: int


def when(seconds: float | None) -> str:
    """A moment as the tables show it: '2026-12-07 18:06 UTC'; '' for none."""
    return "" if seconds is None else datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def owner_of(run: Run) -> str:
    return run.owner_name or LOCAL_ADMIN.name


def leaderboard_rows(runs: list[Run]) -> list[dict]:
    """Every training (its cv and seed jobs and a search's trials aside), best test accuracy first, then
    the unscored ones, newest first."""
    trainings = [run for run in runs if run.kind == RunKind.TRAIN]
    trainings.sort(key=lambda run: (run.test_acc is None, -(run.test_acc or 0.0), -run.id))
    return [{
        "person": owner_of(run),
        "run": run.id,
        "name": run.name,
        "stack": stack_name(run.spec),
        "parameters": run.params,
        "epochs": run.spec.epochs,
        "images": run.train_limit or FASHION_MNIST.train_size,
        "test accuracy": run.test_acc,
        "validation accuracy": run.best_val_acc,
        "status": str(run.status),
        "started": when(run.started_at),
    } for run in trainings]


def as_text(value) -> str:
    """A cell as the CSV holds it: numbers as they are, accuracies to 4 places, text that a spreadsheet
    would run as a formula with a ' before it."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def leaderboard_csv(runs: list[Run]) -> str:
    """The class leaderboard as CSV, one line per training, with LEADERBOARD_COLUMNS as its header."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LEADERBOARD_COLUMNS)
    for row in leaderboard_rows(runs):
        writer.writerow([as_text(row[column]) for column in LEADERBOARD_COLUMNS])
    return out.getvalue()


def signed_in_people(rows: list[tuple[str, str, bool, float]]) -> list[SignedIn]:
    """Each person signed in once, from their sign-ins (person id, name, teacher, when), earliest first."""
    people: dict[str, SignedIn] = {}
    for person_id, name, teacher, created_at in sorted(rows, key=lambda row: row[3]):
        known = people.get(person_id)
        people[person_id] = SignedIn(person_id, name, teacher, created_at, 1) if known is None else \
            SignedIn(person_id, known.name, known.teacher or teacher, known.since, known.tabs + 1)
    return list(people.values())


def progress(run: Run) -> str:
    """A running run's progress: 'epoch 2/10', a projection's or an export's stage; a search's 'searching'."""
    return "searching" if run.kind == RunKind.SEARCH else run.progress_text()


def queue_rows(active: list[Run], standings: dict[int, str]) -> list[dict]:
    """What runs and what waits, running first, then the queued in the order they start (standings: a queued
    run's id -> where it stands, e.g. '3rd in line, about 2 min'; their order is the queue's)."""
    running = [run for run in active if run.status == RunStatus.RUNNING]
    queued = {run.id: run for run in active if run.status == RunStatus.QUEUED}
    order = [run_id for run_id in standings if run_id in queued] + [run_id for run_id in queued if run_id not in standings]
    rows = [{"run": run.id, "person": owner_of(run), "name": run.name, "stack": stack_name(run.spec) if run.kind != RunKind.SEARCH
             else "search", "status": "running", "where": progress(run)} for run in running]
    for run_id in order:
        run = queued[run_id]
        rows.append({"run": run.id, "person": owner_of(run), "name": run.name,
                     "stack": stack_name(run.spec) if run.kind != RunKind.SEARCH else "search", "status": "queued",
                     "where": standings.get(run_id, "queued on the cluster")})
    return rows
