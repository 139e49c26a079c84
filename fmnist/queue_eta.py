"""Where a queued run stands: its place in its queue's fair order (fmnist.queue_order) and about when
it starts ("3rd in line, about 2 min"), from the times measured on this machine (fmnist.estimates).

When it starts: each slot of its queue frees when a run in it ends (a training's time left at the
speed it reports, else its expected time less what it has run), then takes the runs ahead of it in
order, each for its expected time: that of finished runs of its workload here, or estimated from
their speed, times its repeats for a cross-validation or seed job; a search for its budget in
minutes; a projection or an export for the median time of those of its kind (and format) that
finished here. When any of these is unknown (nothing of that kind measured yet) the start time is not
claimed: "start time not yet known". Pure Python: the pages ask as they draw.
"""

import heapq
import statistics
from collections import defaultdict
from dataclasses import dataclass

from fmnist.estimates import Speed, time_here
from fmnist.runs import Run, RunKind, RunStatus

NOT_KNOWN = "start time not yet known"


@dataclass(frozen=True)
class Standing:
    """position: 1 for the next run to start; seconds: until it starts (None: not known)."""
    position: int
    seconds: float | None

    def text(self) -> str:
        """'3rd in line, about 2 min'; 'next in line, start time not yet known'."""
        place = "next in line" if self.position == 1 else f"{ordinal(self.position)} in line"
        return f"{place}, {NOT_KNOWN if self.seconds is None else about(self.seconds)}"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def about(seconds: float) -> str:
    """An estimate as people say it: 'starts any moment', 'about 40 s', 'about 2 min', 'about 1 h 10 min'."""
    if seconds < 5:
        return "starts any moment"
    if seconds < 55:
        return f"about {max(10, round(seconds / 10) * 10)} s"
    minutes = max(1, round(seconds / 60))
    return f"about {minutes} min" if minutes < 60 else f"about {minutes // 60} h {minutes % 60} min"


def derived_key(run: Run) -> tuple:
    """What a projection's or an export's time depends on: its kind, and an export's format."""
    return run.kind, run.settings.get("variant")


def derived_times(runs: list[Run]) -> dict[tuple, float]:
    """How long projections and exports take here: the median of the finished ones, by derived_key."""
    seconds = defaultdict(list)
    for run in runs:
        if run.derived and run.status == RunStatus.FINISHED and run.started_at is not None and run.ended_at is not None:
            seconds[derived_key(run)].append(run.ended_at - run.started_at)
    return {key: statistics.median(times) for key, times in seconds.items()}


def expected_s(run: Run, speeds: list[Speed], derived: dict[tuple, float] | None = None) -> float | None:
    """How long the run takes from its start to its end, as far as this machine's runs tell (None: unknown).
    A projection or an export trains nothing, so the trainings' speeds do not tell: `derived`
    (derived_times) does, once one of its kind has finished here."""
    if run.derived:
        return (derived or {}).get(derived_key(run))
    if run.kind == RunKind.SEARCH:
        minutes = (run.space or {}).get("minutes")
        return minutes * 60 if minutes else None
    estimate = time_here(run.spec, speeds, run.backend_setting or "auto", run.train_limit).seconds
    return None if estimate is None else estimate * (run.repeats or 1)


def remaining_s(run: Run, speeds: list[Speed], now: float, derived: dict[tuple, float] | None = None) -> float | None:
    """A running run's time left: at the speed it reports, else its expected time less what it has run."""
    if run.kind != RunKind.SEARCH and not run.derived and (left := run.eta_s()) is not None:
        return left
    expected = expected_s(run, speeds, derived)
    if expected is None:
        return None
    if run.kind == RunKind.SEARCH:
        return max(expected - (run.train_s or 0.0), 0.0)  # a search's train_s: the seconds it has run
    return max(expected - (now - (run.started_at or now)), 0.0)


def start_in(ahead: list[Run], running: list[Run], speeds: list[Speed], slots: int, now: float,
             derived: dict[tuple, float] | None = None) -> float | None:
    """Seconds until the next slot free after the runs ahead have each had theirs, the `slots` of
    the queue freeing as its running runs end (None: some run's time is not known)."""
    left = [remaining_s(run, speeds, now, derived) for run in running]
    if None in left:
        return None
    # With more runs running than slots, a slot frees only when enough of them have ended.
    free = ([0.0] * max(slots - len(left), 0) + sorted(left))[-slots:]
    heapq.heapify(free)
    for run in ahead:
        seconds = expected_s(run, speeds, derived)
        if seconds is None:
            return None
        heapq.heappush(free, heapq.heappop(free) + seconds)
    return free[0]


def standing(run: Run, ahead: list[Run], runs: list[Run], speeds: list[Speed], slots: int, now: float) -> Standing:
    """Where a queued run stands: ahead, the runs before it in its queue's order (fmnist.store.RunStore.queue_ahead);
    runs, the store's (its queue's running ones free the slots); slots, how many of its queue's run at once."""
    running = [other for other in runs if other.status == RunStatus.RUNNING and other.queue == run.queue]
    return Standing(len(ahead) + 1, start_in(ahead, running, speeds, max(slots, 1), now, derived_times(runs)))
