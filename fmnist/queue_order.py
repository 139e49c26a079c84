"""The fair order of a queue: round-robin across people, so that everyone's first run starts before
anyone's second.

The next run to start is the oldest queued run of whoever has started the fewest runs so far in
this lesson (the last FMNIST_LESSON_HOURS, default 3), counting the runs ahead of it in the order
as started; a tie goes to whoever queued first. A teacher's runs (and this machine's own user's, who
serves the app) go ahead of every student's, oldest first. With one person (the app on one's own
machine) this is first come, first served, as it always was. Pure: the store asks it, in the
transaction that claims a slot (fmnist.store.RunStore.claim_slot).
"""

import os
from dataclasses import dataclass

LESSON_ENV = "FMNIST_LESSON_HOURS"
DEFAULT_LESSON_HOURS = 3.0


@dataclass(frozen=True)
class Waiting:
    run_id: int
    owner: str | None  # None: this machine's own user
    created_at: float
    teacher: bool = False


def lesson_seconds() -> float:
    try:
        hours = float(os.environ.get(LESSON_ENV, DEFAULT_LESSON_HOURS))
    except ValueError:
        raise ValueError(f"{LESSON_ENV}={os.environ[LESSON_ENV]!r}: hours, e.g. 3") from None
    return max(hours, 0.0) * 3600


def fair_order(waiting: list[Waiting], started: dict[str | None, int]) -> list[int]:
    """The queued runs' ids in the order they start. started: runs each owner started this lesson."""
    first = sorted((w for w in waiting if w.teacher or w.owner is None), key=lambda w: (w.created_at, w.run_id))
    by_owner: dict[str | None, list[Waiting]] = {}
    for w in sorted((w for w in waiting if not (w.teacher or w.owner is None)), key=lambda w: (w.created_at, w.run_id)):
        by_owner.setdefault(w.owner, []).append(w)
    count = {owner: started.get(owner, 0) for owner in by_owner}
    order = [w.run_id for w in first]
    while by_owner:
        owner = min(by_owner, key=lambda o: (count[o], by_owner[o][0].created_at, by_owner[o][0].run_id))
        order.append(by_owner[owner].pop(0).run_id)
        count[owner] += 1
        if not by_owner[owner]:
            del by_owner[owner]
    return order
