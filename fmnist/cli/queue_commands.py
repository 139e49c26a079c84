"""`python -m fmnist queue`: what runs and what waits, in the order it starts, with about when; and
`queue pause` / `queue resume`, the teacher's view's buttons for a shell (the command line acts as
this machine's admin: fmnist.cli)."""

import json

from fmnist import services
from fmnist.cli.terminal import format_table
from fmnist.runs import ACTIVE, RunStatus
from fmnist.services import Actor
from fmnist.store import open_store
from fmnist.worker import reap_dead_runs


def add_queue(sub) -> None:
    queue = sub.add_parser("queue", help="the runs running and queued, in the order they start; pause or resume the queue")
    queue.add_argument("action", nargs="?", choices=("show", "pause", "resume"), default="show",
                       help="pause: queued runs keep their places and none starts until resume; running runs go on (default: show)")
    queue.add_argument("--json", action="store_true", help="show: one JSON object per run")
    queue.set_defaults(func=cmd_queue)


def cmd_queue(args) -> int:
    store = open_store()
    if args.action == "pause":
        services.pause_queue(store, Actor.local())
        print("The queue is paused: queued runs keep their places, none starts until `python -m fmnist queue resume`.")
        return 0
    if args.action == "resume":
        services.resume_queue(store, Actor.local())
        print("The queue is resumed: its runs start in the order they had.")
        return 0
    reap_dead_runs(store)
    rows = queue_rows(store)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    paused = store.queue_paused()
    if paused is not None:
        print(f"The queue is paused (by {paused.get('by', 'a teacher')}): `python -m fmnist queue resume` starts it again.")
    if not rows:
        print("Nothing running or queued.")
        return 0
    print(format_table(rows, ["run_id", "name", "kind", "owner", "status", "where"]))
    return 0


def queue_rows(store) -> list[dict]:
    """The running runs, then the queued in the order they start (each queue's fair order: fmnist.queue_order)."""
    active = store.list_runs(statuses=ACTIVE)
    running = [run for run in active if run.status != RunStatus.QUEUED]
    queued = sorted((run for run in active if run.status == RunStatus.QUEUED), key=lambda run: (run.queue, store.queue_position(run.id)))
    return [{
        "run_id": run.id, "name": run.name, "kind": str(run.kind), "owner": run.owner_name or "this machine", "status": str(run.status),
        "queue": run.queue, "where": run.progress_text() if run.status == RunStatus.RUNNING else services.queue_line(store, run.id),
    } for run in running + queued]
